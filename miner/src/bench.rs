//! The miner benchmark behind `cairn bench miner`: hashes per second of every kernel, judged
//! against a reference measured in the same run.
//!
//! The reference is what a straightforward midstate miner would reach on one core: single-block
//! SHA-256 compressions per second of the `sha2` crate, one block after another with no
//! interleaving, halved because a nonce costs two compressions once the midstate is reused. A
//! `ratio_to_reference` of 1.0 is that plain miner's speed.

use crate::cancel::CancelToken;
use crate::error::MinerError;
use crate::kernel::Kernel;
use crate::search::{Miner, MinerConfig};
use cairn_core::pow::CompactTarget;
use cairn_core::{Block, BlockHash, BlockHeader, MerkleRoot, Target, Transaction};
use std::fmt;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// Worker threads for every kernel measured.
    pub threads: usize,
    /// How long the chosen kernel runs; the others and the reference run shorter.
    pub duration: Duration,
    /// The kernel to report on; `None` for [`Kernel::best`].
    pub kernel: Option<Kernel>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            threads: MinerConfig::default().threads,
            duration: Duration::from_secs(5),
            kernel: None,
        }
    }
}

/// One kernel's measured speed.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelRate {
    /// The kernel.
    pub kernel: Kernel,
    /// Worker threads it ran on.
    pub threads: usize,
    /// Headers hashed.
    pub hashes: u64,
    /// Wall-clock seconds it ran.
    pub seconds: f64,
}

impl KernelRate {
    /// Headers hashed per second.
    pub fn hashes_per_sec(&self) -> f64 {
        self.hashes as f64 / self.seconds
    }
}

/// The outcome of [`bench()`].
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// The kernel the report is about (the requested one, or the best), run for the full time.
    pub chosen: KernelRate,
    /// Every kernel this CPU can run, fastest first by preference, each run briefly; the chosen
    /// kernel appears here with its full run.
    pub kernels: Vec<KernelRate>,
    /// Plain single-block `sha2` compressions per second on one core.
    pub reference_compressions_per_sec: f64,
}

impl BenchReport {
    /// The reference miner's hashes per second: compressions per second halved.
    pub fn reference_hashes_per_sec(&self) -> f64 {
        self.reference_compressions_per_sec / 2.0
    }

    /// `rate` as a multiple of the reference miner.
    pub fn ratio(&self, rate: &KernelRate) -> f64 {
        rate.hashes_per_sec() / self.reference_hashes_per_sec()
    }

    /// The chosen kernel as a multiple of the reference miner.
    pub fn ratio_to_reference(&self) -> f64 {
        self.ratio(&self.chosen)
    }

    /// One JSON object on one line: `kernel`, `threads`, `hashes`, `seconds`,
    /// `hashes_per_sec`, `reference_compressions_per_sec`, `ratio_to_reference`.
    pub fn to_json_line(&self) -> String {
        // Hand-written: the only string is a kernel name, and `f64`'s `Display` never uses an
        // exponent, so every value is already valid JSON.
        format!(
            "{{\"kernel\":\"{}\",\"threads\":{},\"hashes\":{},\"seconds\":{},\"hashes_per_sec\":{},\
             \"reference_compressions_per_sec\":{},\"ratio_to_reference\":{}}}",
            self.chosen.kernel.name(),
            self.chosen.threads,
            self.chosen.hashes,
            json_number(self.chosen.seconds),
            json_number(self.chosen.hashes_per_sec()),
            json_number(self.reference_compressions_per_sec),
            json_number(self.ratio_to_reference()),
        )
    }
}

/// A finite float as JSON (non-finite values, which a finished run cannot produce, as 0).
fn json_number(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reference: {:.2} M plain sha2 compressions/s on 1 thread = {:.2} MH/s as a midstate miner",
            self.reference_compressions_per_sec / 1e6,
            self.reference_hashes_per_sec() / 1e6
        )?;
        writeln!(
            f,
            "{:<10} {:>7} {:>10} {:>12}",
            "kernel", "threads", "MH/s", "x reference"
        )?;
        for rate in &self.kernels {
            writeln!(
                f,
                "{:<10} {:>7} {:>10.2} {:>12.2}",
                rate.kernel.name(),
                rate.threads,
                rate.hashes_per_sec() / 1e6,
                self.ratio(rate)
            )?;
        }
        write!(
            f,
            "chosen: {} on {} thread(s): {} hashes in {:.2} s = {:.2} MH/s = {:.2} x reference",
            self.chosen.kernel,
            self.chosen.threads,
            self.chosen.hashes,
            self.chosen.seconds,
            self.chosen.hashes_per_sec() / 1e6,
            self.ratio_to_reference()
        )
    }
}

