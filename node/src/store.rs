//! The chain store on rocksdb: [`RocksStore`] implements `cairn-core`'s storage traits
//! ([`BlockReader`], [`UtxoReader`], [`ChainWriter`]) and passes the same conformance suite
//! as `MemoryStore`.
//!
//! Layout: one rocksdb database with a column family per kind of record. Every value is in
//! the one Cairn encoding (`cairn_core::encoding`); keys are raw bytes chosen so rocksdb's
//! bytewise order is the order the traits promise.
//!
//! | column family | key                                   | value               |
//! |---------------|---------------------------------------|---------------------|
//! | `index`       | block hash, 32 bytes (internal order) | `BlockEntry`        |
//! | `blocks`      | block hash                            | `Block`             |
//! | `coins`       | txid (32 bytes, internal order) ‖ vout (4 bytes **big**-endian) | `Coin` |
//! | `undo`        | block hash                            | `BlockUndo`         |
//! | `meta`        | `format`, `tip`                       | `String`, `BlockHash` |
//!
//! The vout is big-endian in the key (unlike everywhere else in Cairn) so that bytewise key
//! order equals `OutPoint`'s derived `Ord` (txid bytes, then vout as a number):
//! [`UtxoReader::for_each_coin`] walks rocksdb in key order, and `UtxoStats` hashes must be
//! identical to `MemoryStore`'s.

use cairn_core::block::Block;
use cairn_core::chain::BlockEntry;
use cairn_core::encoding::{decode, encode};
use cairn_core::hash::{BlockHash, Txid};
use cairn_core::store::{
    BlockReader, BlockUndo, ChainWriter, Coin, StoreBatch, StoreError, UtxoReader,
};
use cairn_core::tx::OutPoint;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    ErrorKind, FlushOptions, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod group;
mod integrity;
mod snapshot;
pub use integrity::{Damage, INTEGRITY_CHECK_DEPTH};
pub use snapshot::{AddressCoins, SnapshotUtxoStats, StoreReader};

/// The on-disk format this code reads and writes, stored under `meta`/`format`. A store
/// with any other marker is refused rather than misread.
pub const FORMAT_VERSION: &str = "cairn-store-v1";

/// Column family of block index entries.
const CF_INDEX: &str = "index";
/// Column family of block bodies.
const CF_BLOCKS: &str = "blocks";
/// Column family of the UTXO set.
const CF_COINS: &str = "coins";
/// Column family of undo data.
const CF_UNDO: &str = "undo";
/// Column family of the format marker and the tip pointer.
const CF_META: &str = "meta";
/// Every column family a Cairn store has (besides rocksdb's own `default`, left unused).
const COLUMN_FAMILIES: [&str; 5] = [CF_INDEX, CF_BLOCKS, CF_COINS, CF_UNDO, CF_META];
/// The column family rocksdb always creates.
const CF_DEFAULT: &str = "default";

/// `meta` key of the format marker.
const META_FORMAT: &[u8] = b"format";
/// `meta` key of the active tip.
const META_TIP: &[u8] = b"tip";

/// Length of a `coins` key: txid ‖ vout.
const OUTPOINT_KEY_LEN: usize = 32 + 4;

const MIB: usize = 1024 * 1024;

