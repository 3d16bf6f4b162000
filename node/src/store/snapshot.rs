//! Long reads on a rocksdb snapshot, off the chain owner's thread.
//!
//! `gettxoutsetinfo`, `getaddressutxos` and `getbalance` walk the whole UTXO set; on the
//! chain thread that would hold up block import for as long as the walk takes. A
//! [`StoreReader`] shares the database and reads a snapshot instead: the coins and the tip
//! pointer come from the same snapshot, and coins reach rocksdb only with their tip (a
//! chain step written through, or a flush of the UTXO cache: one atomic `WriteBatch` with
//! `meta`/`tip` either way), so the tip reported always belongs to the coins counted,
//! whatever the chain thread does meanwhile. `ChainHandle` flushes the cache before it takes
//! a snapshot, so the snapshot is never behind the tip of the moment it was asked for.

use super::{
    CF_COINS, CF_INDEX, CF_META, META_TIP, decode_value, iteration_error, outpoint_from_key,
    outpoint_key,
};
use cairn_core::chain::BlockEntry;
use cairn_core::hash::BlockHash;
use cairn_core::keys::PubkeyHash;
use cairn_core::store::{Coin, StoreError, UtxoReader, UtxoStats};
use cairn_core::tx::OutPoint;
use rocksdb::{ColumnFamily, DB, IteratorMode, ReadOptions, Snapshot};
use std::path::PathBuf;
use std::sync::Arc;

/// A cheap, cloneable read handle on a [`RocksStore`](super::RocksStore)'s database.
///
/// It keeps the database open while it lives; the chain thread still owns all writes.
#[derive(Clone)]
pub struct StoreReader {
    db: Arc<DB>,
    path: PathBuf,
    /// Snapshots wait for an open group commit to be durable.
    gate: Arc<super::group::Gate>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The UTXO set summary and the tip it belongs to, read from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotUtxoStats {
    /// The tip of the snapshot.
    pub tip: BlockHash,
    /// Its height.
    pub height: u32,
    /// The summary of the snapshot's coins.
    pub stats: UtxoStats,
}

/// The coins paying one address, and the tip they were read at, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressCoins {
    /// The tip of the snapshot.
    pub tip: BlockHash,
    /// Its height (for confirmation counts).
    pub height: u32,
    /// The coins, in outpoint order.
    pub coins: Vec<(OutPoint, Coin)>,
}

impl StoreReader {
    pub(super) fn new(db: Arc<DB>, path: PathBuf, gate: Arc<super::group::Gate>) -> StoreReader {
        StoreReader { db, path, gate }
    }

    /// Summarises the UTXO set of a fresh snapshot (the same hash as
    /// `ChainState::utxo_stats` would give at that tip). Blocking: call it from
    /// `spawn_blocking` or a thread of its own.
    pub fn utxo_stats_at_snapshot(&self) -> Result<SnapshotUtxoStats, StoreError> {
        let view = self.view();
        let (tip, height) = view.tip()?;
        let stats = UtxoStats::compute(&view)?;
        Ok(SnapshotUtxoStats { tip, height, stats })
    }

    /// Every coin paying `address` in a fresh snapshot. Blocking, like
    /// [`utxo_stats_at_snapshot`](Self::utxo_stats_at_snapshot).
    pub fn address_coins_at_snapshot(
        &self,
        address: &PubkeyHash,
    ) -> Result<AddressCoins, StoreError> {
        let view = self.view();
        let (tip, height) = view.tip()?;
        let mut coins = Vec::new();
        view.for_each_coin(&mut |outpoint, coin| {
            if coin.output.address == *address {
                coins.push((*outpoint, *coin));
            }
        })?;
        Ok(AddressCoins { tip, height, coins })
    }

    fn view(&self) -> SnapshotView<'_> {
        SnapshotView {
            db: &self.db,
            snapshot: self.gate.when_durable(|| self.db.snapshot()),
        }
    }
}

/// Reads of one snapshot.
struct SnapshotView<'a> {
    db: &'a DB,
    snapshot: Snapshot<'a>,
}

