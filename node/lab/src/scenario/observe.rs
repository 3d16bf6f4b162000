//! What a scenario measures while it runs: a thread follows every node over RPC every
//! [`POLL`] (its tip, and on a change the blocks it knows, through the fork view's
//! [`RpcSource`]: `getblocktree` with each block's `first_seen_ms`, or a walk of
//! `getchaintips`/`getblock` on a node without it) and keeps one merged block tree.
//!
//! From it come the report's figures: reorganisations (a node's old tip left its active
//! chain: depth = blocks from the old tip down to the fork), stale blocks (known by some node,
//! on no node's active chain), the moments every running node had the same tip (convergence),
//! and propagation delays (each node's first-seen time of a block minus the earliest one),
//! counted only for blocks born while the network was whole and nodes that stayed up, so a
//! partition's backlog is not mistaken for slow gossip. Nodes' first-seen times come from
//! the nodes; where a node gives none, the time this poller first saw the block there.

use crate::view::source::{NodeSource, RpcSource, Summary};
use cairn_rpc::types::{BlockStatus, BlockTree};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often every node is asked for its tip.
pub const POLL: Duration = Duration::from_millis(200);
/// How far below a node's previous tip a refresh of its tree reaches (deeper reorganisations
/// are still seen: the walk back stops at the first block the refresh did not cover).
const WINDOW: u32 = 64;

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One block as the nodes know it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Parent hash.
    pub parent: String,
    /// Height.
    pub height: u32,
    /// Node index → when it first knew the block, Unix ms.
    pub first_seen: BTreeMap<usize, u64>,
    /// Nodes whose active chain holds it (as last refreshed).
    pub active_on: BTreeSet<usize>,
}

/// A node's tip left its active chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reorg {
    /// The node's name.
    pub node: String,
    /// Blocks disconnected.
    pub depth: u64,
    /// Seconds into the timeline.
    pub at_secs: f64,
}

/// Everything observed so far.
#[derive(Debug, Clone)]
pub struct State {
    /// Node names, by index.
    pub names: Vec<String>,
    /// The highest tip when observing began: blocks above it are the scenario's.
    pub base_height: u32,
    /// The merged tree.
    pub blocks: HashMap<String, Seen>,
    /// Each node's last summary (`None`: not reached yet or down).
    pub summaries: Vec<Option<Summary>>,
    /// Whether the runner has each node running.
    pub running: Vec<bool>,
    /// Whether each node is honest (not started with `--byzantine`): only the honest
    /// running nodes must agree, and the final chain is theirs.
    pub honest: Vec<bool>,
    /// Reorganisations, in order.
    pub reorgs: Vec<Reorg>,
    /// Seconds into the timeline of every poll at which all running honest nodes shared a tip.
    pub agreed: Vec<f64>,
    /// Unix-ms intervals during which the network was split (partition or eclipse).
    pub split: Vec<(u64, u64)>,
    split_since: Option<u64>,
    /// Per node, Unix-ms intervals during which it was down.
    pub down: Vec<Vec<(u64, u64)>>,
    down_since: Vec<Option<u64>>,
}

impl State {
    /// Whether node `k`'s tip counts: it runs and is honest.
    fn counts(&self, k: usize) -> bool {
        self.running[k] && self.honest[k]
    }

    /// The first moment (seconds into the timeline) at or after `from` at which all running honest
    /// nodes shared a tip.
    pub fn agreed_since(&self, from: f64) -> Option<f64> {
        self.agreed.iter().copied().find(|t| *t >= from)
    }

    /// Whether every running honest node has been reached and all share one tip.
    pub fn agree_now(&self) -> bool {
        let tips: Vec<Option<&str>> = (0..self.names.len())
            .filter(|k| self.counts(*k))
            .map(|k| self.summaries[k].as_ref().map(|s| s.tip.as_str()))
            .collect();
        !tips.is_empty() && tips.iter().all(|t| t.is_some() && *t == tips[0])
    }