/// Why a chain store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    /// Something other than a directory is at the path.
    #[error("chain store path {} exists but is not a directory", .path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory cannot be listed or created (permissions, I/O).
    #[error("cannot access chain store directory {}: {source}", .path.display())]
    Inaccessible {
        /// The path given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds something that is not a Cairn store of this format version.
    #[error("{} is not a Cairn chain store: {reason}", .path.display())]
    NotCairnStore {
        /// The path given.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A Cairn store (it has Cairn-only column families) lacks some of its column families.
    #[error("chain store {} is missing column famil{} {}", .path.display(), if .missing.len() == 1 { "y" } else { "ies" }, .missing.join(", "))]
    MissingColumnFamily {
        /// The path given.
        path: PathBuf,
        /// The missing families, sorted.
        missing: Vec<String>,
    },
    /// rocksdb found corruption while opening.
    #[error("chain store {} is corrupt{}: {detail}", .path.display(), in_file(.file.as_deref()))]
    Corrupt {
        /// The path given.
        path: PathBuf,
        /// The damaged file, when rocksdb names it.
        file: Option<PathBuf>,
        /// rocksdb's message.
        detail: String,
    },
    /// Another process (or another handle in this one) holds rocksdb's `LOCK`.
    #[error("datadir {} is locked by another process", .path.display())]
    Locked {
        /// The path given.
        path: PathBuf,
    },
    /// Any other rocksdb failure while opening.
    #[error("cannot open chain store {}: {detail}", .path.display())]
    Rocksdb {
        /// The path given.
        path: PathBuf,
        /// rocksdb's message.
        detail: String,
    },
    /// The store opened but its metadata could not be read or written.
    #[error("cannot initialise chain store {}: {source}", .path.display())]
    Init {
        /// The path given.
        path: PathBuf,
        /// The failed read or write.
        #[source]
        source: StoreError,
    },
}

fn in_file(file: Option<&Path>) -> String {
    file.map(|f| format!(" (file {})", f.display()))
        .unwrap_or_default()
}

/// The node's chain store: rocksdb behind a write-back UTXO cache (`--dbcache`; see
/// `cairn_core::store::CoinCache`). The chain thread flushes it every
/// `chain_task::COIN_FLUSH_INTERVAL`, before snapshot reads and at shutdown.
pub type NodeStore = cairn_core::store::CoinCache<RocksStore>;

/// The chain store on rocksdb. Dropping it closes the database; writes are already durable
/// (see [`ChainWriter::write`]), [`RocksStore::flush`] only shortens the next start.
pub struct RocksStore {
    /// Shared with the [`StoreReader`]s handed out by [`RocksStore::reader`]; the database
    /// closes when the last of them is dropped.
    db: Arc<DB>,
    path: PathBuf,
    /// A group commit is open: batches are written unsynced ([`group`]).
    grouping: bool,
    /// Holds snapshot readers off while a group is not durable.
    gate: Arc<group::Gate>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What is at the path before opening.
enum Found {
    Nothing,
    EmptyDir,
    /// A rocksdb database (it has a `CURRENT` file), Cairn's or not.
    Rocksdb,
    /// A directory of other files: never written into.
    Foreign {
        entries: Vec<String>,
    },
}

impl RocksStore {
    /// Opens the chain store in the directory `path`, creating it if missing.
    ///
    /// `path` is the store's own directory: the node passes `DATADIR/chain` (see
    /// `datadir::DataDir::chain_path`), so the datadir can hold other files. The rule that
    /// keeps us from scribbling into someone's home directory:
    /// - `path` missing or an empty directory: a new store is created there;
    /// - `path` holds a rocksdb database (a `CURRENT` file) whose column families are exactly
    ///   Cairn's and whose `meta`/`format` marker is [`FORMAT_VERSION`]: it is opened;
    /// - anything else is refused with [`StoreOpenError::NotCairnStore`] and left untouched: a
    ///   directory with other files and no rocksdb, a rocksdb with other column families, a
    ///   Cairn store of another format version, or a non-empty store without a marker.
    pub fn open(path: &Path) -> Result<RocksStore, StoreOpenError> {
        let path_buf = path.to_path_buf();
        let not_cairn = |reason: String| StoreOpenError::NotCairnStore {
            path: path_buf.clone(),
            reason,
        };
        let created = match inspect(path)? {
            Found::Nothing => {
                std::fs::create_dir_all(path).map_err(|source| StoreOpenError::Inaccessible {
                    path: path_buf.clone(),
                    source,
                })?;
                true
            }
            Found::EmptyDir => true,
            Found::Foreign { entries } => {
                let first = entries.first().map(String::as_str).unwrap_or_default();
                return Err(not_cairn(format!(
                    "the directory holds {} other entr{} (first `{first}`) and no rocksdb \
                     database; refusing to create a store among them",
                    entries.len(),
                    if entries.len() == 1 { "y" } else { "ies" },
                )));
            }
            Found::Rocksdb => {
                let mut existing =
                    DB::list_cf(&Options::default(), path).map_err(|e| open_error(path, e))?;
                existing.sort();
                let mut expected: Vec<&str> = COLUMN_FAMILIES.to_vec();
                expected.push(CF_DEFAULT);
                expected.sort_unstable();
                let missing: Vec<String> = expected
                    .iter()
                    .filter(|cf| !existing.iter().any(|e| e == *cf))
                    .map(|cf| (*cf).to_owned())
                    .collect();
                if integrity::is_damaged_cairn_store(&existing, &missing) {
                    return Err(StoreOpenError::MissingColumnFamily {
                        path: path_buf.clone(),
                        missing,
                    });
                }
                if existing != expected {
                    return Err(not_cairn(format!(
                        "it is a rocksdb database with column families [{}], not Cairn's [{}]",
                        existing.join(", "),
                        expected.join(", ")
                    )));
                }
                false
            }
        };

        let cache = Cache::new_lru_cache(32 * MIB);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache)));
        let db = DB::open_cf_descriptors(&db_options(), path, descriptors)
            .map_err(|e| open_error(path, e))?;
        let store = RocksStore {
            db: Arc::new(db),
            path: path_buf.clone(),
            grouping: false,
            gate: Arc::default(),
        };
        store.check_format(created)?;
        Ok(store)
    }

    /// A cheap, cloneable handle for long reads on consistent snapshots, off the thread
    /// that owns this store (see [`StoreReader`]).
    pub fn reader(&self) -> StoreReader {
        StoreReader::new(self.db.clone(), self.path.clone(), self.gate.clone())
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes every memtable to disk (for a clean shutdown: the next open replays no WAL).
    pub fn flush(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = COLUMN_FAMILIES.iter().map(|n| self.cf(n)).collect();
        self.db
            .flush_cfs_opt(&cfs, &FlushOptions::default())
            .map_err(|e| {
                StoreError(format!(
                    "rocksdb flush of {} failed: {e}",
                    self.path.display()
                ))
            })
    }

    /// Checks the format marker, writing it into a store this call created.
    fn check_format(&self, created: bool) -> Result<(), StoreOpenError> {
        let init = |source| StoreOpenError::Init {
            path: self.path.clone(),
            source,
        };
        let rocksdb = |e| open_error(&self.path, e);
        let not_cairn = |reason: String| StoreOpenError::NotCairnStore {
            path: self.path.clone(),
            reason,
        };
        let marker = self
            .db
            .get_pinned_cf(self.cf(CF_META), META_FORMAT)
            .map_err(rocksdb)?;
        match marker {
            Some(bytes) => match decode::<String>(&bytes) {
                Ok(found) if found == FORMAT_VERSION => Ok(()),
                Ok(found) => Err(not_cairn(format!(
                    "its format is {found:?}, this node reads {FORMAT_VERSION:?}"
                ))),
                Err(e) => Err(not_cairn(format!(
                    "its format marker (column family `{CF_META}` key {}) is unreadable: {e}",
                    hex::encode(META_FORMAT)
                ))),
            },
            None => {
                // A store whose creation was interrupted before the marker was written is
                // still empty; finish it. A non-empty one without a marker is not ours.
                if !created && !self.is_empty().map_err(rocksdb)? {
                    return Err(not_cairn(format!(
                        "it has Cairn's column families but no format marker \
                         (column family `{CF_META}` key {})",
                        hex::encode(META_FORMAT)
                    )));
                }
                let mut batch = WriteBatch::default();
                batch.put_cf(
                    self.cf(CF_META),
                    META_FORMAT,
                    encode(&FORMAT_VERSION.to_owned()),
                );
                self.write_durably(batch).map_err(init)
            }
        }
    }

    fn is_empty(&self) -> Result<bool, rocksdb::Error> {
        for name in COLUMN_FAMILIES {
            if let Some(item) = self
                .db
                .iterator_cf(self.cf(name), IteratorMode::Start)
                .next()
            {
                item?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("open() opens every column family in COLUMN_FAMILIES")
    }

    fn get<T: bincode::Decode<()>>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let bytes = self.db.get_pinned_cf(self.cf(cf), key).map_err(|e| {
            StoreError(format!(
                "rocksdb read failed in column family `{cf}` key {}: {e}",
                hex::encode(key)
            ))
        })?;
        bytes.map(|b| decode_value(cf, key, &b)).transpose()
    }

    /// Visits every record of `cf` in key order.
    fn scan(
        &self,
        cf: &'static str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut read = ReadOptions::default();
        // Full scans would evict the lookups' working set from the block cache.
        read.fill_cache(false);
        for item in self
            .db
            .iterator_cf_opt(self.cf(cf), read, IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| iteration_error(cf, e))?;
            f(&key, &value)?;
        }
        Ok(())
    }

    fn write_durably(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        // In a group commit the group's one sync comes at its end ([`group`]).
        opts.set_sync(!self.grouping);
        let ops = batch.len();
        self.db.write_opt(batch, &opts).map_err(|e| {
            StoreError(format!(
                "rocksdb write of a {ops}-operation batch to {} failed: {e}",
                self.path.display()
            ))
        })
    }
}

