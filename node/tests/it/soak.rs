//! Soak: a testnet of capped-hash-rate nodes started with `cairn testnet up`, continuous
//! wallet payments, and a partition/heal every period, driven exactly as a user would (the
//! `cairn` binary and the RPC contract). Checked throughout and at the end: no `ERROR` or
//! panic line in any node's logs, every node converged after each heal, each node's RSS
//! flat after warm-up, and no acknowledged payment lost (every txid `cairn wallet send`
//! printed is in the final active chain, or a transaction spending the same coin is). During
//! each partition node0's wallet also spends one coin twice, one half on each side, so the
//! heal must keep exactly one.
//!
//! The full run is `soak_five_nodes_partitioned_every_two_minutes` (ignored: 30 minutes by
//! default, `CAIRN_SOAK_MINUTES` to change it). `CAIRN_SOAK_BIN` runs another copy of
//! `cairn` (so a long run survives rebuilds of the tree it came from).

use crate::harness::{cairn_bin, rss_kb};
use cairn_rpc::{Devnet, RpcClient};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// What one soak run does.
struct SoakPlan {
    nodes: usize,
    duration: Duration,
    /// Each period: connected for its first quarter, partitioned for its middle half,
    /// connected again for its last quarter.
    period: Duration,
    /// RSS is compared from this point on.
    warm_up: Duration,
    /// Assert the RSS growth bound (only meaningful once the run is long past warm-up).
    check_rss: bool,
    hashrate: &'static str,
    target_interval: u64,
}

/// What a run measured.
#[derive(Debug, Default)]
struct SoakReport {
    heals: usize,
    /// Heals before which the two sides had different tips (so the heal had a fork to
    /// resolve).
    diverged: usize,
    convergence_secs: Vec<f64>,
    acknowledged: usize,
    refused: usize,
    /// Double spends across the partition both of whose halves were acknowledged.
    double_spends: usize,
    /// Per node: (RSS at warm-up, RSS at the end, peak), kB.
    rss_kb: BTreeMap<String, (u64, u64, u64)>,
    /// Acknowledged txids resolved by a conflicting spend instead of themselves.
    resolved_by_conflict: usize,
}

fn soak_bin() -> PathBuf {
    std::env::var_os("CAIRN_SOAK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(cairn_bin()))
}

fn testnet(dir: &Path, args: &[&str]) -> Output {
    Command::new(soak_bin())
        .arg("testnet")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("CAIRN_DATADIR")
        .output()
        .expect("run cairn testnet")
}

fn must(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops the testnet whatever happened (the nodes are background processes).
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet(&self.0, &["down"]);
    }
}

fn clients(devnet: &Devnet) -> Vec<RpcClient> {
    devnet
        .nodes
        .iter()
        .map(|n| cairn_lab::testnet::client(n).expect("client of a testnet node"))
        .collect()
}

