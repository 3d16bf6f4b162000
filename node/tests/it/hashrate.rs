//! Hash power as a setting: `cairn node --hashrate`, `sethashrate`, and `cairn testnet up`
//! with per-node rates, a target-interval genesis and a topology.

use crate::harness::{Node, NodeOpts, cairn_bin, wait_until};
use cairn_core::ChainParams;
use cairn_lab::genesis::interval_genesis;
use cairn_rpc::{Devnet, RpcClient};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Writes `config` as a genesis file in `dir`.
fn genesis_file(dir: &Path, config: &cairn_core::params::GenesisConfig) -> PathBuf {
    let path = dir.join("genesis.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    path
}

/// `hashps` after it has had `secs` seconds to settle since the last settings change.
fn settled_hashps(node: &Node, secs: u64) -> f64 {
    std::thread::sleep(Duration::from_secs(secs));
    node.rpc("getmininginfo", json!([]))["hashps"]
        .as_f64()
        .expect("hashps is a number")
}

fn assert_near(measured: f64, rate: f64, what: &str) {
    let error = (measured - rate).abs() / rate;
    eprintln!(
        "{what}: cap {rate} H/s, hashps {measured:.0} ({:.1} % off)",
        error * 100.0
    );
    assert!(
        error <= 0.10,
        "{what}: hashps {measured:.0} for a cap of {rate}"
    );
}

#[test]
fn a_node_started_with_a_hashrate_mines_at_it_and_follows_sethashrate() {
    // The dev network's difficulty (2^24 hashes a block): a capped node finds few blocks, so
    // the measurement is the search, not template churn.
    let tmp = tempfile::tempdir().unwrap();
    let genesis = genesis_file(tmp.path(), &ChainParams::devnet().config);
    let node = Node::start(NodeOpts {
        extra_args: vec!["--hashrate".into(), "200k".into()],
        genesis: Some(genesis),
        ..Default::default()
    });
    let info = node.rpc("getmininginfo", json!([]));
    assert_eq!(info["hashrate_limit"], json!(200_000), "{info}");
    assert_eq!(
        info["mining"],
        json!(true),
        "--hashrate implies mining: {info}"
    );
    assert_near(settled_hashps(&node, 4), 200_000.0, "--hashrate 200k");

    node.rpc("sethashrate", json!(["50k"]));
    let info = node.rpc("getmininginfo", json!([]));
    assert_eq!(info["hashrate_limit"], json!(50_000), "{info}");
    assert_near(settled_hashps(&node, 3), 50_000.0, "sethashrate 50k");

    node.rpc("sethashrate", json!([0]));
    std::thread::sleep(Duration::from_millis(200));
    let before = node.rpc("getmininginfo", json!([]))["hashps"]
        .as_f64()
        .unwrap();
    assert!(settled_hashps(&node, 1) <= before, "rate 0 hashes nothing");
    assert_eq!(
        node.rpc("getmininginfo", json!([]))["hashrate_limit"],
        json!(0)
    );

    node.rpc("sethashrate", json!([null]));
    assert_eq!(
        node.rpc("getmininginfo", json!([]))["hashrate_limit"],
        Value::Null,
        "null lifts the cap"
    );
    for bad in [json!(["fast"]), json!([-5]), json!([1.5]), json!([])] {
        let err = node.try_rpc("sethashrate", bad.clone()).unwrap_err();
        assert_eq!(err.code, -32602, "{bad}: {err:?}");
        assert!(!err.message.is_empty(), "{bad}: {err:?}");
    }
}

#[test]
fn a_bad_hashrate_flag_is_a_usage_error() {
    let out = Command::new(cairn_bin())
        .args(["node", "--hashrate", "1.5"])
        .env_remove("CAIRN_DATADIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("whole number of hashes per second"),
        "{stderr}"
    );
}

fn testnet(dir: &Path, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .arg("testnet")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("CAIRN_DATADIR")
        .output()
        .expect("run cairn testnet")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the testnet of `dir` when dropped, whatever happened.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet(&self.0, &["down"]);
    }
}

