//! The miner's policy: what the node does with the blocks it mines (`--strategy`).
//!
//! `honest` announces every block at once. `selfish` is Eyal and Sirer's selfish miner
//! ([`selfish`]): mined blocks go into the node's own chain but are *withheld* — not
//! gossiped, not in the node's status, not served to syncing peers — until the state
//! machine says to publish them. [`Strategy`] maps the machine's branch indexes to block
//! hashes; the chain owner ([`crate::chain_task::NodeState`]) feeds it every block the
//! miner finds and every new block from a peer, and announces what it returns.

pub mod selfish;

use cairn_core::BlockHash;
use clap::ValueEnum;
use selfish::{SelfishAction, SelfishMachine};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Which policy the miner follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Announce every block as soon as it is found.
    #[default]
    Honest,
    /// Withhold blocks and publish them by Eyal–Sirer's selfish-mining algorithm.
    Selfish,
}

/// The policy with the state it needs.
#[derive(Debug, Clone, Default)]
pub struct Strategy {
    kind: StrategyKind,
    machine: SelfishMachine,
    /// The private branch, first block above the fork point first.
    branch: Vec<BlockHash>,
    /// Height of the fork point (the parent of `branch[0]`).
    base_height: u32,
    /// Height of the best public chain this node knows.
    public_height: u32,
    withheld: HashSet<BlockHash>,
}

impl Strategy {
    /// A fresh policy of `kind`.
    pub fn new(kind: StrategyKind) -> Strategy {
        Strategy {
            kind,
            ..Strategy::default()
        }
    }

    /// Which policy this is.
    pub fn kind(&self) -> StrategyKind {
        self.kind
    }

    /// Whether `hash` was mined here and is not public yet.
    pub fn is_withheld(&self, hash: &BlockHash) -> bool {
        self.withheld.contains(hash)
    }

    /// Heights above this one on the active chain are withheld (`None`: nothing is).
    pub fn public_height_limit(&self) -> Option<u32> {
        (!self.withheld.is_empty()).then(|| self.base_height + self.machine.published())
    }

    /// The miner found `hash` at `height` on the node's tip. Returns whether to withhold it
    /// and the blocks to announce now, in order.
    pub fn on_mined(&mut self, hash: BlockHash, height: u32) -> Option<Vec<BlockHash>> {
        if self.kind == StrategyKind::Honest {
            return None;
        }
        if self.branch.is_empty() {
            self.base_height = height.saturating_sub(1);
            self.public_height = self.public_height.max(self.base_height);
        }
        self.branch.push(hash);
        self.withheld.insert(hash);
        let action = self.machine.on_pool_block();
        Some(self.apply(action))
    }

    /// A new block from a peer, stored at `height` with parent `parent`: when it lengthens
    /// the public chain, the others found a block. Returns the blocks to announce now.
    pub fn on_peer_block(&mut self, height: u32, parent: &BlockHash) -> Vec<BlockHash> {
        if self.kind == StrategyKind::Honest || height <= self.public_height {
            return Vec::new();
        }
        let found = height - self.public_height;
        self.public_height = height;
        if self.branch.is_empty() {
            return Vec::new();
        }
        let on_pool_branch = self.branch.contains(parent);
        let mut out = Vec::new();
        for _ in 0..found {
            let action = self.machine.on_others_block(on_pool_branch);
            out.extend(self.apply(action));
            if self.branch.is_empty() {
                break;
            }
        }
        out
    }

    fn apply(&mut self, action: SelfishAction) -> Vec<BlockHash> {
        let mut out = Vec::new();
        if let SelfishAction::Publish { through } = action {
            for hash in self.branch.iter().take(through as usize) {
                if self.withheld.remove(hash) {
                    out.push(*hash);
                }
            }
            let through = (through as usize).min(self.branch.len()) as u32;
            self.public_height = self.public_height.max(self.base_height + through);
        }
        if self.machine.private_len() == 0 {
            self.branch.clear();
            self.withheld.clear();
        }
        out
    }

    /// What `getmininginfo` shows under `strategy`.
    pub fn info(&self) -> Value {
        match self.kind {
            StrategyKind::Honest => json!({"name": "honest"}),
            StrategyKind::Selfish => json!({
                "name": "selfish",
                "state": self.machine.state().to_string(),
                "private_blocks": self.branch.len(),
                "withheld": self.withheld.len(),
                "public_height": self.public_height,
                "races": self.machine.races(),
                "races_on_pool_branch": self.machine.races_on_pool_branch(),
                "gamma": self.machine.gamma(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    #[test]
    fn honest_withholds_nothing() {
        let mut s = Strategy::new(StrategyKind::Honest);
        assert_eq!(s.on_mined(hash(1), 1), None);
        assert!(!s.is_withheld(&hash(1)));
        assert_eq!(s.public_height_limit(), None);
    }

    #[test]
    fn selfish_withholds_then_overrides_with_its_whole_branch() {
        let mut s = Strategy::new(StrategyKind::Selfish);
        assert_eq!(s.on_mined(hash(1), 11), Some(vec![]));
        assert_eq!(s.on_mined(hash(2), 12), Some(vec![]));
        assert!(s.is_withheld(&hash(1)) && s.is_withheld(&hash(2)));
        assert_eq!(s.public_height_limit(), Some(10));
        let published = s.on_peer_block(11, &hash(0));
        assert_eq!(published, vec![hash(1), hash(2)]);
        assert!(!s.is_withheld(&hash(2)));
        assert_eq!(s.public_height_limit(), None);
        assert_eq!(s.info()["state"], "0");
    }

    #[test]
    fn selfish_races_and_measures_gamma() {
        let mut s = Strategy::new(StrategyKind::Selfish);
        s.on_mined(hash(1), 5);
        assert_eq!(s.on_peer_block(5, &hash(0)), vec![hash(1)]);
        assert_eq!(s.info()["state"], "0'");
        // A block at a height already public is no new find.
        assert!(s.on_peer_block(5, &hash(0)).is_empty());
        assert!(s.on_peer_block(6, &hash(1)).is_empty());
        assert_eq!(s.info()["gamma"], 1.0);
        assert_eq!(s.info()["state"], "0");
    }

    #[test]
    fn a_long_lead_reveals_one_block_per_public_block() {
        let mut s = Strategy::new(StrategyKind::Selfish);
        for (i, h) in (1..=4).zip(21..) {
            s.on_mined(hash(i), h);
        }
        assert_eq!(s.on_peer_block(21, &hash(0)), vec![hash(1)]);
        assert_eq!(s.public_height_limit(), Some(21));
        assert_eq!(s.on_peer_block(22, &hash(9)), vec![hash(2)]);
        assert_eq!(s.on_peer_block(23, &hash(9)), vec![hash(3), hash(4)]);
        assert_eq!(s.public_height_limit(), None);
    }
}
