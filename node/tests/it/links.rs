//! Link shaping between real nodes (`setlinkshaping`, `cairn testnet link`): added delay
//! shows in block arrival and in `ping_ms`, total loss cuts the gossip path, a bandwidth
//! cap paces a big block, and `testnet link` round-trips through `devnet.json`.

use crate::harness::{
    Node, NodeOpts, cairn_bin, genesis_coin, hex_of, regtest, regtest_genesis, wait_until,
};
use cairn_core::params::dev_secret_key;
use cairn_core::{Amount, OutPoint, TxOut, encoding};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn peer_entry(node: &Node, other: &Node) -> Option<Value> {
    node.rpc("getpeerinfo", json!([]))
        .as_array()
        .expect("getpeerinfo is an array")
        .iter()
        .find(|p| p["peer_id"] == other.peer_id.as_str())
        .cloned()
}

/// Two nodes, `b` dialling `a`, connected and past the handshake.
fn pair() -> (Node, Node) {
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        peers: vec![a.p2p.clone().expect("a listens")],
        ..NodeOpts::default()
    });
    let ok = wait_until(Duration::from_secs(30), || {
        peer_entry(&a, &b).is_some_and(|p| !p["best_height"].is_null())
            && peer_entry(&b, &a).is_some_and(|p| !p["best_height"].is_null())
    });
    assert!(ok, "nodes did not connect:\n{}\n{}", a.log(), b.log());
    (a, b)
}

fn shape(node: &Node, peer: &Node, settings: Value) {
    node.rpc("setlinkshaping", json!([peer.peer_id, settings]));
}

