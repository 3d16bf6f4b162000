//! A node killed with SIGKILL while it syncs in group commits loses nothing it had
//! acknowledged: restarted, it is on the same tip or an extension of it, and its UTXO set
//! is exactly a replay of its active chain.

use crate::harness::{Node, NodeOpts, genesis_coin, hex_of, regtest, spend, wait_until};
use cairn_core::params::dev_secret_key;
use cairn_core::{Block, ChainState, ImportOutcome, MemoryStore};
use serde_json::json;
use std::time::{Duration, Instant};

/// Blocks the source node mines (a spend confirmed every [`SPEND_EVERY`] of them).
const CHAIN: u64 = 2000;
const SPEND_EVERY: u64 = 400;
/// The syncing node is killed once it has acknowledged this height.
const KILL_AT: u64 = CHAIN / 4;

/// `node`'s active chain, fetched block by block, connected into a fresh in-memory chain:
/// the UTXO set hash a replay gives.
fn replayed_utxo_hash(node: &Node) -> String {
    let tip = node.height();
    let mut chain = ChainState::open(regtest(), MemoryStore::new()).expect("memory store");
    let now = u64::MAX / 4;
    for h in 1..=tip {
        let hash = node.rpc("getblockhash", json!([h]));
        let hex = node.rpc("getblock", json!([hash, 0]));
        let bytes = hex::decode(hex.as_str().expect("block hex")).expect("hex");
        let block: Block = cairn_core::encoding::decode(&bytes).expect("a block");
        let report = chain.accept_block(block, now).expect("memory store");
        assert_eq!(
            report.outcome,
            ImportOutcome::Active,
            "replaying height {h}"
        );
    }
    chain
        .utxo_stats()
        .expect("memory store")
        .hash_serialized
        .to_display_hex()
}

#[test]
fn kill_during_group_committed_sync_loses_nothing_acknowledged() {
    let source = Node::start(NodeOpts::default());
    let mut mined = 0;
    for account in 1..=(CHAIN / SPEND_EVERY) as u32 {
        let key = dev_secret_key(account);
        let coin = genesis_coin(&source, &key);
        let tx = spend(&key, &[coin], &dev_secret_key(0), coin.1 / 2, 10_000);
        source.rpc("sendrawtransaction", json!([hex_of(&tx)]));
        source.generate(SPEND_EVERY as u32);
        mined += SPEND_EVERY;
    }
    assert_eq!(source.height(), mined);

    let mut syncing = Node::start(NodeOpts {
        peers: vec![source.p2p.clone().expect("the source listens")],
        ..NodeOpts::default()
    });
    // What the syncing node acknowledged: its answers to getblockcount and getbestblockhash.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut acked_height, mut acked_tip) = (0, String::new());
    while acked_height < KILL_AT {
        assert!(
            Instant::now() < deadline,
            "the node did not sync to {KILL_AT}; log:\n{}",
            syncing.log()
        );
        acked_tip = syncing.tip();
        acked_height = syncing.height();
        std::thread::sleep(Duration::from_millis(2));
    }
    syncing.kill();
    assert!(
        acked_height < CHAIN,
        "the sync finished before the kill ({acked_height} blocks): nothing was tested"
    );

    // Restarted without its peer, it holds what it had acknowledged, or more.
    drop(source);
    syncing.start_after_kill();
    let restarted = syncing.height();
    assert!(
        restarted >= acked_height,
        "acknowledged height {acked_height}, restarted at {restarted}"
    );
    let block = syncing.rpc("getblock", json!([acked_tip, 1]));
    assert_ne!(
        block["confirmations"].as_i64(),
        Some(-1),
        "the acknowledged tip {acked_tip} is not on the restarted node's active chain"
    );
    let info = syncing.rpc("gettxoutsetinfo", json!([]));
    assert_eq!(info["height"].as_u64(), Some(restarted));
    assert_eq!(
        info["hash_serialized"].as_str().expect("a hash"),
        replayed_utxo_hash(&syncing),
        "the UTXO set after the crash is not a replay of the active chain"
    );
    // And it is a working node: it mines on that tip.
    syncing.generate(1);
    assert!(wait_until(Duration::from_secs(10), || syncing.height()
        == restarted + 1));
}