    /// The lowest height of the running honest nodes, `None` when one has not been reached.
    pub fn lowest_running_height(&self) -> Option<u32> {
        (0..self.names.len())
            .filter(|k| self.counts(*k))
            .map(|k| self.summaries[k].as_ref().map(|s| s.height))
            .collect::<Option<Vec<u32>>>()?
            .into_iter()
            .min()
    }

    /// Scenario blocks (above the base height) on no node's active chain.
    pub fn stale_blocks(&self) -> Vec<&str> {
        self.blocks
            .iter()
            .filter(|(_, b)| b.height > self.base_height && b.active_on.is_empty())
            .map(|(h, _)| h.as_str())
            .collect()
    }

    /// The running honest node with the highest tip (first by index on a tie): whose chain
    /// counts as the final one.
    pub fn reference_node(&self) -> Option<usize> {
        (0..self.names.len())
            .filter(|k| self.counts(*k))
            .filter_map(|k| self.summaries[k].as_ref().map(|s| (k, s.height)))
            .max_by_key(|&(k, h)| (h, std::cmp::Reverse(k)))
            .map(|(k, _)| k)
    }

    /// Scenario blocks on node `k`'s active chain.
    pub fn chain_of(&self, k: usize) -> Vec<&str> {
        let mut on: Vec<(&u32, &str)> = self
            .blocks
            .iter()
            .filter(|(_, b)| b.height > self.base_height && b.active_on.contains(&k))
            .map(|(h, b)| (&b.height, h.as_str()))
            .collect();
        on.sort();
        on.into_iter().map(|(_, h)| h).collect()
    }

    /// Propagation delays in ms (see the module docs).
    pub fn propagation_delays(&self) -> Vec<f64> {
        let inside = |spans: &[(u64, u64)], from: u64, to: u64| {
            spans.iter().any(|&(a, b)| a <= to && from <= b)
        };
        let mut out = Vec::new();
        for block in self.blocks.values() {
            if block.height <= self.base_height || block.first_seen.len() < 2 {
                continue;
            }
            let origin = *block.first_seen.values().min().expect("two entries");
            if inside(&self.split, origin, origin) {
                continue;
            }
            for (&k, &seen) in &block.first_seen {
                if seen == origin
                    && block.first_seen.values().filter(|s| **s == origin).count() == 1
                {
                    continue;
                }
                if !inside(&self.down[k], origin, seen) {
                    out.push(seen.saturating_sub(origin) as f64);
                }
            }
        }
        out
    }

    fn close_intervals(&mut self, now: u64) {
        if let Some(since) = self.split_since.take() {
            self.split.push((since, now));
        }
        for k in 0..self.names.len() {
            if let Some(since) = self.down_since[k].take() {
                self.down[k].push((since, now));
            }
        }
    }

    /// Adds what node `k`'s tree says; returns the depth of the reorganisation that moved it
    /// off `old_tip`, if any.
    fn ingest(&mut self, k: usize, tree: &BlockTree, old_tip: Option<&str>, now: u64) -> u64 {
        for b in &tree.blocks {
            let seen = self.blocks.entry(b.hash.clone()).or_default();
            seen.parent.clone_from(&b.parent);
            seen.height = b.height;
            seen.first_seen
                .entry(k)
                .or_insert_with(|| b.first_seen_ms.unwrap_or(now));
            if b.status == BlockStatus::Active {
                seen.active_on.insert(k);
            } else {
                seen.active_on.remove(&k);
            }
        }
        let Some(old) = old_tip else { return 0 };
        let mut depth = 0;
        let mut at = old.to_owned();
        while let Some(b) = self.blocks.get(&at) {
            if b.active_on.contains(&k) || b.height < tree.from {
                break;
            }
            depth += 1;
            at.clone_from(&b.parent);
        }
        depth
    }
}

struct Shared {
    stop: AtomicBool,
    started: Instant,
    sources: Mutex<Vec<Arc<RpcSource>>>,
    state: Mutex<State>,
}

