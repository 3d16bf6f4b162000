//! Whole-UTXO-set scans (`gettxoutsetinfo`) read a store snapshot off the chain thread:
//! they neither hold up block import nor report a tip that does not match their coins.

use crate::harness::{Node, NodeOpts, genesis_coin, hex_of, regtest};
use cairn_core::params::dev_secret_key;
use cairn_core::{Amount, Block, BlockHeader, OutPoint, Transaction, TxOut, encoding, testkit};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Transactions of [`OUTPUTS_PER_TX`] outputs each that build the large UTXO set.
const FAN_OUT_TXS: usize = 10;
/// Outputs per fan-out transaction (about 840 kB, under the 1 MB block).
const OUTPUTS_PER_TX: usize = 30_000;

/// Adds `FAN_OUT_TXS × OUTPUTS_PER_TX` coins: each transaction spends the previous one's
/// change into many small outputs and is mined in a block of its own.
fn grow_utxo_set(node: &Node) {
    let payer = dev_secret_key(0);
    let payee = dev_secret_key(1).pubkey_hash();
    let (mut coin, mut amount) = genesis_coin(node, &payer);
    let build = |coin: OutPoint, amount: u64, fee: u64| -> Transaction {
        let mut outputs = vec![
            TxOut {
                amount: Amount::from_base(1_000),
                address: payee,
            };
            OUTPUTS_PER_TX
        ];
        outputs.push(TxOut {
            amount: Amount::from_base(amount - 1_000 * OUTPUTS_PER_TX as u64 - fee),
            address: payer.pubkey_hash(),
        });
        testkit::signed_spend(
            &regtest(),
            &[(coin, Amount::from_base(amount))],
            &payer,
            outputs,
        )
    };
    for _ in 0..FAN_OUT_TXS {
        let size = build(coin, amount, 0).encoded_size() as u64;
        let fee = size + 100;
        let tx = build(coin, amount, fee);
        node.rpc("sendrawtransaction", json!([hex_of(&tx)]));
        node.generate(1);
        coin = OutPoint {
            txid: tx.txid(),
            vout: OUTPUTS_PER_TX as u32,
        };
        amount -= 1_000 * OUTPUTS_PER_TX as u64 + fee;
    }
    assert_eq!(
        node.rpc("getmempoolinfo", json!([]))["size"],
        json!(0),
        "every fan-out transaction was mined"
    );
}

/// A valid empty block on the node's tip, built outside the node.
fn next_block(node: &Node, salt: u64) -> Block {
    let params = regtest();
    let info = node.rpc("getblockchaininfo", json!([]));
    let height = info["blocks"].as_u64().expect("blocks") as u32 + 1;
    let tip_time = info["time"].as_u64().expect("time") as u32;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as u32;
    let coinbase = Transaction {
        version: 1,
        inputs: vec![],
        outputs: vec![TxOut {
            amount: params.subsidy(height),
            address: dev_secret_key(9).pubkey_hash(),
        }],
        lock_height: height,
        data: salt.to_le_bytes().to_vec(),
    };
    let header = BlockHeader {
        version: 1,
        prev_blockhash: info["bestblockhash"]
            .as_str()
            .expect("bestblockhash")
            .parse()
            .expect("hash"),
        merkle_root: cairn_core::merkle::merkle_root(&[coinbase.wtxid()]),
        time: now.max(tip_time + 1),
        bits: params.initial_bits,
        nonce: 0,
    };
    testkit::mine(
        Block {
            header,
            txs: vec![coinbase],
        },
        &params,
    )
}

fn submit(node: &Node, block: &Block) {
    let answer = node.rpc("submitblock", json!([hex::encode(encoding::encode(block))]));
    assert_eq!(answer, Value::Null, "submitblock refused the block");
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[test]
fn utxo_set_scan_does_not_delay_a_concurrent_submitblock() {
    let node = Node::start(NodeOpts::default());
    grow_utxo_set(&node);

    // One block's connect time, as the RPC sees it (the slowest of a few).
    let connect = (0..3)
        .map(|i| {
            let block = next_block(&node, i);
            timed(|| submit(&node, &block)).1
        })
        .max()
        .expect("three samples");
    // The scan alone: the second of two runs, so both concurrent runs below find a warm
    // page cache too.
    node.rpc("gettxoutsetinfo", json!([]));
    let (before, scan) = timed(|| node.rpc("gettxoutsetinfo", json!([])));
    let txouts = before["txouts"].as_u64().expect("txouts");
    assert!(
        txouts >= (FAN_OUT_TXS * OUTPUTS_PER_TX) as u64,
        "only {txouts} coins"
    );
    assert!(
        scan >= connect * 5,
        "the set is too small to tell: scan {scan:?}, connect {connect:?}"
    );

    let block = next_block(&node, 99);
    let scan_started = Instant::now();
    let (scan_done, submit_done, during) = std::thread::scope(|s| {
        let scanner = s.spawn(|| {
            let info = node.rpc("gettxoutsetinfo", json!([]));
            (Instant::now(), info)
        });
        // Well inside the scan: it takes `scan`, and the block needs at most `connect`.
        std::thread::sleep(scan / 5);
        submit(&node, &block);
        let submit_done = Instant::now();
        let (scan_done, info) = scanner.join().expect("scanner thread");
        (scan_done, submit_done, info)
    });
    eprintln!(
        "{txouts} coins: scan alone {scan:?}, one block's connect {connect:?}, \
         submitblock done {:?} after the scan started, the scan {:?} after it",
        submit_done - scan_started,
        scan_done.saturating_duration_since(submit_done),
    );
    assert!(
        submit_done < scan_done,
        "submitblock waited for the scan (scan alone {scan:?}, connect {connect:?}); \
         it finished {:?} after the scan",
        submit_done - scan_done
    );

    // The scan reports one consistent state: the tip before the block with its coins, or
    // the new tip with the new coinbase output.
    let new_tip = block.block_hash().to_string();
    let after = node.rpc("gettxoutsetinfo", json!([]));
    assert_eq!(after["bestblock"], json!(new_tip));
    assert_eq!(after["txouts"], json!(txouts + 1));
    assert!(
        during == before || during == after,
        "the scan mixed two states:\nbefore {before}\nduring {during}\nafter {after}"
    );
}
