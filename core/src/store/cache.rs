//! [`CoinCache`]: a write-back UTXO cache in front of a store (`cairn node --dbcache MB`;
//! Bitcoin Core's `CCoinsViewCache` over `CCoinsViewDB`).
//!
//! **What is deferred.** Block data goes straight through: index entries, bodies and undo
//! data of every batch reach the inner store at once (synced, or in a group commit). The
//! UTXO part of each batch — coins created and spent, undo data of disconnected blocks to
//! delete, and the tip pointer — stays in memory, and reaches the inner store in one atomic
//! batch at a flush: before a batch that finds the cache over its budget, or when its owner
//! calls [`CoinCache::flush`] (the node: every 30 s, before every snapshot read, at
//! shutdown). A coin created and spent between two flushes never touches the disk.
//!
//! **Crash safety.** The inner store always holds a consistent UTXO set together with the
//! tip it belongs to (the last flush), and every block connected since is durable in the
//! block index, marked valid, with its body and undo data. [`ChainState::open`] resumes at
//! the stored tip and connects the most-work chain again, so a block acknowledged before a
//! crash is back on the active chain after it (the same tip, or an extension), with the
//! UTXO set a replay gives. Undo data is deleted only at a flush, so the stored tip's
//! blocks can still be disconnected when the most-work chain moved to another branch, and
//! an `invalidateblock` whose tip pointer never reached the disk is redone from the index
//! entry that did.
//!
//! **Reads** see the cache first: a cached coin, or a marker that it was spent, wins over
//! the inner store. Coins the cache does not hold are read from the inner store and not
//! kept (rocksdb has its own block cache), so the cache holds exactly what changed since
//! the last flush and its size follows the blocks connected, not the reads.
//!
//! **Freshness.** An entry is *fresh* when the inner store does not hold its outpoint: a
//! fresh coin that is spent is simply forgotten. A coin added where the cache has no entry
//! is fresh, because the chain state never adds an outpoint the store holds unspent (a
//! coinbase commits to its height, so txids do not repeat; disconnecting restores only
//! coins its block spent).
//!
//! [`ChainState::open`]: crate::chain::ChainState::open

use super::{BlockReader, BlockUndo, ChainWriter, Coin, StoreBatch, StoreError, UtxoReader};
use crate::block::Block;
use crate::block_index::BlockEntry;
use crate::chain::GroupWriter;
use crate::hash::BlockHash;
use crate::tx::OutPoint;
use std::collections::{HashMap, HashSet};

/// One MiB, the unit of `--dbcache`.
pub const MIB: usize = 1 << 20;

/// A coin the cache holds: unspent (`Some`) or spent since the last flush (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    coin: Option<Coin>,
    /// The inner store does not hold this outpoint.
    fresh: bool,
}

/// A write-back UTXO cache over `S` (see the module docs). With a budget of 0 it holds
/// nothing and every batch goes through whole.
#[derive(Debug)]
pub struct CoinCache<S> {
    inner: S,
    budget_bytes: usize,
    coins: HashMap<OutPoint, Entry>,
    /// Undo data to delete at the next flush.
    undo_deleted: HashSet<BlockHash>,
    /// The tip of the last batch, when it is newer than the inner store's.
    tip: Option<BlockHash>,
    /// The inner store has a tip: until it does (a store being created), batches go
    /// through whole, so that it never holds blocks without a tip to resume from.
    inner_has_tip: bool,
    flushes: u64,
    coin_writes: u64,
}

impl<S: BlockReader + UtxoReader + ChainWriter> CoinCache<S> {
    /// A cache of at most `budget_bytes` in front of `inner` (0: no cache).
    pub fn new(inner: S, budget_bytes: usize) -> Self {
        CoinCache {
            inner,
            budget_bytes,
            coins: HashMap::new(),
            undo_deleted: HashSet::new(),
            tip: None,
            inner_has_tip: false,
            flushes: 0,
            coin_writes: 0,
        }
    }

    /// The store behind the cache. Its UTXO set and tip are those of the last flush.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The store behind the cache, dropping whatever was not flushed (what a crash leaves).
    pub fn into_inner_unflushed(self) -> S {
        self.inner
    }

    /// Memory the cache's tables take now (their allocated capacity), in bytes.
    pub fn usage_bytes(&self) -> usize {
        // hashbrown keeps one control byte per bucket beside each (key, value) slot, and a
        // table of capacity c has about 8/7·c buckets.
        let table = |capacity: usize, slot: usize| capacity * 8 / 7 * (slot + 1);
        table(
            self.coins.capacity(),
            std::mem::size_of::<(OutPoint, Entry)>(),
        ) + table(
            self.undo_deleted.capacity(),
            std::mem::size_of::<BlockHash>(),
        )
    }

    /// The budget given to [`new`](Self::new), in bytes.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Coin changes (created or spent) held since the last flush.
    pub fn coin_changes(&self) -> usize {
        self.coins.len()
    }

    /// Whether nothing waits for a flush: no coin change, undo delete or tip.
    pub fn is_flushed(&self) -> bool {
        self.coins.is_empty() && self.undo_deleted.is_empty() && self.tip.is_none()
    }

    /// Flushes completed so far.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Coin records (puts and deletes) written to the inner store so far: what the cache
    /// saves is this figure against a budget of 0.
    pub fn coin_writes(&self) -> u64 {
        self.coin_writes
    }