impl SnapshotView<'_> {
    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("RocksStore::open opens every column family in COLUMN_FAMILIES")
    }

    fn get<T: bincode::Decode<()>>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let bytes = self.snapshot.get_pinned_cf(self.cf(cf), key).map_err(|e| {
            StoreError(format!(
                "rocksdb snapshot read failed in column family `{cf}` key {}: {e}",
                hex::encode(key)
            ))
        })?;
        bytes.map(|b| decode_value(cf, key, &b)).transpose()
    }

    /// The snapshot's tip pointer and the height of its index entry.
    fn tip(&self) -> Result<(BlockHash, u32), StoreError> {
        let tip: BlockHash = self
            .get(CF_META, META_TIP)?
            .ok_or_else(|| StoreError("the chain store has no tip".into()))?;
        let entry: BlockEntry = self
            .get(CF_INDEX, tip.as_bytes())?
            .ok_or_else(|| StoreError(format!("the chain store's tip {tip} has no index entry")))?;
        Ok((tip, entry.height))
    }
}

impl UtxoReader for SnapshotView<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.get(CF_COINS, &outpoint_key(outpoint))
    }

    fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError> {
        let mut read = ReadOptions::default();
        // A full scan would evict the lookups' working set from the block cache.
        read.fill_cache(false);
        for item in self
            .snapshot
            .iterator_cf_opt(self.cf(CF_COINS), read, IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| iteration_error(CF_COINS, e))?;
            let outpoint = outpoint_from_key(&key)?;
            let coin: Coin = decode_value(CF_COINS, &key, &value)?;
            f(&outpoint, &coin);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RocksStore;
    use cairn_core::ChainState;
    use cairn_core::params::ChainParams;
    use cairn_core::store::UtxoReader;
    use cairn_core::testkit::TestChain;

    /// The snapshot answers what the chain state answers at the same tip, and a snapshot
    /// taken before more blocks connect still reports its own tip and coins.
    #[test]
    fn snapshot_stats_match_the_chain_and_stay_put_while_it_moves() {
        let dir = tempfile::tempdir().expect("temp dir");
        let params = ChainParams::regtest();
        let mut kit = TestChain::new(params.clone());
        let blocks = kit.build_chain(8);
        let store = RocksStore::open(&dir.path().join("chain")).expect("open store");
        let reader = store.reader();
        let mut chain = ChainState::open(params, store).expect("open chain");
        for b in &blocks[..5] {
            chain.accept_block(b.clone(), kit.now()).expect("accept");
        }
        let at5 = reader.utxo_stats_at_snapshot().expect("snapshot stats");
        assert_eq!(at5.tip, chain.tip().hash);
        assert_eq!(at5.height, 5);
        assert_eq!(at5.stats, chain.utxo_stats().expect("stats"));

        let old = reader.view();
        for b in &blocks[5..] {
            chain.accept_block(b.clone(), kit.now()).expect("accept");
        }
        assert_eq!(old.tip().expect("old tip"), (at5.tip, 5));
        assert_eq!(
            cairn_core::store::UtxoStats::compute(&old).expect("old stats"),
            at5.stats
        );
        drop(old);

        let at8 = reader.utxo_stats_at_snapshot().expect("snapshot stats");
        assert_eq!((at8.tip, at8.height), (chain.tip().hash, 8));
        assert_eq!(at8.stats, chain.utxo_stats().expect("stats"));
        assert_ne!(at8.stats, at5.stats);
    }

    #[test]
    fn address_scan_finds_exactly_the_coins_of_the_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let params = ChainParams::regtest();
        let kit = TestChain::new(params.clone());
        let store = RocksStore::open(&dir.path().join("chain")).expect("open store");
        let reader = store.reader();
        let chain = ChainState::open(params, store).expect("open chain");
        let wanted = kit.key(1).pubkey_hash();
        let mut expected = Vec::new();
        chain
            .store()
            .for_each_coin(&mut |o, c| {
                if c.output.address == wanted {
                    expected.push((*o, *c));
                }
            })
            .expect("walk");
        assert!(!expected.is_empty(), "dev account 1 has a genesis coin");
        let found = reader.address_coins_at_snapshot(&wanted).expect("scan");
        assert_eq!(found.coins, expected);
        assert_eq!((found.tip, found.height), (chain.tip().hash, 0));
    }
}
