//! Cancellation stops every worker promptly, and every worker is joined.

use cairn_core::Target;
use cairn_miner::{CancelToken, Kernel};
use std::time::{Duration, Instant};

#[test]
fn cancelling_an_impossible_search_stops_and_joins_every_worker() {
    let (_chain, template) = super::regtest_template(vec![]);
    for kernel in Kernel::available() {
        let miner = super::miner(kernel, 2);
        let cancel = CancelToken::new();
        let (outcome, latency) = std::thread::scope(|scope| {
            // Target zero: no hash meets it, so only the cancellation ends the search.
            let search = scope.spawn(|| miner.search(&template, &Target::default(), &cancel));
            let started = Instant::now();
            while miner.active_workers() < 2 && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(
                miner.active_workers(),
                2,
                "{kernel}: both workers should be running"
            );
            std::thread::sleep(Duration::from_millis(30));
            let cancelled_at = Instant::now();
            cancel.cancel();
            // Blocking in `join` (not spinning) leaves both cores to the workers.
            let outcome = search.join().expect("the search does not panic");
            (outcome, cancelled_at.elapsed())
        });
        assert_eq!(outcome, Ok(None), "{kernel}");
        assert_eq!(
            miner.active_workers(),
            0,
            "{kernel}: a worker outlived its search"
        );
        assert!(miner.hashes_done() > 0, "{kernel}");
        // The design bound is one slice of nonces (well under 1 ms on an idle machine); the
        // margin is for the scheduler of a loaded one.
        assert!(
            latency < Duration::from_millis(100),
            "{kernel}: workers took {latency:?} to stop"
        );
        eprintln!("{kernel}: all workers stopped {latency:?} after the cancel");
    }
}

#[test]
fn a_search_cancelled_before_it_starts_returns_at_once() {
    let (_chain, template) = super::regtest_template(vec![]);
    let cancel = CancelToken::new();
    cancel.cancel();
    let miner = super::miner(Kernel::best(), 2);
    assert_eq!(
        miner.search(&template, &Target::default(), &cancel),
        Ok(None)
    );
    assert_eq!(miner.hashes_done(), 0);
    assert_eq!(miner.active_workers(), 0);
}
