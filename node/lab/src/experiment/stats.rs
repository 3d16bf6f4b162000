//! Confidence intervals and the seeded random draws of the block lottery.

/// The 97.5 % quantile of the standard normal distribution.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson's 95 % score interval for a proportion of `successes` in `trials` (good at
/// small counts and at 0 or `trials`, unlike the normal approximation).
pub fn wilson95(successes: u64, trials: u64) -> [f64; 2] {
    if trials == 0 {
        return [0.0, 1.0];
    }
    let n = trials as f64;
    let phat = successes as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (phat + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (phat * (1.0 - phat) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or `trials` successes the bound is exactly 0 or 1 (rounding would leave 1e-18).
    let low = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if successes >= trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    [low, high]
}

/// Student's t 97.5 % quantile for `df` degrees of freedom (table to 30, normal beyond).
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= 30 => TABLE[d - 1],
        _ => Z95,
    }
}

/// A 95 % interval for the share of `true`s in a correlated sequence (the miners of
/// consecutive main-chain blocks): the batch-means method. The sequence is cut into
/// `batches` contiguous runs, each run's share is one sample, and the interval is Student's
/// t around their mean, widened to at least the Wilson interval of the whole sequence.
pub fn batch_means95(sequence: &[bool], batches: usize) -> [f64; 2] {
    let n = sequence.len();
    let successes = sequence.iter().filter(|b| **b).count() as u64;
    let wilson = wilson95(successes, n as u64);
    let batches = batches.min(n / 4);
    if batches < 2 {
        return wilson;
    }
    let size = n / batches;
    let shares: Vec<f64> = (0..batches)
        .map(|b| {
            let run = &sequence[b * size..(b + 1) * size];
            run.iter().filter(|x| **x).count() as f64 / size as f64
        })
        .collect();
    let mean = successes as f64 / n as f64;
    let var = shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (batches - 1) as f64;
    let half = t975(batches - 1) * (var / batches as f64).sqrt();
    [
        (mean - half).max(0.0).min(wilson[0]),
        (mean + half).min(1.0).max(wilson[1]),
    ]
}

/// Whether `value` lies in `interval`.
pub fn covers(interval: [f64; 2], value: f64) -> bool {
    interval[0] <= value && value <= interval[1]
}

/// SplitMix64: a tiny generator whose output for a seed never changes between versions,
/// so `--seed N` reproduces a run's lottery exactly.
#[derive(Debug, Clone)]
pub struct Lottery {
    state: u64,
}

impl Lottery {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Lottery {
        Lottery { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// An exponential waiting time of rate `rate` (mean `1/rate`).
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }

    /// Which miner finds the next block when miner `i` finds blocks at rate `rates[i]`:
    /// each draws an exponential waiting time and the first wins. Returns the winner and
    /// the time its find took.
    pub fn next_finder(&mut self, rates: &[f64]) -> (usize, f64) {
        rates
            .iter()
            .map(|r| self.exponential(*r))
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one miner")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_published_example() {
        // Wilson (1927) / Newcombe (1998) example: 81 of 263 → [0.2553, 0.3662].
        let [lo, hi] = wilson95(81, 263);
        assert!(
            (lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4,
            "{lo} {hi}"
        );
        let [lo, hi] = wilson95(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 5e-4, "{hi}");
        assert_eq!(wilson95(0, 0), [0.0, 1.0]);
        // The edges are exact, so a theory of exactly 0 or 1 is inside.
        for n in [1, 7, 150, 1000] {
            assert_eq!(wilson95(0, n)[0], 0.0);
            assert_eq!(wilson95(n, n)[1], 1.0);
        }
    }

    #[test]
    fn batch_means_is_never_narrower_than_wilson() {
        let seq: Vec<bool> = (0..400).map(|i| (i / 20) % 3 == 0).collect();
        let k = seq.iter().filter(|b| **b).count() as u64;
        let w = wilson95(k, 400);
        let b = batch_means95(&seq, 10);
        assert!(b[0] <= w[0] && b[1] >= w[1]);
        assert!(covers(b, k as f64 / 400.0));
    }

    #[test]
    fn the_lottery_is_reproducible_and_fair() {
        let mut a = Lottery::new(7);
        let mut b = Lottery::new(7);
        let draws: Vec<usize> = (0..2000).map(|_| a.next_finder(&[0.3, 0.7]).0).collect();
        let again: Vec<usize> = (0..2000).map(|_| b.next_finder(&[0.3, 0.7]).0).collect();
        assert_eq!(draws, again);
        let first = draws.iter().filter(|w| **w == 0).count() as u64;
        assert!(covers(wilson95(first, 2000), 0.3) || (first as f64 / 2000.0 - 0.3).abs() < 0.04);
        let mean: f64 = (0..4000).map(|_| a.exponential(2.0)).sum::<f64>() / 4000.0;
        assert!((mean - 0.5).abs() < 0.03, "{mean}");
    }
}
