//! What [`ChainState`](crate::chain::ChainState) reports: the outcome of an import, how the
//! active chain moved, the tips of the block tree, and failures that are not consensus
//! verdicts. Plain data, so the node can act on it without reaching into the chain state.

use crate::block::Block;
use crate::hash::{BlockHash, Txid};
use crate::store::StoreError;
use crate::tx::Transaction;
use crate::validation::BlockError;
use std::sync::Arc;

/// Status of a chain tip, as `getchaintips` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TipStatus {
    /// The active tip.
    Active,
    /// Fully validated branch, not active.
    ValidFork,
    /// All bodies present, not fully validated.
    ValidHeaders,
    /// Some bodies missing.
    HeadersOnly,
    /// Invalid.
    Invalid,
}

impl TipStatus {
    /// Bitcoin Core's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            TipStatus::Active => "active",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::ValidHeaders => "valid-headers",
            TipStatus::HeadersOnly => "headers-only",
            TipStatus::Invalid => "invalid",
        }
    }
}

/// A leaf of the block tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTip {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: BlockHash,
    /// Blocks between the tip and the active chain (0 for the active tip).
    pub branchlen: u32,
    /// Status.
    pub status: TipStatus,
}

/// A block that joined or left the active chain, with the hashes the chain state computed
/// while validating it: whoever acts on a [`TipChanged`] neither reads the block back from
/// the store nor hashes its transactions again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedBlock {
    /// Header hash.
    pub hash: BlockHash,
    /// Height.
    pub height: u32,
    /// The block (shared with the chain state's per-operation cache, never copied).
    pub block: Arc<Block>,
    /// Txids of `block.txs`, in block order.
    pub txids: Arc<[Txid]>,
}

/// How the active chain moved, with the blocks that moved.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TipChanged {
    /// Blocks disconnected, newest first.
    pub reverted: Vec<HashedBlock>,
    /// Blocks connected, oldest first.
    pub connected: Vec<HashedBlock>,
    /// Non-coinbase transactions of the reverted blocks, oldest block first: candidates for
    /// the mempool (the node re-validates them; some may now conflict).
    pub returned_txs: Vec<Transaction>,
}

impl TipChanged {
    /// Depth of the reorganisation (0 when the tip only advanced).
    pub fn reorg_depth(&self) -> usize {
        self.reverted.len()
    }

    /// Hashes of the disconnected blocks, newest first.
    pub fn reverted_hashes(&self) -> Vec<BlockHash> {
        self.reverted.iter().map(|b| b.hash).collect()
    }

    /// Hashes of the connected blocks, oldest first.
    pub fn connected_hashes(&self) -> Vec<BlockHash> {
        self.connected.iter().map(|b| b.hash).collect()
    }
}

/// What happened to a block handed to
/// [`ChainState::accept_block`](crate::chain::ChainState::accept_block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// It is now on the active chain.
    Active,
    /// Stored and valid so far, but not on the active chain.
    SideChain,
    /// Its parent is unknown; held in the orphan pool.
    Orphan,
    /// Already known.
    AlreadyHave,
    /// It broke a rule.
    Invalid(BlockError),
}

/// The outcome of an import plus any tip change it caused (possibly through orphans it
/// released, or through a reorg that failed halfway and went back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// What happened to the block itself.
    pub outcome: ImportOutcome,
    /// How the active chain moved, if it did.
    pub tip_changed: Option<TipChanged>,
    /// Other blocks found invalid on the way (e.g. a released orphan or a descendant).
    pub invalidated: Vec<(BlockHash, BlockError)>,
}

/// What happened to a header handed to
/// [`ChainState::accept_header`](crate::chain::ChainState::accept_header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderOutcome {
    /// Added to the tree.
    New,
    /// Already known.
    AlreadyHave,
    /// It broke a rule.
    Invalid(BlockError),
}

/// Failures of chain operations that are not consensus verdicts.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such block.
    #[error("block {0} not found")]
    UnknownBlock(BlockHash),
    /// The genesis block cannot be invalidated.
    #[error("the genesis block cannot be invalidated")]
    Genesis,
    /// The store holds another network's chain.
    #[error(
        "the data directory holds a chain with genesis {stored}, this network's genesis is {expected}"
    )]
    WrongNetwork {
        /// Genesis hash in the store.
        stored: BlockHash,
        /// This network's.
        expected: BlockHash,
    },
    /// The store is inconsistent.
    #[error("corrupt chain data: {0}")]
    Corrupt(String),
}
