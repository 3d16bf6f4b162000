//! The RPC client against a live HTTP server: results, JSON-RPC errors, 401, transport
//! failures, batches and cookie rotation.

use crate::fake_node::{FakeNode, SECRET};
use cairn_core::ChainParams;
use cairn_wallet::rpc::{Cookie, RpcClient, RpcError, codes};
use serde_json::json;
use std::time::Duration;

#[test]
fn from_datadir_reads_node_json_and_cookie() {
    let node = FakeNode::start(ChainParams::devnet(), 3);
    let client = RpcClient::from_datadir(node.datadir()).unwrap();
    assert_eq!(client.url(), node.url);
    assert_eq!(client.cookie().unwrap().unwrap().password, SECRET);
    let info = client.call("getblockchaininfo", json!([])).unwrap();
    assert_eq!(info["blocks"], 3);
    assert_eq!(info["hrp"], "crt");
    // `null` params are sent as an empty list.
    assert_eq!(
        client
            .call("getblockchaininfo", serde_json::Value::Null)
            .unwrap()["blocks"],
        3
    );
}

#[test]
fn json_rpc_errors_carry_code_and_message() {
    let node = FakeNode::start(ChainParams::devnet(), 0);
    let client = RpcClient::from_url(&node.url, node.cookie_file()).unwrap();
    let err = client.call("nosuchmethod", json!([])).unwrap_err();
    assert!(err.is_method_not_found(), "{err:?}");
    let err = client
        .call("sendrawtransaction", json!(["zz"]))
        .unwrap_err();
    match &err {
        RpcError::Rpc { code, message } => {
            assert_eq!(*code, codes::DESERIALIZATION_ERROR);
            assert!(message.starts_with("TX decode failed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_answer());
}

#[test]
fn wrong_cookie_is_http_401() {
    let node = FakeNode::start(ChainParams::devnet(), 0);
    let client = RpcClient::new(
        &node.url,
        Some(Cookie {
            user: "__cookie__".into(),
            password: "wrong".into(),
        }),
    );
    let err = client.call("getblockchaininfo", json!([])).unwrap_err();
    assert!(matches!(err, RpcError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("401"));
    assert!(!err.is_answer());
}

#[test]
fn unreachable_node_is_a_transport_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = RpcClient::new(&format!("http://127.0.0.1:{port}"), None)
        .with_timeout(Duration::from_secs(5));
    let err = client.call("getblockchaininfo", json!([])).unwrap_err();
    assert!(matches!(err, RpcError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

#[test]
fn cookie_file_is_reread_so_a_restarted_node_keeps_working() {
    let node = FakeNode::start(ChainParams::devnet(), 0);
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join(".cookie");
    std::fs::write(&cookie, "__cookie__:stale").unwrap();
    let client = RpcClient::from_url(&node.url, &cookie).unwrap();
    assert!(matches!(
        client.call("getblockchaininfo", json!([])),
        Err(RpcError::Unauthorized { .. })
    ));
    std::fs::write(&cookie, format!("__cookie__:{SECRET}\n")).unwrap();
    client.call("getblockchaininfo", json!([])).unwrap();
}

#[test]
fn missing_cookie_file_is_reported_up_front() {
    let err = RpcClient::from_url("http://127.0.0.1:1", "/nonexistent/.cookie").unwrap_err();
    assert!(matches!(err, RpcError::Config(_)));
    assert!(err.to_string().contains("cookie"), "{err}");
}

#[test]
fn batches_answer_each_call_in_order() {
    let node = FakeNode::start(ChainParams::devnet(), 7);
    let client = RpcClient::from_datadir(node.datadir()).unwrap();
    let answers = client
        .batch(&[
            ("getblockchaininfo", json!([])),
            ("nosuchmethod", json!([])),
            ("getblockhash", json!([0])),
        ])
        .unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].as_ref().unwrap()["blocks"], 7);
    assert!(answers[1].as_ref().unwrap_err().is_method_not_found());
    assert_eq!(
        answers[2].as_ref().unwrap().as_str().unwrap(),
        ChainParams::devnet().genesis_hash.to_string()
    );
}
