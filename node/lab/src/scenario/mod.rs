//! `cairn scenario run FILE [--dir DIR] [--seed N] [--json]`: a testnet, a timeline of
//! network events and checked expectations, from one TOML file ([`file`] documents the
//! format; examples are in `scripts/scenarios/`).
//!
//! The run: read and check the whole file (nothing starts on a mistake); start the testnet
//! with `cairn testnet up` on the regtest network ([`crate::experiment::net::Net`]); follow
//! every node ([`observe`]) while the timeline runs ([`runner`]); after the last step (and
//! `duration`), wait up to the longest `converges` time for agreement; then measure, check
//! the expectations ([`expect`]), print the report ([`report`]) and stop the nodes. Exit 0
//! when every expectation held, else 1 naming the failed ones.

pub mod expect;
pub mod file;
pub mod observe;
pub mod report;
pub mod runner;

use crate::experiment::net::{Net, NodeSetup, cairn_help};
use crate::scenario::expect::{DoubleSpendSeen, Evidence};
use crate::scenario::file::{ExpectKind, Scenario};
use crate::scenario::observe::{Observer, State};
use crate::scenario::report::{ExpectationResult, Propagation, Report, StepResult};
use crate::scenario::runner::{Run, action_name};
use crate::testnet::client;
use crate::view::source::RpcSource;
use anyhow::{Context, bail};
use cairn_rpc::Devnet;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `cairn scenario`.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// What to do
    #[command(subcommand)]
    pub command: ScenarioCommand,
}

/// `cairn scenario` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Run a scenario file: start its testnet, play its timeline, check its expectations
    Run {
        /// The scenario (TOML; see scripts/scenarios/)
        file: PathBuf,
        /// Keep the testnet in DIR/testnet (its nodes are stopped at the end) [default: a
        /// temporary directory, removed]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Seed of the random topology (overrides the file's)
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Print the report as one JSON object
        #[arg(long)]
        json: bool,
    },
}

/// Runs `cairn scenario`.
pub fn run(args: ScenarioArgs) -> anyhow::Result<()> {
    let ScenarioCommand::Run {
        file,
        dir,
        seed,
        json,
    } = args.command;
    let scenario = file::read(&file)?;
    let seed = seed.or(scenario.testnet.seed);
    let report = execute(&scenario, dir, seed)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.summary());
    }
    if !report.ok {
        bail!(
            "scenario {}: {} of {} expectations failed: {}",
            report.scenario,
            report.failed().len(),
            report.expectations.len(),
            report.failed().join("; ")
        );
    }
    Ok(())
}

/// The `cairn testnet up` flags of `[testnet]`, after checking this build has them.
fn up_flags(scenario: &Scenario, seed: Option<u64>) -> anyhow::Result<Vec<String>> {
    let t = &scenario.testnet;
    let mut flags = Vec::new();
    let mut needs: Vec<&str> = Vec::new();
    if let Some(s) = t.block_time {
        flags.extend(["--block-time".into(), s.to_string()]);
    }
    for rate in &t.hashrate {
        flags.extend(["--hashrate".into(), rate.clone()]);
        needs.push("--hashrate");
    }
    if let Some(s) = t.target_interval {
        flags.extend(["--target-interval".into(), s.to_string()]);
        needs.push("--target-interval");
    }
    if let Some(topology) = &t.topology {
        flags.extend(["--topology".into(), topology.clone()]);
        needs.push("--topology");
        if let (Some(seed), true) = (seed, topology.starts_with("random")) {
            flags.extend(["--seed".into(), seed.to_string()]);
        }
    }
    if let Some(ms) = t.latency {
        flags.extend(["--latency".into(), ms.to_string()]);
        needs.push("--latency");
    }
    for (name, modes) in &t.byzantine {
        flags.extend(["--byzantine".into(), format!("{name}={modes}")]);
        needs.push("--byzantine");
    }
    if !needs.is_empty() {
        let help = cairn_help(&["testnet", "up"])?;
        if let Some(missing) = needs.iter().find(|flag| !help.contains(**flag)) {
            bail!(
                "this scenario's [testnet] needs `cairn testnet up {missing}`, which this \
                 build of cairn does not have"
            );
        }
    }
    Ok(flags)
}