/// The names of the testnet nodes each node is connected to.
fn peer_names(devnet: &Devnet) -> BTreeMap<String, BTreeSet<String>> {
    devnet
        .nodes
        .iter()
        .map(|node| {
            let client = RpcClient::from_url(&node.rpc_url, &node.cookie_file).unwrap();
            let peers = client.call("getpeerinfo", json!([])).unwrap();
            let names = peers
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| {
                    let id = p["peer_id"].as_str()?;
                    devnet
                        .nodes
                        .iter()
                        .find(|n| n.peer_id == id)
                        .map(|n| n.name.clone())
                })
                .collect();
            (node.name.clone(), names)
        })
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn testnet_up_sets_rates_interval_and_a_line_topology_that_eclipse_and_heal_respect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let _down = Down(dir.clone());
    let up = testnet(
        &dir,
        &[
            "up",
            "-n",
            "3",
            "--topology",
            "line",
            "--hashrate",
            "node0=30k,node1=10k",
            "--target-interval",
            "3",
        ],
    );
    assert_ok(&up, "up");
    let devnet = Devnet::read(&dir).unwrap();
    assert_eq!(devnet.topology.as_deref(), Some("line"));
    assert_eq!(
        devnet.genesis.as_deref(),
        Some(dir.join("genesis.json").canonicalize().unwrap().as_path())
    );
    let rates: Vec<Option<u64>> = devnet.nodes.iter().map(|n| n.hashrate).collect();
    assert_eq!(rates, vec![Some(30_000), Some(10_000), None]);
    let params =
        ChainParams::from_json(&std::fs::read_to_string(dir.join("genesis.json")).unwrap())
            .unwrap();
    let expected = cairn_core::Target::from_compact(params.initial_bits)
        .unwrap()
        .work()
        .as_f64();
    assert!(
        (expected / 120_000.0 - 1.0).abs() < 0.01,
        "{expected} hashes a block"
    );
    assert_eq!(params.block_interval_secs, 3);

    let line = BTreeMap::from([
        ("node0".to_owned(), names(&["node1"])),
        ("node1".to_owned(), names(&["node0", "node2"])),
        ("node2".to_owned(), names(&["node1"])),
    ]);
    assert_eq!(peer_names(&devnet), line, "up waits for the topology");
    let info = |name: &str| {
        let node = devnet.node(name).unwrap();
        RpcClient::from_url(&node.rpc_url, &node.cookie_file)
            .unwrap()
            .call("getmininginfo", json!([]))
            .unwrap()
    };
    assert_eq!(info("node0")["hashrate_limit"], json!(30_000));
    assert_eq!(info("node2")["hashrate_limit"], Value::Null);
    assert_eq!(
        info("node2")["mining"],
        json!(false),
        "unnamed nodes do not mine"
    );

    assert_ok(&testnet(&dir, &["hashrate", "node2", "5k"]), "hashrate");
    assert_eq!(info("node2")["hashrate_limit"], json!(5_000));
    assert_eq!(info("node2")["mining"], json!(true));
    assert_eq!(
        Devnet::read(&dir).unwrap().node("node2").unwrap().hashrate,
        Some(5_000)
    );

    assert_ok(
        &testnet(&dir, &["eclipse", "node0", "--by", "node2"]),
        "eclipse",
    );
    assert_eq!(peer_names(&devnet)["node0"], names(&["node2"]));
    assert_eq!(peer_names(&devnet)["node1"], names(&["node2"]));
    let refused = testnet(&dir, &["partition", "node0", "node1,node2"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("eclipsed"),
        "{stderr}"
    );
    assert_ok(&testnet(&dir, &["heal"]), "heal");
    assert_eq!(
        peer_names(&devnet),
        line,
        "heal restores the line, not a mesh"
    );

    assert_ok(
        &testnet(&dir, &["partition", "node0,node1", "node2"]),
        "partition",
    );
    let cut = peer_names(&devnet);
    assert_eq!(cut["node1"], names(&["node0"]));
    assert_eq!(cut["node2"], names(&[]));
    assert_ok(&testnet(&dir, &["heal"]), "heal");
    assert_eq!(peer_names(&devnet), line);
    assert_ok(&testnet(&dir, &["down"]), "down");
}

/// Two real nodes capped at 3:1 on a genesis for one block a second: their shares of the
/// active chain's 200 blocks are within the binomial 99.9 % interval of 3:1 (the fast in-process
/// check of the same claim is the miner's `two_miners_capped_at_3_to_1_win_blocks_3_to_1`).
#[test]
#[ignore = "heavy: mines 200 blocks in real time (about four minutes)"]
fn two_nodes_capped_at_3_to_1_mine_blocks_3_to_1() {
    let tmp = tempfile::tempdir().unwrap();
    let base = ChainParams::devnet().config;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let genesis = genesis_file(
        tmp.path(),
        &interval_genesis(&base, 400_000, 1, now).unwrap(),
    );
    let payee = |i: usize| base.dev_accounts[i].address.clone();
    let fast = Node::start(NodeOpts {
        extra_args: ["--hashrate", "300k", "--miner-address", &payee(1)]
            .map(String::from)
            .into(),
        genesis: Some(genesis.clone()),
        ..Default::default()
    });
    let slow = Node::start(NodeOpts {
        peers: vec![fast.p2p.clone().unwrap()],
        extra_args: ["--hashrate", "100k", "--miner-address", &payee(2)]
            .map(String::from)
            .into(),
        genesis: Some(genesis),
    });
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(900), || {
            fast.rpc("getblockcount", json!([])).as_u64().unwrap() >= 200
        }),
        "200 blocks were not mined in 15 minutes"
    );
    let (mut by_fast, mut by_slow) = (0u32, 0u32);
    for height in 1..=200 {
        let hash = fast.rpc("getblockhash", json!([height]));
        let block = fast.rpc("getblock", json!([hash, 2]));
        let coinbase = &block["tx"][0];
        let paid = coinbase["vout"][0]["address"].as_str();
        match paid {
            Some(a) if a == payee(1) => by_fast += 1,
            Some(a) if a == payee(2) => by_slow += 1,
            other => panic!("block {height} pays {other:?}: {block}"),
        }
    }
    drop(slow);
    let n = f64::from(by_fast + by_slow);
    let share = f64::from(by_fast) / n;
    let sigma = (0.75f64 * 0.25 / n).sqrt();
    eprintln!(
        "{by_fast}:{by_slow} in {:?}; share {share:.3}, 95 % interval {:.3}..{:.3}",
        started.elapsed(),
        0.75 - 1.96 * sigma,
        0.75 + 1.96 * sigma
    );
    assert!((share - 0.75).abs() <= 3.29 * sigma, "share {share:.3}");
}
