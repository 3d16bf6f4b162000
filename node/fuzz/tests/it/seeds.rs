//! The seeds are real: each one reaches the part of the node it was made for.

use cairn_core::{ImportOutcome, encoding};
use cairn_fuzz::seeds::seeds;
use cairn_fuzz::targets::accept::fixed_chain;
use cairn_node::rpc::{self, Body, registry};

fn named<'a>(seeds: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &seeds.iter().find(|(n, _)| n == name).expect(name).1
}

#[test]
fn accept_seeds_reach_every_outcome_on_the_fixed_chain() {
    let seeds = seeds("block_accept");
    let expect = [
        ("extend_empty", ImportOutcome::Active),
        ("extend_with_spend", ImportOutcome::Active),
        ("extend_with_data_spend", ImportOutcome::Active),
        ("fork_at_2", ImportOutcome::SideChain),
        ("fork_at_1", ImportOutcome::SideChain),
        ("on_genesis", ImportOutcome::SideChain),
        ("known_block3", ImportOutcome::AlreadyHave),
    ];
    for (name, outcome) in expect {
        let block = encoding::decode(named(&seeds, name)).unwrap();
        let mut chain = fixed_chain();
        let now = cairn_fuzz::targets::accept::fixture().now;
        let report = chain.accept_block(block, now).unwrap();
        assert_eq!(report.outcome, outcome, "{name}");
    }
}

#[test]
fn rpc_seeds_parse_for_every_method() {
    for (name, bytes) in seeds("rpc_request") {
        if registry::lookup(&name).is_none() {
            continue;
        }
        let Ok(Body::Single(request)) = rpc::parse_body(&bytes) else {
            panic!("{name}: not a single request");
        };
        let (method, params) = rpc::parse_request(request).unwrap().call.unwrap();
        registry::parse_call(&method, params).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

#[test]
fn every_target_has_seeds() {
    for target in cairn_fuzz::targets::TARGETS {
        assert!(!seeds(target.name).is_empty(), "{}", target.name);
    }
}
