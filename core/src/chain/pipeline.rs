//! Importing blocks that arrive together (a sync batch, a bench's chain) with each block's
//! context-free checks run one block ahead, on another thread, while the chain thread
//! connects the block before it.
//!
//! [`check_block`](crate::validation::check_block) hashes every transaction and walks every
//! rule that needs no chain; done on the chain thread, it runs between two blocks'
//! verifications with the verification pool idle. [`import_in_order`] runs it on a checker thread instead, a block or two
//! ahead ([`AHEAD`]), so it overlaps the previous block's signature checks. The
//! verdicts and the order of imports are exactly those of calling
//! [`ChainState::accept_block`] on each block in turn: the checks are a pure function of
//! the block and the parameters, and [`ChainState::accept_prechecked`] runs everything else
//! `accept_block` runs, in the same order.

use super::outcome::{ChainError, ImportReport};
use super::state::ChainState;
use crate::block::{Block, BlockHeader};
use crate::hash::BlockHash;
use crate::params::ChainParams;
use crate::store::ChainStore;
use crate::validation::{BlockError, CheckedBlock, check_hashed_block};
use std::ops::ControlFlow;
use std::sync::mpsc;

/// Checked blocks that may wait for the chain thread. The checker then checks one more and
/// waits to hand it over, so at most `AHEAD + 1` blocks are checked ahead of the one being
/// imported: enough to overlap a block's checks with the previous block's connection, and
/// each is a block's worth of memory.
pub const AHEAD: usize = 1;

/// A block with its context-free verdict, ready for [`ChainState::accept_prechecked`].
#[derive(Debug)]
pub struct Prechecked {
    hash: BlockHash,
    header: BlockHeader,
    txs: usize,
    size: usize,
    checked: Result<CheckedBlock, BlockError>,
}

impl Prechecked {
    /// Runs [`check_block`] on `block` (on any thread).
    pub fn new(block: Block, params: &ChainParams) -> Self {
        let hash = block.block_hash();
        Prechecked {
            hash,
            header: block.header,
            txs: block.txs.len(),
            size: block.encoded_size(),
            checked: check_hashed_block(block, hash, params),
        }
    }

    /// The block's hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// Its header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// Its number of transactions.
    pub fn txs(&self) -> usize {
        self.txs
    }

    /// Its encoded size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The block, when it passed the context-free checks.
    pub fn block(&self) -> Option<&Block> {
        self.checked.as_ref().ok().map(CheckedBlock::block)
    }

    pub(super) fn into_checked(self) -> Result<CheckedBlock, BlockError> {
        self.checked
    }
}

/// Hands `blocks`, in order, to `import` with their context-free checks done on a checker
/// thread in advance ([`AHEAD`]). Stops at the first `Break`, whose value it
/// returns; the checker then stops too, and the blocks after it are never checked.
pub fn import_in_order<R>(
    params: &ChainParams,
    blocks: impl IntoIterator<Item = Block, IntoIter: Send>,
    mut import: impl FnMut(Prechecked) -> ControlFlow<R>,
) -> Option<R> {
    let blocks = blocks.into_iter();
    std::thread::scope(|scope| {
        let (sender, checked) = mpsc::sync_channel(AHEAD);
        scope.spawn(move || {
            for block in blocks {
                // The receiver is gone once `import` broke off: nothing more is wanted.
                if sender.send(Prechecked::new(block, params)).is_err() {
                    break;
                }
            }
        });
        checked.into_iter().find_map(|pre| match import(pre) {
            ControlFlow::Break(value) => Some(value),
            ControlFlow::Continue(()) => None,
        })
    })
}

impl<S: ChainStore> ChainState<S> {
    /// [`accept_block`](Self::accept_block) for a block whose context-free checks already
    /// ran ([`Prechecked::new`], perhaps on another thread): the same verdicts, the same
    /// report.
    pub fn accept_prechecked(
        &mut self,
        block: Prechecked,
        now: u64,
    ) -> Result<ImportReport, ChainError> {
        self.accept_checked(block.hash, |_| block.into_checked(), now)
    }
}

#[cfg(test)]
mod tests;
