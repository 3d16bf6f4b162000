//! What a damaged chain store looks like to the node, and the cheap check at open that
//! finds it before the chain is loaded.
//!
//! Every finding is a [`Damage`]: what is damaged, where, and the way out (`--reindex`,
//! which rebuilds everything from the stored block bodies, see `crate::reindex`). The node
//! prints it as its one `error:` line and exits 1 instead of serving a wrong state.
//!
//! The check is bounded, not a scan: the column families, the tip record, the index
//! entries, bodies and undo data of the last [`INTEGRITY_CHECK_DEPTH`] active blocks, and
//! the tip's coinbase outputs in the UTXO set. Loading the chain then reads the whole index
//! and every active body (the node's transaction index), so damage there is reported the
//! same way ([`Damage::from_chain_error`]). rocksdb itself verifies the file sizes and the
//! MANIFEST at open ([`Damage::from_open_error`]) and every block it reads by checksum.

use super::{
    CF_BLOCKS, CF_DEFAULT, CF_INDEX, CF_META, COLUMN_FAMILIES, META_TIP, RocksStore, StoreOpenError,
};
use cairn_core::block::Block;
use cairn_core::chain::BlockEntry;
use cairn_core::chain::ChainError;
use cairn_core::encoding::decode;
use cairn_core::hash::BlockHash;
use cairn_core::store::{BlockReader, StoreError, UtxoReader};
use cairn_core::tx::OutPoint;
use rocksdb::IteratorMode;
use std::path::{Path, PathBuf};

/// How many blocks back from the tip the check at open reads index entries, bodies and
/// undo data (undo data is what a reorg of that depth needs).
pub const INTEGRITY_CHECK_DEPTH: u32 = 64;

/// A damaged chain store: what is damaged and where. Displays as the node's `error:` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} ({}); restart with --reindex to rebuild from the stored block bodies",
    .path.display()
)]
pub struct Damage {
    /// What is damaged, naming the column family, record or file.
    pub what: String,
    /// The damaged file, or the store's directory.
    pub path: PathBuf,
}

impl Damage {
    /// Damage `what` at `path`.
    pub fn new(what: impl Into<String>, path: impl Into<PathBuf>) -> Damage {
        Damage {
            what: what.into(),
            path: path.into(),
        }
    }

