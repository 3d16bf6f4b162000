//! One synced write per block: within an operation ([`ChainState::operation`]) the index
//! entries and bodies that storing blocks produces wait in [`PendingWrite`] and go to the
//! store at the front of the operation's next batch — connecting the block, usually — or
//! when the operation ends. A block that arrives, is stored and connected costs one atomic,
//! durable batch instead of two.
//!
//! Nothing is lost by waiting: the operation reports nothing (no tip change, no outcome)
//! until it returns, and it returns only after everything pending was written. A crash
//! before then loses a block nobody was told about. Every write of the chain state goes
//! through [`ChainState::write`], so the pending entries always land before the later ones
//! of the same operation and, in the one batch, a later entry for a key wins (as both
//! stores apply a batch in order).

use super::ChainState;
use crate::block::Block;
use crate::block_index::BlockEntry;
use crate::hash::BlockHash;
use crate::store::{ChainStore, StoreBatch, StoreError};
use std::sync::Arc;

/// Index entries and bodies stored by the running operation, not yet written.
#[derive(Default)]
pub(super) struct PendingWrite {
    index: Vec<BlockEntry>,
    blocks: Vec<(BlockHash, Arc<Block>)>,
}

impl<S: ChainStore> ChainState<S> {
    /// Writes `batch` atomically and durably, preceded by whatever the operation deferred.
    pub(super) fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        let Some(pending) = self.pending.as_mut().map(std::mem::take) else {
            return self.store.write(batch);
        };
        if pending.index.is_empty() && pending.blocks.is_empty() {
            return self.store.write(batch);
        }
        let mut index = pending.index;
        index.extend(batch.index);
        let mut blocks: Vec<(BlockHash, &Block)> =
            pending.blocks.iter().map(|(h, b)| (*h, &**b)).collect();
        blocks.extend(batch.blocks);
        self.store.write(StoreBatch {
            index,
            blocks,
            ..batch
        })
    }

    /// Stores index entries (and a body) with the operation's next batch; outside an
    /// operation, at once.
    pub(super) fn write_deferred(
        &mut self,
        index: Vec<BlockEntry>,
        block: Option<(BlockHash, Arc<Block>)>,
    ) -> Result<(), StoreError> {
        match &mut self.pending {
            Some(pending) => {
                pending.index.extend(index);
                pending.blocks.extend(block);
                Ok(())
            }
            None => self.store.write(StoreBatch {
                index,
                blocks: block.iter().map(|(h, b)| (*h, &**b)).collect(),
                ..Default::default()
            }),
        }
    }

    /// Writes what the operation deferred, if anything.
    pub(super) fn flush_pending(&mut self) -> Result<(), StoreError> {
        let has_pending = self
            .pending
            .as_ref()
            .is_some_and(|p| !p.index.is_empty() || !p.blocks.is_empty());
        if has_pending {
            self.write(StoreBatch::default())?;
        }
        Ok(())
    }
}
