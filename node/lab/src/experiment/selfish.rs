//! `cairn experiment selfish`: a pool running `cairn node --strategy selfish` with hash
//! share α against two honest nodes sharing 1 − α, fully meshed. The runner draws who
//! finds each block; after each find it waits until the network has settled (every node
//! has every honest block and the pool's public tip), so propagation never decides a race
//! by accident. Measured: the pool's share of the honest nodes' final active chain, beside
//! Eyal–Sirer's R(α, γ) with γ the share of races the honest side decided on the pool's
//! branch, as the pool counted them.

use super::net::{Net, NodeSetup, wait_for};
use super::stats::{Lottery, batch_means95};
use super::{Common, Point, num, params, progress};
use crate::theory::{selfish_revenue, selfish_threshold};
use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use std::collections::HashSet;

/// How the blocks are found, for the report.
pub const METHOD: &str = "real nodes (1 selfish pool + 2 honest, full mesh, regtest); the runner draws \
each block's finder from the hash shares and --seed and calls `generate 1` on it, then waits for \
propagation; ci95 by batch means over the main chain";

/// Honest nodes beside the pool.
const HONEST: usize = 2;
/// Batches for the batch-means interval.
const BATCHES: usize = 10;

/// Arguments of `cairn experiment selfish`.
#[derive(Debug, Args)]
pub struct SelfishArgs {
    /// The pool's hash shares, one point each
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.25, 0.33, 0.4, 0.45])]
    pub alpha: Vec<f64>,
    /// Main-chain blocks per point. The defaults (5 points × 1000 blocks) take about 3
    /// minutes on 2 cores and give a ci95 of about ±0.03-0.05 on the revenue share
    #[arg(long, default_value_t = 1000)]
    pub blocks: u64,
}

/// Runs every α point.
pub fn run(args: &SelfishArgs, common: &Common) -> anyhow::Result<Vec<Point>> {
    let alphas = &args.alpha;
    if alphas.is_empty() || alphas.iter().any(|a| !(*a > 0.0 && *a < 0.5)) {
        bail!("--alpha values must be in (0, 0.5)");
    }
    if !(20..=100_000).contains(&args.blocks) {
        bail!("--blocks must be between 20 and 100000");
    }
    alphas
        .iter()
        .enumerate()
        .map(|(i, alpha)| {
            point(
                *alpha,
                args.blocks,
                common.seed.wrapping_add(i as u64),
                common,
                i,
            )
            .with_context(|| format!("alpha {alpha}"))
        })
        .collect()
}

fn strategy_info(net: &Net) -> anyhow::Result<Value> {
    let info: Value = net.clients[0].call("getmininginfo", json!([]))?;
    let strategy = info["strategy"].clone();
    if strategy["name"] != "selfish" {
        bail!("node0 is not running --strategy selfish (getmininginfo.strategy = {strategy})");
    }
    Ok(strategy)
}

