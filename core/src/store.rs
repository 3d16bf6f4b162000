//! The storage seam: narrow traits the chain state reads and writes through, and an
//! in-memory implementation for tests and tools. The node implements the same traits on
//! rocksdb; `testkit::store_conformance` (feature `testkit`) is one test suite both must
//! pass. It lives there, not here, because it drives a real chain state over the store and
//! the chain state is built on this module.
//!
//! `Option` means "not there"; `Err` means "the store failed". [`CoinCache`] is a
//! write-back UTXO cache in front of any store (`cairn node --dbcache`).

use crate::amount::Amount;
use crate::block::Block;
use crate::block_index::BlockEntry;
use crate::hash::{BlockHash, Hash256, ShortLivedHasher};
use crate::tx::OutPoint;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Re-exported: the store keeps coins, and callers name them through it.
pub use crate::utxo::Coin;

mod cache;
pub use cache::{CoinCache, MIB};

/// What disconnecting a block needs: the coins its inputs spent, in input order.
#[derive(Clone, PartialEq, Eq, Debug, Default, bincode::Encode, bincode::Decode)]
pub struct BlockUndo {
    /// Spent coins with their outpoints, in the order the block spent them.
    pub spent: Vec<(OutPoint, Coin)>,
}

/// The store failed (I/O, corruption). Fatal for the operation; never a consensus verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

/// Reads blocks and the block index.
pub trait BlockReader {
    /// A stored block body.
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError>;
    /// Undo data of a connected block.
    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError>;
    /// Every block index entry (loaded once at start).
    fn load_index(&self) -> Result<Vec<BlockEntry>, StoreError>;
    /// The active tip the last write recorded.
    fn tip(&self) -> Result<Option<BlockHash>, StoreError>;
}

/// Reads the UTXO set.
pub trait UtxoReader {
    /// The unspent coin at `outpoint`.
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError>;
    /// Visits every coin in outpoint order (for [`UtxoStats`]).
    fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError>;
}

/// One atomic change to the store: everything in it is written, or nothing is.
#[derive(Default, Debug)]
pub struct StoreBatch<'a> {
    /// Block index entries to insert or overwrite.
    pub index: Vec<BlockEntry>,
    /// Block bodies to store.
    pub blocks: Vec<(BlockHash, &'a Block)>,
    /// Coins created.
    pub coins_added: Vec<(OutPoint, Coin)>,
    /// Coins spent (deleted).
    pub coins_spent: Vec<OutPoint>,
    /// Undo data to store.
    pub undo_put: Vec<(BlockHash, BlockUndo)>,
    /// Undo data to delete.
    pub undo_delete: Vec<BlockHash>,
    /// New active tip.
    pub tip: Option<BlockHash>,
}

/// Writes atomically.
pub trait ChainWriter {
    /// Applies `batch` atomically and durably. A [`CoinCache`] keeps the UTXO part and the
    /// tip in memory until it flushes, and writes the rest through: what it acknowledges is
    /// then durable as block data, from which reopening the chain connects it again.
    fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError>;
}

/// Everything the chain state needs of a store.
pub trait ChainStore: BlockReader + UtxoReader + ChainWriter {}
impl<T: BlockReader + UtxoReader + ChainWriter> ChainStore for T {}

/// An in-memory store. Coins are hashed, not ordered: a block's lookups and changes are
/// what connecting costs, and [`UtxoReader::for_each_coin`] sorts a copy for the rare walk.
#[derive(Default, Debug, Clone)]
pub struct MemoryStore {
    index: HashMap<BlockHash, BlockEntry>,
    blocks: HashMap<BlockHash, Block>,
    coins: HashMap<OutPoint, Coin, ShortLivedHasher>,
    undo: HashMap<BlockHash, BlockUndo>,
    tip: Option<BlockHash>,
    /// Number of successful `write` calls (lets tests check atomicity per block).
    pub writes: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole UTXO set in outpoint order (for tests comparing against a replay).
    pub fn coins(&self) -> BTreeMap<OutPoint, Coin> {
        self.coins.iter().map(|(o, c)| (*o, *c)).collect()
    }
}

impl BlockReader for MemoryStore {
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        Ok(self.blocks.get(hash).cloned())
    }
    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        Ok(self.undo.get(hash).cloned())
    }
    fn load_index(&self) -> Result<Vec<BlockEntry>, StoreError> {
        Ok(self.index.values().cloned().collect())
    }
    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        Ok(self.tip)
    }
}

impl UtxoReader for MemoryStore {
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        Ok(self.coins.get(outpoint).copied())
    }
    fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError> {
        let mut coins: Vec<_> = self.coins.iter().collect();
        coins.sort_unstable_by_key(|(outpoint, _)| **outpoint);
        coins.into_iter().for_each(|(o, c)| f(o, c));
        Ok(())
    }
}

impl ChainWriter for MemoryStore {
    fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        for entry in batch.index {
            self.index.insert(entry.hash, entry);
        }
        for (hash, block) in batch.blocks {
            self.blocks.insert(hash, block.clone());
        }
        for outpoint in batch.coins_spent {
            self.coins.remove(&outpoint);
        }
        for (outpoint, coin) in batch.coins_added {
            self.coins.insert(outpoint, coin);
        }
        for hash in batch.undo_delete {
            self.undo.remove(&hash);
        }
        for (hash, undo) in batch.undo_put {
            self.undo.insert(hash, undo);
        }
        if let Some(tip) = batch.tip {
            self.tip = Some(tip);
        }
        self.writes += 1;
        Ok(())
    }
}

/// Summary of the UTXO set (`gettxoutsetinfo`): equal on converged nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoStats {
    /// Number of unspent outputs.
    pub txouts: u64,
    /// Their total value.
    pub total_amount: Amount,
    /// SHA-256 over every (outpoint, coin) in outpoint order.
    pub hash_serialized: Hash256,
}

impl UtxoStats {
    /// Computes the stats by walking the set in order.
    pub fn compute(reader: &impl UtxoReader) -> Result<UtxoStats, StoreError> {
        let mut hasher = Sha256::new();
        let mut txouts = 0u64;
        let mut total: u128 = 0;
        reader.for_each_coin(&mut |outpoint, coin| {
            hasher.update(outpoint.txid.as_bytes());
            hasher.update(outpoint.vout.to_le_bytes());
            hasher.update(coin.output.amount.to_base().to_le_bytes());
            hasher.update(coin.output.address.0);
            hasher.update(coin.height.to_le_bytes());
            hasher.update([coin.is_coinbase as u8]);
            txouts += 1;
            total += coin.output.amount.to_base() as u128;
        })?;
        Ok(UtxoStats {
            txouts,
            total_amount: Amount::from_base(u64::try_from(total).unwrap_or(u64::MAX)),
            hash_serialized: Hash256(Sha256::digest(hasher.finalize()).into()),
        })
    }
}
