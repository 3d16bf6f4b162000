//! Blocks that arrived before their parent. Bounded, oldest evicted first: a peer cannot
//! make the node hold unbounded memory by sending blocks of an unknown chain.

use crate::hash::BlockHash;
use crate::validation::CheckedBlock;
use std::collections::{HashMap, VecDeque};

/// Most orphan blocks held at once.
pub const MAX_ORPHAN_BLOCKS: usize = 64;
/// Most bytes of orphan blocks held at once.
pub const MAX_ORPHAN_BYTES: usize = 16 * 1024 * 1024;

/// The orphan pool.
#[derive(Default, Debug)]
pub struct OrphanPool {
    blocks: HashMap<BlockHash, (CheckedBlock, usize)>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    order: VecDeque<BlockHash>,
    bytes: usize,
}

impl OrphanPool {
    /// Holds `block` (whose parent is unknown); evicts the oldest when full.
    pub fn insert(&mut self, block: CheckedBlock, size: usize) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) || size > MAX_ORPHAN_BYTES {
            return;
        }
        while self.blocks.len() >= MAX_ORPHAN_BLOCKS || self.bytes + size > MAX_ORPHAN_BYTES {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.remove(&oldest);
                }
                None => break,
            }
        }
        self.by_parent
            .entry(block.block().header.prev_blockhash)
            .or_default()
            .push(hash);
        self.blocks.insert(hash, (block, size));
        self.order.push_back(hash);
        self.bytes += size;
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<CheckedBlock> {
        let (block, size) = self.blocks.remove(hash)?;
        self.bytes -= size;
        let parent = block.block().header.prev_blockhash;
        if let Some(siblings) = self.by_parent.get_mut(&parent) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&parent);
            }
        }
        self.order.retain(|h| h != hash);
        Some(block)
    }

    /// Takes out every orphan whose parent is `parent`.
    pub fn take_children(&mut self, parent: &BlockHash) -> Vec<CheckedBlock> {
        let hashes = self.by_parent.remove(parent).unwrap_or_default();
        hashes
            .into_iter()
            .filter_map(|h| {
                let (block, size) = self.blocks.remove(&h)?;
                self.bytes -= size;
                self.order.retain(|o| *o != h);
                Some(block)
            })
            .collect()
    }

    /// Whether `hash` is held.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Number held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The earliest missing ancestor of a held orphan: what sync should ask for.
    pub fn missing_root(&self, hash: &BlockHash) -> Option<BlockHash> {
        let mut cur = self.blocks.get(hash)?.0.block().header.prev_blockhash;
        while let Some((block, _)) = self.blocks.get(&cur) {
            cur = block.block().header.prev_blockhash;
        }
        Some(cur)
    }
}
