//! What the view holds of one node, and how a freshly read tree is folded into it: which
//! blocks are new, whether the tip moved and how deep the reorg was, whether a partial read
//! joins what is held. Pure.

use super::hub::ViewEvent;
use super::merge::{NodeSnapshot, Reorg};
use super::source::NodeSource;
use cairn_rpc::types::{BlockTree, TreeBlock};
use std::collections::{HashMap, HashSet};

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
    /// The peer ids it bans, sorted.
    pub banned: Vec<String>,
    /// Blocks whose first-seen time is the view's own observation (the node gave none), so
    /// only as precise as the view's polling.
    pub observed: HashSet<String>,
}

impl NodeState {
    /// The node's blocks at heights ≥ `from`, for merging.
    pub fn snapshot(&self, source: &dyn NodeSource, from: u32) -> NodeSnapshot {
        NodeSnapshot {
            name: source.name().to_owned(),
            peer_id: source.peer_id().map(str::to_owned),
            byzantine: source.byzantine().map(str::to_owned),
            banned: self.banned.clone(),
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
                    if b.first_seen_ms.is_none() {
                        b.first_seen_ms = Some(now);
                        self.observed.insert(b.hash.clone());
                    }
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
        let blocks = &self.blocks;
        self.observed.retain(|h| blocks.contains_key(h));
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
        assert!(
            s.observed.contains("c1"),
            "the node gave no time: the view's own"
        );
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
