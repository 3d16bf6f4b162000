//! Verifying a block's signature checks while they are still being collected, as Bitcoin
//! Core's `CCheckQueue` does: the in-order pass hands every `chunk` checks to the rayon pool
//! as one job and goes on with the next transaction; the pool verifies meanwhile; when the
//! pass ends, what is left is handed over and the caller waits for every job.
//!
//! The verdict is the sequential one whatever the thread count and the order the jobs run
//! in. Jobs are numbered in push order and each runs its checks in order, so a job's first
//! failure is the lowest failing position among its checks, and the failure of the
//! lowest-numbered job that failed is the lowest failing position among all checks pushed.
//! A job numbered above one that already failed may be skipped (its checks all come later);
//! one below is never skipped. [`Parallelism::Sequential`] runs every check in order on the
//! calling thread once the pass is over: the reference the streamed verdict must equal.

use super::{PARALLEL_MIN_CHECKS, Parallelism, SigCheck, SigCheckFailure, SigChecks};
use crate::params::ChainParams;
use crate::sigcache::SigCache;
use crate::tx::Transaction;
use crate::utxo::Coin;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Checks handed to the pool as one job: at about 80 µs a verification, a job is worth
/// ~5 ms of work against the microsecond a spawn costs, and the last job of a block leaves a
/// core idle for at most that long.
pub const CHUNK_CHECKS: usize = 64;

/// Checks in a block's first job (when the chunk is larger).
pub const FIRST_JOB_CHECKS: usize = 8;

/// How a queue's checks run: the cache they consult (see [`SigCheck::run`] for `take`),
/// where they run, and how many make a job.
#[derive(Debug, Clone, Copy)]
pub struct QueueRun<'c> {
    /// The signature cache, if any.
    pub cache: Option<&'c SigCache>,
    /// Whether a cache hit removes the entry (block connection) or a verified check is
    /// inserted (the mempool).
    pub take: bool,
    /// On the pool while collecting ([`Parallelism::Auto`]), or in order afterwards.
    pub parallelism: Parallelism,
    /// Checks per job (at least 1; [`CHUNK_CHECKS`] unless a test or bench varies it).
    pub chunk: usize,
}

impl QueueRun<'_> {
    fn failure(&self, check: &SigCheck<'_>) -> Option<SigCheckFailure> {
        check
            .run(self.cache, self.take)
            .err()
            .map(|error| SigCheckFailure {
                tx_index: check.tx_index,
                error,
            })
    }

    /// The first failure among `checks`, in order, on this thread.
    fn first_failure(&self, checks: &[SigCheck<'_>]) -> Option<SigCheckFailure> {
        checks.iter().find_map(|check| self.failure(check))
    }

    /// The first failure among `checks`, in order, splitting them when a thread of the pool
    /// is idle: at the end of a block the last jobs are shared instead of one core running
    /// a whole job while the other waits.
    fn first_failure_shared(&self, checks: &[SigCheck<'_>]) -> Option<SigCheckFailure> {
        checks
            .par_iter()
            .find_map_first(|check| self.failure(check))
    }
}

/// The lowest-numbered failed job so far and its failure, shared by the jobs.
#[derive(Debug)]
struct FirstFailure {
    /// Number of the lowest job that failed, `usize::MAX` while none has.
    lowest: AtomicUsize,
    failure: Mutex<Option<(usize, SigCheckFailure)>>,
}

impl FirstFailure {
    fn new() -> Self {
        FirstFailure {
            lowest: AtomicUsize::new(usize::MAX),
            failure: Mutex::new(None),
        }
    }

    /// Whether a job numbered below `job` has failed already.
    fn beaten(&self, job: usize) -> bool {
        self.lowest.load(Ordering::Relaxed) < job
    }

    fn record(&self, job: usize, failure: SigCheckFailure) {
        self.lowest.fetch_min(job, Ordering::Relaxed);
        let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|(recorded, _)| job < *recorded) {
            *slot = Some((job, failure));
        }
    }

    fn into_verdict(self) -> Result<(), SigCheckFailure> {
        let failure = self
            .failure
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        failure.map_or(Ok(()), |(_, failure)| Err(failure))
    }
}

/// Where the in-order pass pushes its checks; see the module docs.
pub struct CheckQueue<'q, 'scope, 'a: 'scope> {
    /// The pool's scope while streaming; `None` collects everything for afterwards.
    scope: Option<&'q rayon::Scope<'scope>>,
    run: QueueRun<'a>,
    pending: SigChecks<'a>,
    jobs: usize,
    first: &'scope FirstFailure,
}