/// Starts the testnet, plays the timeline and measures; the nodes are stopped on return.
fn execute(scenario: &Scenario, dir: Option<PathBuf>, seed: Option<u64>) -> anyhow::Result<Report> {
    let flags = up_flags(scenario, seed)?;
    let nodes: Vec<NodeSetup> = (0..scenario.testnet.nodes)
        .map(|k| NodeSetup {
            strategy: None,
            pays_dev: k,
        })
        .collect();
    let net = Net::up(dir.as_deref(), &nodes, &flags).context("starting the scenario's testnet")?;
    let sources = net
        .devnet
        .nodes
        .iter()
        .map(|n| RpcSource::for_node(&n.name, &n.rpc_url, &n.cookie_file))
        .collect();
    let honest = net
        .devnet
        .nodes
        .iter()
        .map(|n| !scenario.testnet.byzantine.contains_key(&n.name))
        .collect();
    let observer = Observer::start(sources, honest);
    let mut run = Run::new(net.dir(), &observer)?;
    let mut steps = Vec::new();
    let mut failure = None;
    for step in &scenario.steps {
        if let Some(at) = step.at {
            std::thread::sleep(at.saturating_sub(observer.elapsed()));
        }
        let at_secs = observer.elapsed().as_secs_f64();
        let result = run.execute(&step.action, step.name.as_deref());
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| format!("{e:#}"));
        steps.push(StepResult {
            index: step.index,
            action: action_name(&step.action).into(),
            at_secs,
            ok,
            detail: detail.clone(),
        });
        if !ok {
            failure = Some(ExpectationResult {
                name: format!(
                    "step {} ({} at line {}) runs",
                    step.index,
                    action_name(&step.action),
                    step.line
                ),
                ok: false,
                detail,
            });
            break;
        }
    }
    if let (Some(d), None) = (scenario.duration, &failure) {
        std::thread::sleep(d.saturating_sub(observer.elapsed()));
    }
    let Run {
        double_spends,
        last_rejoin,
        ..
    } = run;
    let reference = last_rejoin.unwrap_or_else(|| observer.elapsed().as_secs_f64());
    settle(scenario, &observer, reference);
    let duration_secs = observer.elapsed().as_secs_f64();
    let state = observer.finish();
    let devnet = Devnet::read(net.dir())?;
    let evidence = gather(&state, &devnet, &double_spends, reference)?;
    let mut expectations: Vec<ExpectationResult> = scenario
        .expects
        .iter()
        .map(|e| {
            let (ok, detail) = expect::check(e, &evidence);
            ExpectationResult {
                name: e.name.clone(),
                ok,
                detail,
            }
        })
        .collect();
    expectations.extend(failure);
    Ok(build_report(
        scenario,
        seed,
        &state,
        evidence,
        steps,
        expectations,
        duration_secs,
    ))
}

/// Waits, up to the longest `converges` time after `reference`, until all running nodes
/// have been seen to agree.
fn settle(scenario: &Scenario, observer: &Observer, reference: f64) {
    let within = scenario
        .expects
        .iter()
        .filter_map(|e| match e.kind {
            ExpectKind::Converges(t) => Some(t),
            _ => None,
        })
        .max();
    let Some(within) = within else { return };
    let deadline = Duration::from_secs_f64(reference) + within;
    while observer.elapsed() < deadline {
        if observer.snapshot().agreed_since(reference).is_some() {
            return;
        }
        std::thread::sleep(observe::POLL);
    }
}

