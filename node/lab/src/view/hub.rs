//! What followers publish and the server re-publishes: the view's events (`tip`, `block`,
//! and the extensions `node`, `mempool`, `bans`) and the log of reorgs.

use super::merge::Reorg;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// How many reorgs the view remembers.
const MAX_REORGS: usize = 200;

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
    /// `bans` (extension): a node's ban list changed.
    Bans {
        /// The node.
        node: String,
        /// Peers it bans now.
        banned: usize,
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
            ViewEvent::Bans { .. } => "bans",
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
    /// Sends `events` to every subscriber (none is fine: the page may not be open).
    pub fn publish(&self, events: Vec<ViewEvent>) {
        for e in events {
            // No subscriber is fine: the page may not be open.
            let _ = self.events.send(e);
        }
    }

    /// Remembers a reorg, forgetting the oldest beyond the last 200.
    pub fn log_reorg(&self, reorg: Reorg) {
        let mut log = self.reorgs.lock().expect("no panics under lock");
        log.push_back(reorg);
        while log.len() > MAX_REORGS {
            log.pop_front();
        }
    }
}
