//! Closed-form results of the literature that the lab shows beside what it measures. Pure
//! math, no I/O: the fork view uses it for finality odds, experiments for their theory line.

/// Nakamoto whitepaper §11: the probability that an attacker with a share `q` of the hash
/// power ever catches up from `z` blocks behind, once the merchant has waited for `z`
/// confirmations.
///
/// `P = 1 − Σ_{k=0..z} Pois(k; λ)·(1 − (q/p)^(z−k))` with `p = 1 − q`, `λ = z·q/p`. It is
/// evaluated as `Σ_{k≤z} Pois(k; λ)·(q/p)^(z−k) + Σ_{k>z} Pois(k; λ)` so that small results
/// do not vanish in `1 − (almost 1)`, with every Poisson term built in log space so that
/// `e^(−λ)` never underflows (the whitepaper's table goes to z = 340).
///
/// `q ≥ 0.5` gives 1 (the attacker always catches up), `q ≤ 0` gives 0 for z > 0, and
/// `z = 0` gives 1 (nothing to catch up).
pub fn attacker_success(q: f64, z: u64) -> f64 {
    if z == 0 || q >= 0.5 || q.is_nan() {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    let p = 1.0 - q;
    let ratio_ln = (q / p).ln();
    let lambda = z as f64 * (q / p);
    let lambda_ln = lambda.ln();
    // ln Pois(k; λ) = −λ + k·ln λ − ln k!, built term by term.
    let mut ln_pois = -lambda;
    let mut caught_up = 0.0;
    for k in 0..=z {
        if k > 0 {
            ln_pois += lambda_ln - (k as f64).ln();
        }
        caught_up += (ln_pois + (z - k) as f64 * ratio_ln).exp();
    }
    // The upper tail Σ_{k>z} Pois(k; λ): terms fall from k = z + 1 on since λ < z.
    let mut tail = 0.0;
    let mut k = z;
    loop {
        k += 1;
        ln_pois += lambda_ln - (k as f64).ln();
        let term = ln_pois.exp();
        tail += term;
        if term <= tail * 1e-17 || term == 0.0 || k > z + 100_000 {
            break;
        }
    }
    (caught_up + tail).min(1.0)
}

/// The smallest `z` for which [`attacker_success`]`(q, z) < target` (the whitepaper's
/// "solving for P less than 0.1%" table uses `target = 0.001`); `None` when no `z` up to
/// `max_z` suffices (always the case for `q ≥ 0.5`).
pub fn confirmations_needed(q: f64, target: f64, max_z: u64) -> Option<u64> {
    (0..=max_z).find(|&z| attacker_success(q, z) < target)
}

/// Rosenfeld's exact double-spend success probability ("Analysis of hashrate-based double
/// spending", 2012): the attacker's blocks while the merchant waits for `z` confirmations
/// are negative-binomial, `P = 1 − Σ_{m=0}^{z} C(m+z−1, m)(p^z q^m − q^z p^m)`; 1 for q ≥ p.
pub fn rosenfeld_double_spend(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    if z == 0 {
        return 1.0;
    }
    let zf = f64::from(z);
    let mut binom = 1.0; // C(z−1+m, m) at m = 0
    let mut sum = 0.0;
    for m in 0..=z {
        if m > 0 {
            binom *= (zf - 1.0 + f64::from(m)) / f64::from(m);
        }
        let mf = f64::from(m);
        sum += binom * (p.powf(zf) * q.powf(mf) - q.powf(zf) * p.powf(mf));
    }
    (1.0 - sum).clamp(0.0, 1.0)
}

/// Eyal and Sirer's relative revenue of a selfish pool with hash share `alpha` when a share
/// `gamma` of the honest miners mine on the pool's block during a race ("Majority is not
/// Enough", eq. 8).
pub fn selfish_revenue(alpha: f64, gamma: f64) -> f64 {
    let a = alpha;
    let numerator = a * (1.0 - a).powi(2) * (4.0 * a + gamma * (1.0 - 2.0 * a)) - a.powi(3);
    let denominator = 1.0 - a * (1.0 + (2.0 - a) * a);
    numerator / denominator
}

/// The hash share above which selfish mining pays: `(1 − γ)/(3 − 2γ)`.
pub fn selfish_threshold(gamma: f64) -> f64 {
    (1.0 - gamma) / (3.0 - 2.0 * gamma)
}

/// The share of blocks that end stale when every block reaches the others `delay` seconds
/// after it is found and blocks come every `interval` seconds on average: the chance that
/// someone else finds a block within the delay, `1 − e^(−d/T)`.
pub fn stale_rate(delay: f64, interval: f64) -> f64 {
    1.0 - (-delay / interval).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whitepaper's q = 0.1 column, z = 0..10, to its seven decimals.
    #[test]
    fn matches_the_whitepaper_column_for_q_one_tenth() {
        let table = [
            1.0000000, 0.2045873, 0.0509779, 0.0131722, 0.0034552, 0.0009137, 0.0002428, 0.0000647,
            0.0000173, 0.0000046, 0.0000012,
        ];
        for (z, expected) in table.into_iter().enumerate() {
            let got = attacker_success(0.1, z as u64);
            assert!(
                (got - expected).abs() < 5e-8,
                "q=0.1 z={z}: got {got:.7}, whitepaper {expected:.7}"
            );
        }
        assert!(attacker_success(0.1, 5) < 0.001);
    }

    /// The whitepaper's q = 0.3 column, z = 0..50 in steps of 5.
    #[test]
    fn matches_the_whitepaper_column_for_q_three_tenths() {
        let table = [
            (0, 1.0000000),
            (5, 0.1773523),
            (10, 0.0416605),
            (15, 0.0101008),
            (20, 0.0024804),
            (25, 0.0006132),
            (30, 0.0001522),
            (35, 0.0000379),
            (40, 0.0000095),
            (45, 0.0000024),
            (50, 0.0000006),
        ];
        for (z, expected) in table {
            let got = attacker_success(0.3, z);
            assert!(
                (got - expected).abs() < 5e-8,
                "q=0.3 z={z}: got {got:.7}, whitepaper {expected:.7}"
            );
        }
    }

    /// "Solving for P less than 0.1%": the whole table, including z = 340 for q = 0.45,
    /// where e^(−λ) alone would be 1e−121.
    #[test]
    fn confirmations_for_one_in_a_thousand_match_the_whitepaper() {
        for (q, z) in [
            (0.10, 5),
            (0.15, 8),
            (0.20, 11),
            (0.25, 15),
            (0.30, 24),
            (0.35, 41),
            (0.40, 89),
            (0.45, 340),
        ] {
            assert_eq!(confirmations_needed(q, 0.001, 1000), Some(z), "q = {q}");
            assert!(attacker_success(q, z) < 0.001);
            assert!(
                attacker_success(q, z - 1) >= 0.001,
                "q = {q}, z = {}",
                z - 1
            );
        }
    }

    #[test]
    fn edges_are_certain_or_impossible() {
        assert_eq!(attacker_success(0.1, 0), 1.0);
        assert_eq!(attacker_success(0.45, 0), 1.0);
        assert_eq!(attacker_success(0.5, 10), 1.0);
        assert_eq!(attacker_success(0.7, 10), 1.0);
        assert_eq!(attacker_success(0.0, 3), 0.0);
        assert_eq!(confirmations_needed(0.5, 0.001, 100), None);
    }

    #[test]
    fn stays_finite_and_falls_with_depth_far_past_the_table() {
        let mut last = 1.0;
        for z in [1, 10, 100, 340, 1000, 5000] {
            let p = attacker_success(0.45, z);
            assert!(p.is_finite() && p > 0.0 && p < last, "z = {z}: {p}");
            last = p;
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn rosenfeld_matches_his_table() {
        assert!(close(rosenfeld_double_spend(0.1, 6), 0.0005914, 5e-8));
        assert!(close(rosenfeld_double_spend(0.1, 1), 0.2, 1e-12));
        assert!(close(rosenfeld_double_spend(0.3, 5), 0.1976, 5e-5));
        assert_eq!(rosenfeld_double_spend(0.5, 3), 1.0);
        assert_eq!(rosenfeld_double_spend(0.2, 0), 1.0);
        // Exact is above Nakamoto's Poisson approximation for small z at q = 0.1.
        assert!(rosenfeld_double_spend(0.1, 6) > attacker_success(0.1, 6));
    }

    #[test]
    fn selfish_revenue_meets_the_threshold_and_the_extremes() {
        assert!(close(selfish_threshold(0.0), 1.0 / 3.0, 1e-12));
        assert!(close(selfish_threshold(0.5), 0.25, 1e-12));
        for gamma in [0.0, 0.25, 0.5, 0.75] {
            let t = selfish_threshold(gamma);
            assert!(
                close(selfish_revenue(t, gamma), t, 1e-12),
                "γ={gamma}: R at the threshold"
            );
            assert!(selfish_revenue(t - 0.05, gamma) < t - 0.05);
            assert!(selfish_revenue(t + 0.05, gamma) > t + 0.05);
        }
        assert!(close(selfish_revenue(0.0, 0.0), 0.0, 1e-12));
        assert!(close(selfish_revenue(0.5, 0.0), 1.0, 1e-12));
        assert!(close(selfish_revenue(1.0 / 3.0, 1.0), 17.0 / 39.0, 1e-12));
    }

    #[test]
    fn stale_rate_is_the_chance_of_a_find_within_the_delay() {
        assert_eq!(stale_rate(0.0, 5.0), 0.0);
        assert!(close(stale_rate(0.5, 5.0), 0.0951626, 1e-7));
        assert!(close(stale_rate(5.0, 5.0), 1.0 - (-1.0f64).exp(), 1e-12));
    }
}
