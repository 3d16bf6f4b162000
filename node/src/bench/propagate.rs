//! `cairn bench propagate`: how long a mined block takes to reach every node of a
//! loopback testnet, ÷ one loopback RPC round trip measured in the same run.
//!
//! `--nodes` real nodes (default 5) are started, node k with `--peer` = node k-1, and
//! discovery links the rest; once every node has handshaken with every other (or
//! [`CONNECT_TIMEOUT`] passed: the degrees are reported), [`WARMUP_ROUNDS`] unrecorded
//! rounds let gossipsub graft its mesh. Each recorded round is `generate 1` on node 0;
//! the instant its answer arrives is the start (the block is published only once
//! stored). One thread per other node polls `getbestblockhash` over a kept-alive
//! connection every [`POLL_INTERVAL`] and notes the first instant it shows the block. A
//! round's latency is the last node's arrival − the start: the time to reach *every*
//! node. Figures: median and p95 (nearest rank) of the rounds, and the median over all
//! (round, node) pairs. Each arrival is late by up to one poll period (the sleep plus a
//! round trip), which is reported too.
//!
//! The reference is the median loopback RPC round trip (`getbestblockhash` on node 0,
//! [`RTT_SAMPLES`] calls): the ratio says how many local round trips a block's
//! propagation costs, which holds across machines better than milliseconds do.

use super::nodes::{BenchNode, write_regtest_genesis};
use super::{Figure, Report, median, progress};
use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Unrecorded rounds first, while gossipsub grafts its mesh.
const WARMUP_ROUNDS: usize = 3;
/// Pause between the pollers' calls.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Pause between rounds, so that rounds never overlap.
const ROUND_GAP: Duration = Duration::from_millis(100);
/// Longest wait for one block to reach every node.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for every pair of nodes to be linked.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Round trips timed for the reference.
const RTT_SAMPLES: usize = 200;

/// The testnet of `cairn bench propagate`.
#[derive(Args, Debug, Clone)]
pub struct PropagateArgs {
    /// Nodes on loopback (node 0 mines)
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Recorded rounds (one mined block each)
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Print one JSON line instead of a table
    #[arg(long)]
    pub json: bool,
}

/// What one poller saw: the first instant each tip hash was reported, and its pace.
#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
    polls: u64,
    polling: Duration,
}

/// Runs the bench.
pub fn run(args: &PropagateArgs) -> anyhow::Result<Report> {
    anyhow::ensure!((2..=20).contains(&args.nodes), "--nodes must be in 2..=20");
    anyhow::ensure!(
        (1..=10_000).contains(&args.rounds),
        "--rounds must be in 1..=10000"
    );
    let bar = progress(
        "propagate",
        (args.nodes + 2 + WARMUP_ROUNDS + args.rounds) as u64,
    );
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let genesis = write_regtest_genesis(scratch.path())?;
    let mut nodes: Vec<BenchNode> = Vec::with_capacity(args.nodes);
    for k in 0..args.nodes {
        bar.set_message(format!("starting node {k}"));
        let peers: Vec<String> = nodes.last().map(|n| n.p2p.clone()).into_iter().collect();
        let dir = scratch.path().join(format!("node{k}"));
        nodes.push(BenchNode::start(&dir, &genesis, &peers)?);
        bar.inc(1);
    }
    bar.set_message("waiting for every pair to link");
    let degrees = link(&nodes)?;
    bar.inc(1);
    bar.set_message("reference: loopback RPC round trips");
    let rtt_ms = round_trip_ms(&nodes[0])?;
    bar.inc(1);
    let rounds = measure(&nodes, args.rounds, &bar)?;
    bar.finish_and_clear();
    drop(nodes);

    let reach_all: Vec<f64> = rounds
        .by_round
        .iter()
        .map(|r| r.iter().copied().fold(0.0, f64::max))
        .collect();
    let pairs: Vec<f64> = rounds.by_round.iter().flatten().copied().collect();
    let (median_ms, p95_ms) = (median(reach_all.clone()), p95(&reach_all));
    Ok(Report {
        bench: "propagate",
        ratio_to_reference: median_ms / rtt_ms,
        reference: "loopback RPC round trip, getbestblockhash (per second)",
        reference_per_sec: 1000.0 / rtt_ms,
        figures: vec![
            Figure::new("nodes", "nodes", args.nodes as f64, ""),
            Figure::new("rounds", "blocks mined and timed", args.rounds as f64, ""),
            Figure::new("min_degree", "fewest peers of a node", degrees as f64, ""),
            Figure::new(
                "median_ms",
                "block reaches every node: median",
                median_ms,
                "ms",
            ),
            Figure::new("p95_ms", "block reaches every node: p95", p95_ms, "ms"),
            Figure::new(
                "pair_median_ms",
                "block reaches one node: median",
                median(pairs),
                "ms",
            ),
            Figure::new("rtt_ms", "loopback RPC round trip: median", rtt_ms, "ms"),
            Figure::new(
                "poll_period_ms",
                "poll period (granularity)",
                rounds.poll_period_ms,
                "ms",
            ),
            Figure::new(
                "generate_ms",
                "generate 1 round trip: median",
                median(rounds.generate_ms),
                "ms",
            ),
        ],
    })
}