/// Waits until every honest node has `found` (when honest) and the pool's public tip.
fn settle(net: &Net, found: Option<&str>) -> anyhow::Result<()> {
    if let Some(hash) = found {
        wait_for("every node to have the new block", || {
            for k in 0..=HONEST {
                if !net.knows(k, hash)? {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })?;
    }
    let public = strategy_info(net)?["public_tip"]
        .as_str()
        .context("strategy.public_tip missing")?
        .to_owned();
    wait_for("the honest nodes to have the pool's public tip", || {
        for k in 1..=HONEST {
            if !net.knows(k, &public)? {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
}

fn point(
    alpha: f64,
    blocks: u64,
    seed: u64,
    common: &Common,
    index: usize,
) -> anyhow::Result<Point> {
    let mut nodes = vec![NodeSetup {
        strategy: Some("selfish"),
        pays_dev: 0,
    }];
    nodes.extend((1..=HONEST).map(|k| NodeSetup {
        strategy: None,
        pays_dev: k,
    }));
    let net = Net::up(common.point_dir(index).as_deref(), &nodes, &[])?;
    let mut rates = vec![alpha];
    rates.extend(std::iter::repeat_n((1.0 - alpha) / HONEST as f64, HONEST));
    let mut lottery = Lottery::new(seed);
    let mut pool_blocks: HashSet<String> = HashSet::new();
    let bar = progress(blocks, &format!("selfish α={alpha}"));
    let mut finders: Vec<bool> = Vec::new();
    loop {
        let height: u64 = net.clients[1].call_as("getblockcount", json!([]))?;
        bar.set_position(height.min(blocks));
        if height >= blocks {
            break;
        }
        let (finder, _) = lottery.next_finder(&rates);
        let hash = net.generate(finder)?;
        finders.push(finder == 0);
        if finder == 0 {
            pool_blocks.insert(hash);
            settle(&net, None)?;
        } else {
            settle(&net, Some(&hash))?;
        }
    }
    bar.finish_and_clear();
    let chain = net.active_chain(1)?;
    let sequence: Vec<bool> = chain.iter().map(|h| pool_blocks.contains(h)).collect();
    let pool_on_chain = sequence.iter().filter(|b| **b).count();
    let measured = pool_on_chain as f64 / sequence.len().max(1) as f64;
    let info = strategy_info(&net)?;
    let races = info["races"].as_u64().unwrap_or(0);
    let gamma = info["gamma"].as_f64().unwrap_or(0.0);
    let theory = selfish_revenue(alpha, gamma);
    let withheld = info["withheld"].as_u64().unwrap_or(0);
    let finds = finders.len();
    // With γ = 0 the paper's algorithm fixes the outcome of every draw: replay it.
    let replay =
        (info["races_on_pool_branch"].as_u64() == Some(0)).then(|| replay_without_gamma(&finders));
    let replayed = replay.map_or(String::new(), |(pool, total)| {
        format!("; Eyal–Sirer's algorithm replayed on the same draws: pool {pool} of {total}")
    });
    Ok(Point {
        params: params(&[
            ("alpha", num(alpha)),
            ("blocks", json!(sequence.len())),
            ("gamma", num(gamma)),
        ]),
        measured,
        theory: num(theory),
        ci95: batch_means95(&sequence, BATCHES),
        reference: theory,
        replay: replay.map(|(pool, total)| pool as f64 / total.max(1) as f64),
        note: Some(format!(
            "{finds} blocks found, pool {} ({} on the main chain), {races} races; profitable above α = {:.4} at this γ; {withheld} pool blocks still withheld at the end{replayed}",
            pool_blocks.len(),
            pool_on_chain,
            selfish_threshold(gamma)
        )),
    })
}

/// Eyal–Sirer's algorithm run on a sequence of finds (`true`: the pool's) when the honest
/// miners always extend their own branch in a race (γ = 0). Returns the pool's blocks and
/// all blocks on the honest nodes' chain after the last find (a pending public branch
/// included, a withheld private one not): what the real nodes must show for the same draws.
pub fn replay_without_gamma(finders: &[bool]) -> (u64, u64) {
    let (mut pool, mut honest) = (0u64, 0u64);
    // Branch lengths above the fork point.
    let (mut private, mut public) = (0u64, 0u64);
    for &pool_found in finders {
        let race = private == public && private > 0;
        let lead = private.saturating_sub(public);
        if pool_found {
            private += 1;
            if race {
                pool += private;
                (private, public) = (0, 0);
            }
            continue;
        }
        public += 1;
        if race || private == 0 {
            honest += public;
            (private, public) = (0, 0);
        } else if lead == 2 {
            pool += private;
            (private, public) = (0, 0);
        }
    }
    (pool, pool + honest + public)
}

#[cfg(test)]
mod tests {
    use super::replay_without_gamma;

    #[test]
    fn the_replay_follows_the_paper_state_by_state() {
        // Honest only: every block theirs.
        assert_eq!(replay_without_gamma(&[false, false]), (0, 2));
        // Lead 1, they find (race), the pool finds: both pool blocks win.
        assert_eq!(replay_without_gamma(&[true, false, true]), (2, 2));
        // Race lost: their two blocks.
        assert_eq!(replay_without_gamma(&[true, false, false]), (0, 2));
        // Lead 2 then they find: override with 2.
        assert_eq!(replay_without_gamma(&[true, true, false]), (2, 2));
        // Lead 3, they find twice: the pool overrides both with 3.
        assert_eq!(
            replay_without_gamma(&[true, true, true, false, false]),
            (3, 3)
        );
        // Still withheld at the end: the honest chain holds only their pending block.
        assert_eq!(replay_without_gamma(&[true, true, true, false]), (0, 1));
    }
}
