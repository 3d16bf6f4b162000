//! `cairn wallet` against a real node: exact balances, refused and replacing double spends.

use crate::harness::{Node, NodeOpts, cairn_bin, regtest_genesis};
use serde_json::{Value, json};
use std::path::Path;

/// Runs `cairn wallet --json ...` for `wallet` on `node`; returns the parsed output.
fn wallet(node: &Node, wallet: &Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(cairn_bin())
        .arg("wallet")
        .arg("--datadir")
        .arg(node.datadir())
        .arg("--wallet")
        .arg(wallet)
        .arg("--genesis")
        .arg(regtest_genesis())
        .args(["--insecure-plaintext", "--json"])
        .args(args)
        .env_remove("CAIRN_WALLET_PASSPHRASE")
        .output()
        .expect("run cairn wallet");
    assert!(
        out.status.success(),
        "cairn wallet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn confirmed(node: &Node, file: &Path) -> u64 {
    wallet(node, file, &["balance"])["confirmed"]
        .as_u64()
        .expect("confirmed balance")
}

struct Parties {
    _dir: tempfile::TempDir,
    alice: std::path::PathBuf,
    bob: std::path::PathBuf,
    bob_address: String,
    carol: std::path::PathBuf,
    carol_address: String,
}

fn parties(node: &Node) -> Parties {
    let dir = tempfile::tempdir().unwrap();
    let alice = dir.path().join("alice.json");
    let bob = dir.path().join("bob.json");
    let carol = dir.path().join("carol.json");
    wallet(node, &alice, &["import-dev", "1"]);
    let bob_address = wallet(node, &bob, &["new"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol_address = wallet(node, &carol, &["new"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    Parties {
        _dir: dir,
        alice,
        bob,
        bob_address,
        carol,
        carol_address,
    }
}

#[test]
fn payment_is_exact_on_both_sides_once_mined() {
    let node = Node::start(NodeOpts::default());
    let p = parties(&node);
    let alice_before = confirmed(&node, &p.alice);
    assert!(alice_before > 0);
    let sent = wallet(
        &node,
        &p.alice,
        &[
            "send",
            "--to",
            &p.bob_address,
            "--amount",
            "5000000",
            "--fee",
            "2000",
        ],
    );
    let txid = sent["txid"].as_str().unwrap().to_owned();
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([txid]));
    let bob_pending = wallet(&node, &p.bob, &["balance"]);
    assert_eq!(bob_pending["unconfirmed"], json!(5_000_000));
    assert_eq!(bob_pending["confirmed"], json!(0));

    node.generate(1);
    assert_eq!(confirmed(&node, &p.bob), 5_000_000);
    assert_eq!(confirmed(&node, &p.alice), alice_before - 5_000_000 - 2000);
    let history = wallet(&node, &p.alice, &["history"]);
    assert!(history.to_string().contains(&txid), "{history}");
}

#[test]
fn double_spend_on_one_node_is_refused_as_a_mempool_conflict() {
    let node = Node::start(NodeOpts::default());
    let p = parties(&node);
    let answer = wallet(
        &node,
        &p.alice,
        &[
            "double-spend",
            "--to",
            &p.bob_address,
            "--to2",
            &p.carol_address,
            "--amount",
            "1000000",
        ],
    );
    assert_eq!(
        answer["first"]["answer"]["accepted"],
        json!(true),
        "{answer}"
    );
    assert_eq!(
        answer["second"]["answer"]["accepted"],
        json!(false),
        "{answer}"
    );
    assert!(
        answer["second"]["answer"]
            .to_string()
            .contains("txn-mempool-conflict"),
        "{answer}"
    );
    node.generate(1);
    assert_eq!(confirmed(&node, &p.bob), 1_000_000);
    assert_eq!(confirmed(&node, &p.carol), 0);
}

#[test]
fn replacing_double_spend_wins_and_the_first_recipient_gets_nothing() {
    let node = Node::start(NodeOpts::default());
    let p = parties(&node);
    let answer = wallet(
        &node,
        &p.alice,
        &[
            "double-spend",
            "--to",
            &p.bob_address,
            "--to2",
            &p.carol_address,
            "--amount",
            "1000000",
            "--replace",
        ],
    );
    assert_eq!(
        answer["first"]["answer"]["accepted"],
        json!(true),
        "{answer}"
    );
    assert_eq!(
        answer["second"]["answer"]["accepted"],
        json!(true),
        "{answer}"
    );
    assert!(answer["second"]["fee"].as_u64() > answer["first"]["fee"].as_u64());
    let second = answer["second"]["txid"].as_str().unwrap();
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([second]));
    node.generate(1);
    assert_eq!(confirmed(&node, &p.bob), 0);
    assert_eq!(confirmed(&node, &p.carol), 1_000_000);
}
