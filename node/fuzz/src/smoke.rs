//! The CI smoke run of a target: replay its committed corpus, its regression inputs and its
//! seeds, then a bounded number of seeded random mutations of them. This is *not*
//! coverage-guided fuzzing (that is `scripts/fuzz.sh`, with AFL++); it proves in seconds that
//! every input the fuzzer ever kept still passes, and shakes the targets a little more.

use crate::seeds;
use crate::targets::Target;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The committed, minimised corpus of a target.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Inputs that once broke a target, kept forever.
pub fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

/// Every file of `dir` with its name, sorted by name; a missing directory has none.
pub fn read_inputs(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut inputs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            inputs.push((name, std::fs::read(entry.path())?));
        }
    }
    inputs.sort();
    Ok(inputs)
}

/// What a smoke run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmokeReport {
    /// Committed corpus files replayed.
    pub corpus: usize,
    /// Regression inputs replayed.
    pub regressions: usize,
    /// Seeds replayed.
    pub seeds: usize,
    /// Mutated inputs run.
    pub mutations: usize,
}

/// Replays everything committed for `target`, then up to `mutations` random mutations of it
/// (seeded by the target's name, so a failure reproduces), stopping early at `budget`.
/// Panics, naming the input and its bytes in hex, when the target does.
pub fn run(target: &Target, mutations: usize, budget: Duration) -> SmokeReport {
    let start = Instant::now();
    let corpus = read_inputs(&corpus_dir(target.name)).expect("reading the corpus");
    let regressions = read_inputs(&regressions_dir(target.name)).expect("reading regressions");
    let seeds = seeds::seeds(target.name);
    let mut report = SmokeReport {
        corpus: corpus.len(),
        regressions: regressions.len(),
        seeds: seeds.len(),
        mutations: 0,
    };
    let pool: Vec<Vec<u8>> = corpus
        .iter()
        .chain(&regressions)
        .chain(&seeds)
        .map(|(name, bytes)| {
            run_one(target, name, bytes);
            bytes.clone()
        })
        .collect();
    if pool.is_empty() {
        return report;
    }
    let mut rng = Rng::new(target.name);
    while report.mutations < mutations && start.elapsed() < budget {
        let mut input = rng.pick(&pool).clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut input, &pool, &mut rng);
        }
        run_one(target, &format!("mutation {}", report.mutations), &input);
        report.mutations += 1;
    }
    report
}

fn run_one(target: &Target, name: &str, bytes: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(bytes))) {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(non-string panic)");
        panic!(
            "target {} failed on {name}: {message}\ninput ({} bytes): {}",
            target.name,
            bytes.len(),
            hex::encode(bytes)
        );
    }
}

/// Values that sit on the edges of lengths, counts and amounts.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX / 2,
    u64::MAX,
];

/// One AFL-style havoc step on `input`.
fn mutate(input: &mut Vec<u8>, pool: &[Vec<u8>], rng: &mut Rng) {
    if input.is_empty() {
        input.push(rng.next() as u8);
        return;
    }
    let at = rng.below(input.len());
    match rng.below(8) {
        0 => input[at] ^= 1 << rng.below(8),
        1 => input[at] = rng.next() as u8,
        2 => {
            let value = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
            let width = [1, 2, 4, 8][rng.below(4)];
            let end = (at + width).min(input.len());
            input[at..end].copy_from_slice(&value[..end - at]);
        }
        3 => {
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        4 => {
            let end = (at + 1 + rng.below(32)).min(input.len());
            input.drain(at..end);
        }
        5 => {
            let end = (at + 1 + rng.below(64)).min(input.len());
            let chunk = input[at..end].to_vec();
            input.splice(at..at, chunk);
        }
        6 => {
            let other = rng.pick(pool);
            if !other.is_empty() {
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
        }
        _ => input.truncate(at),
    }
}

/// SplitMix64: a tiny deterministic generator, so a smoke failure reproduces exactly.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        Rng(seed.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, pool: &'a [Vec<u8>]) -> &'a Vec<u8> {
        &pool[self.below(pool.len())]
    }
}