    /// Writes everything the cache holds to the inner store in one atomic batch with the
    /// tip it belongs to, then empties the cache. On failure the cache is unchanged.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.is_flushed() {
            return Ok(());
        }
        let mut coins_added = Vec::new();
        let mut coins_spent = Vec::new();
        for (outpoint, entry) in &self.coins {
            match entry.coin {
                Some(coin) => coins_added.push((*outpoint, coin)),
                None => coins_spent.push(*outpoint),
            }
        }
        let records = (coins_added.len() + coins_spent.len()) as u64;
        self.inner.write(StoreBatch {
            coins_added,
            coins_spent,
            undo_delete: self.undo_deleted.iter().copied().collect(),
            tip: self.tip,
            ..Default::default()
        })?;
        self.coin_writes += records;
        self.coins = HashMap::new();
        self.undo_deleted = HashSet::new();
        self.tip = None;
        self.flushes += 1;
        Ok(())
    }

    fn inner_has_tip(&mut self) -> Result<bool, StoreError> {
        if !self.inner_has_tip {
            self.inner_has_tip = self.inner.tip()?.is_some();
        }
        Ok(self.inner_has_tip)
    }

    fn spend(&mut self, outpoint: OutPoint) {
        match self.coins.get_mut(&outpoint) {
            Some(entry) if entry.fresh => {
                self.coins.remove(&outpoint);
            }
            Some(entry) => entry.coin = None,
            None => {
                self.coins.insert(
                    outpoint,
                    Entry {
                        coin: None,
                        fresh: false,
                    },
                );
            }
        }
    }

    fn add(&mut self, outpoint: OutPoint, coin: Coin) {
        self.coins
            .entry(outpoint)
            .and_modify(|entry| entry.coin = Some(coin))
            .or_insert(Entry {
                coin: Some(coin),
                fresh: true,
            });
    }
}

impl<S: BlockReader> BlockReader for CoinCache<S> {
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.inner.block(hash)
    }
    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        if self.undo_deleted.contains(hash) {
            return Ok(None);
        }
        self.inner.undo(hash)
    }
    fn load_index(&self) -> Result<Vec<BlockEntry>, StoreError> {
        self.inner.load_index()
    }
    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        match self.tip {
            Some(tip) => Ok(Some(tip)),
            None => self.inner.tip(),
        }
    }
}

impl<S: UtxoReader> UtxoReader for CoinCache<S> {
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        match self.coins.get(outpoint) {
            Some(entry) => Ok(entry.coin),
            None => self.inner.coin(outpoint),
        }
    }

    /// Merges the cache into the inner store's walk, keeping outpoint order.
    fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError> {
        let mut cached: Vec<(&OutPoint, &Entry)> = self.coins.iter().collect();
        cached.sort_unstable_by_key(|(outpoint, _)| **outpoint);
        let mut cached = cached.into_iter().peekable();
        self.inner.for_each_coin(&mut |outpoint, coin| {
            while let Some((next, entry)) = cached.next_if(|(next, _)| *next < outpoint) {
                if let Some(coin) = &entry.coin {
                    f(next, coin);
                }
            }
            match cached.next_if(|(next, _)| *next == outpoint) {
                Some((_, entry)) => {
                    if let Some(coin) = &entry.coin {
                        f(outpoint, coin);
                    }
                }
                None => f(outpoint, coin),
            }
        })?;
        for (outpoint, entry) in cached {
            if let Some(coin) = &entry.coin {
                f(outpoint, coin);
            }
        }
        Ok(())
    }
}

impl<S: BlockReader + UtxoReader + ChainWriter> ChainWriter for CoinCache<S> {
    /// Writes the block data of `batch` through (atomically, durably) and keeps its UTXO
    /// part; flushes first when the cache is over its budget. On `Err` nothing of `batch`
    /// was applied, here or in the inner store.
    fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        if self.budget_bytes == 0 && self.is_flushed() || !self.inner_has_tip()? {
            let has_tip = batch.tip.is_some();
            let records = (batch.coins_added.len() + batch.coins_spent.len()) as u64;
            self.inner.write(batch)?;
            self.inner_has_tip |= has_tip;
            self.coin_writes += records;
            return Ok(());
        }
        if self.usage_bytes() > self.budget_bytes {
            self.flush()?;
        }
        let StoreBatch {
            index,
            blocks,
            coins_added,
            coins_spent,
            undo_put,
            undo_delete,
            tip,
        } = batch;
        let undo_written: Vec<BlockHash> = undo_put.iter().map(|(hash, _)| *hash).collect();
        if !(index.is_empty() && blocks.is_empty() && undo_put.is_empty()) {
            self.inner.write(StoreBatch {
                index,
                blocks,
                undo_put,
                ..Default::default()
            })?;
        }
        // The order of `MemoryStore::write`: spent before added, undo deletes before puts.
        for outpoint in coins_spent {
            self.spend(outpoint);
        }
        for (outpoint, coin) in coins_added {
            self.add(outpoint, coin);
        }
        self.undo_deleted.extend(undo_delete);
        for hash in &undo_written {
            self.undo_deleted.remove(hash);
        }
        if tip.is_some() {
            self.tip = tip;
        }
        Ok(())
    }
}

/// A group commit covers the block data written through; a flush inside the group is one
/// more batch of it, durable with the rest at the commit.
impl<S: GroupWriter> GroupWriter for CoinCache<S> {
    fn begin_group(&mut self) {
        self.inner.begin_group();
    }
    fn commit_group(&mut self) -> Result<(), StoreError> {
        self.inner.commit_group()
    }
}

#[cfg(test)]
mod tests;
