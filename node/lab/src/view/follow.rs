//! One follower per node: keeps that node's block tree, tip, mempool and up/down state
//! current, and turns what changed into the view's events.
//!
//! It subscribes to the node's `GET /events` (reconnecting after a drop) and refreshes its
//! tree on every event; without a stream (an older node, or between reconnects) it polls the
//! node's summary every 250 ms, and every second even with one, so nothing is missed for
//! long. A refresh asks only for the heights that can have changed (a few below the lower of
//! the old and new tips, or the height of an announced block) and falls back to the whole
//! window when the result does not join the tree it holds or misses blocks the node counts.

use super::merge::{NodeSnapshot, Reorg};
use super::source::{NodeSource, SourceError, Summary};
use super::sse;
use cairn_rpc::types::{BlockTree, TreeBlock, events};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};

/// How many heights below its tip a follower holds.
pub const HISTORY: u32 = 1000;
/// How far below the lower tip an incremental refresh starts.
const MARGIN: u32 = 6;
/// Poll period while the node's event stream is not connected.
const POLL_FAST: Duration = Duration::from_millis(250);
/// Poll period while it is (a safety net).
const POLL_SLOW: Duration = Duration::from_secs(1);
/// How often the whole window is re-read anyway (status changes deep in the tree).
const FULL_EVERY: Duration = Duration::from_secs(30);
/// How often the mempool is re-read.
const MEMPOOL_EVERY: Duration = Duration::from_secs(1);
/// How many reorgs the view remembers.
const MAX_REORGS: usize = 200;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An event of `GET /api/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ViewEvent {
    /// `tip`: a node's active tip moved.
    Tip {
        /// The node.
        node: String,
        /// Its new tip.
        hash: String,
        /// Its height.
        height: u32,
        /// Blocks it disconnected.
        reorg_depth: usize,
    },
    /// `block`: a node knows a block it did not know before.
    Block {
        /// The node.
        node: String,
        /// The block.
        hash: String,
    },
    /// `node` (extension): a node went down or came back.
    Node {
        /// The node.
        node: String,
        /// Whether it answers now.
        up: bool,
    },
    /// `mempool` (extension): a node's mempool changed.
    Mempool {
        /// The node.
        node: String,
        /// Transactions in it now.
        size: usize,
    },
}

impl ViewEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            ViewEvent::Tip { .. } => "tip",
            ViewEvent::Block { .. } => "block",
            ViewEvent::Node { .. } => "node",
            ViewEvent::Mempool { .. } => "mempool",
        }
    }
}

/// What the followers share with the server: the event channel and the reorg log.
#[derive(Debug)]
pub struct Hub {
    /// Every event of every follower.
    pub events: broadcast::Sender<ViewEvent>,
    /// Recent reorgs, oldest first.
    pub reorgs: Mutex<VecDeque<Reorg>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            events: broadcast::channel(4096).0,
            reorgs: Mutex::new(VecDeque::new()),
        }
    }
}

impl Hub {
    fn publish(&self, events: Vec<ViewEvent>) {
        for e in events {
            // No subscriber is fine: the page may not be open.
            let _ = self.events.send(e);
        }
    }

    fn log_reorg(&self, reorg: Reorg) {
        let mut log = self.reorgs.lock().expect("no panics under lock");
        log.push_back(reorg);
        while log.len() > MAX_REORGS {
            log.pop_front();
        }
    }
}

/// What the view holds of one node.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// Whether it answered the last poll.
    pub up: bool,
    /// Whether it was polled at least once (answering or not).
    pub polled: bool,
    /// Whether its event stream is connected.
    pub live: bool,
    /// Its active tip, once read.
    pub tip: Option<String>,
    /// The tip's height.
    pub height: Option<u32>,
    /// Its tree size at the last refresh.
    pub headers: usize,
    /// Lowest height held.
    pub floor: u32,
    /// Its blocks at heights ≥ `floor`, by hash.
    pub blocks: HashMap<String, TreeBlock>,
    /// Whether the tree was read at least once.
    pub loaded: bool,
    /// Its mempool's txids.
    pub mempool: Vec<String>,
}

impl NodeState {
    /// The node's blocks at heights ≥ `from`, for merging.
    pub fn snapshot(&self, name: &str, from: u32) -> NodeSnapshot {
        NodeSnapshot {
            name: name.to_owned(),
            up: self.up,
            live: self.live,
            tip: self.tip.clone(),
            height: self.height,
            blocks: self
                .blocks
                .values()
                .filter(|b| b.height >= from)
                .cloned()
                .collect(),
        }
    }

    /// Blocks disconnected going from tip `old` to tip `new`, walking parents in the
    /// held tree; `None` when the walk leaves it.
    pub fn reorg_depth(&self, old: &str, new: &str) -> Option<usize> {
        let (mut a, mut b) = (self.blocks.get(old)?, self.blocks.get(new)?);
        let mut depth = 0;
        while a.hash != b.hash {
            if a.height >= b.height {
                a = self.blocks.get(&a.parent)?;
                depth += 1;
            } else {
                b = self.blocks.get(&b.parent)?;
            }
        }
        Some(depth)
    }

    /// Merges a tree read from height `from` (replacing everything there and above; with
    /// `full`, everything) and returns the events it implies. Blocks the node reports no
    /// first-seen time for get the time the view first saw them, except on the first load.
    pub fn apply(
        &mut self,
        name: &str,
        tree: BlockTree,
        full: bool,
        hint_depth: Option<usize>,
        now: u64,
    ) -> (Vec<ViewEvent>, Option<Reorg>) {
        let first = !self.loaded;
        let mut old = std::mem::take(&mut self.blocks);
        if !full {
            self.blocks = old
                .iter()
                .filter(|(_, b)| b.height < tree.from)
                .map(|(h, b)| (h.clone(), b.clone()))
                .collect();
        }
        let mut events = Vec::new();
        for mut b in tree.blocks {
            match old.remove(&b.hash) {
                Some(known) => {
                    b.first_seen_ms = b.first_seen_ms.or(known.first_seen_ms);
                }
                None if !first => {
                    b.first_seen_ms = b.first_seen_ms.or(Some(now));
                    events.push(ViewEvent::Block {
                        node: name.to_owned(),
                        hash: b.hash.clone(),
                    });
                }
                None => {}
            }
            self.blocks.insert(b.hash.clone(), b);
        }
        if full {
            self.floor = tree.from;
        }
        self.loaded = true;
        let old_tip = self.tip.replace(tree.tip.clone());
        self.height = Some(tree.height);
        let mut reorg = None;
        if let Some(old_tip) = old_tip.filter(|t| *t != tree.tip) {
            let depth = self
                .reorg_depth(&old_tip, &tree.tip)
                .or(hint_depth)
                .unwrap_or(0);
            if depth > 0 {
                reorg = Some(Reorg {
                    node: name.to_owned(),
                    depth,
                    from: old_tip,
                    to: tree.tip.clone(),
                    time_ms: now,
                });
            }
            events.push(ViewEvent::Tip {
                node: name.to_owned(),
                hash: tree.tip,
                height: tree.height,
                reorg_depth: depth,
            });
        }
        (events, reorg)
    }

    /// Whether a tree read from `tree.from` joins the held one: its active block at the
    /// lowest height has the held active block below as parent. Nothing to check when
    /// nothing is held there.
    pub fn joins(&self, tree: &BlockTree) -> bool {
        use cairn_rpc::types::BlockStatus::Active;
        let held_below = self
            .blocks
            .values()
            .find(|b| b.status == Active && b.height + 1 == tree.from);
        let new_lowest = tree
            .blocks
            .iter()
            .find(|b| b.status == Active && b.height == tree.from);
        match (held_below, new_lowest) {
            (Some(below), Some(lowest)) => lowest.parent == below.hash,
            _ => true,
        }
    }
}

/// What the node's event stream told the follower since its last refresh.
#[derive(Debug, Default)]
struct Nudges {
    any: bool,
    lowest_block: Option<u32>,
    tip_depth: HashMap<String, usize>,
}

impl Nudges {
    fn note(&mut self, e: &sse::SseEvent) {
        self.any = true;
        match e.event.as_str() {
            events::TIP => {
                if let Ok(tip) = serde_json::from_str::<events::Tip>(&e.data) {
                    self.tip_depth.insert(tip.hash, tip.reorg_depth);
                }
            }
            events::BLOCK => {
                if let Ok(block) = serde_json::from_str::<events::Block>(&e.data) {
                    self.lowest_block = Some(
                        self.lowest_block
                            .map_or(block.height, |h| h.min(block.height)),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Follows one node until the process ends.
pub struct Follower {
    source: Arc<dyn NodeSource>,
    state: Arc<RwLock<NodeState>>,
    hub: Arc<Hub>,
    live: Arc<AtomicBool>,
    last_full: Instant,
    last_mempool: Option<Instant>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(SourceError::Failed {
            node: String::new(),
            reason: format!("RPC task failed: {e}"),
        })
    })
}

impl Follower {
    /// A follower writing into `state` and publishing on `hub`.
    pub fn new(source: Arc<dyn NodeSource>, state: Arc<RwLock<NodeState>>, hub: Arc<Hub>) -> Self {
        Follower {
            source,
            state,
            hub,
            live: Arc::new(AtomicBool::new(false)),
            last_full: Instant::now(),
            last_mempool: None,
        }
    }

    /// Subscribes to the node's events and refreshes on each, or polls; never returns.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::channel::<sse::SseEvent>(1024);
        tokio::spawn(listen(self.source.clone(), tx, self.live.clone()));
        loop {
            let mut nudges = Nudges::default();
            let period = if self.live.load(Ordering::Relaxed) {
                POLL_SLOW
            } else {
                POLL_FAST
            };
            tokio::select! {
                got = rx.recv() => if let Some(e) = got { nudges.note(&e) },
                _ = tokio::time::sleep(period) => {}
            }
            while let Ok(e) = rx.try_recv() {
                nudges.note(&e);
            }
            self.step(nudges).await;
        }
    }

    fn set_up(&self, up: bool) {
        let live = self.live.load(Ordering::Relaxed);
        let changed = {
            let mut s = self.state.write().expect("no panics under lock");
            s.live = live && up;
            s.polled = true;
            std::mem::replace(&mut s.up, up) != up
        };
        if changed {
            self.hub.publish(vec![ViewEvent::Node {
                node: self.source.name().to_owned(),
                up,
            }]);
        }
    }

    async fn step(&mut self, nudges: Nudges) {
        let source = self.source.clone();
        let summary = match blocking(move || source.summary()).await {
            Ok(s) => s,
            Err(_) => return self.set_up(false),
        };
        let was_up = self.state.read().expect("no panics under lock").up;
        self.set_up(true);
        if let Err(e) = self.refresh(&summary, &nudges, !was_up).await {
            if matches!(e, SourceError::Unreachable { .. }) {
                self.set_up(false);
            }
            return;
        }
        if self
            .last_mempool
            .is_none_or(|t| t.elapsed() >= MEMPOOL_EVERY)
        {
            self.last_mempool = Some(Instant::now());
            let source = self.source.clone();
            if let Ok(mut pool) = blocking(move || source.mempool()).await {
                pool.sort();
                let changed = {
                    let mut s = self.state.write().expect("no panics under lock");
                    (s.mempool != pool).then(|| {
                        s.mempool = pool;
                        s.mempool.len()
                    })
                };
                if let Some(size) = changed {
                    self.hub.publish(vec![ViewEvent::Mempool {
                        node: self.source.name().to_owned(),
                        size,
                    }]);
                }
            }
        }
    }

    /// Re-reads the heights that can have changed, when anything did.
    async fn refresh(
        &mut self,
        summary: &Summary,
        nudges: &Nudges,
        reconnected: bool,
    ) -> Result<(), SourceError> {
        let (loaded, tip, height, headers, floor) = {
            let s = self.state.read().expect("no panics under lock");
            (s.loaded, s.tip.clone(), s.height, s.headers, s.floor)
        };
        let full_due = self.last_full.elapsed() >= FULL_EVERY;
        let changed = !loaded
            || reconnected
            || full_due
            || nudges.any
            || tip.as_deref() != Some(summary.tip.as_str())
            || headers != summary.headers;
        if !changed {
            return Ok(());
        }
        let window = summary.height.saturating_sub(HISTORY);
        let mut full = !loaded || reconnected || full_due || window > floor + HISTORY / 2;
        let mut from = if full {
            window
        } else {
            let lower = height.unwrap_or(0).min(summary.height);
            let from = lower.saturating_sub(MARGIN);
            nudges.lowest_block.map_or(from, |h| from.min(h)).max(floor)
        };
        loop {
            let source = self.source.clone();
            let tree = blocking(move || source.tree(from)).await?;
            let name = self.source.name().to_owned();
            let hint = nudges.tip_depth.get(&tree.tip).copied();
            let mut s = self.state.write().expect("no panics under lock");
            let grew = summary.headers.saturating_sub(s.headers);
            let new_blocks = tree
                .blocks
                .iter()
                .filter(|b| !s.blocks.contains_key(&b.hash))
                .count();
            if !full && (!s.joins(&tree) || (s.headers > 0 && new_blocks < grew)) {
                drop(s);
                full = true;
                from = window.min(floor);
                continue;
            }
            let (events, reorg) = s.apply(&name, tree, full, hint, now_ms());
            s.headers = summary.headers;
            drop(s);
            if full {
                self.last_full = Instant::now();
            }
            if let Some(r) = reorg {
                self.hub.log_reorg(r);
            }
            self.hub.publish(events);
            return Ok(());
        }
    }
}

/// Keeps a subscription to the node's event stream open, forwarding its events, and says in
/// `live` whether it is connected.
async fn listen(
    source: Arc<dyn NodeSource>,
    out: mpsc::Sender<sse::SseEvent>,
    live: Arc<AtomicBool>,
) {
    loop {
        let Some((address, authorization)) = source.events() else {
            // No stream (or no cookie yet): try again later, the node may be restarting.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let opened = live.clone();
        let result = sse::subscribe(&address, events::PATH, &authorization, &out, move || {
            opened.store(true, Ordering::Relaxed)
        })
        .await;
        live.store(false, Ordering::Relaxed);
        if out.is_closed() {
            return;
        }
        // A node without `/events` answers 404; asking again every few seconds notices an
        // upgrade without burdening it.
        let wait = match result {
            Err(sse::SseError::Status(_)) => Duration::from_secs(5),
            _ => Duration::from_secs(1),
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_rpc::types::BlockStatus::{self, *};

    fn tb(hash: &str, parent: &str, height: u32, status: BlockStatus) -> TreeBlock {
        TreeBlock {
            hash: hash.into(),
            parent: parent.into(),
            height,
            time: 0,
            txs: Some(1),
            status,
            first_seen_ms: None,
        }
    }

    fn tree(tip: &str, height: u32, from: u32, blocks: Vec<TreeBlock>) -> BlockTree {
        BlockTree {
            tip: tip.into(),
            height,
            from,
            blocks,
        }
    }

    #[test]
    fn a_reorg_is_measured_and_new_blocks_announced() {
        let mut s = NodeState::default();
        let base = vec![
            tb("g", "", 0, Active),
            tb("a", "g", 1, Active),
            tb("b1", "a", 2, Active),
        ];
        let (events, reorg) = s.apply("node0", tree("b1", 2, 0, base), true, None, 5);
        assert!(events.is_empty(), "the first load announces nothing");
        assert!(reorg.is_none());

        let after = vec![
            tb("a", "g", 1, Active),
            tb("b1", "a", 2, Side),
            tb("c1", "a", 2, Active),
            tb("c2", "c1", 3, Active),
        ];
        let t = tree("c2", 3, 1, after);
        assert!(s.joins(&t));
        let (events, reorg) = s.apply("node0", t, false, None, 9);
        assert_eq!(
            events,
            [
                ViewEvent::Block {
                    node: "node0".into(),
                    hash: "c1".into()
                },
                ViewEvent::Block {
                    node: "node0".into(),
                    hash: "c2".into()
                },
                ViewEvent::Tip {
                    node: "node0".into(),
                    hash: "c2".into(),
                    height: 3,
                    reorg_depth: 1
                },
            ]
        );
        let reorg = reorg.unwrap();
        assert_eq!((reorg.depth, reorg.from.as_str()), (1, "b1"));
        assert!(
            s.blocks.contains_key("g"),
            "blocks below the refresh are kept"
        );
        assert_eq!(s.blocks["c1"].first_seen_ms, Some(9));
        assert_eq!(s.blocks["b1"].status, Side);
    }

    #[test]
    fn a_tree_that_does_not_join_is_noticed() {
        let mut s = NodeState::default();
        s.apply(
            "n",
            tree(
                "b",
                2,
                0,
                vec![
                    tb("g", "", 0, Active),
                    tb("a", "g", 1, Active),
                    tb("b", "a", 2, Active),
                ],
            ),
            true,
            None,
            0,
        );
        // The node reorganised below the refresh: its height-2 block no longer has `a` as
        // parent.
        let t = tree(
            "y",
            3,
            2,
            vec![tb("x", "a2", 2, Active), tb("y", "x", 3, Active)],
        );
        assert!(!s.joins(&t));
        let ok = tree(
            "c",
            3,
            2,
            vec![tb("b", "a", 2, Active), tb("c", "b", 3, Active)],
        );
        assert!(s.joins(&ok));
    }
}
