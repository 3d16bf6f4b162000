//! One follower per node: keeps that node's block tree, tip, mempool and up/down state
//! current, and turns what changed into the view's events.
//!
//! It subscribes to the node's `GET /events` (reconnecting after a drop) and refreshes its
//! tree on every event; without a stream (an older node, or between reconnects) it polls the
//! node's summary every 250 ms, and every second even with one, so nothing is missed for
//! long. A refresh asks only for the heights that can have changed (a few below the lower of
//! the old and new tips, or the height of an announced block) and falls back to the whole
//! window when the result does not join the tree it holds or misses blocks the node counts.

pub use super::hub::{Hub, ViewEvent};
pub use super::node_state::NodeState;
use super::source::{NodeSource, SourceError, Summary};
use super::sse;
use cairn_rpc::types::events;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

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
/// How often the mempool and the ban list are re-read.
const MEMPOOL_EVERY: Duration = Duration::from_secs(1);

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
            self.refresh_mempool().await;
            self.refresh_bans().await;
        }
    }

    async fn refresh_mempool(&self) {
        let source = self.source.clone();
        let Ok(mut pool) = blocking(move || source.mempool()).await else {
            return;
        };
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

    async fn refresh_bans(&self) {
        let source = self.source.clone();
        let Ok(banned) = blocking(move || source.banned()).await else {
            return;
        };
        let changed = {
            let mut s = self.state.write().expect("no panics under lock");
            (s.banned != banned).then(|| {
                s.banned = banned;
                s.banned.len()
            })
        };
        if let Some(banned) = changed {
            self.hub.publish(vec![ViewEvent::Bans {
                node: self.source.name().to_owned(),
                banned,
            }]);
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