impl<'q, 'scope, 'a> CheckQueue<'q, 'scope, 'a> {
    fn new(
        scope: Option<&'q rayon::Scope<'scope>>,
        run: QueueRun<'a>,
        capacity: usize,
        first: &'scope FirstFailure,
    ) -> Self {
        CheckQueue {
            scope,
            run,
            pending: SigChecks::with_capacity(capacity),
            jobs: 0,
            first,
        }
    }

    /// Adds the checks of every input of `tx` (at `tx_index` in its block), which spends
    /// `spent` (one coin per input), handing a job to the pool at every `chunk` checks.
    pub fn push_tx(
        &mut self,
        tx_index: usize,
        tx: &'a Transaction,
        spent: &[Coin],
        params: &ChainParams,
    ) {
        self.pending.push_tx(tx_index, tx, spent, params);
        let Some(scope) = self.scope else {
            return;
        };
        while self.pending.len() >= self.next_job_size() {
            let job = self.pending.checks.drain(..self.next_job_size()).collect();
            self.spawn(scope, job);
        }
    }

    /// The first job is small, so that the pool starts verifying as soon as the block's
    /// first inputs are looked up instead of idling while a whole chunk is collected.
    fn next_job_size(&self) -> usize {
        if self.jobs == 0 {
            self.run.chunk.min(FIRST_JOB_CHECKS)
        } else {
            self.run.chunk
        }
    }

    /// Whether a check already handed to the pool failed: the verdict is then a signature
    /// failure at or before it, and nothing the pass finds later can change it.
    pub fn failed(&self) -> bool {
        self.first.beaten(usize::MAX)
    }

    /// Hands `checks` to the pool as the next job.
    fn spawn(&mut self, scope: &rayon::Scope<'scope>, checks: Vec<SigCheck<'a>>) {
        let (job, run, first) = (self.jobs, self.run, self.first);
        self.jobs += 1;
        scope.spawn(move |_| {
            if first.beaten(job) {
                return;
            }
            if let Some(failure) = run.first_failure_shared(&checks) {
                first.record(job, failure);
            }
        });
    }
}

