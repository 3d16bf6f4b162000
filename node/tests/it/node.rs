//! Single-node behaviour: persistence, mempool and RBF, invalidate/reconsider, bad input,
//! the datadir lock.

use crate::harness::{
    Node, NodeOpts, address, cairn_bin, genesis_coin, hex_of, regtest, spend, utxos,
};
use cairn_core::params::dev_secret_key;
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn chain_survives_restart_with_the_same_tip_and_utxo_set() {
    let mut node = Node::start(NodeOpts::default());
    let hashes = node.generate(20);
    assert_eq!(hashes.len(), 20);
    assert_eq!(node.rpc("getblockcount", json!([])), json!(20));
    let tip = node.rpc("getbestblockhash", json!([]));
    assert_eq!(tip, json!(hashes[19]));
    let utxo = node.rpc("gettxoutsetinfo", json!([]));
    node.restart();
    assert_eq!(node.rpc("getbestblockhash", json!([])), tip);
    assert_eq!(node.rpc("gettxoutsetinfo", json!([])), utxo);
    assert_eq!(node.rpc("getblockhash", json!([7])), json!(hashes[6]));
}

#[test]
fn payment_is_accepted_mined_and_confirmed_and_conflicts_follow_rbf() {
    let node = Node::start(NodeOpts::default());
    let alice = dev_secret_key(1);
    let bob = dev_secret_key(2);
    let carol = dev_secret_key(3);
    let coin = genesis_coin(&node, &alice);
    let carol_before = node
        .rpc("getbalance", json!([address(&carol)]))
        .as_u64()
        .unwrap();

    let pay = spend(&alice, &[coin], &bob, 1_000_000, 1_000);
    let txid = node.rpc("sendrawtransaction", json!([hex_of(&pay)]));
    assert_eq!(txid, json!(pay.txid().to_string()));
    assert_eq!(
        node.rpc("getrawmempool", json!([])),
        json!([pay.txid().to_string()])
    );

    // Same coin to someone else at the same fee: refused.
    let conflict = spend(&alice, &[coin], &carol, 1_000_000, 1_000);
    let err = node
        .try_rpc("sendrawtransaction", json!([hex_of(&conflict)]))
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (-26, "txn-mempool-conflict")
    );

    // A higher fee (and fee rate) replaces it.
    let replacement = spend(&alice, &[coin], &carol, 1_000_000, 5_000);
    node.rpc("sendrawtransaction", json!([hex_of(&replacement)]));
    assert_eq!(
        node.rpc("getrawmempool", json!([])),
        json!([replacement.txid().to_string()])
    );

    let block = node.generate(1);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
    let confirmed = node.rpc(
        "getrawtransaction",
        json!([replacement.txid().to_string(), true]),
    );
    assert_eq!(confirmed["confirmations"], json!(1));
    assert_eq!(confirmed["blockhash"], json!(block[0]));
    assert_eq!(
        node.rpc("getbalance", json!([address(&carol)]))
            .as_u64()
            .unwrap(),
        carol_before + 1_000_000
    );
    let err = node
        .try_rpc("getrawtransaction", json!([pay.txid().to_string()]))
        .unwrap_err();
    assert_eq!(err.code, -5);
}

#[test]
fn invalidated_tip_returns_its_transactions_and_reconsider_restores() {
    let node = Node::start(NodeOpts::default());
    let alice = dev_secret_key(4);
    let bob = dev_secret_key(5);
    let tx = spend(&alice, &[genesis_coin(&node, &alice)], &bob, 42_000, 2_000);
    node.rpc("sendrawtransaction", json!([hex_of(&tx)]));
    let mined = node.generate(1);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));

    node.rpc("invalidateblock", json!([mined[0]]));
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
    assert_eq!(
        node.rpc("getrawmempool", json!([])),
        json!([tx.txid().to_string()])
    );
    let tips = node.rpc("getchaintips", json!([]));
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == json!(mined[0]) && t["status"] == "invalid"),
        "{tips}"
    );

    node.rpc("reconsiderblock", json!([mined[0]]));
    assert_eq!(node.rpc("getbestblockhash", json!([])), json!(mined[0]));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
}