/// Asks the nodes what the expectations need beyond the observation.
fn gather(
    state: &State,
    devnet: &Devnet,
    sent: &BTreeMap<String, [String; 2]>,
    reference: f64,
) -> anyhow::Result<Evidence> {
    let running: Vec<usize> = (0..devnet.nodes.len())
        .filter(|k| state.running[*k] && state.honest[*k])
        .collect();
    let name_of: BTreeMap<&str, &str> = devnet
        .nodes
        .iter()
        .map(|n| (n.peer_id.as_str(), n.name.as_str()))
        .collect();
    let mut bans = BTreeMap::new();
    for &k in &running {
        let node = &devnet.nodes[k];
        let list = client(node)?
            .call_as::<Vec<cairn_rpc::types::BanEntry>>("listbanned", json!([]))
            .unwrap_or_default();
        let names = list
            .iter()
            .filter_map(|b| name_of.get(b.peer_id.as_str()).map(|n| n.to_string()))
            .collect();
        bans.insert(node.name.clone(), names);
    }
    let mut heights = BTreeMap::new();
    for &k in &running {
        let node = &devnet.nodes[k];
        let h = client(node)?
            .call_as::<u64>("getblockcount", json!([]))
            .ok();
        heights.insert(node.name.clone(), h);
    }
    let mut double_spends = BTreeMap::new();
    for (name, txids) in sent {
        let mut confirmed = BTreeMap::new();
        for &k in &running {
            let c = client(&devnet.nodes[k])?;
            let is_confirmed = |txid: &str| {
                c.call("getrawtransaction", json!([txid, true]))
                    .ok()
                    .and_then(|tx| tx["confirmations"].as_u64())
                    .is_some_and(|n| n >= 1)
            };
            confirmed.insert(
                devnet.nodes[k].name.clone(),
                [is_confirmed(&txids[0]), is_confirmed(&txids[1])],
            );
        }
        double_spends.insert(
            name.clone(),
            DoubleSpendSeen {
                txids: txids.clone(),
                confirmed,
            },
        );
    }
    Ok(Evidence {
        convergence_secs: state.agreed_since(reference).map(|t| t - reference),
        reorg_depths: state.reorgs.iter().map(|r| r.depth).collect(),
        blocks_by_node: blocks_by_node(state, devnet)?,
        heights,
        double_spends,
        bans,
    })
}

/// The final chain's scenario blocks by miner: each coinbase's first output's address,
/// matched to the dev account each node's coinbases pay.
fn blocks_by_node(state: &State, devnet: &Devnet) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let Some(k) = state.reference_node() else {
        return Ok(out);
    };
    let miner_of: BTreeMap<&str, &str> = devnet
        .nodes
        .iter()
        .zip(&devnet.dev_keys)
        .map(|(n, key)| (key.address.as_str(), n.name.as_str()))
        .collect();
    let c = client(&devnet.nodes[k])?;
    for chunk in state.chain_of(k).chunks(200) {
        let calls: Vec<(&str, Value)> = chunk.iter().map(|h| ("getblock", json!([h, 2]))).collect();
        for answer in c
            .batch(&calls)
            .context("reading the final chain's blocks")?
        {
            let block = answer.context("reading a block of the final chain")?;
            let address = block["tx"][0]["vout"][0]["address"].as_str().unwrap_or("");
            let miner = miner_of.get(address).copied().unwrap_or("other");
            *out.entry(miner.to_owned()).or_default() += 1;
        }
    }
    Ok(out)
}

fn build_report(
    scenario: &Scenario,
    seed: Option<u64>,
    state: &State,
    evidence: Evidence,
    steps: Vec<StepResult>,
    expectations: Vec<ExpectationResult>,
    duration_secs: f64,
) -> Report {
    let stale = state.stale_blocks().len() as u64;
    let on_chain: u64 = evidence.blocks_by_node.values().sum();
    let ok = expectations.iter().all(|e| e.ok);
    Report {
        scenario: scenario.name.clone(),
        seed,
        duration_secs,
        blocks_by_node: evidence.blocks_by_node,
        stale_blocks: stale,
        stale_rate: if stale + on_chain == 0 {
            0.0
        } else {
            stale as f64 / (stale + on_chain) as f64
        },
        reorg_depths: evidence.reorg_depths,
        reorgs: state.reorgs.clone(),
        convergence_secs: evidence.convergence_secs,
        propagation_ms: Propagation::of(state.propagation_delays()),
        steps,
        expectations,
        ok,
    }
}
