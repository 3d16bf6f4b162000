//! `cairn bench validate | store | mempool | sync | propagate`: block connection, storage,
//! mempool, sync and propagation speed, each as a ratio to a reference measured in the same run (STYLE §12), so figures compare
//! across machines. Every bench prints a table, or with `--json` one line; progress goes to
//! stderr.
//!
//! - [`validate`]: inputs connected per second ÷ single-thread k256 verifications per
//!   second, cold and with a warm signature cache.
//! - [`store`]: blocks per second connected into rocksdb ÷ into the in-memory store.
//! - [`mempool`]: independent transactions accepted per second ÷ verifications per second,
//!   and the cost of a full mempool when a block connects.
//! - [`sync`]: blocks per second synced between two real nodes on loopback ÷ the same
//!   chain's in-process connect over the in-memory store.
//! - [`propagate`]: time for a mined block to reach every node of a 5-node loopback
//!   testnet ÷ one loopback RPC round trip.

pub mod mempool;
pub mod nodes;
pub mod propagate;
pub mod store;
pub mod sync;
pub mod validate;
pub mod workload;

use cairn_core::Hash256;
use cairn_core::hash::sha256d;
use cairn_core::keys::{PublicKeyBytes, SignatureBytes, verify_signature};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The reference every signature ratio is measured against.
const VERIFY_REFERENCE: &str = "k256 verify_signature, one thread, 1,024 distinct signatures";

/// One figure of a report.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Its JSON member name.
    pub key: &'static str,
    /// What it is, for the table.
    pub label: &'static str,
    /// The value.
    pub value: f64,
    /// Its unit, for the table.
    pub unit: &'static str,
}

impl Figure {
    /// A figure.
    pub fn new(key: &'static str, label: &'static str, value: f64, unit: &'static str) -> Self {
        Figure {
            key,
            label,
            value,
            unit,
        }
    }
}

/// What a bench measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// `validate`, `store`, `mempool`, `sync` or `propagate`.
    pub bench: &'static str,
    /// The headline figure ÷ the reference.
    pub ratio_to_reference: f64,
    /// What the reference is.
    pub reference: &'static str,
    /// The reference's rate, per second.
    pub reference_per_sec: f64,
    /// Everything else measured.
    pub figures: Vec<Figure>,
}

impl Report {
    /// One JSON object on one line: `bench`, `ratio_to_reference`, `reference`,
    /// `reference_per_sec`, then every figure by its key.
    pub fn to_json_line(&self) -> String {
        let mut object = serde_json::Map::new();
        object.insert("bench".into(), self.bench.into());
        object.insert("ratio_to_reference".into(), round(self.ratio_to_reference));
        object.insert("reference".into(), self.reference.into());
        object.insert("reference_per_sec".into(), round(self.reference_per_sec));
        for figure in &self.figures {
            object.insert(figure.key.into(), round(figure.value));
        }
        serde_json::Value::Object(object).to_string()
    }
}

/// Counts as integers, rates to three decimals.
fn round(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        serde_json::json!(value as i64)
    } else {
        serde_json::json!((value * 1000.0).round() / 1000.0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cairn bench {} (medians of this run)", self.bench)?;
        writeln!(
            f,
            "  {:<44} {:>14.1} /s",
            format!("reference: {}", self.reference),
            self.reference_per_sec
        )?;
        for figure in &self.figures {
            writeln!(
                f,
                "  {:<44} {:>14.3} {}",
                figure.label, figure.value, figure.unit
            )?;
        }
        write!(
            f,
            "  {:<44} {:>14.3}",
            "ratio to reference", self.ratio_to_reference
        )
    }
}