impl BlockReader for RocksStore {
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.get(CF_BLOCKS, hash.as_bytes())
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        self.get(CF_UNDO, hash.as_bytes())
    }

    fn load_index(&self) -> Result<Vec<BlockEntry>, StoreError> {
        let mut entries = Vec::new();
        self.scan(CF_INDEX, |key, value| {
            let entry: BlockEntry = decode_value(CF_INDEX, key, value)?;
            if entry.hash.as_bytes().as_slice() != key {
                return Err(corrupt(
                    CF_INDEX,
                    key,
                    format!("the entry is for block {}", entry.hash),
                ));
            }
            entries.push(entry);
            Ok(())
        })?;
        Ok(entries)
    }

    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        self.get(CF_META, META_TIP)
    }
}

impl UtxoReader for RocksStore {
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.get(CF_COINS, &outpoint_key(outpoint))
    }

    fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError> {
        self.scan(CF_COINS, |key, value| {
            let outpoint = outpoint_from_key(key)?;
            let coin: Coin = decode_value(CF_COINS, key, value)?;
            f(&outpoint, &coin);
            Ok(())
        })
    }
}

impl ChainWriter for RocksStore {
    /// Applies `batch` as one rocksdb `WriteBatch`, synced to disk before returning, so a tip
    /// the node announces survives a crash. Within the batch later operations on a key win,
    /// in the order of `MemoryStore::write`: index, blocks, spent coins deleted before added
    /// coins are put, undo deletes before undo puts, then the tip.
    fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        let (index, blocks, coins, undo, meta) = (
            self.cf(CF_INDEX),
            self.cf(CF_BLOCKS),
            self.cf(CF_COINS),
            self.cf(CF_UNDO),
            self.cf(CF_META),
        );
        for entry in &batch.index {
            wb.put_cf(index, entry.hash.as_bytes(), encode(entry));
        }
        for (hash, block) in &batch.blocks {
            wb.put_cf(blocks, hash.as_bytes(), encode(*block));
        }
        for outpoint in &batch.coins_spent {
            wb.delete_cf(coins, outpoint_key(outpoint));
        }
        for (outpoint, coin) in &batch.coins_added {
            wb.put_cf(coins, outpoint_key(outpoint), encode(coin));
        }
        for hash in &batch.undo_delete {
            wb.delete_cf(undo, hash.as_bytes());
        }
        for (hash, block_undo) in &batch.undo_put {
            wb.put_cf(undo, hash.as_bytes(), encode(block_undo));
        }
        if let Some(tip) = &batch.tip {
            wb.put_cf(meta, META_TIP, encode(tip));
        }
        self.write_durably(wb)
    }
}

