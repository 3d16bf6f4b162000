//! One tree out of many: merges what every node of the testnet knows into the `/api/tree`
//! shape of INTERFACE (`nodes`, and `blocks` with `active_on` / `known_by` / `invalid_on`),
//! plus the view's extensions: each block's overall `status`, its drawing `lane`, and the
//! folds of long linear runs ([`super::layout`]). Pure.

use cairn_rpc::types::{BlockStatus, TreeBlock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What one node knows, as a follower last saw it.
#[derive(Debug, Clone, Default)]
pub struct NodeSnapshot {
    /// Its name.
    pub name: String,
    /// Its peer id, when known.
    pub peer_id: Option<String>,
    /// Its Byzantine modes, when it has any.
    pub byzantine: Option<String>,
    /// The peer ids it bans.
    pub banned: Vec<String>,
    /// Whether it answered the last poll.
    pub up: bool,
    /// Whether its event stream is connected (else the view polls it).
    pub live: bool,
    /// Its active tip, once known.
    pub tip: Option<String>,
    /// The tip's height.
    pub height: Option<u32>,
    /// Its blocks at the heights asked for.
    pub blocks: Vec<TreeBlock>,
}

/// A node in `/api/tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its name.
    pub name: String,
    /// Whether it answers.
    pub up: bool,
    /// Its active tip (the last one seen while it was up).
    pub tip: Option<String>,
    /// The tip's height.
    pub height: Option<u32>,
    /// Whether the view follows it by events (true) or by polling (false) (extension).
    pub live: bool,
    /// The testnet's nodes it bans, by name (extension).
    #[serde(default)]
    pub banned: Vec<String>,
    /// Its Byzantine modes, when it runs with `--byzantine` (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<String>,
}

/// How the page draws a block: INTERFACE's `data-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewStatus {
    /// On some node's active chain.
    Active,
    /// On no node's active chain, and invalid on none.
    Stale,
    /// On no node's active chain and invalid on some.
    Invalid,
}

/// A block of the merged tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedBlock {
    /// Its hash.
    pub hash: String,
    /// Its parent's hash.
    pub parent: String,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u64,
    /// Transactions, when some node has the body.
    pub txs: Option<usize>,
    /// Nodes on whose active chain it is.
    pub active_on: Vec<String>,
    /// Nodes that know it (header or body).
    pub known_by: Vec<String>,
    /// Nodes that hold it invalid.
    pub invalid_on: Vec<String>,
    /// Its overall status (extension).
    pub status: ViewStatus,
    /// The column the page draws it in, 0 = the chain most nodes are on (extension).
    pub lane: usize,
}

/// A folded run of blocks: every block from `bottom` up to `top` (inclusive) is on every
/// node's active chain, is nobody's tip, no fork starts there, and nothing else exists at
/// those heights, so the page draws one "N blocks" box instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// The newest block of the run.
    pub top: String,
    /// Its height.
    pub top_height: u32,
    /// The oldest block of the run.
    pub bottom: String,
    /// Its height.
    pub bottom_height: u32,
    /// How many blocks it hides.
    pub count: u32,
}

/// One reorganisation a node went through (extension of `/api/tree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reorg {
    /// The node.
    pub node: String,
    /// Blocks disconnected.
    pub depth: usize,
    /// The tip it left.
    pub from: String,
    /// The tip it moved to.
    pub to: String,
    /// When the view saw it, Unix ms.
    pub time_ms: u64,
}

/// `GET /api/tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeView {
    /// Every node of the testnet, in testnet order.
    pub nodes: Vec<NodeEntry>,
    /// Every block some node knows at height ≥ `from`, by height then hash.
    pub blocks: Vec<MergedBlock>,
    /// The lowest height included (extension).
    pub from: u32,
    /// Folded runs (extension).
    pub folds: Vec<Fold>,
    /// Number of lanes (extension).
    pub lanes: usize,
    /// Number of stale blocks among `blocks` (extension).
    pub stale: usize,
    /// Recent reorganisations, oldest first (extension).
    pub reorgs: Vec<Reorg>,
}

