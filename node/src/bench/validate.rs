//! `cairn bench validate`: block connection over the in-memory store, in inputs per second
//! ÷ single-thread k256 verifications per second. Cold (no signature cache: every signature
//! verified, in parallel), with a warm cache (every signature already verified, as when the
//! mempool saw the transactions first: `ratio_warm_sigcache`), and sequential (every
//! signature verified in order on the chain thread, the rule before parallel verification;
//! the context-free checks still run one block ahead, as in the node's sync) for
//! comparison. Every ratio is the median of the
//! runs' ratios, each to the reference measured just before that run.

use super::workload::{ChainArgs, ChainWorkload};
use super::{
    Figure, REFERENCE_ROUND, Report, VERIFY_REFERENCE, VerifyReference, median, progress,
    verifications_per_sec,
};
use cairn_core::MemoryStore;
use cairn_core::chain::ChainState;
use cairn_core::sigcache::{DEFAULT_SIGCACHE_BYTES, SigCache};
use cairn_core::sigcheck::Parallelism;
use std::sync::Arc;

/// Salt of the bench's caches (any value: nothing here is adversarial).
const SALT: [u8; 32] = [0x5a; 32];

/// Runs the bench.
pub fn run(args: &ChainArgs) -> anyhow::Result<Report> {
    args.check()?;
    let runs = args.runs;
    let bar = progress("validate", (args.blocks + 5 + 4 * runs) as u64);
    let work = ChainWorkload::generate(args, &bar);
    bar.set_message("warming a signature cache");
    let keys = work.verified_keys(&SigCache::new(SALT, 1))?;
    let inputs = work.inputs as f64;

    // Each run measures its own reference just before it connects: on a shared machine
    // the speed moves within seconds, and a ratio is only as good as the two rates being
    // measured on the same machine.
    let mut rounds = Vec::new();
    for _ in 0..runs {
        let verify = verifications_per_sec(1, REFERENCE_ROUND, &bar);
        bar.set_message("connecting, cold");
        let mut chain = fresh(&work, Parallelism::Auto);
        let cold = inputs / work.import(&mut chain)?.as_secs_f64();
        bar.inc(1);

        bar.set_message("connecting, warm signature cache");
        let mut chain = fresh(&work, Parallelism::Auto);
        let cache = Arc::new(SigCache::with_max_bytes(SALT, DEFAULT_SIGCACHE_BYTES));
        keys.iter().for_each(|k| cache.insert(*k));
        chain.set_sigcache(cache.clone());
        let warm = inputs / work.import(&mut chain)?.as_secs_f64();
        anyhow::ensure!(cache.is_empty(), "connection left cached signatures behind");
        bar.inc(1);

        bar.set_message("connecting, one thread");
        let mut chain = fresh(&work, Parallelism::Sequential);
        let sequential = inputs / work.import(&mut chain)?.as_secs_f64();
        bar.inc(1);
        rounds.push(Round {
            verify,
            cold,
            warm,
            sequential,
        });
    }
    bar.finish_and_clear();
    let of = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let reference = of(&|r| r.verify.distinct);
    let (cold, warm, sequential) = (of(&|r| r.cold), of(&|r| r.warm), of(&|r| r.sequential));
    let verify = VerifyReference {
        distinct: reference,
        one_signature: of(&|r| r.verify.one_signature),
        all_threads: of(&|r| r.verify.all_threads),
    };
    let [ceiling, one_signature, ratio_to_one_signature] =
        verify.figures(of(&|r| r.cold / r.verify.one_signature));
    Ok(Report {
        bench: "validate",
        ratio_to_reference: of(&|r| r.cold / r.verify.distinct),
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
                of(&|r| r.warm / r.verify.distinct),
                "",
            ),
            Figure::new(
                "ratio_sequential",
                "ratio, one thread",
                of(&|r| r.sequential / r.verify.distinct),
                "",
            ),
            one_signature,
            ceiling,
            Figure::new(
                "ratio_of_ceiling",
                "cold connect ÷ every thread verifying at once, same run",
                of(&|r| r.cold / r.verify.all_threads),
                "",
            ),
            ratio_to_one_signature,
        ],
    })
}

/// One run's rates.
struct Round {
    verify: VerifyReference,
    cold: f64,
    warm: f64,
    sequential: f64,
}

fn fresh(work: &ChainWorkload, parallelism: Parallelism) -> ChainState<MemoryStore> {
    let mut chain = ChainState::open(work.params.clone(), MemoryStore::new())
        .expect("the memory store cannot fail");
    chain.set_parallelism(parallelism);
    chain
}