/// Waits until every node has handshaken with every other; returns the smallest degree
/// (less than `nodes - 1` when discovery did not link every pair in time).
fn link(nodes: &[BenchNode]) -> anyhow::Result<usize> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let degrees = nodes
            .iter()
            .map(|n| n.handshaken_peers().map(|p| p.len()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let least = degrees.iter().copied().min().unwrap_or(0);
        if least + 1 >= nodes.len() || Instant::now() > deadline {
            if least == 0 {
                bail!("a node has no peers after {CONNECT_TIMEOUT:?}: degrees {degrees:?}");
            }
            return Ok(least);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Median milliseconds of one `getbestblockhash` round trip on a kept-alive connection.
fn round_trip_ms(node: &BenchNode) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(RTT_SAMPLES);
    for _ in 0..RTT_SAMPLES {
        let start = Instant::now();
        node.best_hash()?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(samples))
}

/// What the recorded rounds measured.
struct Rounds {
    /// Per round, each follower's latency in ms.
    by_round: Vec<Vec<f64>>,
    /// `generate 1` round trips, ms.
    generate_ms: Vec<f64>,
    /// Mean poll period over the pollers, ms.
    poll_period_ms: f64,
}

fn measure(
    nodes: &[BenchNode],
    rounds: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Rounds> {
    let followers = &nodes[1..];
    let seen: Vec<Mutex<Seen>> = followers.iter().map(|_| Mutex::default()).collect();
    let stop = AtomicBool::new(false);
    let mut by_round = Vec::with_capacity(rounds);
    let mut generate_ms = Vec::with_capacity(rounds);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let pollers: Vec<_> = followers
            .iter()
            .zip(&seen)
            .map(|(node, seen)| {
                let stop = &stop;
                scope.spawn(move || poll_tips(node, stop, seen))
            })
            .collect();
        let result = (|| {
            for round in 0..WARMUP_ROUNDS + rounds {
                bar.set_message(if round < WARMUP_ROUNDS {
                    "warm-up rounds"
                } else {
                    "timed rounds"
                });
                let (latencies, generate) = one_round(&nodes[0], &seen)?;
                if round >= WARMUP_ROUNDS {
                    by_round.push(latencies);
                    generate_ms.push(generate);
                }
                bar.inc(1);
                std::thread::sleep(ROUND_GAP);
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        for poller in pollers {
            poller.join().expect("a poller never panics")?;
        }
        result
    })?;
    let periods: Vec<f64> = seen
        .iter()
        .map(|s| {
            let s = s.lock().expect("no poller panicked holding it");
            s.polling.as_secs_f64() * 1000.0 / s.polls.max(1) as f64
        })
        .collect();
    Ok(Rounds {
        by_round,
        generate_ms,
        poll_period_ms: periods.iter().sum::<f64>() / periods.len() as f64,
    })
}

/// Mines one block on `miner`; each follower's latency and the `generate` round trip, ms.
fn one_round(miner: &BenchNode, seen: &[Mutex<Seen>]) -> anyhow::Result<(Vec<f64>, f64)> {
    let before = Instant::now();
    let hashes = miner.call("generate", json!([1]))?;
    let start = Instant::now();
    let hash = hashes[0]
        .as_str()
        .context("generate answered no hash")?
        .to_owned();
    let deadline = start + ROUND_TIMEOUT;
    loop {
        let arrived: Option<Vec<Instant>> = seen
            .iter()
            .map(|s| {
                s.lock()
                    .expect("no poller panicked holding it")
                    .first
                    .get(&hash)
                    .copied()
            })
            .collect();
        if let Some(arrived) = arrived {
            let ms = |at: Instant| match at.checked_duration_since(start) {
                Some(d) => d.as_secs_f64() * 1000.0,
                None => -((start - at).as_secs_f64() * 1000.0),
            };
            let latencies = arrived.into_iter().map(ms).collect();
            return Ok((latencies, (start - before).as_secs_f64() * 1000.0));
        }
        if Instant::now() > deadline {
            bail!("block {hash} did not reach every node within {ROUND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls `getbestblockhash` until `stop`, noting when each hash is first reported.
fn poll_tips(node: &BenchNode, stop: &AtomicBool, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    let mut polls = 0;
    while !stop.load(Ordering::Relaxed) {
        let hash = node.best_hash()?;
        let at = Instant::now();
        polls += 1;
        if hash != last {
            let mut seen = seen.lock().expect("no poller panicked holding it");
            seen.first.entry(hash.clone()).or_insert(at);
            last = hash;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let mut seen = seen.lock().expect("no poller panicked holding it");
    seen.polls = polls;
    seen.polling = started.elapsed();
    Ok(())
}

/// The nearest-rank 95th percentile of `values` (not empty).
fn p95(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (0.95 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
