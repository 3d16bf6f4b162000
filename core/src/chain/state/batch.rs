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
//! stores apply a batch in order). A batch the store fails to write keeps its pending part
//! for the next write: the in-memory block tree already counts those blocks as stored, so
//! their bodies stay readable ([`ChainState::pending_body`]) until they are.
//!
//! **Group commit.** During sync many blocks arrive together, and one synced write per
//! block would make the disk's sync latency the speed limit. Between
//! [`ChainState::begin_group`] and [`ChainState::commit_group`] a [`GroupWriter`] store
//! still writes every chain step as its own atomic batch, readable at once (the next block
//! spends the coins of the one before), but makes them durable together, with one sync at
//! the commit. A crash before it loses a suffix of whole steps, never part of one: the
//! store reopens on a consistent chain, a prefix of the group. The caller acknowledges
//! nothing of the group (tip, announcements, answers) before the commit returns.

use super::ChainState;
use crate::block::Block;
use crate::block_index::BlockEntry;
use crate::hash::BlockHash;
use crate::store::{ChainStore, CoinCache, StoreBatch, StoreError};
use std::sync::Arc;

/// Index entries and bodies stored in memory, not yet written.
#[derive(Default)]
pub(super) struct PendingWrite {
    index: Vec<BlockEntry>,
    blocks: Vec<(BlockHash, Arc<Block>)>,
}

impl PendingWrite {
    fn is_empty(&self) -> bool {
        self.index.is_empty() && self.blocks.is_empty()
    }
}

/// A store that can make several atomic batches durable with one sync.
pub trait GroupWriter {
    /// From now on, batches are atomic and readable at once but not yet synced.
    fn begin_group(&mut self);
    /// Makes every batch since [`begin_group`](Self::begin_group) durable (one sync), and
    /// syncs each batch again from then on.
    fn commit_group(&mut self) -> Result<(), StoreError>;
}

/// The memory store has nothing to sync.
impl GroupWriter for crate::store::MemoryStore {
    fn begin_group(&mut self) {}
    fn commit_group(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<S: ChainStore + GroupWriter> ChainState<S> {
    /// Starts a group commit (see the module docs): the chain steps until
    /// [`commit_group`](Self::commit_group) are written one atomic batch each and synced
    /// together.
    pub fn begin_group(&mut self) {
        self.store.begin_group();
    }

    /// Ends the group: whatever is pending is written, then everything since
    /// [`begin_group`](Self::begin_group) is made durable. Only after this returns `Ok`
    /// may the group's results be acknowledged.
    pub fn commit_group(&mut self) -> Result<(), StoreError> {
        let flushed = self.flush_pending();
        let committed = self.store.commit_group();
        flushed.and(committed)
    }
}

impl<S: ChainStore> ChainState<CoinCache<S>> {
    /// Writes whatever is pending, then flushes the UTXO cache: the store behind it holds
    /// the current tip and its coins when this returns `Ok`.
    pub fn flush_coins(&mut self) -> Result<(), StoreError> {
        self.flush_pending()?;
        self.store.flush()
    }
}

impl<S: ChainStore> ChainState<S> {
    /// Writes `batch` atomically and durably, preceded by whatever is pending.
    pub(super) fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return self.store.write(batch);
        }
        let pending = std::mem::take(&mut self.pending);
        let mut index = pending.index.clone();
        index.extend(batch.index);
        let mut blocks: Vec<(BlockHash, &Block)> =
            pending.blocks.iter().map(|(h, b)| (*h, &**b)).collect();
        blocks.extend(batch.blocks);
        let result = self.store.write(StoreBatch {
            index,
            blocks,
            ..batch
        });
        if result.is_err() {
            self.pending = pending;
        }
        result
    }

    /// Stores index entries (and a body): with the operation's next batch while an
    /// operation runs, else at once.
    pub(super) fn write_deferred(
        &mut self,
        index: Vec<BlockEntry>,
        block: Option<(BlockHash, Arc<Block>)>,
    ) -> Result<(), StoreError> {
        self.pending.index.extend(index);
        self.pending.blocks.extend(block);
        if self.deferring {
            Ok(())
        } else {
            self.flush_pending()
        }
    }

    /// Writes whatever is pending.
    pub(super) fn flush_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write(StoreBatch::default())
    }

    /// The body of a block stored in memory whose write is still pending.
    pub(super) fn pending_body(&self, hash: &BlockHash) -> Option<Arc<Block>> {
        self.pending
            .blocks
            .iter()
            .find(|(h, _)| h == hash)
            .map(|(_, b)| b.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::block::Block;
    use crate::chain::{ChainState, ImportOutcome};
    use crate::hash::BlockHash;
    use crate::params::ChainParams;
    use crate::store::{
        BlockReader, BlockUndo, ChainWriter, MemoryStore, StoreBatch, StoreError, UtxoReader,
    };
    use crate::testkit::TestChain;
    use crate::tx::OutPoint;
    use crate::utxo::Coin;

    /// A memory store whose writes fail while `failing` is set.
    struct FlakyStore {
        inner: MemoryStore,
        failing: bool,
    }

    impl BlockReader for FlakyStore {
        fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
            self.inner.block(hash)
        }
        fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
            self.inner.undo(hash)
        }
        fn load_index(&self) -> Result<Vec<crate::block_index::BlockEntry>, StoreError> {
            self.inner.load_index()
        }
        fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
            self.inner.tip()
        }
    }
    impl UtxoReader for FlakyStore {
        fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
            self.inner.coin(outpoint)
        }
        fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError> {
            self.inner.for_each_coin(f)
        }
    }
    impl ChainWriter for FlakyStore {
        fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
            if self.failing {
                return Err(StoreError("disk on fire".into()));
            }
            self.inner.write(batch)
        }
    }

    #[test]
    fn a_failed_write_keeps_the_stored_bodies_for_the_next_one() {
        let params = ChainParams::regtest();
        let mut kit = TestChain::new(params.clone());
        let blocks = kit.build_chain(2);
        let store = FlakyStore {
            inner: MemoryStore::new(),
            failing: false,
        };
        let mut chain = ChainState::open(params.clone(), store).unwrap();
        chain.store.failing = true;
        assert!(chain.accept_block(blocks[0].clone(), kit.now()).is_err());
        assert_eq!(
            chain.height(),
            0,
            "nothing connected without a durable write"
        );
        chain.store.failing = false;
        let report = chain.accept_block(blocks[1].clone(), kit.now()).unwrap();
        assert_eq!(report.outcome, ImportOutcome::Active);
        assert_eq!(chain.height(), 2);
        // Everything reached the store: a reopened chain is at the same tip.
        let reopened = ChainState::open(params, chain.into_store().inner).unwrap();
        assert_eq!(reopened.tip().hash, blocks[1].block_hash());
    }
}