    /// The damage an open error reveals; `None` for errors that are not damage (a lock,
    /// a foreign directory, permissions).
    pub fn from_open_error(error: &StoreOpenError) -> Option<Damage> {
        match error {
            StoreOpenError::Corrupt { path, file, detail } => Some(match file {
                Some(file) => Damage::new(
                    format!("rocksdb file {} is damaged: {detail}", file_name(file)),
                    file,
                ),
                None => Damage::new(format!("the rocksdb database is damaged: {detail}"), path),
            }),
            StoreOpenError::MissingColumnFamily { path, missing } => Some(Damage::new(
                format!(
                    "column famil{} {} of the chain store {} missing",
                    if missing.len() == 1 { "y" } else { "ies" },
                    missing
                        .iter()
                        .map(|cf| format!("`{cf}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if missing.len() == 1 { "is" } else { "are" },
                ),
                path,
            )),
            _ => None,
        }
    }

    /// The damage a failure to load the chain from the store at `path` reveals; `None`
    /// for failures that are not damage (another network's chain).
    pub fn from_chain_error(error: &ChainError, path: &Path) -> Option<Damage> {
        match error {
            ChainError::Store(StoreError(what)) => Some(Damage::in_store(what.clone(), path)),
            ChainError::Corrupt(what) => Some(Damage::in_store(
                format!("corrupt chain data: {what}"),
                path,
            )),
            _ => None,
        }
    }

    /// Damage `what` in the store at `store`, located at the file rocksdb's message names
    /// (a damaged SST) when it names one.
    fn in_store(what: String, store: &Path) -> Damage {
        let path = super::file_named_in(store, &what).unwrap_or_else(|| store.to_path_buf());
        Damage { what, path }
    }
}

fn file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// Whether a rocksdb database with column families `existing` is a Cairn store that lost
/// the `missing` ones (rather than someone else's database).
pub(super) fn is_damaged_cairn_store(existing: &[String], missing: &[String]) -> bool {
    let ours = |cf: &String| COLUMN_FAMILIES.contains(&cf.as_str());
    !missing.is_empty()
        && existing.iter().any(ours)
        && existing.iter().all(|cf| ours(cf) || cf == CF_DEFAULT)
}

impl RocksStore {
    /// The bounded check at open (see the module docs). `Ok` for a new, empty store.
    pub fn check_integrity(&self) -> Result<(), Damage> {
        let damage = |what: String| Damage::in_store(what, &self.path);
        let read = |e: StoreError| damage(e.0);
        let Some(tip) = self.tip_record().map_err(damage)? else {
            if self.has_records(CF_INDEX).map_err(read)?
                || self.has_records(CF_BLOCKS).map_err(read)?
            {
                return Err(damage(format!(
                    "the chain tip record (column family `{CF_META}` key `tip`) is missing"
                )));
            }
            return Ok(());
        };
        let mut hash = tip;
        for depth in 0..INTEGRITY_CHECK_DEPTH {
            let entry = self.active_entry(&hash, depth).map_err(damage)?;
            if depth == 0 {
                self.check_tip_coins(&entry).map_err(damage)?;
            }
            if entry.height == 0 {
                break;
            }
            hash = entry.header.prev_blockhash;
        }
        Ok(())
    }

    /// The `meta`/`tip` record: `Err` when it cannot be read or decoded.
    fn tip_record(&self) -> Result<Option<BlockHash>, String> {
        let bytes = self
            .db
            .get_pinned_cf(self.cf(CF_META), META_TIP)
            .map_err(|e| format!("the chain tip record cannot be read: {e}"))?;
        bytes
            .map(|b| {
                decode::<BlockHash>(&b).map_err(|e| {
                    format!(
                        "the chain tip record (column family `{CF_META}` key `tip`) is \
                         unreadable: {e}"
                    )
                })
            })
            .transpose()
    }

    fn has_records(&self, cf: &'static str) -> Result<bool, StoreError> {
        match self.db.iterator_cf(self.cf(cf), IteratorMode::Start).next() {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(super::iteration_error(cf, e)),
        }
    }

    /// The index entry of the active block `hash`, `depth` blocks below the tip, after
    /// checking that its body and undo data are stored and are its own.
    fn active_entry(&self, hash: &BlockHash, depth: u32) -> Result<BlockEntry, String> {
        let which = if depth == 0 {
            format!("the tip {hash}")
        } else {
            format!("active block {hash} ({depth} below the tip)")
        };
        let entry: BlockEntry = self
            .get(CF_INDEX, hash.as_bytes())
            .map_err(|e| e.0)?
            .ok_or_else(|| format!("{which} has no block index entry (column family `index`)"))?;
        let at = format!("{which} at height {}", entry.height);
        let body: Block = self
            .block(hash)
            .map_err(|e| e.0)?
            .ok_or_else(|| format!("the body of {at} is missing (column family `blocks`)"))?;
        if body.block_hash() != *hash || body.header != entry.header {
            return Err(format!(
                "the body stored for {at} is block {} (column family `blocks`)",
                body.block_hash()
            ));
        }
        if self.undo(hash).map_err(|e| e.0)?.is_none() {
            return Err(format!(
                "the undo data of {at} is missing (column family `undo`)"
            ));
        }
        Ok(entry)
    }

    /// The tip's coinbase outputs cannot be spent yet (maturity), so a UTXO set that is the
    /// tip's holds every one of them, created at the tip's height.
    fn check_tip_coins(&self, tip: &BlockEntry) -> Result<(), String> {
        if tip.height == 0 {
            return Ok(());
        }
        let body = self
            .block(&tip.hash)
            .map_err(|e| e.0)?
            .ok_or_else(|| format!("the body of the tip {} is missing", tip.hash))?;
        let Some(coinbase) = body.txs.first() else {
            return Err(format!("the body of the tip {} has no coinbase", tip.hash));
        };
        let txid = coinbase.txid();
        for vout in 0..coinbase.outputs.len() as u32 {
            let outpoint = OutPoint { txid, vout };
            match self.coin(&outpoint).map_err(|e| e.0)? {
                Some(coin) if coin.height == tip.height && coin.is_coinbase => {}
                _ => {
                    return Err(format!(
                        "the UTXO set (column family `coins`) does not match the tip {} at \
                         height {}: its coinbase output {txid}:{vout} is not unspent",
                        tip.hash, tip.height
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_names_the_way_out() {
        let damage = Damage::new("the body of block x is missing", "/d/chain");
        assert_eq!(
            damage.to_string(),
            "the body of block x is missing (/d/chain); restart with --reindex to rebuild \
             from the stored block bodies"
        );
    }

    #[test]
    fn only_a_store_with_cairn_families_counts_as_damaged() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_damaged_cairn_store(
            &names(&["default", "index", "blocks", "undo", "meta"]),
            &names(&["coins"])
        ));
        assert!(!is_damaged_cairn_store(
            &names(&["default"]),
            &names(&["blocks", "coins", "index", "meta", "undo"])
        ));
        assert!(!is_damaged_cairn_store(
            &names(&["default", "index", "other"]),
            &names(&["coins"])
        ));
    }
}
