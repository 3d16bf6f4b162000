//! Security defaults: the RPC and metrics listeners stay on loopback unless
//! `--rpc-allow-remote` says otherwise (and the cookie is required either way); the lab's
//! view binds loopback by default.
//!
//! No test here binds a non-loopback address: the refusals happen before any socket is
//! opened, and the flag's acceptance of a remote address is proved on the resolved
//! configuration (`config::tests::listeners_beyond_loopback_need_rpc_allow_remote`).

use crate::harness::{Node, NodeOpts, cairn_bin, regtest_genesis};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `cairn node` with `args` on a fresh datadir; returns (exit code, stderr).
fn node_exit(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp datadir");
    let out = Command::new(cairn_bin())
        .arg("node")
        .arg("--datadir")
        .arg(dir.path())
        .arg("--genesis")
        .arg(regtest_genesis())
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(args)
        .env_remove("CAIRN_DATADIR")
        .stdout(Stdio::null())
        .output()
        .expect("run cairn node");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(args: &[&str], flag: &str, addr: &str) {
    let (code, stderr) = node_exit(args);
    assert_eq!(code, Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected:\n{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("error: ")
            && line.contains(&format!("{flag} {addr}"))
            && line.contains("--rpc-allow-remote"),
        "{args:?}: {line}"
    );
}

#[test]
fn rpc_and_metrics_refuse_a_non_loopback_bind_without_the_flag() {
    assert_refused(&["--rpc-addr", "0.0.0.0:0"], "--rpc-addr", "0.0.0.0:0");
    assert_refused(
        &["--rpc-addr", "127.0.0.1:0", "--metrics", "0.0.0.0:0"],
        "--metrics",
        "0.0.0.0:0",
    );
    assert_refused(&["--rpc-addr", "[::]:0"], "--rpc-addr", "[::]:0");
}

#[test]
fn rpc_allow_remote_still_requires_the_cookie() {
    let node = Node::start(NodeOpts {
        extra_args: vec!["--rpc-allow-remote".into()],
        ..Default::default()
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}).to_string();
    assert_eq!(node.post_raw(&body, None).0, 401);
    assert_eq!(
        node.post_raw(&body, Some("Basic X19jb29raWVfXzp3cm9uZw=="))
            .0,
        401
    );
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
}

#[test]
fn testnet_view_binds_loopback_by_default() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("devnet");
    let testnet = |args: &[&str]| {
        Command::new(cairn_bin())
            .arg("testnet")
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .env_remove("CAIRN_DATADIR")
            .output()
            .expect("run cairn testnet")
    };
    let genesis = regtest_genesis().to_str().expect("utf-8 path").to_owned();
    let up = testnet(&["up", "-n", "1", "--genesis", &genesis]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let mut view = Command::new(cairn_bin())
        .arg("testnet")
        .arg("--dir")
        .arg(&dir)
        .arg("view")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the view");
    let stdout = view.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("view ") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60));
    let _ = view.kill();
    let _ = view.wait();
    let _ = testnet(&["down"]);
    let line = line.expect("the view printed its URL");
    assert!(line.starts_with("view http://127.0.0.1:"), "{line}");
}
