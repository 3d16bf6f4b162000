//! What a fork view and a metrics scraper read from a node: `getblocktree`, the `/events`
//! stream and `/metrics`, against real nodes.

use crate::harness::{Node, NodeOpts, wait_until};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SYNC: Duration = Duration::from_secs(30);

fn tip(node: &Node) -> String {
    node.rpc("getbestblockhash", json!([]))
        .as_str()
        .unwrap()
        .to_owned()
}

fn tree_block<'a>(tree: &'a Value, hash: &str) -> &'a Value {
    tree["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["hash"] == hash)
        .unwrap_or_else(|| panic!("{hash} not in the tree {tree:#}"))
}

/// A plain HTTP GET on `addr` (`127.0.0.1:PORT`): status and body.
fn http_get(addr: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn block_tree_shows_a_resolved_fork_with_statuses_and_first_seen_times() {
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        peers: vec![a.p2p.clone().unwrap()],
        ..Default::default()
    });
    let base = a.generate(1).remove(0);
    assert!(wait_until(SYNC, || tip(&b) == base), "b did not sync");

    a.rpc("setnetworkactive", json!([false]));
    b.rpc("setnetworkactive", json!([false]));
    let stale = a.generate(1).remove(0);
    let winners = b.generate(2);
    a.rpc("setnetworkactive", json!([true]));
    b.rpc("setnetworkactive", json!([true]));
    b.rpc("addnode", json!([a.p2p.clone().unwrap(), "onetry"]));
    assert!(
        wait_until(SYNC, || tip(&a) == winners[1]),
        "a did not reorganise to b's heavier branch; log:\n{}",
        a.log()
    );

    let tree = a.rpc("getblocktree", json!([0]));
    assert_eq!(tree["tip"], winners[1]);
    assert_eq!(tree["height"], 3);
    assert_eq!(tree["from"], 0);
    let stale_block = tree_block(&tree, &stale);
    assert_eq!(stale_block["status"], "side");
    assert_eq!(stale_block["parent"], base);
    assert_eq!(stale_block["height"], 2);
    assert_eq!(stale_block["txs"], 1);
    for (i, hash) in winners.iter().enumerate() {
        let block = tree_block(&tree, hash);
        assert_eq!(block["status"], "active");
        assert_eq!(block["height"], 2 + i);
        assert!(block["first_seen_ms"].as_u64().is_some(), "{block}");
    }
    // The stale block was known before the winners arrived.
    let first = |h: &str| tree_block(&tree, h)["first_seen_ms"].as_u64().unwrap();
    assert!(first(&stale) <= first(&winners[0]));
    // The default starts 100 below the tip: here, at genesis.
    let default = a.rpc("getblocktree", json!([]));
    assert_eq!(default["from"], 0);
    assert_eq!(default["blocks"].as_array().unwrap().len(), 5);
    let above = a.rpc("getblocktree", json!([3]));
    assert_eq!(above["blocks"].as_array().unwrap().len(), 1);
    let bad = a.try_rpc("getblocktree", json!(["x"])).unwrap_err();
    assert_eq!(bad.code, -32602);

    // An invalidated block is reported as such.
    a.rpc("invalidateblock", json!([winners[1]]));
    let tree = a.rpc("getblocktree", json!([0]));
    assert_eq!(tree_block(&tree, &winners[1])["status"], "invalid");
}

#[test]
fn event_stream_announces_blocks_and_tips_within_a_second() {
    let node = Node::start(NodeOpts::default());
    let (status, _) = http_get(&node.rpc_addr, "/events", None);
    assert_eq!(status, 401, "the event stream needs the cookie");

    let mut stream = TcpStream::connect(&node.rpc_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        node.auth()
    )
    .unwrap();
    let (lines, received) = mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if lines.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    // Headers first: the stream is open before anything is mined.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, line) = received.recv_timeout(deadline - Instant::now()).unwrap();
        if line
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream")
        {
            break;
        }
    }

    let hash = node.generate(1).remove(0);
    let mined = Instant::now();
    let (mut saw_block, mut saw_tip) = (false, false);
    let mut event = String::new();
    while !(saw_block && saw_tip) {
        let (at, line) = received
            .recv_timeout(Duration::from_secs(10))
            .expect("an event within 10 s");
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["hash"], hash, "{event}: {data}");
            assert_eq!(data["height"], 1);
            match event.as_str() {
                "tip" => {
                    assert_eq!(data["reorg_depth"], 0);
                    saw_tip = true;
                }
                "block" => saw_block = true,
                other => panic!("unexpected event {other}"),
            }
            let late = at.saturating_duration_since(mined);
            assert!(late < Duration::from_secs(1), "{event} came {late:?} late");
        }
    }
}

/// The value of the unlabelled sample `name` in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

#[test]
fn metrics_are_served_where_node_json_says_and_match_rpc() {
    let node = Node::start(NodeOpts {
        extra_args: vec!["--metrics".into(), "127.0.0.1:0".into()],
        ..Default::default()
    });
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(node.datadir().join("node.json")).unwrap())
            .unwrap();
    let addr = info["metrics"]
        .as_str()
        .expect("node.json names the metrics address");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    node.generate(3);
    let (status, text) = http_get(addr, "/metrics", None);
    assert_eq!(status, 200);
    assert!(text.contains("# EOF"), "{text}");
    let height = node.rpc("getblockcount", json!([])).as_f64().unwrap();
    assert_eq!(sample(&text, "cairn_height"), Some(height));
    assert_eq!(sample(&text, "cairn_tip_changes_total"), Some(3.0));
    assert_eq!(sample(&text, "cairn_reorgs_total"), Some(0.0));
    assert_eq!(
        sample(&text, "cairn_block_validation_seconds_count"),
        Some(3.0)
    );
    // Sampled once a second: the mempool and peer gauges follow RPC.
    let mempool = node.rpc("getmempoolinfo", json!([]));
    assert!(wait_until(Duration::from_secs(5), || {
        let (_, text) = http_get(addr, "/metrics", None);
        sample(&text, "cairn_mempool_transactions") == mempool["size"].as_f64()
            && sample(&text, "cairn_peers") == Some(0.0)
    }));
    // The UTXO cache holds the three blocks' coinbases until a scan flushes it.
    assert!(wait_until(Duration::from_secs(5), || {
        let (_, text) = http_get(addr, "/metrics", None);
        sample(&text, "cairn_utxo_cache_coins") >= Some(3.0)
            && sample(&text, "cairn_utxo_cache_size_bytes") > Some(0.0)
    }));
    node.rpc("gettxoutsetinfo", json!([]));
    assert!(wait_until(Duration::from_secs(5), || {
        let (_, text) = http_get(addr, "/metrics", None);
        sample(&text, "cairn_utxo_cache_coins") == Some(0.0)
            && sample(&text, "cairn_utxo_cache_flushes_total") >= Some(1.0)
    }));
    let (status, _) = http_get(addr, "/nothing", None);
    assert_eq!(status, 404);
}
