//! `cairn bench validate`: block connection over the in-memory store, in inputs per second
//! ÷ single-thread k256 verifications per second. Cold (no signature cache: every signature
//! verified, in parallel), with a warm cache (every signature already verified, as when the
//! mempool saw the transactions first: `ratio_warm_sigcache`), and sequential (one thread,
//! the rule before parallel verification) for comparison.

use super::workload::{ChainArgs, ChainWorkload};
use super::{Figure, Report, VERIFY_REFERENCE, median, progress, verifications_per_sec};
use cairn_core::MemoryStore;
use cairn_core::chain::ChainState;
use cairn_core::sigcache::{DEFAULT_SIGCACHE_BYTES, SigCache};
use cairn_core::sigcheck::Parallelism;
use std::sync::Arc;
use std::time::Duration;

/// Salt of the bench's caches (any value: nothing here is adversarial).
const SALT: [u8; 32] = [0x5a; 32];

/// Runs the bench.
pub fn run(args: &ChainArgs) -> anyhow::Result<Report> {
    args.check()?;
    let runs = args.runs;
    let bar = progress("validate", (args.blocks + 5 + 3 * runs) as u64);
    let work = ChainWorkload::generate(args, &bar);
    let reference = verifications_per_sec(5, Duration::from_millis(200), &bar);
    bar.set_message("warming a signature cache");
    let keys = work.verified_keys(&SigCache::new(SALT, 1))?;
    let inputs = work.inputs as f64;

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut sequential = Vec::new();
    for _ in 0..runs {
        bar.set_message("connecting, cold");
        let mut chain = fresh(&work, Parallelism::Auto);
        cold.push(inputs / work.import(&mut chain)?.as_secs_f64());
        bar.inc(1);

        bar.set_message("connecting, warm signature cache");
        let mut chain = fresh(&work, Parallelism::Auto);
        let cache = Arc::new(SigCache::with_max_bytes(SALT, DEFAULT_SIGCACHE_BYTES));
        keys.iter().for_each(|k| cache.insert(*k));
        chain.set_sigcache(cache.clone());
        warm.push(inputs / work.import(&mut chain)?.as_secs_f64());
        anyhow::ensure!(cache.is_empty(), "connection left cached signatures behind");
        bar.inc(1);

        bar.set_message("connecting, one thread");
        let mut chain = fresh(&work, Parallelism::Sequential);
        sequential.push(inputs / work.import(&mut chain)?.as_secs_f64());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (cold, warm, sequential) = (median(cold), median(warm), median(sequential));
    Ok(Report {
        bench: "validate",
        ratio_to_reference: cold / reference,
        reference: VERIFY_REFERENCE,
        reference_per_sec: reference,
        figures: vec![
            Figure::new("inputs", "inputs connected per run", inputs, ""),
            Figure::new(
                "threads",
                "verification threads",
                cairn_core::sigcheck::verification_threads() as f64,
                "",
            ),
            Figure::new("inputs_per_sec", "connect, cold cache", cold, "inputs/s"),
            Figure::new(
                "inputs_per_sec_warm",
                "connect, warm sigcache",
                warm,
                "inputs/s",
            ),
            Figure::new(
                "inputs_per_sec_sequential",
                "connect, one thread",
                sequential,
                "inputs/s",
            ),
            Figure::new(
                "ratio_warm_sigcache",
                "ratio, warm sigcache",
                warm / reference,
                "",
            ),
            Figure::new(
                "ratio_sequential",
                "ratio, one thread",
                sequential / reference,
                "",
            ),
        ],
    })
}

fn fresh(work: &ChainWorkload, parallelism: Parallelism) -> ChainState<MemoryStore> {
    let mut chain = ChainState::open(work.params.clone(), MemoryStore::new())
        .expect("the memory store cannot fail");
    chain.set_parallelism(parallelism);
    chain
}