/// Mines one block on `from` and returns how long until `to`'s tip is that block.
fn arrival(from: &Node, to: &Node, timeout: Duration) -> Option<Duration> {
    let hash = from.generate(1).pop().expect("one block");
    let mined = Instant::now();
    while mined.elapsed() < timeout {
        if to.tip() == hash {
            return Some(mined.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_200ms_link_delays_blocks_200ms_and_ping_shows_the_round_trip() {
    let (a, b) = pair();
    let unshaped = arrival(&a, &b, Duration::from_secs(10)).expect("block arrives unshaped");
    shape(&a, &b, json!({"latency_ms": 200}));
    shape(&b, &a, json!({"latency_ms": 200}));
    assert_eq!(
        a.rpc("getlinkshaping", json!([]))[0]["latency_ms"],
        json!(200.0)
    );

    let mut times: Vec<Duration> = (0..3)
        .map(|_| arrival(&a, &b, Duration::from_secs(10)).expect("block arrives shaped"))
        .collect();
    times.sort();
    let median = times[1];
    eprintln!("block arrival: unshaped {unshaped:?}, over 200 ms: {times:?}");
    assert!(
        (Duration::from_millis(160)..=Duration::from_millis(240)).contains(&median),
        "a block over a 200 ms link took {median:?} (all: {times:?})"
    );

    // Pings run every 5 s; the second one after shaping ran entirely on the shaped link.
    let mut seen: Vec<f64> = Vec::new();
    let ok = wait_until(Duration::from_secs(20), || {
        if let Some(ms) = peer_entry(&a, &b).and_then(|p| p["ping_ms"].as_f64())
            && seen.last() != Some(&ms)
        {
            seen.push(ms);
        }
        seen.len() >= 3
    });
    assert!(ok, "no new pings: {seen:?}");
    let ping = *seen.last().expect("a ping");
    eprintln!("ping_ms over 200 ms each way: {seen:?}");
    assert!(
        (320.0..=480.0).contains(&ping),
        "ping over 2 × 200 ms was {ping} ms"
    );

    // Reset: back to loopback speed.
    a.rpc("setlinkshaping", json!([b.peer_id]));
    assert_eq!(a.rpc("getlinkshaping", json!([])), json!([]));
    let after = arrival(&a, &b, Duration::from_secs(10)).expect("block arrives after reset");
    assert!(after < Duration::from_millis(150), "after reset: {after:?}");
}

#[test]
fn total_loss_cuts_the_gossip_path_for_blocks_and_transactions() {
    let (a, b) = pair();
    shape(&b, &a, json!({"loss_pct": 100}));

    let key = dev_secret_key(0);
    let coin = genesis_coin(&a, &key);
    let tx = crate::harness::spend(&key, &[coin], &dev_secret_key(1), 1_000, 1_000);
    let txid = a
        .rpc("sendrawtransaction", json!([hex_of(&tx)]))
        .as_str()
        .expect("txid")
        .to_owned();
    let before = b.tip();
    let lost = a.generate(1).pop().expect("a block");
    // Long enough for gossip (milliseconds here) and for a status refresh to try sync.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.tip(), before, "the block crossed a 100 % loss link");
    let pool = b.rpc("getrawmempool", json!([]));
    assert!(
        !pool.as_array().unwrap().iter().any(|t| t == txid.as_str()),
        "the transaction crossed a 100 % loss link"
    );
    assert!(
        b.log().contains("link shaping set"),
        "b's log says nothing of the shaping"
    );
    assert!(
        peer_entry(&b, &a).is_some(),
        "loss is not misbehaviour: still connected"
    );
    assert_eq!(peer_entry(&b, &a).unwrap()["misbehavior"], json!(0));

    // Healed: the next block arrives, and sync fetches the one that was lost.
    b.rpc("setlinkshaping", json!([a.peer_id, {}]));
    let next = a.generate(1).pop().expect("a block");
    let ok = wait_until(Duration::from_secs(30), || b.tip() == next);
    assert!(ok, "b did not catch up after the reset:\n{}", b.log());
    let lost_block = b.rpc("getblock", json!([lost]));
    assert_eq!(lost_block["hash"], json!(lost));
}

/// A transaction of `n` outputs of one base unit each, from dev key 0's genesis coin.
fn fat_transaction(node: &Node, n: usize) -> cairn_core::Transaction {
    let key = dev_secret_key(0);
    let (outpoint, amount): (OutPoint, u64) = genesis_coin(node, &key);
    let build = |fee: u64| {
        let mut outputs: Vec<TxOut> = (0..n)
            .map(|_| TxOut {
                amount: Amount::from_base(1),
                address: dev_secret_key(1).pubkey_hash(),
            })
            .collect();
        outputs.push(TxOut {
            amount: Amount::from_base(amount - n as u64 - fee),
            address: key.pubkey_hash(),
        });
        cairn_core::testkit::signed_spend(
            &regtest(),
            &[(outpoint, Amount::from_base(amount))],
            &key,
            outputs,
        )
    };
    let size = encoding::encode(&build(0)).len() as u64;
    build(2 * size)
}

#[test]
fn a_bandwidth_cap_paces_a_big_block_at_the_rate() {
    // The big transaction goes into a's mempool before b connects: only the block crosses.
    let a = Node::start(NodeOpts::default());
    let tx = fat_transaction(&a, 28_000);
    a.rpc("sendrawtransaction", json!([hex_of(&tx)]));
    let b = Node::start(NodeOpts {
        peers: vec![a.p2p.clone().expect("a listens")],
        ..NodeOpts::default()
    });
    assert!(wait_until(Duration::from_secs(30), || {
        peer_entry(&a, &b).is_some_and(|p| !p["best_height"].is_null())
    }));
    let kbit = 640.0;
    shape(&a, &b, json!({"bandwidth_kbit": kbit}));
    let took = arrival(&a, &b, Duration::from_secs(30)).expect("the big block arrives");
    let hash = b.tip();
    let size = b.rpc("getblock", json!([hash]))["size"]
        .as_f64()
        .unwrap_or_else(|| encoding::encode(&tx).len() as f64);
    let expected = Duration::from_secs_f64(size * 8.0 / (kbit * 1000.0));
    eprintln!("a {size} byte block at {kbit} kbit/s: {took:?} (size ÷ rate = {expected:?})");
    assert!(
        took >= expected.mul_f64(0.75) && took <= expected.mul_f64(1.25),
        "{size} bytes at {kbit} kbit/s took {took:?}, expected {expected:?} ± 25 %"
    );
}

fn testnet(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cairn_bin())
        .args(["testnet", "--dir"])
        .arg(dir)
        .args(args)
        .env_remove("CAIRN_DATADIR")
        .output()
        .expect("run cairn testnet")
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "cairn testnet failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops the testnet whatever the test did.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = testnet(self.0, &["down"]);
    }
}

fn devnet(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("devnet.json")).expect("devnet.json"))
        .expect("devnet.json is JSON")
}

