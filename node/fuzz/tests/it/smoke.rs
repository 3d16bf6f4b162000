use cairn_fuzz::smoke;
use cairn_fuzz::targets::{self, TARGETS};
use std::time::Duration;

/// Mutations per target in CI; the budget stops a slow machine early instead of failing.
const MUTATIONS: usize = 5000;
const BUDGET: Duration = Duration::from_secs(4);

fn smoke(name: &str) {
    let target = targets::lookup(name).expect("a registered target");
    let report = smoke::run(target, MUTATIONS, BUDGET);
    assert!(report.seeds > 0, "{name} has no seeds");
    assert!(report.mutations > 0, "{name} ran no mutations");
    eprintln!("{name}: {report:?}");
}

#[test]
fn smoke_block_decode_replays_corpus_and_mutations() {
    smoke("block_decode");
}

#[test]
fn smoke_tx_decode_replays_corpus_and_mutations() {
    smoke("tx_decode");
}

#[test]
fn smoke_p2p_frame_replays_corpus_and_mutations() {
    smoke("p2p_frame");
}

#[test]
fn smoke_rpc_request_replays_corpus_and_mutations() {
    smoke("rpc_request");
}

#[test]
fn smoke_block_accept_replays_corpus_and_mutations() {
    smoke("block_accept");
}

#[test]
fn every_target_has_a_smoke_test_and_a_committed_corpus() {
    let this_file = include_str!("smoke.rs");
    for target in TARGETS {
        assert!(
            this_file.contains(&format!("fn smoke_{}_", target.name)),
            "{} has no smoke test",
            target.name
        );
        let corpus = smoke::read_inputs(&smoke::corpus_dir(target.name)).unwrap();
        assert!(
            !corpus.is_empty(),
            "{} has no committed corpus",
            target.name
        );
        assert!(
            corpus.len() <= 500,
            "{}'s corpus is not minimised",
            target.name
        );
    }
}