impl TreeView {
    /// The block `hash`, if included.
    pub fn block(&self, hash: &str) -> Option<&MergedBlock> {
        self.blocks.iter().find(|b| b.hash == hash)
    }
}

/// The default lowest height of `/api/tree`: 100 below the highest tip.
pub fn default_from(snapshots: &[NodeSnapshot]) -> u32 {
    snapshots
        .iter()
        .filter_map(|s| s.height)
        .max()
        .unwrap_or(0)
        .saturating_sub(100)
}

/// Merges the nodes' trees at heights ≥ `from`, lays out lanes and folds. Reorgs are left
/// empty for the caller to fill.
pub fn merge(snapshots: &[NodeSnapshot], from: u32) -> TreeView {
    let mut blocks: Vec<MergedBlock> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for node in snapshots {
        for b in node.blocks.iter().filter(|b| b.height >= from) {
            let i = *index.entry(b.hash.as_str()).or_insert_with(|| {
                blocks.push(MergedBlock {
                    hash: b.hash.clone(),
                    parent: b.parent.clone(),
                    height: b.height,
                    time: b.time,
                    txs: None,
                    active_on: Vec::new(),
                    known_by: Vec::new(),
                    invalid_on: Vec::new(),
                    status: ViewStatus::Stale,
                    lane: 0,
                });
                blocks.len() - 1
            });
            let m = &mut blocks[i];
            m.txs = m.txs.or(b.txs);
            if !m.known_by.contains(&node.name) {
                m.known_by.push(node.name.clone());
            }
            match b.status {
                BlockStatus::Active if !m.active_on.contains(&node.name) => {
                    m.active_on.push(node.name.clone())
                }
                BlockStatus::Invalid if !m.invalid_on.contains(&node.name) => {
                    m.invalid_on.push(node.name.clone())
                }
                _ => {}
            }
        }
    }
    for m in &mut blocks {
        m.status = if !m.active_on.is_empty() {
            ViewStatus::Active
        } else if !m.invalid_on.is_empty() {
            ViewStatus::Invalid
        } else {
            ViewStatus::Stale
        };
    }
    blocks.sort_by(|a, b| (a.height, &a.hash).cmp(&(b.height, &b.hash)));
    let nodes: Vec<NodeEntry> = snapshots
        .iter()
        .map(|s| NodeEntry {
            name: s.name.clone(),
            up: s.up,
            tip: s.tip.clone(),
            height: s.height,
            live: s.live,
            banned: banned_names(s, snapshots),
            byzantine: s.byzantine.clone(),
        })
        .collect();
    let stale = blocks
        .iter()
        .filter(|b| b.status == ViewStatus::Stale)
        .count();
    let mut view = TreeView {
        nodes,
        blocks,
        from,
        folds: Vec::new(),
        lanes: 0,
        stale,
        reorgs: Vec::new(),
    };
    super::layout::lay_out(&mut view);
    view
}