fn node_rpc(dir: &Path, node: &str, method: &str, params: Value) -> Value {
    let out = Command::new(cairn_bin())
        .args(["rpc", "--datadir"])
        .arg(dir.join(node))
        .arg(method)
        .args(params.as_array().unwrap().iter().map(|p| match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }))
        .env_remove("CAIRN_DATADIR")
        .output()
        .expect("run cairn rpc");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cairn rpc {method}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn testnet_link_and_reset_round_trip_through_devnet_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let genesis = regtest_genesis().to_str().unwrap().to_owned();
    let _down = Down(&dir);
    ok(testnet(
        &dir,
        &["up", "-n", "3", "--genesis", &genesis, "--latency", "30"],
    ));
    let links = devnet(&dir)["links"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        links.len(),
        6,
        "up --latency shapes every directed link: {links:?}"
    );
    assert!(links.iter().all(|l| l["latency_ms"] == json!(30.0)));

    let out = ok(testnet(
        &dir,
        &[
            "link",
            "node0",
            "node1",
            "--latency",
            "120",
            "--jitter",
            "10",
            "--loss",
            "5",
            "--bandwidth",
            "2000",
        ],
    ));
    assert!(out.contains("node0"), "{out}");
    let net = devnet(&dir);
    let find = |from: &str, to: &str| {
        net["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["from"] == from && l["to"] == to)
            .cloned()
    };
    for (from, to) in [("node0", "node1"), ("node1", "node0")] {
        let link = find(from, to).unwrap_or_else(|| panic!("no {from}→{to} in {net}"));
        assert_eq!(link["latency_ms"], json!(120.0));
        assert_eq!(link["jitter_ms"], json!(10.0));
        assert_eq!(link["loss_pct"], json!(5.0));
        assert_eq!(link["bandwidth_kbit"], json!(2000.0));
    }
    assert_eq!(find("node0", "node2").unwrap()["latency_ms"], json!(30.0));
    // What the nodes were told: node0 delays what it sends node1, node1 loses 5 % of
    // what node0 sends it (and the other way round).
    let node1_id = net["nodes"][1]["peer_id"].as_str().unwrap().to_owned();
    let node0_id = net["nodes"][0]["peer_id"].as_str().unwrap().to_owned();
    let at0 = node_rpc(&dir, "node0", "getlinkshaping", json!([node1_id]));
    assert_eq!(at0[0]["latency_ms"], json!(120.0));
    assert_eq!(at0[0]["bandwidth_kbit"], json!(2000.0));
    assert_eq!(at0[0]["loss_pct"], json!(5.0));

    // --one-way shapes node1 → node2 only.
    ok(testnet(
        &dir,
        &["link", "node1", "node2", "--loss", "50", "--one-way"],
    ));
    let net = devnet(&dir);
    let l12 = net["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["from"] == "node1" && l["to"] == "node2")
        .cloned()
        .unwrap();
    let l21 = net["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["from"] == "node2" && l["to"] == "node1")
        .cloned()
        .unwrap();
    assert_eq!(
        (l12["loss_pct"].clone(), l12["latency_ms"].clone()),
        (json!(50.0), json!(0.0))
    );
    assert_eq!(
        l21["latency_ms"],
        json!(30.0),
        "the other direction is untouched"
    );
    let at2 = node_rpc(&dir, "node2", "getlinkshaping", json!([node1_id]));
    assert_eq!(
        at2[0]["loss_pct"],
        json!(50.0),
        "node2 loses what node1 sends it"
    );
    assert_eq!(
        at2[0]["latency_ms"],
        json!(30.0),
        "and still delays what it sends node1"
    );

    ok(testnet(&dir, &["link", "node0", "node1", "--reset"]));
    let net = devnet(&dir);
    let pairs: Vec<(String, String)> = net["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["from"].as_str().unwrap().to_owned(),
                l["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        !pairs.contains(&("node0".into(), "node1".into())),
        "{pairs:?}"
    );
    assert!(
        !pairs.contains(&("node1".into(), "node0".into())),
        "{pairs:?}"
    );
    assert_eq!(
        node_rpc(&dir, "node0", "getlinkshaping", json!([node1_id])),
        json!([])
    );
    assert_eq!(
        node_rpc(&dir, "node1", "getlinkshaping", json!([node0_id])),
        json!([])
    );

    let err = testnet(&dir, &["link", "node0", "node9", "--latency", "5"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("node9"));
    let err = testnet(&dir, &["link", "node0", "node1", "--loss", "150"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("loss"));
    ok(testnet(&dir, &["down"]));
}