/// The polling thread and what it has seen; stops when dropped.
pub struct Observer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Observer {
    /// Starts following the nodes `sources` (in node order; `honest[k]`: node `k` was not
    /// started with `--byzantine`) with the timeline starting now.
    pub fn start(sources: Vec<RpcSource>, honest: Vec<bool>) -> Observer {
        let n = sources.len();
        let names = sources.iter().map(|s| s.name().to_owned()).collect();
        let base_height = sources
            .iter()
            .filter_map(|s| s.summary().ok())
            .map(|s| s.height)
            .max()
            .unwrap_or(0);
        let state = State {
            names,
            base_height,
            blocks: HashMap::new(),
            summaries: vec![None; n],
            running: vec![true; n],
            honest,
            reorgs: Vec::new(),
            agreed: Vec::new(),
            split: Vec::new(),
            split_since: None,
            down: vec![Vec::new(); n],
            down_since: vec![None; n],
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            started: Instant::now(),
            sources: Mutex::new(sources.into_iter().map(Arc::new).collect()),
            state: Mutex::new(state),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    poll_once(&shared, false);
                    std::thread::sleep(POLL.saturating_sub(began.elapsed()));
                }
            })
        };
        Observer {
            shared,
            thread: Some(thread),
        }
    }

    /// Seconds since the timeline started.
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// A copy of what has been seen.
    pub fn snapshot(&self) -> State {
        lock(&self.shared.state).clone()
    }

    /// Marks the network split (partition, eclipse) or whole again.
    pub fn set_split(&self, split: bool) {
        let mut state = lock(&self.shared.state);
        let now = unix_ms();
        match (split, state.split_since) {
            (true, None) => state.split_since = Some(now),
            (false, Some(since)) => {
                state.split.push((since, now));
                state.split_since = None;
            }
            _ => {}
        }
    }

    /// Marks node `k` stopped or running (a stopped node is left out of agreement).
    pub fn set_running(&self, k: usize, running: bool) {
        let mut state = lock(&self.shared.state);
        let now = unix_ms();
        state.running[k] = running;
        if running {
            if let Some(since) = state.down_since[k].take() {
                state.down[k].push((since, now));
            }
        } else {
            state.summaries[k] = None;
            state.down_since[k].get_or_insert(now);
        }
    }

    /// Follows node `k` at a new address (after a restart).
    pub fn replace_source(&self, k: usize, source: RpcSource) {
        lock(&self.shared.sources)[k] = Arc::new(source);
    }

    /// Stops polling, refreshes every running node's whole scenario tree once more, and
    /// returns the final state.
    pub fn finish(mut self) -> State {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        poll_once(&self.shared, true);
        let mut state = lock(&self.shared.state).clone();
        state.close_intervals(unix_ms());
        state
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One round over the nodes; `full` refreshes every tree from the base height.
fn poll_once(shared: &Shared, full: bool) {
    let sources: Vec<Arc<RpcSource>> = lock(&shared.sources).clone();
    for (k, source) in sources.iter().enumerate() {
        let (running, last, base) = {
            let state = lock(&shared.state);
            (
                state.running[k],
                state.summaries[k].clone(),
                state.base_height,
            )
        };
        if !running {
            continue;
        }
        let Ok(summary) = source.summary() else {
            lock(&shared.state).summaries[k] = None;
            continue;
        };
        if !full && last.as_ref() == Some(&summary) {
            continue;
        }
        let from = if full {
            base
        } else {
            let low = last
                .as_ref()
                .map_or(summary.height, |l| l.height.min(summary.height));
            low.saturating_sub(WINDOW).max(base.saturating_sub(WINDOW))
        };
        let Ok(tree) = source.tree(from) else {
            continue;
        };
        let now = unix_ms();
        let at_secs = shared.started.elapsed().as_secs_f64();
        let mut state = lock(&shared.state);
        if !state.running[k] {
            continue;
        }
        let old_tip = last.as_ref().map(|l| l.tip.as_str());
        let depth = state.ingest(k, &tree, old_tip, now);
        if depth > 0 {
            let node = state.names[k].clone();
            state.reorgs.push(Reorg {
                node,
                depth,
                at_secs,
            });
        }
        state.summaries[k] = Some(summary);
    }
    let mut state = lock(&shared.state);
    if state.agree_now() {
        let t = shared.started.elapsed().as_secs_f64();
        state.agreed.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_rpc::types::TreeBlock;

    fn block(hash: &str, parent: &str, height: u32, active: bool, seen: u64) -> TreeBlock {
        TreeBlock {
            hash: hash.into(),
            parent: parent.into(),
            height,
            time: 0,
            txs: Some(1),
            status: if active {
                BlockStatus::Active
            } else {
                BlockStatus::Side
            },
            first_seen_ms: Some(seen),
        }
    }

    fn state(n: usize) -> State {
        State {
            names: (0..n).map(|k| format!("node{k}")).collect(),
            base_height: 0,
            blocks: HashMap::new(),
            summaries: vec![None; n],
            running: vec![true; n],
            honest: vec![true; n],
            reorgs: Vec::new(),
            agreed: Vec::new(),
            split: Vec::new(),
            split_since: None,
            down: vec![Vec::new(); n],
            down_since: vec![None; n],
        }
    }

    fn tree(blocks: Vec<TreeBlock>) -> BlockTree {
        BlockTree {
            tip: String::new(),
            height: 0,
            from: 0,
            blocks,
        }
    }

    #[test]
    fn a_tip_that_leaves_the_active_chain_is_a_reorg_of_its_depth() {
        let mut s = state(1);
        let first = tree(vec![
            block("g", "", 0, true, 0),
            block("a1", "g", 1, true, 10),
            block("a2", "a1", 2, true, 20),
        ]);
        assert_eq!(s.ingest(0, &first, None, 0), 0);
        assert_eq!(
            s.ingest(0, &first, Some("a1"), 0),
            0,
            "a tip that only advanced"
        );
        let switched = tree(vec![
            block("g", "", 0, true, 0),
            block("a1", "g", 1, false, 10),
            block("a2", "a1", 2, false, 20),
            block("b1", "g", 1, true, 30),
            block("b2", "b1", 2, true, 40),
            block("b3", "b2", 3, true, 50),
        ]);
        assert_eq!(s.ingest(0, &switched, Some("a2"), 0), 2);
        let mut stale = s.stale_blocks();
        stale.sort();
        assert_eq!(stale, vec!["a1", "a2"]);
        assert_eq!(s.chain_of(0), vec!["b1", "b2", "b3"]);
    }

    #[test]
    fn propagation_skips_split_times_and_down_nodes() {
        let mut s = state(3);
        s.ingest(0, &tree(vec![block("x", "g", 1, true, 1000)]), None, 0);
        s.ingest(1, &tree(vec![block("x", "g", 1, true, 1040)]), None, 0);
        s.ingest(2, &tree(vec![block("x", "g", 1, true, 1090)]), None, 0);
        assert_eq!(s.propagation_delays(), vec![40.0, 90.0]);
        s.down[2].push((1010, 1050));
        assert_eq!(s.propagation_delays(), vec![40.0]);
        s.split.push((900, 1100));
        assert!(s.propagation_delays().is_empty());
    }

    #[test]
    fn agreement_needs_every_running_node() {
        let mut s = state(2);
        let summary = |tip: &str| Summary {
            tip: tip.into(),
            height: 1,
            headers: 1,
        };
        s.summaries = vec![Some(summary("a")), None];
        assert!(!s.agree_now());
        s.running[1] = false;
        assert!(s.agree_now());
        s.running[1] = true;
        s.summaries[1] = Some(summary("b"));
        assert!(!s.agree_now());
        s.summaries[1] = Some(summary("a"));
        assert!(s.agree_now());
        // A Byzantine node's tip does not count, nor its height, nor its chain.
        s.summaries[1] = Some(Summary {
            height: 9,
            ..summary("evil")
        });
        s.honest[1] = false;
        assert!(s.agree_now());
        assert_eq!(s.lowest_running_height(), Some(1));
        assert_eq!(s.reference_node(), Some(0));
    }
}
