//! The published formulas the experiments are measured against. Pure functions.

/// Nakamoto's whitepaper §11: the probability that an attacker with hash share `q` ever
/// catches up from `z` blocks behind, with the attacker's progress while the merchant
/// waits for `z` confirmations approximated by a Poisson distribution of mean `z·q/p`.
pub fn nakamoto_catch_up(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    let lambda = f64::from(z) * q / p;
    let mut poisson = (-lambda).exp();
    let mut sum = 1.0;
    for k in 0..=z {
        if k > 0 {
            poisson *= lambda / f64::from(k);
        }
        sum -= poisson * (1.0 - (q / p).powi((z - k) as i32));
    }
    sum.clamp(0.0, 1.0)
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

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn nakamoto_matches_the_whitepaper_tables() {
        let q01 = [
            1.0000000, 0.2045873, 0.0509779, 0.0131722, 0.0034552, 0.0009137, 0.0002428, 0.0000647,
            0.0000173, 0.0000046, 0.0000012,
        ];
        for (z, want) in q01.iter().enumerate() {
            let got = nakamoto_catch_up(0.1, z as u32);
            assert!(close(got, *want, 5e-8), "q=0.1 z={z}: {got} vs {want}");
        }
        let q03 = [
            (0, 1.0),
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
        for (z, want) in q03 {
            let got = nakamoto_catch_up(0.3, z);
            assert!(close(got, want, 5e-8), "q=0.3 z={z}: {got} vs {want}");
        }
        assert_eq!(nakamoto_catch_up(0.5, 6), 1.0);
    }

    #[test]
    fn rosenfeld_matches_his_table() {
        assert!(close(rosenfeld_double_spend(0.1, 6), 0.0005914, 5e-8));
        assert!(close(rosenfeld_double_spend(0.1, 1), 0.2, 1e-12));
        assert!(close(rosenfeld_double_spend(0.3, 5), 0.1976, 5e-5));
        assert_eq!(rosenfeld_double_spend(0.5, 3), 1.0);
        assert_eq!(rosenfeld_double_spend(0.2, 0), 1.0);
        // Exact is above Nakamoto's Poisson approximation for small z at q = 0.1.
        assert!(rosenfeld_double_spend(0.1, 6) > nakamoto_catch_up(0.1, 6));
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