/// The names of the nodes among `all` whose peer ids `node` bans (peers outside the testnet
/// are not named).
fn banned_names(node: &NodeSnapshot, all: &[NodeSnapshot]) -> Vec<String> {
    let mut names: Vec<String> = all
        .iter()
        .filter(|o| {
            o.peer_id
                .as_ref()
                .is_some_and(|id| node.banned.contains(id))
        })
        .map(|o| o.name.clone())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A block as node `status` sees it.
    pub fn tb(hash: &str, parent: &str, height: u32, status: BlockStatus) -> TreeBlock {
        TreeBlock {
            hash: hash.into(),
            parent: parent.into(),
            height,
            time: 1_700_000_000 + u64::from(height),
            txs: Some(1),
            status,
            first_seen_ms: None,
        }
    }

    pub fn node(name: &str, tip: &str, height: u32, blocks: Vec<TreeBlock>) -> NodeSnapshot {
        NodeSnapshot {
            name: name.into(),
            peer_id: Some(format!("id-{name}")),
            up: true,
            tip: Some(tip.into()),
            height: Some(height),
            blocks,
            ..NodeSnapshot::default()
        }
    }

    /// g ← a ← b1 (node0's tip) and a ← c1 ← c2 (node1's tip); node1 also has x on c1,
    /// which it found invalid, and node0 knows c1 only as a header.
    pub fn forked() -> Vec<NodeSnapshot> {
        use BlockStatus::*;
        vec![
            node(
                "node0",
                "b1",
                2,
                vec![
                    tb("g", "", 0, Active),
                    tb("a", "g", 1, Active),
                    tb("b1", "a", 2, Active),
                    TreeBlock {
                        txs: None,
                        ..tb("c1", "a", 2, HeadersOnly)
                    },
                ],
            ),
            node(
                "node1",
                "c2",
                3,
                vec![
                    tb("g", "", 0, Active),
                    tb("a", "g", 1, Active),
                    tb("c1", "a", 2, Active),
                    tb("c2", "c1", 3, Active),
                    tb("x", "c1", 3, Invalid),
                ],
            ),
        ]
    }

    fn names(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_node_lists_the_testnet_nodes_it_bans_by_name() {
        let mut nodes = forked();
        nodes[0].banned = vec!["id-node1".into(), "someone-outside".into()];
        nodes[1].byzantine = Some("invalid-blocks".into());
        let view = merge(&nodes, 0);
        assert_eq!(view.nodes[0].banned, ["node1"]);
        assert!(view.nodes[1].banned.is_empty());
        assert_eq!(view.nodes[1].byzantine.as_deref(), Some("invalid-blocks"));
        assert_eq!(view.nodes[0].byzantine, None);
    }

    #[test]
    fn forked_trees_merge_with_who_is_on_what() {
        let view = merge(&forked(), 0);
        let hashes: Vec<&str> = view.blocks.iter().map(|b| b.hash.as_str()).collect();
        assert_eq!(hashes, ["g", "a", "b1", "c1", "c2", "x"]);
        let a = view.block("a").unwrap();
        assert_eq!(names(&a.active_on), ["node0", "node1"]);
        assert_eq!(a.status, ViewStatus::Active);
        let b1 = view.block("b1").unwrap();
        assert_eq!(names(&b1.active_on), ["node0"]);
        assert_eq!(names(&b1.known_by), ["node0"]);
        let c1 = view.block("c1").unwrap();
        assert_eq!(names(&c1.active_on), ["node1"]);
        assert_eq!(names(&c1.known_by), ["node0", "node1"]);
        assert_eq!(
            c1.txs,
            Some(1),
            "the body count comes from the node that has it"
        );
        let x = view.block("x").unwrap();
        assert_eq!(names(&x.invalid_on), ["node1"]);
        assert!(x.active_on.is_empty());
        assert_eq!(x.status, ViewStatus::Invalid);
        assert_eq!(view.stale, 0);
        assert_eq!(view.nodes[0].tip.as_deref(), Some("b1"));
        assert_eq!(view.nodes[1].height, Some(3));
    }

    #[test]
    fn after_convergence_the_losing_branch_is_stale() {
        use BlockStatus::*;
        let mut nodes = forked();
        nodes[0] = node(
            "node0",
            "c2",
            3,
            vec![
                tb("g", "", 0, Active),
                tb("a", "g", 1, Active),
                tb("b1", "a", 2, Side),
                tb("c1", "a", 2, Active),
                tb("c2", "c1", 3, Active),
            ],
        );
        let view = merge(&nodes, 0);
        let b1 = view.block("b1").unwrap();
        assert_eq!(b1.status, ViewStatus::Stale);
        assert!(b1.active_on.is_empty());
        assert_eq!(view.stale, 1);
        assert_eq!(
            names(&view.block("c2").unwrap().active_on),
            ["node0", "node1"]
        );
    }

    #[test]
    fn from_cuts_lower_heights_and_defaults_to_a_hundred_below_the_top() {
        let view = merge(&forked(), 2);
        assert!(view.blocks.iter().all(|b| b.height >= 2));
        assert_eq!(view.from, 2);
        assert_eq!(default_from(&forked()), 0);
        let mut high = forked();
        high[1].height = Some(250);
        assert_eq!(default_from(&high), 150);
    }
}