/// Options of the whole database: modest, for small machines (the test machine has 2 cores).
fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_max_open_files(512);
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(4 * MIB);
    // With several column families the WAL cannot be recycled until every one of them is
    // flushed; rarely written ones (`meta`) would pin it forever without this bound.
    opts.set_max_total_wal_size(64 * MIB as u64);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}

/// Options of one column family: lz4, 8 MiB write buffers, one shared block cache.
fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_write_buffer_size(8 * MIB);
    opts.set_max_write_buffer_number(2);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    if name == CF_COINS {
        // Most mempool lookups are of coins that may not exist.
        table.set_bloom_filter(10.0, false);
    }
    opts.set_block_based_table_factory(&table);
    opts
}

fn inspect(path: &Path) -> Result<Found, StoreOpenError> {
    let inaccessible = |source| StoreOpenError::Inaccessible {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(inaccessible(e)),
    };
    if !meta.is_dir() {
        return Err(StoreOpenError::NotADirectory {
            path: path.to_path_buf(),
        });
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(inaccessible)? {
        entries.push(
            entry
                .map_err(inaccessible)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    entries.sort();
    Ok(if entries.is_empty() {
        Found::EmptyDir
    } else if entries.iter().any(|e| e == "CURRENT") {
        Found::Rocksdb
    } else {
        Found::Foreign { entries }
    })
}

/// Classifies a rocksdb error from opening the store at `path`.
fn open_error(path: &Path, e: rocksdb::Error) -> StoreOpenError {
    let kind = e.kind();
    let detail = e.into_string();
    // rocksdb's PosixEnv: "While lock file: …/LOCK: Resource temporarily unavailable" when
    // another process holds it, "lock hold by current process, …" for a second handle here.
    if kind == ErrorKind::IOError
        && (detail.contains("While lock file") || detail.contains("lock hold by current process"))
    {
        return StoreOpenError::Locked {
            path: path.to_path_buf(),
        };
    }
    if kind == ErrorKind::Corruption {
        return StoreOpenError::Corrupt {
            path: path.to_path_buf(),
            file: file_named_in(path, &detail),
            detail,
        };
    }
    StoreOpenError::Rocksdb {
        path: path.to_path_buf(),
        detail,
    }
}

/// The store file a rocksdb message names, if any: a path inside the store, or a bare
/// rocksdb file name (`000012.sst`, `MANIFEST-000005`, `CURRENT`, …).
fn file_named_in(path: &Path, message: &str) -> Option<PathBuf> {
    let store = path.to_string_lossy();
    message.split_whitespace().find_map(|token| {
        let token = token
            .trim_matches(|c: char| matches!(c, ':' | ',' | ';' | '(' | ')' | '\'' | '"'))
            .trim_end_matches('.');
        let bare = token.rsplit('/').next().unwrap_or(token);
        let rocksdb_file = bare.ends_with(".sst")
            || bare.ends_with(".log")
            || bare.ends_with(".blob")
            || bare.starts_with("MANIFEST-")
            || bare.starts_with("OPTIONS-")
            || bare == "CURRENT"
            || bare == "IDENTITY";
        if token
            .strip_prefix(store.as_ref())
            .is_some_and(|rest| rest.starts_with('/'))
        {
            Some(PathBuf::from(token))
        } else if rocksdb_file {
            Some(if token.starts_with('/') {
                PathBuf::from(token)
            } else {
                path.join(token)
            })
        } else {
            None
        }
    })
}

fn outpoint_key(outpoint: &OutPoint) -> [u8; OUTPOINT_KEY_LEN] {
    let mut key = [0u8; OUTPOINT_KEY_LEN];
    key[..32].copy_from_slice(outpoint.txid.as_bytes());
    key[32..].copy_from_slice(&outpoint.vout.to_be_bytes());
    key
}

fn outpoint_from_key(key: &[u8]) -> Result<OutPoint, StoreError> {
    let (Ok(txid), Ok(vout)) = (
        <[u8; 32]>::try_from(key.get(..32).unwrap_or_default()),
        <[u8; 4]>::try_from(key.get(32..).unwrap_or_default()),
    ) else {
        return Err(corrupt(
            CF_COINS,
            key,
            format!(
                "the key is {} bytes, expected {OUTPOINT_KEY_LEN}",
                key.len()
            ),
        ));
    };
    Ok(OutPoint {
        txid: Txid::from_byte_array(txid),
        vout: u32::from_be_bytes(vout),
    })
}

fn decode_value<T: bincode::Decode<()>>(
    cf: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    decode(bytes).map_err(|e| corrupt(cf, key, e.to_string()))
}

/// A record that does not decode. Keys are shown as raw hex (hashes in internal byte order,
/// not display order), as `ldb --hex --column_family=… get` takes them.
fn corrupt(cf: &str, key: &[u8], why: String) -> StoreError {
    StoreError(format!(
        "corrupt record in column family `{cf}` key {}: {why}",
        hex::encode(key)
    ))
}

fn iteration_error(cf: &str, e: rocksdb::Error) -> StoreError {
    StoreError(format!(
        "rocksdb iteration failed in column family `{cf}`: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ChainState;
    use cairn_core::amount::Amount;
    use cairn_core::keys::PubkeyHash;
    use cairn_core::params::ChainParams;
    use cairn_core::store::{MemoryStore, UtxoStats};
    use cairn_core::testkit::{TestChain, store_conformance};
    use cairn_core::tx::TxOut;
    use tempfile::TempDir;

    /// A fresh store in `DATADIR/chain` of a new temp dir (kept alive by the caller).
    fn fresh() -> (TempDir, RocksStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(&dir.path().join("chain")).unwrap();
        (dir, store)
    }

    fn coin(value: u64) -> Coin {
        Coin {
            output: TxOut {
                amount: Amount::from_base(value),
                address: PubkeyHash([value as u8; 20]),
            },
            height: value as u32,
            is_coinbase: value.is_multiple_of(2),
        }
    }

    fn outpoint(first_txid_byte: u8, vout: u32) -> OutPoint {
        let mut txid = [0x55; 32];
        txid[0] = first_txid_byte;
        OutPoint {
            txid: Txid::from_byte_array(txid),
            vout,
        }
    }

    fn write_coins(store: &mut impl ChainWriter, coins: &[(OutPoint, Coin)]) {
        store
            .write(StoreBatch {
                coins_added: coins.to_vec(),
                ..StoreBatch::default()
            })
            .unwrap();
    }

    fn all_coins(store: &impl UtxoReader) -> Vec<(OutPoint, Coin)> {
        let mut out = Vec::new();
        store.for_each_coin(&mut |o, c| out.push((*o, *c))).unwrap();
        out
    }

    #[test]
    fn rocks_store_passes_the_conformance_suite() {
        let mut dirs = Vec::new();
        store_conformance::run(|| {
            let (dir, store) = fresh();
            dirs.push(dir);
            store
        });
    }

    #[test]
    fn rocks_store_behind_the_utxo_cache_passes_the_conformance_suite() {
        for budget in [1, 64 * cairn_core::store::MIB] {
            let mut dirs = Vec::new();
            store_conformance::run(|| {
                let (dir, store) = fresh();
                dirs.push(dir);
                NodeStore::new(store, budget)
            });
        }
    }

    #[test]
    fn reopened_store_has_the_same_tip_index_and_coins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain");
        let params = ChainParams::regtest();
        let mut kit = TestChain::new(params.clone());
        let blocks = kit.build_chain(5);
        let mut chain = ChainState::open(params.clone(), RocksStore::open(&path).unwrap()).unwrap();
        for b in &blocks {
            chain.accept_block(b.clone(), kit.now()).unwrap();
        }
        let tip = chain.tip().hash;
        let stats = chain.utxo_stats().unwrap();
        let store = chain.into_store();
        let mut index = store.load_index().unwrap();
        index.sort_by_key(|e| e.hash);
        let coins = all_coins(&store);
        let tip_block = store.block(&tip).unwrap().unwrap();
        let tip_undo = store.undo(&tip).unwrap().unwrap();
        drop(store);

        let store = RocksStore::open(&path).unwrap();
        assert_eq!(store.tip().unwrap(), Some(tip));
        let mut reread = store.load_index().unwrap();
        reread.sort_by_key(|e| e.hash);
        assert_eq!(reread, index);
        assert_eq!(reread.len(), 6);
        assert_eq!(all_coins(&store), coins);
        assert_eq!(store.block(&tip).unwrap(), Some(tip_block));
        assert_eq!(store.undo(&tip).unwrap(), Some(tip_undo));
        store.flush().unwrap();
        drop(store);

        // And once more after a flush: now from SST files rather than the WAL.
        let chain = ChainState::open(params, RocksStore::open(&path).unwrap()).unwrap();
        assert_eq!(chain.tip().hash, tip);
        assert_eq!(chain.utxo_stats().unwrap(), stats);
    }

    #[test]
    fn for_each_coin_visits_in_outpoint_order() {
        let (_dir, mut store) = fresh();
        let mut mem = MemoryStore::new();
        // Little-endian vouts would put 256 ([0,1,0,0]) before 1 and 2.
        let coins: Vec<(OutPoint, Coin)> = [
            (outpoint(0x20, 256), coin(1)),
            (outpoint(0x20, 2), coin(2)),
            (outpoint(0x20, 1), coin(3)),
            (outpoint(0x10, 256), coin(4)),
            (outpoint(0x30, 1), coin(5)),
            (outpoint(0x10, 0x0100_0000), coin(6)),
            (outpoint(0x10, 1), coin(7)),
        ]
        .to_vec();
        write_coins(&mut store, &coins);
        write_coins(&mut mem, &coins);

        let visited: Vec<OutPoint> = all_coins(&store).into_iter().map(|(o, _)| o).collect();
        let mut sorted: Vec<OutPoint> = coins.iter().map(|(o, _)| *o).collect();
        sorted.sort();
        assert_eq!(visited, sorted);
        assert_eq!(all_coins(&store), all_coins(&mem));
        assert_eq!(
            UtxoStats::compute(&store).unwrap(),
            UtxoStats::compute(&mem).unwrap()
        );
    }

    #[test]
    fn batch_deletes_before_puts_like_memory_store() {
        let (_dir, mut store) = fresh();
        let mut mem = MemoryStore::new();
        let (a, b) = (outpoint(1, 0), outpoint(2, 0));
        let hash = BlockHash::from_byte_array([7; 32]);
        let undo = BlockUndo {
            spent: vec![(a, coin(1))],
        };
        for s in [&mut store as &mut dyn ChainWriterDyn, &mut mem] {
            s.write_batch(StoreBatch {
                coins_added: vec![(a, coin(1)), (b, coin(2))],
                ..StoreBatch::default()
            });
            // Spending and re-adding the same outpoint in one batch leaves it there; so does
            // deleting and re-putting undo data.
            s.write_batch(StoreBatch {
                coins_spent: vec![a, b],
                coins_added: vec![(a, coin(3))],
                undo_delete: vec![hash],
                undo_put: vec![(hash, undo.clone())],
                ..StoreBatch::default()
            });
        }
        assert_eq!(all_coins(&store), vec![(a, coin(3))]);
        assert_eq!(all_coins(&store), all_coins(&mem));
        assert_eq!(store.undo(&hash).unwrap(), Some(undo.clone()));
        assert_eq!(mem.undo(&hash).unwrap(), Some(undo));
    }

    /// `ChainWriter` for a list of differently typed stores.
    trait ChainWriterDyn {
        fn write_batch(&mut self, batch: StoreBatch<'_>);
    }
    impl<T: ChainWriter> ChainWriterDyn for T {
        fn write_batch(&mut self, batch: StoreBatch<'_>) {
            self.write(batch).unwrap();
        }
    }

    #[test]
    fn corrupt_value_is_an_error_naming_column_family_and_key() {
        let (_dir, mut store) = fresh();
        let (good, bad) = (outpoint(1, 0), outpoint(2, 5));
        write_coins(&mut store, &[(good, coin(1)), (bad, coin(2))]);
        let tip = BlockHash::from_byte_array([9; 32]);
        store
            .write(StoreBatch {
                tip: Some(tip),
                ..StoreBatch::default()
            })
            .unwrap();

        let mut garbage = encode(&coin(2));
        garbage.extend_from_slice(&[1, 2, 3]);
        store
            .db
            .put_cf(store.cf(CF_COINS), outpoint_key(&bad), &garbage)
            .unwrap();
        let expected = format!(
            "storage error: corrupt record in column family `coins` key {}: \
             3 trailing bytes after the encoded value",
            hex::encode(outpoint_key(&bad))
        );
        assert_eq!(store.coin(&bad).unwrap_err().to_string(), expected);
        assert_eq!(
            store.for_each_coin(&mut |_, _| {}).unwrap_err().to_string(),
            expected
        );
        // The rest still reads.
        assert_eq!(store.coin(&good).unwrap(), Some(coin(1)));
        assert_eq!(store.tip().unwrap(), Some(tip));

        // A truncated index entry, a garbage block and a short coin key.
        let hash = BlockHash::from_byte_array([4; 32]);
        store
            .db
            .put_cf(store.cf(CF_INDEX), hash.as_bytes(), [0u8; 5])
            .unwrap();
        let err = store.load_index().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "storage error: corrupt record in column family `index` key {}: ",
                hex::encode(hash.as_bytes())
            )),
            "{err}"
        );
        store
            .db
            .put_cf(store.cf(CF_BLOCKS), hash.as_bytes(), [0xff; 3])
            .unwrap();
        let err = store.block(&hash).unwrap_err().to_string();
        assert!(err.contains("column family `blocks` key 0404"), "{err}");
        store
            .db
            .delete_cf(store.cf(CF_COINS), outpoint_key(&bad))
            .unwrap();
        store
            .db
            .put_cf(store.cf(CF_COINS), [0xee; 3], encode(&coin(1)))
            .unwrap();
        assert_eq!(
            store.for_each_coin(&mut |_, _| {}).unwrap_err().to_string(),
            "storage error: corrupt record in column family `coins` key eeeeee: \
             the key is 3 bytes, expected 36"
        );
        assert_eq!(store.coin(&good).unwrap(), Some(coin(1)));
    }

    #[test]
    fn index_entry_under_the_wrong_key_is_corruption() {
        let (_dir, mut store) = fresh();
        let params = ChainParams::regtest();
        let chain = ChainState::open(params, MemoryStore::new()).unwrap();
        let entry = chain.tip().clone();
        store
            .write(StoreBatch {
                index: vec![entry.clone()],
                ..StoreBatch::default()
            })
            .unwrap();
        let wrong = [1u8; 32];
        store
            .db
            .put_cf(store.cf(CF_INDEX), wrong, encode(&entry))
            .unwrap();
        let err = store.load_index().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "storage error: corrupt record in column family `index` key {}: \
                 the entry is for block {}",
                hex::encode(wrong),
                entry.hash
            )
        );
    }

    #[test]
    fn regular_file_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain");
        std::fs::write(&path, b"hello").unwrap();
        let err = RocksStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreOpenError::NotADirectory { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "chain store path {} exists but is not a directory",
                path.display()
            )
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }

    #[test]
    fn directory_of_other_files_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::create_dir(dir.path().join("photos")).unwrap();
        let err = RocksStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreOpenError::NotCairnStore { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a Cairn chain store: the directory holds 2 other entries (first \
                 `notes.txt`) and no rocksdb database; refusing to create a store among them",
                dir.path().display()
            )
        );
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["notes.txt", "photos"]);
    }

    #[test]
    fn empty_directory_becomes_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.tip().unwrap(), None);
        assert_eq!(store.path(), dir.path());
    }

    #[test]
    fn foreign_rocksdb_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            let db = DB::open(&opts, dir.path()).unwrap();
            db.put(b"k", b"v").unwrap();
        }
        let err = RocksStore::open(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a Cairn chain store: it is a rocksdb database with column families \
                 [default], not Cairn's [blocks, coins, default, index, meta, undo]",
                dir.path().display()
            )
        );
    }

    #[test]
    fn other_format_version_is_refused() {
        let (dir, store) = fresh();
        let path = dir.path().join("chain");
        store
            .db
            .put_cf(
                store.cf(CF_META),
                META_FORMAT,
                encode(&"cairn-store-v2".to_owned()),
            )
            .unwrap();
        drop(store);
        let err = RocksStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreOpenError::NotCairnStore { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a Cairn chain store: its format is \"cairn-store-v2\", \
                 this node reads \"cairn-store-v1\"",
                path.display()
            )
        );
    }

    #[test]
    fn non_empty_store_without_format_marker_is_refused() {
        let (dir, mut store) = fresh();
        let path = dir.path().join("chain");
        write_coins(&mut store, &[(outpoint(1, 1), coin(1))]);
        store.db.delete_cf(store.cf(CF_META), META_FORMAT).unwrap();
        drop(store);
        let err = RocksStore::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("has Cairn's column families but no format marker"),
            "{err}"
        );
    }

    #[test]
    fn second_open_while_first_is_alive_is_locked() {
        let (dir, store) = fresh();
        let path = dir.path().join("chain");
        let err = RocksStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreOpenError::Locked { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("datadir {} is locked by another process", path.display())
        );
        drop(store);
        RocksStore::open(&path).unwrap();
    }

    #[test]
    fn damaged_current_file_is_reported_as_corruption_naming_the_file() {
        let (dir, store) = fresh();
        let path = dir.path().join("chain");
        drop(store);
        std::fs::write(path.join("CURRENT"), b"garbage").unwrap();
        let err = RocksStore::open(&path).unwrap_err();
        let StoreOpenError::Corrupt { file, .. } = &err else {
            panic!("expected Corrupt, got {err:?}");
        };
        assert_eq!(file.as_deref(), Some(path.join("CURRENT").as_path()));
        assert_eq!(
            err.to_string(),
            format!(
                "chain store {} is corrupt (file {}): Corruption: CURRENT file does not end \
                 with newline",
                path.display(),
                path.join("CURRENT").display()
            )
        );
    }

    #[test]
    fn damaged_manifest_is_reported_as_corruption_naming_the_file() {
        let (dir, store) = fresh();
        let path = dir.path().join("chain");
        drop(store);
        let current = std::fs::read_to_string(path.join("CURRENT")).unwrap();
        let manifest = path.join(current.trim());
        let mut bytes = std::fs::read(&manifest).unwrap();
        bytes.iter_mut().skip(10).take(40).for_each(|b| *b ^= 0x5a);
        std::fs::write(&manifest, bytes).unwrap();
        let err = RocksStore::open(&path).unwrap_err();
        let StoreOpenError::Corrupt { file, .. } = &err else {
            panic!("expected Corrupt, got {err:?}");
        };
        assert_eq!(file.as_ref(), Some(&manifest));
        assert!(
            err.to_string().starts_with(&format!(
                "chain store {} is corrupt (file {}): Corruption: ",
                path.display(),
                manifest.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn damaged_coins_table_is_a_read_error_and_other_families_still_read() {
        let (dir, mut store) = fresh();
        let path = dir.path().join("chain");
        let op = outpoint(1, 1);
        let tip = BlockHash::from_byte_array([3; 32]);
        write_coins(&mut store, &[(op, coin(1))]);
        store
            .write(StoreBatch {
                tip: Some(tip),
                ..StoreBatch::default()
            })
            .unwrap();
        store.flush().unwrap();
        let coins_tables: Vec<PathBuf> = store
            .db
            .live_files()
            .unwrap()
            .into_iter()
            .filter(|f| f.column_family_name == CF_COINS)
            .map(|f| path.join(f.name.trim_start_matches('/')))
            .collect();
        assert_eq!(coins_tables.len(), 1);
        drop(store);
        let mut bytes = std::fs::read(&coins_tables[0]).unwrap();
        bytes.iter_mut().take(30).for_each(|b| *b ^= 0x5a);
        std::fs::write(&coins_tables[0], bytes).unwrap();

        let store = RocksStore::open(&path).unwrap();
        let err = store.coin(&op).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "storage error: rocksdb read failed in column family `coins` key {}: \
                 Corruption: block checksum mismatch",
                hex::encode(outpoint_key(&op))
            )),
            "{err}"
        );
        assert!(
            err.contains(&coins_tables[0].display().to_string()),
            "{err}"
        );
        let err = store.for_each_coin(&mut |_, _| {}).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "storage error: rocksdb iteration failed in column family `coins`: Corruption"
            ),
            "{err}"
        );
        assert_eq!(store.tip().unwrap(), Some(tip));
    }
}
