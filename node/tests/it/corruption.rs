//! A damaged chain store: a plain start exits 1 with one `error:` line naming the damage
//! and `--reindex`; `cairn node --reindex` then rebuilds the index, the UTXO set and the tip
//! from the stored bodies — the whole acknowledged chain where every body survived, a
//! valid prefix of it where bodies were really lost — and the rebuilt UTXO set equals a
//! replay of the rebuilt chain.

use crate::harness::{Node, NodeOpts, genesis_coin, hex_of, spend};
use crate::torture::{Replica, active_chain, check_utxo_set};
use cairn_core::OutPoint;
use cairn_core::params::dev_secret_key;
use rocksdb::{DB, Options};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Column families of a Cairn store (rocksdb's `default` included).
const FAMILIES: [&str; 6] = ["default", "index", "blocks", "coins", "undo", "meta"];

/// How the rebuilt chain relates to the acknowledged one.
#[derive(Debug, PartialEq)]
enum Rebuilt {
    /// Every body survived: the same chain.
    Whole,
    /// Bodies were lost: a strict prefix.
    Prefix,
}

/// A node with 40 blocks, three of them carrying payments, stopped cleanly so that every
/// column family sits in SST files. Returns it (stopped) with its active chain.
fn stopped_node_with_history() -> (Node, Vec<String>) {
    let mut node = Node::start(NodeOpts::default());
    let (payer, payee) = (dev_secret_key(1), dev_secret_key(2));
    let (mut coin, mut amount) = genesis_coin(&node, &payer);
    node.generate(12);
    for _ in 0..3 {
        let tx = spend(&payer, &[(coin, amount)], &payee, 1_000_000, 1_000);
        let txid = node.rpc("sendrawtransaction", json!([hex_of(&tx)]));
        assert_eq!(txid.as_str(), Some(tx.txid().to_string().as_str()));
        node.generate(1);
        coin = OutPoint {
            txid: tx.txid(),
            vout: 1,
        };
        amount -= 1_001_000;
        node.generate(8);
    }
    let chain = active_chain(&node);
    assert_eq!(chain.len(), 40);
    node.stop();
    (node, chain)
}

fn chain_path(node: &Node) -> PathBuf {
    node.datadir().join("chain")
}

/// The SST files of column family `cf`, largest first.
fn sst_files(node: &Node, cf: &str) -> Vec<PathBuf> {
    let path = chain_path(node);
    let db = DB::open_cf_for_read_only(&Options::default(), &path, FAMILIES, false).unwrap();
    let mut files: Vec<(usize, PathBuf)> = db
        .live_files()
        .unwrap()
        .into_iter()
        .filter(|f| f.column_family_name == cf)
        .map(|f| (f.size, path.join(f.name.trim_start_matches('/'))))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    assert!(!files.is_empty(), "no SST file of `{cf}`");
    files.into_iter().map(|(_, p)| p).collect()
}

/// Opens the stopped node's store with the rocksdb crate for surgery.
fn open_raw(node: &Node) -> DB {
    DB::open_cf(&Options::default(), chain_path(node), FAMILIES).unwrap()
}

/// A plain start fails at once: exit 1 and one `error:` line naming the damage (every
/// `needles`) and the way out.
fn assert_refused(node: &Node, needles: &[&str]) -> String {
    let (code, stderr) = node.run_to_exit(&[], Duration::from_secs(60));
    assert_eq!(code, Some(1), "plain start on a damaged store: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let line = errors[0];
    assert!(
        line.ends_with("; restart with --reindex to rebuild from the stored block bodies"),
        "{line}"
    );
    for needle in needles {
        assert!(line.contains(needle), "`{needle}` not in: {line}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("refused: {line}");
    line.to_owned()
}

/// `--reindex` brings the node back; its chain is `acked` (or a prefix, as `expect` says),
/// its UTXO set a replay of that chain, and a plain restart afterwards finds it intact.
fn assert_reindexed(node: &mut Node, acked: &[String], expect: Rebuilt) -> Vec<String> {
    node.relaunch_with(&["--reindex"]);
    let log = node.log();
    assert!(log.contains("reindex: 0/"), "progress on stderr: {log}");
    assert!(log.contains("reindex: done"), "{log}");
    let chain = active_chain(node);
    match expect {
        Rebuilt::Whole => assert_eq!(chain, acked),
        Rebuilt::Prefix => {
            assert!(chain.len() < acked.len(), "bodies were lost: {chain:?}");
            assert_eq!(
                chain[..],
                acked[..chain.len()],
                "a prefix of the acknowledged chain"
            );
            assert!(
                log.contains("not recovered"),
                "lost bodies are logged: {log}"
            );
        }
    }
    assert_eq!(
        check_utxo_set(node, &mut Replica::new()),
        Vec::<String>::new()
    );
    node.kill();
    node.relaunch_with(&[]);
    assert_eq!(
        active_chain(node),
        chain,
        "a plain restart keeps the rebuilt chain"
    );
    chain
}

fn flip_bytes(file: &Path, from: usize, len: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    assert!(bytes.len() > from + len, "{} is too small", file.display());
    bytes[from..from + len].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn truncated_sst_file_is_named_and_reindex_rebuilds_the_whole_chain() {
    let (mut node, acked) = stopped_node_with_history();
    let file = sst_files(&node, "coins").remove(0);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert_refused(&node, &[&name]);
    assert_reindexed(&mut node, &acked, Rebuilt::Whole);
    assert!(
        node.log().contains("running rocksdb repair"),
        "{}",
        node.log()
    );
}

#[test]
fn bit_flipped_sst_file_is_named_and_reindex_keeps_a_valid_prefix() {
    let (mut node, acked) = stopped_node_with_history();
    let file = sst_files(&node, "blocks").remove(0);
    flip_bytes(&file, 64, 32);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert_refused(&node, &["column family `blocks`", &name]);
    assert_reindexed(&mut node, &acked, Rebuilt::Prefix);
}

#[test]
fn missing_column_family_is_named_and_reindex_rebuilds_it() {
    let (mut node, acked) = stopped_node_with_history();
    open_raw(&node).drop_cf("coins").unwrap();
    assert_refused(
        &node,
        &["column family `coins` of the chain store is missing"],
    );
    assert_reindexed(&mut node, &acked, Rebuilt::Whole);
}

#[test]
fn deleted_block_body_is_named_and_reindex_keeps_the_chain_below_it() {
    let (mut node, acked) = stopped_node_with_history();
    let lost: cairn_core::BlockHash = acked[30].parse().unwrap();
    {
        let db = open_raw(&node);
        db.delete_cf(db.cf_handle("blocks").unwrap(), lost.as_bytes())
            .unwrap();
    }
    assert_refused(
        &node,
        &[
            &format!("the body of active block {lost}"),
            "height 30 is missing",
        ],
    );
    let chain = assert_reindexed(&mut node, &acked, Rebuilt::Prefix);
    assert_eq!(chain.len(), 30, "everything below the lost body");
    assert!(
        node.log()
            .contains(&format!("its parent {lost} was not recovered")),
        "{}",
        node.log()
    );
}

#[test]
fn garbled_or_deleted_tip_record_is_named_and_reindex_restores_the_tip() {
    let (mut node, acked) = stopped_node_with_history();
    {
        let db = open_raw(&node);
        db.put_cf(db.cf_handle("meta").unwrap(), b"tip", [0xde, 0xad])
            .unwrap();
    }
    assert_refused(&node, &["the chain tip record", "is unreadable"]);
    assert_reindexed(&mut node, &acked, Rebuilt::Whole);

    node.stop();
    {
        let db = open_raw(&node);
        db.delete_cf(db.cf_handle("meta").unwrap(), b"tip").unwrap();
    }
    assert_refused(&node, &["the chain tip record", "is missing"]);
    assert_reindexed(&mut node, &acked, Rebuilt::Whole);
}

#[test]
fn damaged_manifest_is_named_and_reindex_repairs_rocksdb_first() {
    let (mut node, acked) = stopped_node_with_history();
    let current = std::fs::read_to_string(chain_path(&node).join("CURRENT")).unwrap();
    let manifest = chain_path(&node).join(current.trim());
    flip_bytes(&manifest, 10, 40);
    let name = manifest.file_name().unwrap().to_string_lossy().into_owned();
    assert_refused(&node, &[&format!("rocksdb file {name} is damaged")]);
    assert_reindexed(&mut node, &acked, Rebuilt::Whole);
    assert!(
        node.log().contains("running rocksdb repair"),
        "{}",
        node.log()
    );
}

#[test]
fn body_lost_below_the_checked_depth_is_found_by_loading_the_chain() {
    let mut node = Node::start(NodeOpts::default());
    node.generate(cairn_node::store::INTEGRITY_CHECK_DEPTH + 20);
    let acked = active_chain(&node);
    node.stop();
    let lost: cairn_core::BlockHash = acked[10].parse().unwrap();
    {
        let db = open_raw(&node);
        db.delete_cf(db.cf_handle("blocks").unwrap(), lost.as_bytes())
            .unwrap();
    }
    assert_refused(&node, &[&format!("body of block {lost} missing")]);
    let chain = assert_reindexed(&mut node, &acked, Rebuilt::Prefix);
    assert_eq!(chain.len(), 10);
}

/// The check at open is bounded, so a coin record deleted deep in the UTXO set goes
/// unnoticed at start; the replay check the torture runs after every restart does notice
/// it (it would have caught a store that lost a write), and `--reindex` repairs it.
#[test]
fn coin_deleted_from_the_utxo_set_is_caught_by_the_replay_check_and_reindex_repairs_it() {
    let (mut node, acked) = stopped_node_with_history();
    let payer = dev_secret_key(3);
    {
        let db = open_raw(&node);
        let coins = db.cf_handle("coins").unwrap();
        let params = crate::harness::regtest();
        let genesis = params.genesis_block.txs[0].txid();
        let vout = params.genesis_block.txs[0]
            .outputs
            .iter()
            .position(|o| o.address == payer.pubkey_hash())
            .unwrap() as u32;
        let mut key = genesis.as_bytes().to_vec();
        key.extend_from_slice(&vout.to_be_bytes());
        assert!(db.get_cf(coins, &key).unwrap().is_some());
        db.delete_cf(coins, &key).unwrap();
    }
    node.relaunch_with(&[]);
    let found = check_utxo_set(&node, &mut Replica::new());
    assert!(
        found.iter().any(|m| m.contains("differs from the replay")),
        "{found:?}"
    );
    node.kill();
    assert_reindexed(&mut node, &acked, Rebuilt::Whole);
}