/// Runs `produce` (the in-order pass) with a queue to push signature checks into, verifying
/// them meanwhile on the rayon pool when `run.parallelism` is [`Parallelism::Auto`] and
/// about `expected` checks are coming (at least [`PARALLEL_MIN_CHECKS`]); else every check
/// runs in order on this thread after `produce` returns. Returns what `produce` returned and
/// the first failure among every check pushed, in (transaction, input) order.
pub fn verify_while<'a, R>(
    run: QueueRun<'a>,
    expected: usize,
    produce: impl FnOnce(&mut CheckQueue<'_, '_, 'a>) -> R,
) -> (R, Result<(), SigCheckFailure>) {
    let run = QueueRun {
        chunk: run.chunk.max(1),
        ..run
    };
    let first = FirstFailure::new();
    if run.parallelism == Parallelism::Sequential || expected < PARALLEL_MIN_CHECKS {
        let mut queue = CheckQueue::new(None, run, expected, &first);
        let produced = produce(&mut queue);
        let verdict = run.first_failure(&queue.pending.checks);
        return (produced, verdict.map_or(Ok(()), Err));
    }
    let produced = rayon::in_place_scope(|scope| {
        let mut queue = CheckQueue::new(Some(scope), run, expected.min(run.chunk), &first);
        let produced = produce(&mut queue);
        let rest = std::mem::take(&mut queue.pending.checks);
        if !rest.is_empty() {
            queue.spawn(scope, rest);
        }
        produced
    });
    (produced, first.into_verdict())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::Amount;
    use crate::params::dev_secret_key;
    use crate::testkit::signed_spend;
    use crate::tx::{OutPoint, TxOut};
    use crate::validation::TxError;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    const AMOUNT: u64 = 50_000;

    /// A signed two-input spend, the coins it spends, and coins it does not sign for.
    struct Spend {
        params: ChainParams,
        tx: Transaction,
        good: [Coin; 2],
        /// Another amount in the first input: the sighash changes, the signature fails.
        bad_amount: [Coin; 2],
        /// Another owner of the second input: the key does not match.
        bad_owner: [Coin; 2],
    }

    fn spend() -> &'static Spend {
        static SPEND: OnceLock<Spend> = OnceLock::new();
        SPEND.get_or_init(|| {
            let params = ChainParams::regtest();
            let key = dev_secret_key(2);
            let coin = |amount, address| Coin {
                output: TxOut {
                    amount: Amount::from_base(amount),
                    address,
                },
                height: 1,
                is_coinbase: false,
            };
            let ours = coin(AMOUNT, key.pubkey_hash());
            let prevouts = [0u32, 1].map(|vout| {
                (
                    OutPoint {
                        vout,
                        ..OutPoint::default()
                    },
                    Amount::from_base(AMOUNT),
                )
            });
            let outputs = vec![TxOut {
                amount: Amount::from_base(AMOUNT),
                address: key.pubkey_hash(),
            }];
            let tx = signed_spend(&params, &prevouts, &key, outputs);
            let stranger = dev_secret_key(3).pubkey_hash();
            Spend {
                tx,
                good: [ours, ours],
                bad_amount: [coin(AMOUNT + 1, key.pubkey_hash()), ours],
                bad_owner: [ours, coin(AMOUNT, stranger)],
                params,
            }
        })
    }

    /// Pushes `txs` copies of the spend (two checks each), transaction `i` spending the bad
    /// coins of `bad` when it names it, and returns the verdict.
    fn verdict(
        txs: usize,
        bad: &BTreeSet<usize>,
        parallelism: Parallelism,
        chunk: usize,
    ) -> Result<(), SigCheckFailure> {
        let s = spend();
        let run = QueueRun {
            cache: None,
            take: false,
            parallelism,
            chunk,
        };
        let ((), verdict) = verify_while(run, 2 * txs, |queue| {
            for i in 0..txs {
                let coins = match (bad.contains(&i), i % 2) {
                    (false, _) => &s.good,
                    (true, 0) => &s.bad_amount,
                    (true, _) => &s.bad_owner,
                };
                queue.push_tx(i, &s.tx, coins, &s.params);
            }
        });
        verdict
    }

    /// What the first bad transaction fails with, in order.
    fn expected(bad: &BTreeSet<usize>) -> Result<(), SigCheckFailure> {
        let Some(&first) = bad.iter().next() else {
            return Ok(());
        };
        let error = if first % 2 == 0 {
            TxError::BadSignature {
                index: 0,
                error: crate::keys::SignatureError::Invalid,
            }
        } else {
            TxError::WrongKey { index: 1 }
        };
        Err(SigCheckFailure {
            tx_index: first,
            error,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn streamed_verdict_is_the_first_failure_in_order(
            txs in 0usize..100,
            bad in proptest::collection::btree_set(0usize..100, 0..4),
            chunk in prop_oneof![1usize..10, Just(CHUNK_CHECKS), 100usize..250],
        ) {
            let bad: BTreeSet<usize> = bad.into_iter().filter(|&i| i < txs).collect();
            let expected = expected(&bad);
            prop_assert_eq!(verdict(txs, &bad, Parallelism::Sequential, chunk), expected.clone());
            prop_assert_eq!(verdict(txs, &bad, Parallelism::Auto, chunk), expected);
        }
    }

    #[test]
    fn failures_in_the_first_and_last_job_and_at_job_edges_are_found() {
        // 40 transactions, 80 checks: jobs of 8 checks end after transactions 3, 7, ... 39;
        // with chunks of 79 to 81 the first job is FIRST_JOB_CHECKS (8) and the next the rest.
        for bad in [
            vec![0],
            vec![39],
            vec![3],
            vec![4],
            vec![3, 4],
            vec![0, 39],
            vec![38, 39],
        ] {
            let bad: BTreeSet<usize> = bad.into_iter().collect();
            for chunk in [3, 8, 79, 80, 81] {
                assert_eq!(
                    verdict(40, &bad, Parallelism::Auto, chunk),
                    expected(&bad),
                    "bad {bad:?}, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn the_pass_learns_that_a_handed_over_check_failed() {
        let s = spend();
        let run = QueueRun {
            cache: None,
            take: false,
            parallelism: Parallelism::Auto,
            chunk: 1,
        };
        let (seen, verdict) = verify_while(run, PARALLEL_MIN_CHECKS, |queue| {
            assert!(!queue.failed());
            queue.push_tx(0, &s.tx, &s.bad_owner, &s.params);
            let deadline = Instant::now() + Duration::from_secs(20);
            while !queue.failed() && Instant::now() < deadline {
                std::thread::yield_now();
            }
            queue.failed()
        });
        assert!(seen, "the pool's failure reached the pass");
        assert_eq!(verdict.unwrap_err().tx_index, 0);
    }
}