#[test]
fn bad_input_gets_precise_errors_and_the_node_keeps_serving() {
    let node = Node::start(NodeOpts::default());
    let req =
        json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []}).to_string();

    // Authentication.
    assert_eq!(node.post_raw(&req, None).0, 401);
    assert_eq!(
        node.post_raw(&req, Some("Basic X19jb29raWVfXzp3cm9uZw=="))
            .0,
        401
    );
    assert_eq!(node.post_raw(&req, Some("Bearer nonsense")).0, 401);

    // Envelope errors.
    let (_, body) = node.post_raw("{not json", Some(&node.auth()));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        json!(-32700)
    );
    let (_, body) = node.post_raw(
        r#"{"jsonrpc":"2.0","id":1,"params":[]}"#,
        Some(&node.auth()),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        json!(-32600)
    );
    assert_eq!(
        node.try_rpc("nosuchmethod", json!([])).unwrap_err().code,
        -32601
    );
    assert_eq!(
        node.try_rpc("getblockhash", json!(["seven"]))
            .unwrap_err()
            .code,
        -32602
    );
    assert_eq!(
        node.try_rpc("getblockhash", json!([])).unwrap_err().code,
        -32602
    );
    assert_eq!(
        node.try_rpc("getblock", json!(["00"])).unwrap_err().code,
        -32602
    );
    assert_eq!(
        node.try_rpc("getblockhash", json!([99])).unwrap_err().code,
        -8
    );

    // Undecodable transactions.
    let err = node
        .try_rpc("sendrawtransaction", json!(["zz"]))
        .unwrap_err();
    assert_eq!(err.code, -22);
    assert!(
        err.message.starts_with("TX decode failed"),
        "{}",
        err.message
    );
    let alice = dev_secret_key(6);
    let good = spend(
        &alice,
        &[genesis_coin(&node, &alice)],
        &dev_secret_key(7),
        10_000,
        1_000,
    );
    let full = hex_of(&good);
    let err = node
        .try_rpc("sendrawtransaction", json!([&full[..full.len() - 10]]))
        .unwrap_err();
    assert_eq!(err.code, -22);
    let err = node
        .try_rpc("sendrawtransaction", json!([format!("{full}00")]))
        .unwrap_err();
    assert_eq!(err.code, -22, "trailing bytes are refused");

    // A bad signature.
    let mut forged = good.clone();
    forged.inputs[0].signature[10] ^= 1;
    let err = node
        .try_rpc("sendrawtransaction", json!([hex_of(&forged)]))
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (-26, "mandatory-script-verify-flag-failed")
    );

    // Spending a coinbase before maturity.
    let miner = dev_secret_key(0);
    node.generate(2);
    let (coinbase, amount, _, is_cb) = utxos(&node, &miner)
        .into_iter()
        .find(|c| c.3)
        .expect("a coinbase");
    assert!(is_cb);
    let early = spend(&miner, &[(coinbase, amount)], &alice, 1_000, 1_000);
    let err = node
        .try_rpc("sendrawtransaction", json!([hex_of(&early)]))
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (-26, "bad-txns-premature-spend-of-coinbase")
    );
    let verdict = node.rpc("testmempoolaccept", json!([hex_of(&early)]));
    assert_eq!(verdict["allowed"], json!(false));
    assert_eq!(
        verdict["reject-reason"],
        json!("bad-txns-premature-spend-of-coinbase")
    );

    // Nothing was lost: the good transaction still goes in.
    assert_eq!(
        node.rpc("testmempoolaccept", json!([&full]))["allowed"],
        json!(true)
    );
    node.rpc("sendrawtransaction", json!([&full]));
    assert_eq!(node.rpc("getblockcount", json!([])), json!(2));
}

#[test]
fn bitcoin_cli_style_requests_and_batches_are_answered_in_kind() {
    let node = Node::start(NodeOpts::default());
    let (status, body) = node.post_raw(
        r#"{"id":"x","method":"getblockcount","params":[]}"#,
        Some(&node.auth()),
    );
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer, json!({"result": 0, "error": null, "id": "x"}));
    let (status, body) = node.post_raw(
        r#"{"id":1,"method":"nosuch","params":[]}"#,
        Some(&node.auth()),
    );
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        json!(-32601)
    );
    let (status, body) = node.post_raw(
        r#"[{"jsonrpc":"2.0","id":1,"method":"getblockcount"},{"jsonrpc":"2.0","id":2,"method":"nosuch"}]"#,
        Some(&node.auth()),
    );
    assert_eq!(status, 200);
    let answers: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answers[0]["result"], json!(0));
    assert_eq!(answers[1]["error"]["code"], json!(-32601));
}

#[test]
fn second_node_on_a_locked_datadir_fails_at_once() {
    let node = Node::start(NodeOpts::default());
    let started = std::time::Instant::now();
    let out = node.command().output().expect("run second node");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: datadir {} is locked by another cairn node",
            node.datadir().display()
        )
    );
    assert_eq!(
        node.rpc("getblockcount", json!([])),
        json!(0),
        "the first node is unharmed"
    );
}

#[test]
fn rpc_subcommand_reads_the_datadir_and_exits_1_on_errors() {
    let node = Node::start(NodeOpts::default());
    let ok = std::process::Command::new(cairn_bin())
        .args(["rpc", "--datadir"])
        .arg(node.datadir())
        .args(["getblockhash", "0"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        regtest().genesis_hash.to_string()
    );
    let bad = std::process::Command::new(cairn_bin())
        .args(["rpc", "--datadir"])
        .arg(node.datadir())
        .args(["getblockhash", "5"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("error: "));
    // An explicit URL wins over $CAIRN_DATADIR in the environment.
    let by_url = std::process::Command::new(cairn_bin())
        .env("CAIRN_DATADIR", "/nonexistent")
        .args([
            "rpc",
            "--rpc-url",
            &format!("http://{}", node.rpc_addr),
            "--cookie",
        ])
        .arg(node.datadir().join(".cookie"))
        .arg("getblockcount")
        .output()
        .unwrap();
    assert!(
        by_url.status.success(),
        "{}",
        String::from_utf8_lossy(&by_url.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&by_url.stdout).trim(), "0");
}
