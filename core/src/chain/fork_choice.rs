//! Fork choice: the active chain is the one with the most cumulative work; between tips of
//! equal work, the one whose chain became available first wins (so a node never flips
//! between equal chains, and a miner gains nothing by withholding an equal-work block).

use crate::block_index::BlockEntry;
use crate::hash::BlockHash;
use crate::pow::Work;
use std::cmp::Reverse;
use std::collections::BTreeSet;

type Key = (Reverse<Work>, u64, BlockHash);

/// The set of blocks that could be the active tip: bodies of their whole chain present,
/// not known invalid. Ordered best first.
#[derive(Default, Debug, Clone)]
pub struct ForkChoice {
    candidates: BTreeSet<Key>,
}

fn key(entry: &BlockEntry) -> Key {
    (Reverse(entry.chainwork), entry.seq, entry.hash)
}

impl ForkChoice {
    /// Adds a candidate tip.
    pub fn insert(&mut self, entry: &BlockEntry) {
        debug_assert!(entry.seq > 0 && !entry.validity.is_invalid());
        self.candidates.insert(key(entry));
    }

    /// Removes a candidate (e.g. found invalid).
    pub fn remove(&mut self, entry: &BlockEntry) {
        self.candidates.remove(&key(entry));
    }

    /// The best tip: most work, then first seen.
    pub fn best_tip(&self) -> Option<BlockHash> {
        self.candidates.first().map(|(_, _, hash)| *hash)
    }

    /// Drops candidates with less work than `tip`: they can only matter again after an
    /// `invalidate`, which rebuilds the set.
    pub fn prune_below(&mut self, tip: &BlockEntry) {
        // Keys sort by descending work, so everything after this bound has less work.
        let worse = self
            .candidates
            .split_off(&(Reverse(tip.chainwork), u64::MAX, BlockHash::ZERO));
        drop(worse);
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.candidates.clear();
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }
}
