//! `cairn wallet` end to end: parsed like the `cairn` binary parses it, run against fake
//! nodes over HTTP.

use crate::fake_node::FakeNode;
use cairn_core::params::dev_secret_key;
use cairn_core::{Amount, ChainParams, Coin, OutPoint, TxOut, Txid};
use cairn_wallet::cli::{Console, PassphraseSource, WalletArgs, execute};
use cairn_wallet::keystore::KdfParams;
use clap::Parser;
use serde_json::Value;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const PASSPHRASE: &str = "test passphrase";
const DEV_BALANCE: u64 = 100_000_000_000_000;

#[derive(Parser)]
struct Cairn {
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    Wallet(WalletArgs),
}

struct Output {
    result: anyhow::Result<()>,
    out: String,
    err: String,
}

impl Output {
    fn ok(self) -> String {
        if let Err(e) = &self.result {
            panic!(
                "command failed: {e:#}\nstdout:\n{}\nstderr:\n{}",
                self.out, self.err
            );
        }
        self.out
    }

    fn error(self) -> String {
        match self.result {
            Ok(()) => panic!("command succeeded:\n{}", self.out),
            Err(e) => format!("{e:#}"),
        }
    }
}

fn wallet_with(passphrase: &str, args: &[&str]) -> Output {
    let mut argv = vec!["cairn", "wallet"];
    argv.extend_from_slice(args);
    let Top::Wallet(parsed) = Cairn::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        .command;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let result = execute(
        parsed,
        &mut Console {
            out: &mut out,
            err: &mut err,
            passphrase: PassphraseSource::Fixed(Zeroizing::new(passphrase.to_owned())),
            kdf: KdfParams::INSECURE_FAST,
        },
    );
    Output {
        result,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// A wallet file in a temp dir, talking to one node by default.
struct Setup {
    _dir: tempfile::TempDir,
    wallet: PathBuf,
    node: FakeNode,
}

impl Setup {
    fn new(height: u32) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        Setup {
            wallet: dir.path().join("wallet.json"),
            _dir: dir,
            node: FakeNode::start(ChainParams::devnet(), height),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_on(self.node.datadir(), args)
    }

    fn run_on(&self, datadir: &Path, args: &[&str]) -> Output {
        let wallet = self.wallet.to_str().unwrap().to_owned();
        let datadir = datadir.to_str().unwrap().to_owned();
        let mut all = vec!["--wallet", &wallet, "--datadir", &datadir];
        all.extend_from_slice(args);
        wallet_with(PASSPHRASE, &all)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.run(&all).ok()).unwrap()
    }
}

fn dev_address(i: u32) -> String {
    ChainParams::devnet().config.dev_accounts[i as usize]
        .address
        .clone()
}

#[test]
fn import_dev_address_and_balance() {
    let s = Setup::new(20);
    assert_eq!(s.run(&["import-dev", "0"]).ok().trim(), dev_address(0));
    let file = std::fs::read_to_string(&s.wallet).unwrap();
    assert!(file.contains("ciphertext"));
    assert!(!file.contains(&ChainParams::devnet().config.dev_accounts[0].secret_key_hex));

    // Importing again is harmless.
    let again = s.run(&["import-dev", "0"]);
    assert!(again.err.contains("already"), "{}", again.err);
    assert_eq!(again.ok().trim(), dev_address(0));

    assert_eq!(s.run(&["address"]).ok().trim(), dev_address(0));
    let out = s.run(&["balance"]).ok();
    assert!(
        out.contains(&format!("confirmed:   {DEV_BALANCE}")),
        "{out}"
    );
    assert!(out.contains("immature:    0"), "{out}");

    let b = s.json(&["balance"]);
    assert_eq!(b["confirmed"], DEV_BALANCE);
    assert_eq!(b["unconfirmed"], 0);
    assert_eq!(b["addresses"][0]["address"], dev_address(0));
}

#[test]
fn immature_coinbase_is_shown_separately() {
    // A coinbase output mined at height 1 matures at 1 + 10 (maturity 10); the chain is at 5.
    // The genesis premine is not a coinbase for this rule (as in cairn-core): the wallet's
    // dev balance stays confirmed.
    let s = Setup::new(5);
    let address = s.run(&["new"]).ok();
    let hash = ChainParams::devnet().parse_address(address.trim()).unwrap();
    s.node.add_coin(
        OutPoint {
            txid: Txid::from_byte_array([7; 32]),
            vout: 0,
        },
        Coin {
            output: TxOut {
                amount: Amount::from_base(5_000_000_000),
                address: hash,
            },
            height: 1,
            is_coinbase: true,
        },
    );
    let b = s.json(&["balance"]);
    assert_eq!(b["confirmed"], 0);
    assert_eq!(b["immature"], 5_000_000_000u64);
    let out = s.run(&["balance"]).ok();
    assert!(out.contains("spendable from height 11"), "{out}");
    // And it cannot be spent yet.
    let err = s
        .run(&["send", "--to", &dev_address(2), "--amount", "1000"])
        .error();
    assert!(err.contains("insufficient funds"), "{err}");
}

#[test]
fn send_pays_and_never_double_spends_its_own_pending_coins() {
    let s = Setup::new(20);
    s.run(&["import-dev", "0"]).ok();
    let out = s
        .run(&["send", "--to", &dev_address(1), "--amount", "1000"])
        .ok();
    let txid1: Txid = out.lines().next().unwrap().parse().unwrap();
    assert!(out.contains("change"), "{out}");
    let tx1 = s
        .node
        .mempool_tx(&txid1)
        .expect("the node took the payment");
    assert_eq!(tx1.outputs[0].amount, Amount::from_base(1000));
    assert_eq!(tx1.outputs[0].address, dev_secret_key(1).pubkey_hash());
    // Default fee: one unit per byte.
    let fee1 = DEV_BALANCE - 1000 - tx1.outputs[1].amount.to_base();
    assert_eq!(fee1, tx1.encoded_size() as u64);

    // The change went to a fresh key saved in the wallet.
    let all = s.run(&["address", "--all"]).ok();
    assert_eq!(all.lines().count(), 2, "{all}");
    let change_address = ChainParams::devnet().address(&tx1.outputs[1].address);
    assert!(all.contains(&change_address));
    assert!(!s.run(&["address"]).ok().contains(&change_address));

    // The only confirmed coin is spent in the mempool: the next payment must use the
    // unconfirmed change, not the same coin again.
    let b = s.json(&["balance"]);
    assert_eq!(b["confirmed"], 0);
    assert_eq!(b["spending"], DEV_BALANCE);
    assert_eq!(b["unconfirmed"], tx1.outputs[1].amount.to_base());
    let out = s
        .run(&[
            "send",
            "--to",
            &dev_address(2),
            "--amount",
            "2000",
            "--fee",
            "500",
        ])
        .ok();
    let txid2: Txid = out.lines().next().unwrap().parse().unwrap();
    let tx2 = s.node.mempool_tx(&txid2).unwrap();
    assert_eq!(
        tx2.inputs[0].prevout,
        OutPoint {
            txid: txid1,
            vout: 1
        }
    );
    assert_eq!(
        tx2.outputs[1].amount.to_base(),
        tx1.outputs[1].amount.to_base() - 2000 - 500
    );
    assert_eq!(s.node.mempool_txids().len(), 2);

    let history = s.run(&["history"]).ok();
    assert!(history.contains(&txid1.to_string()), "{history}");
    assert!(history.contains("in the mempool"), "{history}");

    s.node.mine();
    let b = s.json(&["balance"]);
    assert_eq!(b["confirmed"], tx2.outputs[1].amount.to_base());
    assert_eq!(b["unconfirmed"], 0);
    assert_eq!(b["total"], DEV_BALANCE - 1000 - 2000 - fee1 - 500);
    let history = s.json(&["history"]);
    let sent = history["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["txid"], txid1.to_string());
    assert_eq!(sent[0]["status"]["state"], "confirmed");
    assert_eq!(sent[1]["fee"], 500);
}

#[test]
fn insufficient_funds_says_how_much_is_missing() {
    let s = Setup::new(20);
    let address = s.run(&["new"]).ok();
    assert!(address.trim().starts_with("crt1"));
    let err = s
        .run(&["send", "--to", &dev_address(1), "--amount", "1000"])
        .error();
    assert!(err.contains("insufficient funds"), "{err}");
    assert!(err.contains("missing"), "{err}");

    s.run(&["import-dev", "0"]).ok();
    let err = s
        .run(&[
            "send",
            "--to",
            &dev_address(1),
            "--amount",
            &(DEV_BALANCE + 5).to_string(),
            "--fee",
            "100",
        ])
        .error();
    assert!(err.contains("missing 105"), "{err}");
}

#[test]
fn node_rejection_reason_is_reported() {
    let s = Setup::new(20);
    s.run(&["import-dev", "0"]).ok();
    let err = s
        .run(&[
            "send",
            "--to",
            &dev_address(1),
            "--amount",
            "1000",
            "--fee",
            "1",
        ])
        .error();
    assert!(err.contains("min relay fee not met"), "{err}");
    assert!(s.node.mempool_txids().is_empty());
    let history = s.json(&["history"]);
    assert_eq!(history["sent"].as_array().unwrap().len(), 0);
    let err = s
        .run(&["send", "--to", "crt1nonsense", "--amount", "1"])
        .error();
    assert!(err.contains("--to crt1nonsense"), "{err}");
}

#[test]
fn double_spend_across_two_nodes_both_accept() {
    let s = Setup::new(20);
    let other = FakeNode::start(ChainParams::devnet(), 20);
    s.run(&["import-dev", "3"]).ok();
    let node1 = s.node.datadir().to_str().unwrap().to_owned();
    let node2 = other.datadir().to_str().unwrap().to_owned();
    let out = s.json(&[
        "double-spend",
        "--to",
        &dev_address(4),
        "--to2",
        &dev_address(5),
        "--amount",
        "5000",
        "--node",
        &node1,
        "--node2",
        &node2,
    ]);
    assert_eq!(out["first"]["answer"]["accepted"], true);
    assert_eq!(out["second"]["answer"]["accepted"], true);
    let first: Txid = out["first"]["txid"].as_str().unwrap().parse().unwrap();
    let second: Txid = out["second"]["txid"].as_str().unwrap().parse().unwrap();
    assert_ne!(first, second);
    assert_eq!(s.node.mempool_txids(), vec![first]);
    assert_eq!(other.mempool_txids(), vec![second]);
    let a = s.node.mempool_tx(&first).unwrap();
    let b = other.mempool_tx(&second).unwrap();
    assert_eq!(a.inputs[0].prevout, b.inputs[0].prevout);
    assert_eq!(a.outputs[0].address, dev_secret_key(4).pubkey_hash());
    assert_eq!(b.outputs[0].address, dev_secret_key(5).pubkey_hash());
    assert_eq!(out["first"]["fee"], out["second"]["fee"]);

    let history = s.json(&["history"]);
    let kinds: Vec<&str> = history["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["double-spend-first", "double-spend-second"]);
}

#[test]
fn double_spend_on_one_node_gets_a_mempool_conflict() {
    let s = Setup::new(20);
    s.run(&["import-dev", "3"]).ok();
    let out = s
        .run(&[
            "double-spend",
            "--to",
            &dev_address(4),
            "--to2",
            &dev_address(5),
            "--amount",
            "5000",
        ])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("coin"), "{out}");
    assert!(lines[2].contains("accepted"), "{out}");
    assert!(
        lines[4].contains("rejected: txn-mempool-conflict (code -26)"),
        "{out}"
    );
    assert_eq!(s.node.mempool_txids().len(), 1);
}

#[test]
fn double_spend_with_replace_replaces_by_fee() {
    let s = Setup::new(20);
    s.run(&["import-dev", "3"]).ok();
    let out = s.json(&[
        "double-spend",
        "--to",
        &dev_address(4),
        "--to2",
        &dev_address(5),
        "--amount",
        "5000",
        "--replace",
    ]);
    assert_eq!(out["first"]["answer"]["accepted"], true);
    assert_eq!(out["second"]["answer"]["accepted"], true);
    assert!(out["second"]["fee"].as_u64() > out["first"]["fee"].as_u64());
    let second: Txid = out["second"]["txid"].as_str().unwrap().parse().unwrap();
    assert_eq!(s.node.mempool_txids(), vec![second]);
    // The replaced first transaction is gone from the node.
    let history = s.json(&["history"]);
    assert_eq!(history["sent"][0]["status"]["state"], "unknown");
    assert_eq!(history["sent"][1]["status"]["state"], "mempool");
}

#[test]
fn wrong_passphrase_fails_clearly() {
    let s = Setup::new(20);
    s.run(&["import-dev", "0"]).ok();
    let wallet = s.wallet.to_str().unwrap();
    let err = wallet_with("not it", &["--wallet", wallet, "address"]).error();
    assert!(err.contains("wrong passphrase"), "{err}");
    let err = wallet_with("", &["--wallet", wallet, "new"]).error();
    assert!(err.contains("wrong passphrase"), "{err}");
}

#[test]
fn a_node_of_another_network_is_refused() {
    let s = Setup::new(20);
    s.run(&["import-dev", "0"]).ok();
    // Same address prefix, different network id: signatures would be worthless there.
    let regtest = FakeNode::start(ChainParams::regtest(), 20);
    let err = s.run_on(regtest.datadir(), &["balance"]).error();
    assert!(err.contains("another network"), "{err}");
}

#[test]
fn plaintext_wallet_for_dev_keys_is_marked() {
    let s = Setup::new(20);
    let created = s.run(&["--insecure-plaintext", "import-dev", "2"]);
    assert!(
        created.err.contains("INSECURE PLAINTEXT"),
        "{}",
        created.err
    );
    created.ok();
    let file = std::fs::read_to_string(&s.wallet).unwrap();
    assert!(file.contains("INSECURE PLAINTEXT WALLET"));
    let opened = s.run(&["address"]);
    assert!(opened.err.contains("insecure plaintext"), "{}", opened.err);
    assert_eq!(opened.ok().trim(), dev_address(2));
}

#[test]
fn node_by_url_and_cookie() {
    let s = Setup::new(20);
    s.run(&["import-dev", "0"]).ok();
    let wallet = s.wallet.to_str().unwrap();
    let cookie = s.node.cookie_file();
    let out = wallet_with(
        PASSPHRASE,
        &[
            "--wallet",
            wallet,
            "--rpc-url",
            &s.node.url,
            "--cookie",
            cookie.to_str().unwrap(),
            "balance",
        ],
    )
    .ok();
    assert!(out.contains(&DEV_BALANCE.to_string()), "{out}");
    let err = wallet_with(
        PASSPHRASE,
        &["--wallet", wallet, "--rpc-url", &s.node.url, "balance"],
    )
    .error();
    assert!(err.contains("--cookie"), "{err}");
}

#[test]
fn missing_wallet_says_how_to_create_one() {
    let s = Setup::new(20);
    let err = s.run(&["balance"]).error();
    assert!(err.contains("cairn wallet new"), "{err}");
}

#[test]
fn chained_coins_of_other_kinds_are_counted() {
    // A confirmed non-coinbase coin to a fresh receive key shows up as confirmed.
    let s = Setup::new(20);
    let address = s.run(&["new"]).ok();
    let hash = ChainParams::devnet().parse_address(address.trim()).unwrap();
    s.node.add_coin(
        OutPoint {
            txid: Txid::from_byte_array([9; 32]),
            vout: 0,
        },
        Coin {
            output: TxOut {
                amount: Amount::from_base(77_000),
                address: hash,
            },
            height: 19,
            is_coinbase: false,
        },
    );
    let b = s.json(&["balance"]);
    assert_eq!(b["confirmed"], 77_000);
    s.run(&["send", "--to", &dev_address(1), "--amount", "70000"])
        .ok();
}

#[test]
fn a_second_node_that_has_not_seen_a_payment_cannot_make_the_wallet_spend_its_coin_again() {
    let s = Setup::new(20);
    let lagging = FakeNode::start(ChainParams::devnet(), 20);
    s.run(&["import-dev", "0"]).ok();
    let extra = |node: &FakeNode| {
        node.add_coin(
            OutPoint {
                txid: Txid::from_byte_array([7; 32]),
                vout: 0,
            },
            Coin {
                output: TxOut {
                    amount: Amount::from_base(50_000),
                    address: dev_secret_key(0).pubkey_hash(),
                },
                height: 3,
                is_coinbase: false,
            },
        )
    };
    extra(&s.node);
    extra(&lagging);
    let out = s
        .run(&["send", "--to", &dev_address(1), "--amount", "1000"])
        .ok();
    let txid1: Txid = out.lines().next().unwrap().parse().unwrap();
    let spent1 = s.node.mempool_tx(&txid1).unwrap().inputs[0].prevout;

    // The lagging node still shows that coin unspent; the wallet must not reuse it.
    let out = s
        .run_on(
            lagging.datadir(),
            &["send", "--to", &dev_address(2), "--amount", "1000"],
        )
        .ok();
    let txid2: Txid = out.lines().next().unwrap().parse().unwrap();
    let spent2 = lagging.mempool_tx(&txid2).unwrap().inputs[0].prevout;
    assert_ne!(spent1, spent2);

    // With every coin reserved or spent, the error says what is held back.
    let err = s
        .run_on(
            lagging.datadir(),
            &["send", "--to", &dev_address(2), "--amount", "100000"],
        )
        .error();
    assert!(err.contains("held back"), "{err}");
    assert!(err.contains("insufficient funds"), "{err}");
}

#[test]
fn a_double_spend_across_nodes_uses_a_confirmed_coin() {
    let s = Setup::new(20);
    let other = FakeNode::start(ChainParams::devnet(), 20);
    s.run(&["import-dev", "0"]).ok();
    // Spend the only confirmed coin: what is left is unconfirmed change.
    s.run(&["send", "--to", &dev_address(1), "--amount", "1000"])
        .ok();
    let node2 = other.datadir().to_str().unwrap().to_owned();
    let err = s
        .run(&[
            "double-spend",
            "--to",
            &dev_address(4),
            "--to2",
            &dev_address(5),
            "--amount",
            "5000",
            "--node2",
            &node2,
        ])
        .error();
    assert!(
        err.contains("insufficient funds for a double spend"),
        "{err}"
    );
    // On one node, the unconfirmed change will do.
    s.run(&[
        "double-spend",
        "--to",
        &dev_address(4),
        "--to2",
        &dev_address(5),
        "--amount",
        "5000",
    ])
    .ok();
}

#[test]
fn import_dev_into_makes_a_plaintext_dev_wallet_for_testnets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node0").join("wallet.json");
    let params = ChainParams::devnet();
    let address = cairn_wallet::cli::import_dev_into(&path, &params, 4).unwrap();
    assert_eq!(address, dev_address(4));
    // Idempotent, and further accounts are added to the same file.
    assert_eq!(
        cairn_wallet::cli::import_dev_into(&path, &params, 4).unwrap(),
        address
    );
    cairn_wallet::cli::import_dev_into(&path, &params, 5).unwrap();
    let out = wallet_with("", &["--wallet", path.to_str().unwrap(), "address"]).ok();
    assert_eq!(out, format!("{}\n{}\n", dev_address(4), dev_address(5)));
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("INSECURE PLAINTEXT")
    );
}
