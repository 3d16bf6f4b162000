//! No secret in logs: two nodes at the most verbose level (`RUST_LOG=trace`) and a wallet go
//! through a full path — a new wallet, a dev key imported, payments, a double spend across
//! the two nodes, blocks, a restart — then every log (the nodes' stderr logs, every log file
//! rocksdb or anything else left in the datadirs, the wallet's own output) is searched for
//! the cookies' passwords and the wallet's secret keys in every encoding they could take.

use crate::harness::{Node, NodeOpts, cairn_bin, regtest_genesis, wait_until};
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Runs `cairn wallet` on `datadir`'s wallet; returns stdout, and appends both streams to
/// `transcript`.
fn wallet(datadir: &Path, args: &[&str], transcript: &mut String) -> String {
    let out = Command::new(cairn_bin())
        .arg("wallet")
        .arg("--datadir")
        .arg(datadir)
        .arg("--genesis")
        .arg(regtest_genesis())
        .arg("--insecure-plaintext")
        .args(args)
        .env_remove("CAIRN_DATADIR")
        .env_remove("CAIRN_WALLET_PASSPHRASE")
        .env("RUST_LOG", "trace")
        .output()
        .expect("run cairn wallet");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    transcript.push_str(&format!("$ wallet {args:?}\n{stdout}{stderr}\n"));
    assert!(out.status.success(), "wallet {args:?}: {stdout}{stderr}");
    stdout
}

/// Every `secret_key_hex` value anywhere in `value`.
fn secret_keys(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("secret_key_hex", Value::String(hex)) => found.push(hex.clone()),
                    _ => secret_keys(v, found),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| secret_keys(v, found)),
        _ => {}
    }
}

/// The forms a 32-byte secret could take in a log line.
fn encodings(secret_hex: &str) -> Vec<String> {
    let bytes = hex::decode(secret_hex).expect("secret is hex");
    let b64 = base64::engine::general_purpose::STANDARD;
    let debug = format!("{:?}", &bytes[..6]);
    vec![
        secret_hex.to_lowercase(),
        secret_hex.to_uppercase(),
        b64.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
        // `{:?}` of the bytes, e.g. `[17, 4, 200, 3, 9, 77`.
        debug.trim_end_matches(']').to_owned(),
    ]
}

/// The forms a cookie (`__cookie__:HEX`) could take: the password, and the whole
/// credential as it travels in an `Authorization` header.
fn cookie_encodings(cookie: &str) -> Vec<String> {
    let cookie = cookie.trim();
    let password = cookie.split_once(':').expect("user:password").1;
    vec![
        password.to_owned(),
        password.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(cookie),
    ]
}

/// Every file under `dir` except the wallet and the cookie themselves.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read datadir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            files_under(&path, out);
        } else if name != "wallet.json" && name != ".cookie" {
            out.push(path);
        }
    }
}

/// The log-like files of a datadir: anything named `*.log`, `LOG*` (rocksdb) or `*.txt`.
fn logs_of(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files.retain(|p| {
        let name = p.file_name().expect("file name").to_string_lossy();
        name.ends_with(".log") || name.starts_with("LOG") || name.ends_with(".txt")
    });
    files
}

#[test]
fn no_secret_reaches_any_log_through_a_full_wallet_path() {
    let mut a = Node::start_logging(NodeOpts::default(), "trace");
    let b = Node::start_logging(
        NodeOpts {
            peers: vec![a.p2p.clone().expect("a listens")],
            ..Default::default()
        },
        "trace",
    );
    let mut cookies = vec![a.cookie.clone(), b.cookie.clone()];
    let mut transcript = String::new();
    let w = a.datadir().to_path_buf();
    wallet(&w, &["new"], &mut transcript);
    wallet(&w, &["import-dev", "0"], &mut transcript);
    let own = wallet(&w, &["address"], &mut transcript);
    let own = own.lines().next().expect("an address").to_owned();
    let other = crate::harness::address(&cairn_core::params::dev_secret_key(1));
    let txid = wallet(
        &w,
        &["send", "--to", &own, "--amount", "5000000", "--fee", "1000"],
        &mut transcript,
    );
    let txid = txid.lines().next().expect("txid").to_owned();
    a.generate(1);
    assert!(wait_until(Duration::from_secs(30), || {
        b.try_rpc("getrawtransaction", json!([txid, true]))
            .is_ok_and(|tx| tx["confirmations"].as_u64() == Some(1))
    }));
    wallet(
        &w,
        &[
            "send", "--to", &other, "--amount", "700000", "--fee", "1000",
        ],
        &mut transcript,
    );
    let b_dir = b.datadir().to_str().expect("utf-8").to_owned();
    wallet(
        &w,
        &[
            "double-spend",
            "--to",
            &own,
            "--to2",
            &other,
            "--amount",
            "300000",
            "--node2",
            &b_dir,
        ],
        &mut transcript,
    );
    a.generate(2);
    a.restart();
    cookies.push(a.cookie.clone());
    wallet(&w, &["balance"], &mut transcript);
    wallet(&w, &["history"], &mut transcript);

    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(w.join("wallet.json")).expect("wallet file"))
            .expect("plaintext wallet is JSON");
    let mut keys = Vec::new();
    secret_keys(&file, &mut keys);
    assert!(
        keys.len() >= 3,
        "dev key, receive key and change keys: {keys:?}"
    );
    let mut needles: Vec<(String, String)> = Vec::new();
    for key in &keys {
        needles.extend(
            encodings(key)
                .into_iter()
                .map(|e| ("a wallet key".into(), e)),
        );
    }
    for cookie in &cookies {
        needles.extend(
            cookie_encodings(cookie)
                .into_iter()
                .map(|e| ("a cookie".into(), e)),
        );
    }
    let mut logs = logs_of(a.datadir());
    logs.extend(logs_of(b.datadir()));
    assert!(
        logs.iter().any(|p| p.ends_with("node.log")),
        "no node log among {logs:?}"
    );
    let mut texts: Vec<(String, String)> = logs
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).expect("read log");
            (
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
        .collect();
    texts.push(("the wallet's output".into(), transcript));
    let traced: usize = texts.iter().map(|(_, t)| t.lines().count()).sum();
    assert!(traced > 1000, "trace logging produced only {traced} lines");
    for (what, needle) in &needles {
        for (name, text) in &texts {
            assert!(
                !text.contains(needle.as_str()),
                "{what} ({needle}) appears in {name}"
            );
        }
    }
}
