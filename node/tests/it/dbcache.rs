//! `--dbcache MB`: the UTXO cache in front of the chain store. Coin changes and the tip
//! pointer wait in memory; the blocks themselves are durable at once. A `kill -9` before a
//! flush loses no acknowledged block: the next start connects the stored blocks after the
//! flushed tip again, and the UTXO set equals a replay of the chain.

use crate::harness::{Node, NodeOpts, genesis_coin, hex_of, spend};
use crate::torture::{Replica, check_utxo_set};
use cairn_core::encoding::decode;
use cairn_core::params::dev_secret_key;
use cairn_core::{BlockHash, OutPoint};
use rocksdb::{DB, Options};
use serde_json::json;
use std::time::Duration;

/// The tip pointer in the store of a node that is not running.
fn stored_tip(node: &Node) -> BlockHash {
    let families = ["default", "index", "blocks", "coins", "undo", "meta"];
    let path = node.datadir().join("chain");
    let db = DB::open_cf_for_read_only(&Options::default(), &path, families, false).unwrap();
    let meta = db.cf_handle("meta").unwrap();
    let bytes = db.get_cf(meta, b"tip").unwrap().expect("a tip pointer");
    decode(&bytes).expect("a block hash")
}

/// Mines 12 blocks with three payments between them, none of it read back through a UTXO
/// scan (a scan flushes the cache first). Returns the acknowledged tip.
fn payments_then_blocks(node: &Node) -> String {
    let (payer, payee) = (dev_secret_key(1), dev_secret_key(2));
    let (mut coin, mut amount) = genesis_coin(node, &payer);
    for _ in 0..3 {
        let tx = spend(&payer, &[(coin, amount)], &payee, 1_000_000, 1_000);
        node.rpc("sendrawtransaction", json!([hex_of(&tx)]));
        node.generate(1);
        coin = OutPoint {
            txid: tx.txid(),
            vout: 1,
        };
        amount = tx.outputs[1].amount.to_base();
    }
    node.generate(9);
    node.tip()
}

#[test]
fn kill_nine_before_a_utxo_flush_loses_no_acknowledged_block() {
    let mut node = Node::start(NodeOpts::default());
    let tip = payments_then_blocks(&node);
    node.kill();
    let flushed = stored_tip(&node);
    assert_ne!(
        flushed.to_string(),
        tip,
        "the cache held the last coin changes back (it flushes every 30 s and before scans)"
    );

    node.start_after_kill();
    assert_eq!(node.tip(), tip, "the acknowledged tip is back");
    assert!(
        node.log().contains("resumed from the last UTXO flush"),
        "the start says it connected the unflushed blocks again; log:\n{}",
        node.log()
    );
    let bad = check_utxo_set(&node, &mut Replica::new());
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn dbcache_zero_writes_every_coin_change_through() {
    let mut node = Node::start(NodeOpts {
        extra_args: vec!["--dbcache".into(), "0".into()],
        ..Default::default()
    });
    let tip = payments_then_blocks(&node);
    node.kill();
    assert_eq!(
        stored_tip(&node).to_string(),
        tip,
        "no cache: the tip is on disk"
    );
    node.start_after_kill();
    assert_eq!(node.tip(), tip);
    let bad = check_utxo_set(&node, &mut Replica::new());
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn a_utxo_scan_sees_the_coins_the_cache_holds_and_a_clean_stop_flushes_them() {
    let mut node = Node::start(NodeOpts::default());
    let tip = payments_then_blocks(&node);
    // gettxoutsetinfo reads a rocksdb snapshot: the cache is flushed before it.
    let bad = check_utxo_set(&node, &mut Replica::new());
    assert!(bad.is_empty(), "{bad:?}");
    node.generate(2);
    let tip_after = node.tip();
    assert_ne!(tip, tip_after);
    node.stop();
    assert_eq!(
        stored_tip(&node).to_string(),
        tip_after,
        "a clean stop flushes"
    );
}

#[test]
fn dbcache_out_of_range_is_refused_with_one_error_line() {
    let mut node = Node::start(NodeOpts::default());
    node.stop();
    let (code, stderr) = node.run_to_exit(&["--dbcache", "16385"], Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: --dbcache 16385 is more than the largest UTXO cache, 16384 MiB"),
        "{stderr}"
    );
    let (code, stderr) = node.run_to_exit(&["--dbcache", "lots"], Duration::from_secs(20));
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--dbcache"), "{stderr}");
}
