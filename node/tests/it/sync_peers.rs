//! Block download from several peers at once: a fresh node syncing from two peers asks
//! both for blocks, and still completes when one of them dies mid-sync.

use crate::harness::{Node, NodeOpts, wait_until};
use std::time::{Duration, Instant};

/// Blocks of the chain the fresh node syncs.
const CHAIN: u32 = 1500;

/// Two nodes holding the same `CHAIN`-block chain.
fn two_sources() -> (Node, Node) {
    let a = Node::start(NodeOpts::default());
    a.generate(CHAIN);
    let b = Node::start(NodeOpts {
        peers: vec![a.p2p.clone().expect("listens")],
        ..NodeOpts::default()
    });
    assert!(
        wait_until(Duration::from_secs(120), || b.height() == u64::from(CHAIN)),
        "the second source did not sync; log:\n{}",
        b.log()
    );
    (a, b)
}

/// A fresh node started with both sources as `--peer`.
fn fresh_node(a: &Node, b: &Node) -> Node {
    Node::start(NodeOpts {
        peers: vec![
            a.p2p.clone().expect("listens"),
            b.p2p.clone().expect("listens"),
        ],
        ..NodeOpts::default()
    })
}

/// Blocks the node's log says each peer served (`downloaded blocks from peer`).
fn served_by(node: &Node, peer: &str) -> u64 {
    node.log()
        .lines()
        .filter(|l| l.contains("downloaded blocks from peer") && l.contains(peer))
        .filter_map(|l| {
            let rest = &l[l.find("blocks=")? + "blocks=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn a_fresh_node_downloads_blocks_from_both_of_its_peers() {
    let (a, b) = two_sources();
    let c = fresh_node(&a, &b);
    assert!(
        wait_until(Duration::from_secs(120), || c.height() == u64::from(CHAIN)),
        "the fresh node did not sync; log:\n{}",
        c.log()
    );
    assert_eq!(c.tip(), a.tip());
    let (from_a, from_b) = (served_by(&c, &a.peer_id), served_by(&c, &b.peer_id));
    assert!(
        from_a > 0 && from_b > 0,
        "blocks served: {from_a} by the first peer, {from_b} by the second; log:\n{}",
        c.log()
    );
    assert!(from_a + from_b >= u64::from(CHAIN));
}

#[test]
fn sync_completes_when_one_of_two_peers_dies_mid_sync() {
    let (a, mut b) = two_sources();
    let c = fresh_node(&a, &b);
    let deadline = Instant::now() + Duration::from_secs(120);
    while c.height() < u64::from(CHAIN / 5) {
        assert!(Instant::now() < deadline, "no sync; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed_at = c.height();
    b.kill();
    assert!(
        killed_at < u64::from(CHAIN),
        "the sync finished before the kill: nothing was tested"
    );
    assert!(
        wait_until(Duration::from_secs(120), || c.height() == u64::from(CHAIN)),
        "the sync did not complete after a peer died at height {killed_at}; log:\n{}",
        c.log()
    );
    assert_eq!(c.tip(), a.tip());
}