/// Waits until every node reports the same best block and UTXO set; returns how long it
/// took.
fn converge(clients: &[RpcClient], timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let tips: Vec<Option<Value>> = clients
            .iter()
            .map(|c| c.call("getbestblockhash", json!([])).ok())
            .collect();
        // Same tip, and the same UTXO set behind it (unless a block arrived in between).
        if tips.iter().all(|t| t.is_some() && *t == tips[0]) {
            let sets: Vec<Option<Value>> = clients
                .iter()
                .map(|c| {
                    let info = c.call("gettxoutsetinfo", json!([])).ok()?;
                    (Some(&info["bestblock"]) == tips[0].as_ref())
                        .then(|| info["hash_serialized"].clone())
                })
                .collect();
            if sets.iter().all(|s| s.is_some() && *s == sets[0]) {
                return Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// How many different best blocks the nodes report.
fn distinct_tips(clients: &[RpcClient]) -> usize {
    let tips: std::collections::BTreeSet<String> = clients
        .iter()
        .filter_map(|c| c.call("getbestblockhash", json!([])).ok())
        .map(|t| t.to_string())
        .collect();
    tips.len()
}

/// One acknowledged payment: its txid and the coins it spent.
struct Payment {
    txid: String,
    inputs: Vec<(String, u64)>,
}

/// `cairn wallet` on node `k`'s wallet.
fn wallet_of(dir: &Path, devnet: &Devnet, k: usize) -> Command {
    let mut cmd = Command::new(soak_bin());
    cmd.arg("wallet")
        .arg("--datadir")
        .arg(&devnet.nodes[k].datadir)
        .env_remove("CAIRN_DATADIR");
    if dir.join("genesis.json").exists() {
        cmd.arg("--genesis").arg(dir.join("genesis.json"));
    }
    cmd
}

/// Spends one coin of node0's wallet twice: to node0 and, conflicting, to the last node
/// (across the partition). Returns the halves the nodes acknowledged.
fn double_spend(dir: &Path, devnet: &Devnet) -> Vec<Payment> {
    let last = devnet.nodes.len() - 1;
    let out = wallet_of(dir, devnet, 0)
        .arg("--json")
        .args(["double-spend", "--to", &devnet.dev_keys[1].address])
        .args(["--to2", &devnet.dev_keys[2].address, "--amount", "50000"])
        .arg("--node")
        .arg(&devnet.nodes[0].datadir)
        .arg("--node2")
        .arg(&devnet.nodes[last].datadir)
        .output()
        .expect("run cairn wallet double-spend");
    if !out.status.success() {
        eprintln!(
            "soak: double spend not made: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return Vec::new();
    }
    let answer: Value = serde_json::from_slice(&out.stdout).expect("double-spend --json");
    for half in ["first", "second"] {
        if answer[half]["answer"]["accepted"] != true {
            eprintln!("soak: {half} half refused: {}", answer[half]["answer"]);
        }
    }
    ["first", "second"]
        .iter()
        .map(|half| &answer[half])
        .filter(|half| half["answer"]["accepted"] == true)
        .map(|half| Payment {
            txid: half["txid"].as_str().expect("txid").to_owned(),
            inputs: half["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(|i| {
                    let (txid, vout) = i.as_str().expect("TXID:VOUT").split_once(':').expect(":");
                    (txid.to_owned(), vout.parse().expect("vout"))
                })
                .collect(),
        })
        .collect()
}

/// Pays from node `from`'s wallet to the next dev key; `None` if the wallet refused (no
/// confirmed coin free yet is normal between blocks).
fn pay(dir: &Path, devnet: &Devnet, from: usize, client: &RpcClient) -> Option<Payment> {
    let to = &devnet.dev_keys[(from + 1) % devnet.nodes.len()].address;
    let out = wallet_of(dir, devnet, from)
        .args(["send", "--to", to, "--amount", "100000", "--fee", "1000"])
        .output()
        .expect("run cairn wallet send");
    if !out.status.success() {
        return None;
    }
    let txid = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .to_owned();
    let tx = client
        .call("getrawtransaction", json!([txid, true]))
        .unwrap_or_else(|e| panic!("acknowledged {txid} unknown to its node: {e}"));
    let inputs = tx["vin"]
        .as_array()
        .expect("vin")
        .iter()
        .map(|i| {
            (
                i["txid"].as_str().expect("txid").to_owned(),
                i["vout"].as_u64().expect("vout"),
            )
        })
        .collect();
    Some(Payment { txid, inputs })
}

fn confirmed(client: &RpcClient, txid: &str) -> Option<Value> {
    let tx = client.call("getrawtransaction", json!([txid, true])).ok()?;
    (tx["confirmations"].as_u64().unwrap_or(0) > 0).then_some(tx)
}

/// Whether some confirmed transaction other than `p` spent one of `p`'s coins.
fn spent_by_conflict(client: &RpcClient, p: &Payment) -> bool {
    p.inputs.iter().any(|(txid, vout)| {
        let Some(parent) = confirmed(client, txid) else {
            return false;
        };
        let address = parent["vout"][*vout as usize]["address"]
            .as_str()
            .expect("output address")
            .to_owned();
        let utxos = client
            .call("getaddressutxos", json!([address]))
            .expect("getaddressutxos");
        !utxos
            .as_array()
            .expect("array")
            .iter()
            .any(|u| u["txid"].as_str() == Some(txid.as_str()) && u["vout"].as_u64() == Some(*vout))
    })
}

/// `ERROR` and panic lines of every node's logs.
fn bad_log_lines(devnet: &Devnet) -> Vec<String> {
    let mut bad = Vec::new();
    for node in &devnet.nodes {
        for file in ["node.log", "stdout.log"] {
            let text = std::fs::read_to_string(node.datadir.join(file)).unwrap_or_default();
            bad.extend(
                text.lines()
                    .filter(|l| l.contains("ERROR") || l.contains("panicked"))
                    .map(|l| format!("{}/{file}: {l}", node.name)),
            );
        }
    }
    bad
}

fn run_soak(plan: &SoakPlan) -> SoakReport {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("devnet");
    let _down = Down(dir.clone());
    let n = plan.nodes.to_string();
    let interval = plan.target_interval.to_string();
    must(
        testnet(
            &dir,
            &[
                "up",
                "-n",
                &n,
                "--hashrate",
                plan.hashrate,
                "--target-interval",
                &interval,
            ],
        ),
        "testnet up",
    );
    let devnet = Devnet::read(&dir).expect("devnet.json");
    let clients = clients(&devnet);
    let minority = devnet.names()[..2].join(",");
    let majority = devnet.names()[2..].join(",");
    let mut report = SoakReport::default();
    let mut payments = Vec::new();
    let started = Instant::now();
    let mut next_payer = 0;
    // The cycle whose partition is in place, and the last cycle already cut.
    let mut cut: Option<u32> = None;
    let mut last_cut: Option<u32> = None;
    let mut double_spent: Option<u32> = None;
    let mut double_spend_tries = 0;
    let mut last_rss = Instant::now() - Duration::from_secs(60);
    while started.elapsed() < plan.duration {
        let elapsed = started.elapsed();
        let cycle = (elapsed.as_secs_f64() / plan.period.as_secs_f64()) as u32;
        let in_cycle = elapsed.saturating_sub(plan.period * cycle);
        let (cut_at, heal_at) = (plan.period / 4, plan.period * 3 / 4);
        if cut.is_none() && last_cut != Some(cycle) && in_cycle >= cut_at && in_cycle < heal_at {
            must(
                testnet(&dir, &["partition", &minority, &majority]),
                "partition",
            );
            cut = Some(cycle);
            last_cut = Some(cycle);
            double_spend_tries = 0;
        } else if cut.is_some_and(|c| c != cycle || in_cycle >= heal_at) {
            if distinct_tips(&clients) > 1 {
                report.diverged += 1;
            }
            must(testnet(&dir, &["heal"]), "heal");
            cut = None;
            let took = converge(&clients, Duration::from_secs(120))
                .unwrap_or_else(|| panic!("not converged 120 s after heal {}", report.heals + 1));
            report.heals += 1;
            report.convergence_secs.push(took.as_secs_f64());
            eprintln!(
                "soak {:>5.0} s: heal {} converged in {:.1} s, {} payments acknowledged",
                started.elapsed().as_secs_f64(),
                report.heals,
                took.as_secs_f64(),
                payments.len()
            );
        }
        // One double spend per partition, tried a few times (the wallet needs a confirmed
        // coin both sides know).
        if let Some(c) = cut
            && double_spent != Some(c)
            && double_spend_tries < 5
            && in_cycle >= cut_at + plan.period / 8
        {
            double_spend_tries += 1;
            let halves = double_spend(&dir, &devnet);
            if halves.len() == 2 {
                report.double_spends += 1;
                double_spent = Some(c);
            }
            payments.extend(halves);
        }
        match pay(&dir, &devnet, next_payer, &clients[next_payer]) {
            Some(p) => payments.push(p),
            None => report.refused += 1,
        }
        next_payer = (next_payer + 1) % devnet.nodes.len();
        if last_rss.elapsed() >= Duration::from_secs(10) {
            last_rss = Instant::now();
            sample_rss(&devnet, started.elapsed() >= plan.warm_up, &mut report);
        }
        let bad = bad_log_lines(&devnet);
        assert!(
            bad.is_empty(),
            "error lines in the logs:\n{}",
            bad.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    if cut.is_some() {
        must(testnet(&dir, &["heal"]), "final heal");
        report.heals += 1;
    }
    report.acknowledged = payments.len();
    settle(&clients, &payments, &mut report);
    let bad = bad_log_lines(&devnet);
    assert!(
        bad.is_empty(),
        "error lines in the logs:\n{}",
        bad.join("\n")
    );
    if plan.check_rss {
        for (name, (warm, end, _)) in &report.rss_kb {
            assert!(
                *end as f64 <= *warm as f64 * 1.10,
                "{name}'s RSS grew from {warm} kB after warm-up to {end} kB"
            );
        }
    }
    report
}

fn sample_rss(devnet: &Devnet, warm: bool, report: &mut SoakReport) {
    for node in &devnet.nodes {
        let rss = rss_kb(node.pid).unwrap_or_else(|| panic!("{} is not running", node.name));
        let entry = report.rss_kb.entry(node.name.clone()).or_insert((0, 0, 0));
        if warm && entry.0 == 0 {
            entry.0 = rss;
        }
        entry.1 = rss;
        entry.2 = entry.2.max(rss);
    }
}

/// Whether `p` is settled on `client`'s active chain: confirmed; or one of its coins was
/// spent by another confirmed transaction (the other half of a double spend won); or it
/// spent an output of an acknowledged payment that lost that way (a descendant of the
/// losing half is invalid too, as in Bitcoin).
fn settled(
    client: &RpcClient,
    p: &Payment,
    by_txid: &BTreeMap<&str, &Payment>,
    depth: usize,
) -> Settled {
    if confirmed(client, &p.txid).is_some() {
        return Settled::Confirmed;
    }
    if spent_by_conflict(client, p) {
        return Settled::Conflicted;
    }
    let conflicted_parent = depth < 64
        && p.inputs.iter().any(|(parent, _)| {
            by_txid.get(parent.as_str()).is_some_and(|parent| {
                settled(client, parent, by_txid, depth + 1) == Settled::Conflicted
            })
        });
    if conflicted_parent {
        Settled::Conflicted
    } else {
        Settled::Pending
    }
}

/// Where an acknowledged payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Confirmed,
    Conflicted,
    Pending,
}

/// What each node knows of a lost payment (for the failure message).
fn whereabouts(clients: &[RpcClient], p: &Payment) -> String {
    let seen: Vec<String> = clients
        .iter()
        .enumerate()
        .map(
            |(k, c)| match c.call("getrawtransaction", json!([p.txid, true])) {
                Ok(tx) => format!(
                    "node{k}: confirmations {}",
                    tx["confirmations"].as_u64().unwrap_or(0)
                ),
                Err(_) => format!("node{k}: unknown"),
            },
        )
        .collect();
    format!("{} spending {:?}: {}", p.txid, p.inputs, seen.join(", "))
}

/// Waits until every acknowledged payment is settled on the converged active chain; fails
/// naming the lost ones.
fn settle(clients: &[RpcClient], payments: &[Payment], report: &mut SoakReport) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let by_txid: BTreeMap<&str, &Payment> = payments.iter().map(|p| (p.txid.as_str(), p)).collect();
    loop {
        converge(clients, Duration::from_secs(120)).expect("converged before the final check");
        let states: Vec<Settled> = payments
            .iter()
            .map(|p| settled(&clients[0], p, &by_txid, 0))
            .collect();
        let lost: Vec<&Payment> = payments
            .iter()
            .zip(&states)
            .filter(|(_, s)| **s == Settled::Pending)
            .map(|(p, _)| p)
            .collect();
        if lost.is_empty() {
            report.resolved_by_conflict =
                states.iter().filter(|s| **s == Settled::Conflicted).count();
            return;
        }
        if Instant::now() >= deadline {
            let detail: Vec<String> = lost.iter().map(|p| whereabouts(clients, p)).collect();
            panic!(
                "{} of {} acknowledged payments are in no block of the active chain 300 s \
                 after the last heal, and no conflicting spend is:\n{}",
                lost.len(),
                payments.len(),
                detail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn print_report(report: &SoakReport, duration: Duration) {
    let worst = report.convergence_secs.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "soak: {:.1} min, {} heals ({} after the sides' tips diverged; slowest convergence \
         {worst:.1} s), {} payments acknowledged ({} resolved by a conflicting spend; {} \
         double spends across the partition acknowledged by both sides), {} refused by the \
         wallet",
        duration.as_secs_f64() / 60.0,
        report.heals,
        report.diverged,
        report.acknowledged,
        report.resolved_by_conflict,
        report.double_spends,
        report.refused
    );
    for (name, (warm, end, peak)) in &report.rss_kb {
        let growth = if *warm > 0 {
            (*end as f64 / *warm as f64 - 1.0) * 100.0
        } else {
            0.0
        };
        eprintln!(
            "soak: {name} RSS after warm-up {warm} kB, at the end {end} kB ({growth:+.1} %), \
             peak {peak} kB"
        );
    }
}

#[test]
fn soak_short_run_heals_and_loses_no_acknowledged_payment() {
    let plan = SoakPlan {
        nodes: 3,
        duration: Duration::from_secs(40),
        period: Duration::from_secs(40),
        warm_up: Duration::from_secs(10),
        check_rss: false,
        hashrate: "20k",
        target_interval: 2,
    };
    let report = run_soak(&plan);
    print_report(&report, plan.duration);
    assert!(report.heals >= 1 && report.diverged >= 1, "{report:?}");
    assert!(
        report.double_spends >= 1 && report.resolved_by_conflict >= 1,
        "the double spend across the partition was not exercised: {report:?}"
    );
    assert!(
        report.acknowledged > 0,
        "no payment went through: {report:?}"
    );
}

#[test]
#[ignore = "heavy: 5 nodes for CAIRN_SOAK_MINUTES (default 30) minutes"]
fn soak_five_nodes_partitioned_every_two_minutes() {
    let minutes: u64 = std::env::var("CAIRN_SOAK_MINUTES")
        .ok()
        .map(|m| m.parse().expect("CAIRN_SOAK_MINUTES is a whole number"))
        .unwrap_or(30);
    let duration = Duration::from_secs(minutes * 60);
    let plan = SoakPlan {
        nodes: 5,
        duration,
        period: Duration::from_secs(120),
        warm_up: Duration::from_secs(300).min(duration / 6),
        check_rss: minutes >= 10,
        hashrate: "20k",
        target_interval: 5,
    };
    let report = run_soak(&plan);
    print_report(&report, duration);
    assert!(
        report.heals as u64 >= minutes / 2
            && report.diverged >= 1
            && report.resolved_by_conflict >= 1,
        "{report:?}"
    );
}
