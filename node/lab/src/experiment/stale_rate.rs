//! `cairn experiment stale-rate`: N honest nodes of equal hash share, every link delayed by
//! d (`cairn testnet up --latency MS`), blocks every T seconds. The runner draws the finds
//! in real time (exponential waiting times of mean N·T per node, from `--seed`) and calls
//! `generate 1` on the finder at that moment, so a block found while another is still on
//! the wire forks for real. Measured: the share of mined blocks on no node's active chain
//! once the nodes agree, against 1 − e^(−d/T).

use super::net::{Net, NodeSetup, cairn_help};
use super::stats::{Lottery, wilson95};
use super::{Common, Point, num, params, progress};
use crate::theory::stale_rate;
use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How the blocks are found, for the report.
pub const METHOD: &str = "real nodes (full mesh, every link delayed by d, regtest); the runner draws each \
block's finder and time from equal shares and --seed and calls `generate 1` on it in real time; ci95 by \
Wilson's score interval (blocks taken as independent)";

/// Arguments of `cairn experiment stale-rate`.
#[derive(Debug, Args)]
pub struct StaleRateArgs {
    /// Nodes, each with an equal share of the hash rate
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// One-way link delays in milliseconds, one point each
    #[arg(long, value_delimiter = ',', default_values_t = [0, 100, 250])]
    pub latency: Vec<u64>,
    /// Mean seconds between blocks
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub target_interval: f64,
    /// Blocks mined per point. The defaults (3 points × 150 blocks at T = 1 s) take about
    /// 8 minutes and give a ci95 of about ±0.05 on the stale rate
    #[arg(long, default_value_t = 150)]
    pub blocks: u64,
}

/// Runs every delay point.
pub fn run(args: &StaleRateArgs, common: &Common) -> anyhow::Result<Vec<Point>> {
    if !(2..=16).contains(&args.nodes) {
        bail!("--nodes must be between 2 and 16");
    }
    if !(args.target_interval >= 0.05 && args.target_interval <= 600.0) {
        bail!("--target-interval must be between 0.05 and 600 seconds");
    }
    if !(10..=100_000).contains(&args.blocks) {
        bail!("--blocks must be between 10 and 100000");
    }
    if args.latency.is_empty() || args.latency.iter().any(|d| *d > 60_000) {
        bail!("--latency values must be between 0 and 60000 ms");
    }
    if args.latency.iter().any(|d| *d > 0) && !cairn_help(&["testnet", "up"])?.contains("--latency")
    {
        bail!(
            "this cairn's `testnet up` has no --latency (link shaping is not in this build): only --latency 0 can run"
        );
    }
    args.latency
        .iter()
        .enumerate()
        .map(|(i, d)| {
            point(args, *d, common.seed.wrapping_add(i as u64), common, i)
                .with_context(|| format!("latency {d} ms"))
        })
        .collect()
}

fn point(
    args: &StaleRateArgs,
    latency_ms: u64,
    seed: u64,
    common: &Common,
    index: usize,
) -> anyhow::Result<Point> {
    let nodes: Vec<NodeSetup> = (0..args.nodes)
        .map(|k| NodeSetup {
            strategy: None,
            pays_dev: k % 4,
        })
        .collect();
    let extra = if latency_ms > 0 {
        vec!["--latency".to_string(), latency_ms.to_string()]
    } else {
        Vec::new()
    };
    let net = Net::up(common.point_dir(index).as_deref(), &nodes, &extra)?;
    let rates = vec![1.0 / (args.nodes as f64 * args.target_interval); args.nodes];
    let mut lottery = Lottery::new(seed);
    let mut mined: HashSet<String> = HashSet::new();
    let bar = progress(args.blocks, &format!("stale-rate d={latency_ms}ms"));
    let mut due = Instant::now();
    while (mined.len() as u64) < args.blocks {
        let (finder, wait) = lottery.next_finder(&rates);
        due += Duration::from_secs_f64(wait);
        if let Some(sleep) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(sleep);
        }
        mined.insert(net.generate(finder)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    net.converge()?;
    let chain: HashSet<String> = net.active_chain(0)?.into_iter().collect();
    let stale = mined.iter().filter(|h| !chain.contains(*h)).count() as u64;
    let total = mined.len() as u64;
    let delay = latency_ms as f64 / 1000.0;
    let theory = stale_rate(delay, args.target_interval);
    Ok(Point {
        params: params(&[
            ("nodes", json!(args.nodes)),
            ("latency_ms", json!(latency_ms)),
            ("target_interval", num(args.target_interval)),
            ("blocks", json!(total)),
        ]),
        measured: stale as f64 / total as f64,
        theory: num(theory),
        ci95: wilson95(stale, total),
        reference: theory,
        replay: None,
        note: Some(format!("{stale} of {total} blocks stale")),
    })
}