/// Measures the reference, every available kernel briefly, then the chosen kernel for the
/// whole `config.duration`, each through the real multithreaded search.
pub fn bench(config: &BenchConfig) -> Result<BenchReport, MinerError> {
    if config.duration.is_zero() {
        return Err(MinerError::ZeroDuration);
    }
    let chosen_kernel = Miner::new(MinerConfig {
        threads: config.threads,
        kernel: config.kernel,
        throttle: None,
    })?
    .kernel();
    let short = (config.duration / 4).clamp(Duration::from_millis(200), Duration::from_secs(1));
    let reference_compressions_per_sec = reference_compressions_per_sec(short);
    let mut kernels = Vec::new();
    for kernel in Kernel::available() {
        if kernel != chosen_kernel {
            kernels.push(measure(kernel, config.threads, short)?);
        }
    }
    let chosen = measure(chosen_kernel, config.threads, config.duration)?;
    let position = Kernel::available()
        .iter()
        .position(|&k| k == chosen_kernel)
        .unwrap_or(0);
    kernels.insert(position.min(kernels.len()), chosen.clone());
    Ok(BenchReport {
        chosen,
        kernels,
        reference_compressions_per_sec,
    })
}

/// Plain single-block SHA-256 compressions per second on this thread, each block chained on
/// the previous state as when hashing a long message.
fn reference_compressions_per_sec(duration: Duration) -> f64 {
    const BATCH: u64 = 4096;
    let mut state = [0x6a09_e667u32; 8];
    let block = [0x5au8; 64];
    let mut compressions = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        for _ in 0..BATCH {
            sha2::block_api::compress256(&mut state, &[block]);
        }
        compressions += BATCH;
    }
    std::hint::black_box(state);
    compressions as f64 / started.elapsed().as_secs_f64()
}

/// Mines a synthetic template at an unreachable target for `duration`, then cancels.
fn measure(kernel: Kernel, threads: usize, duration: Duration) -> Result<KernelRate, MinerError> {
    let miner = Miner::new(MinerConfig {
        threads,
        kernel: Some(kernel),
        throttle: None,
    })?;
    let template = bench_template();
    let cancel = CancelToken::new();
    let started = Instant::now();
    let found = std::thread::scope(|scope| {
        let search = scope.spawn(|| miner.search(&template, &Target::default(), &cancel));
        while started.elapsed() < duration && !search.is_finished() {
            std::thread::sleep(
                (duration.saturating_sub(started.elapsed())).min(Duration::from_millis(50)),
            );
        }
        cancel.cancel();
        search.join().map_err(|_| MinerError::WorkerPanicked)?
    })?;
    let seconds = started.elapsed().as_secs_f64();
    debug_assert!(found.is_none(), "a zero target is never met");
    Ok(KernelRate {
        kernel,
        threads,
        hashes: miner.hashes_done(),
        seconds,
    })
}

/// A block template that no hash will solve at target zero.
fn bench_template() -> Block {
    let coinbase = Transaction {
        version: 1,
        inputs: vec![],
        outputs: vec![],
        lock_height: 0,
        data: b"bench".to_vec(),
    };
    let header = BlockHeader {
        version: 1,
        prev_blockhash: BlockHash::from_byte_array([0x42; 32]),
        merkle_root: MerkleRoot::ZERO,
        time: 1_767_225_600,
        bits: CompactTarget(0x1d00_ffff),
        nonce: 0,
    };
    Block {
        header,
        txs: vec![coinbase],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_bench_reports_every_kernel_and_a_json_line() {
        let report = bench(&BenchConfig {
            threads: 1,
            duration: Duration::from_millis(100),
            kernel: Some(Kernel::Portable),
        })
        .unwrap();
        assert_eq!(report.chosen.kernel, Kernel::Portable);
        assert_eq!(report.kernels.len(), Kernel::available().len());
        assert!(report.chosen.hashes > 0 && report.reference_compressions_per_sec > 0.0);
        let line = report.to_json_line();
        let fields: Vec<(&str, &str)> = line
            .strip_prefix('{')
            .and_then(|l| l.strip_suffix('}'))
            .unwrap()
            .split(',')
            .map(|field| field.split_once(':').unwrap())
            .collect();
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.trim_matches('"')).collect();
        assert_eq!(
            keys,
            [
                "kernel",
                "threads",
                "hashes",
                "seconds",
                "hashes_per_sec",
                "reference_compressions_per_sec",
                "ratio_to_reference"
            ]
        );
        assert_eq!(fields[0].1, "\"portable\"");
        let number = |i: usize| fields[i].1.parse::<f64>().unwrap();
        assert_eq!(number(1), 1.0);
        assert_eq!(number(2), report.chosen.hashes as f64);
        assert!((number(6) - number(4) / (number(5) / 2.0)).abs() < 1e-6 * number(6));
        assert!(report.to_string().contains("chosen: portable"));
        assert_eq!(
            bench(&BenchConfig {
                duration: Duration::ZERO,
                ..BenchConfig::default()
            }),
            Err(MinerError::ZeroDuration)
        );
    }
}