/// Median of `samples` (the mean of the middle two for an even count).
fn median(mut samples: Vec<f64>) -> f64 {
    assert!(!samples.is_empty(), "a median needs samples");
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

/// One round of the verification reference: long enough to settle, short enough to sit
/// next to the run it is compared with.
const REFERENCE_ROUND: Duration = Duration::from_millis(300);

/// Distinct signatures the reference cycles through: more than a block's worth of branch
/// history, so no verification finds the branch predictor trained on its own scalars.
const REFERENCE_SIGNATURES: usize = 1024;

/// Single-thread k256 verification rates, measured in alternating rounds so both see the
/// same machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerifyReference {
    /// [`REFERENCE_SIGNATURES`] distinct (key, message, signature) triples in turn, as a
    /// block's inputs are: the reference every signature ratio is measured against.
    pub(crate) distinct: f64,
    /// One signature verified over and over (the reference before): its scalars' branch
    /// pattern is learnt, and it runs a few percent faster than any real input.
    pub(crate) one_signature: f64,
    /// The same distinct signatures verified on every thread of the pool at once, summed:
    /// what a perfectly parallel verifier could reach on this machine now.
    pub(crate) all_threads: f64,
}

impl VerifyReference {
    /// The machine's parallel verification ceiling, the one-signature rate beside the
    /// reference, and the headline's ratio to that rate (computed by the caller: a median of
    /// per-run ratios where there are several runs).
    pub(crate) fn figures(&self, ratio_to_one_signature: f64) -> [Figure; 3] {
        [
            Figure::new(
                "verify_all_threads_ratio",
                "k256 verify on every thread at once ÷ one thread (the parallel ceiling)",
                self.all_threads / self.distinct,
                "",
            ),
            Figure::new(
                "reference_one_signature_per_sec",
                "k256 verify, one signature over and over (the old reference)",
                self.one_signature,
                "/s",
            ),
            Figure::new(
                "ratio_to_one_signature",
                "ratio to the one-signature reference",
                ratio_to_one_signature,
                "",
            ),
        ]
    }
}

/// Median single-thread verifications per second over `samples` rounds of `round` each.
pub(crate) fn verifications_per_sec(
    samples: usize,
    round: Duration,
    progress: &ProgressBar,
) -> VerifyReference {
    progress.set_message("reference: k256 verify");
    let triples: Vec<_> = (0..REFERENCE_SIGNATURES)
        .map(|i| {
            let seed = sha256d(&(i as u64 / 16).to_le_bytes());
            let key = cairn_core::keys::SecretKey::from_bytes(&seed.0)
                .expect("a hash is a valid secret key but with negligible odds");
            let hash = sha256d(&(i as u64).to_le_bytes());
            (key.public_key(), hash, key.sign_hash(&hash))
        })
        .collect();
    let rate = |triples: &[(PublicKeyBytes, Hash256, SignatureBytes)]| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < round {
            for j in 0..16 {
                let (public_key, hash, signature) = &triples[(n as usize + j) % triples.len()];
                let ok =
                    verify_signature(black_box(public_key), black_box(hash), black_box(signature));
                assert!(black_box(ok).is_ok(), "the reference signatures are valid");
            }
            n += 16;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let (mut distinct, mut one, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        distinct.push(rate(&triples));
        one.push(rate(&triples[..1]));
        // As many threads as verify a block's signatures, at once, each from its own place
        // in the list.
        let threads = cairn_core::sigcheck::verification_threads();
        let rates: Vec<f64> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let offset = t * REFERENCE_SIGNATURES / threads;
                    let rotated: Vec<_> = triples[offset..]
                        .iter()
                        .chain(&triples[..offset])
                        .copied()
                        .collect();
                    scope.spawn(move || rate(&rotated))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a reference thread panicked"))
                .collect()
        });
        all.push(rates.iter().sum());
        progress.inc(1);
    }
    VerifyReference {
        distinct: median(distinct),
        one_signature: median(one),
        all_threads: median(all),
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal) over `steps`.
fn progress(bench: &str, steps: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("bench {bench}"));
    bar
}

/// Prints `report` as a table or one JSON line.
pub fn print(report: &Report, json: bool) {
    if json {
        println!("{}", report.to_json_line());
    } else {
        println!("{report}");
    }
}
