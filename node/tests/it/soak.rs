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

mod settle;

use settle::settle;

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

/// A running soak: the testnet, what was acknowledged, and where the schedule stands.
struct Soak<'p> {
    plan: &'p SoakPlan,
    dir: PathBuf,
    devnet: Devnet,
    clients: Vec<RpcClient>,
    report: SoakReport,
    payments: Vec<Payment>,
    started: Instant,
    /// The cycle whose partition is in place, and the last cycle already cut.
    cut: Option<u32>,
    last_cut: Option<u32>,
    /// The last cycle whose double spend went through, and the tries in this one.
    double_spent: Option<u32>,
    double_spend_tries: u32,
}

impl<'p> Soak<'p> {
    fn start(plan: &'p SoakPlan, dir: PathBuf) -> Soak<'p> {
        let n = plan.nodes.to_string();
        let interval = plan.target_interval.to_string();
        let up = ["up", "-n", &n, "--hashrate", plan.hashrate];
        let up = testnet(&dir, &[&up[..], &["--target-interval", &interval]].concat());
        must(up, "testnet up");
        let devnet = Devnet::read(&dir).expect("devnet.json");
        Soak {
            plan,
            clients: clients(&devnet),
            dir,
            devnet,
            report: SoakReport::default(),
            payments: Vec::new(),
            started: Instant::now(),
            cut: None,
            last_cut: None,
            double_spent: None,
            double_spend_tries: 0,
        }
    }

    /// Partitions or heals as the schedule says at `elapsed`; returns the cycle and the
    /// time into it.
    fn follow_schedule(&mut self, elapsed: Duration) -> (u32, Duration) {
        let period = self.plan.period;
        let cycle = (elapsed.as_secs_f64() / period.as_secs_f64()) as u32;
        let in_cycle = elapsed.saturating_sub(period * cycle);
        let (cut_at, heal_at) = (period / 4, period * 3 / 4);
        if self.cut.is_none()
            && self.last_cut != Some(cycle)
            && in_cycle >= cut_at
            && in_cycle < heal_at
        {
            let names = self.devnet.names();
            let (minority, majority) = (names[..2].join(","), names[2..].join(","));
            must(
                testnet(&self.dir, &["partition", &minority, &majority]),
                "partition",
            );
            self.cut = Some(cycle);
            self.last_cut = Some(cycle);
            self.double_spend_tries = 0;
        } else if self.cut.is_some_and(|c| c != cycle || in_cycle >= heal_at) {
            self.heal();
        }
        (cycle, in_cycle)
    }

    fn heal(&mut self) {
        if distinct_tips(&self.clients) > 1 {
            self.report.diverged += 1;
        }
        must(testnet(&self.dir, &["heal"]), "heal");
        self.cut = None;
        let heal = self.report.heals + 1;
        let took = converge(&self.clients, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("not converged 120 s after heal {heal}"));
        self.report.heals = heal;
        self.report.convergence_secs.push(took.as_secs_f64());
        eprintln!(
            "soak {:>5.0} s: heal {heal} converged in {:.1} s, {} payments acknowledged",
            self.started.elapsed().as_secs_f64(),
            took.as_secs_f64(),
            self.payments.len()
        );
    }

    /// One double spend per partition, an eighth of a period into it, tried a few times
    /// (the wallet needs a confirmed coin both sides know).
    fn maybe_double_spend(&mut self, in_cycle: Duration) {
        let Some(c) = self.cut else { return };
        if self.double_spent == Some(c)
            || self.double_spend_tries >= 5
            || in_cycle < self.plan.period / 4 + self.plan.period / 8
        {
            return;
        }
        self.double_spend_tries += 1;
        let halves = double_spend(&self.dir, &self.devnet);
        if halves.len() == 2 {
            self.report.double_spends += 1;
            self.double_spent = Some(c);
        }
        self.payments.extend(halves);
    }

    fn assert_clean_logs(&self) {
        let bad = bad_log_lines(&self.devnet);
        assert!(
            bad.is_empty(),
            "error lines in the logs:\n{}",
            bad.join("\n")
        );
    }

    fn run(mut self) -> SoakReport {
        let mut next_payer = 0;
        let mut last_rss = Instant::now() - Duration::from_secs(60);
        while self.started.elapsed() < self.plan.duration {
            let (_, in_cycle) = self.follow_schedule(self.started.elapsed());
            self.maybe_double_spend(in_cycle);
            match pay(
                &self.dir,
                &self.devnet,
                next_payer,
                &self.clients[next_payer],
            ) {
                Some(p) => self.payments.push(p),
                None => self.report.refused += 1,
            }
            next_payer = (next_payer + 1) % self.devnet.nodes.len();
            if last_rss.elapsed() >= Duration::from_secs(10) {
                last_rss = Instant::now();
                let warm = self.started.elapsed() >= self.plan.warm_up;
                sample_rss(&self.devnet, warm, &mut self.report);
            }
            self.assert_clean_logs();
            std::thread::sleep(Duration::from_secs(1));
        }
        if self.cut.is_some() {
            self.heal();
        }
        self.report.acknowledged = self.payments.len();
        settle(&self.clients, &self.payments, &mut self.report);
        self.assert_clean_logs();
        if self.plan.check_rss {
            for (name, (warm, end, _)) in &self.report.rss_kb {
                assert!(
                    *end as f64 <= *warm as f64 * 1.10,
                    "{name}'s RSS grew from {warm} kB after warm-up to {end} kB"
                );
            }
        }
        self.report
    }
}

fn run_soak(plan: &SoakPlan) -> SoakReport {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("devnet");
    let _down = Down(dir.clone());
    Soak::start(plan, dir).run()
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
    // In 40 s the wallet may hold no confirmed coin when the partition starts (its coins
    // are in flight), so the double spend is not always made here; the heavy run, with a
    // partition every two minutes, requires it. When it was made, one half must lose.
    assert!(
        report.double_spends == 0 || report.resolved_by_conflict >= 1,
        "a double spend acknowledged by both sides was not resolved: {report:?}"
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
            && report.double_spends >= 1
            && report.resolved_by_conflict >= 1,
        "{report:?}"
    );
}
