//! Reading what is left of a damaged store: the block bodies (past unreadable ranges), and
//! on a best-effort basis the old tip and first-seen order, which only break ties.

use super::{ReindexError, Unrecovered, lost};
use cairn_core::ChainParams;
use cairn_core::block::{Block, BlockHeader};
use cairn_core::chain::BlockEntry;
use cairn_core::encoding::decode;
use cairn_core::hash::BlockHash;
use rocksdb::{ColumnFamily, DB, Options, ReadOptions};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Column family names as `crate::store` lays them out.
const CF_BLOCKS: &str = "blocks";
const CF_INDEX: &str = "index";
const CF_META: &str = "meta";
/// `meta` key of the active tip.
const META_TIP: &[u8] = b"tip";
/// After an unreadable stretch of keys, the scan resumes at the next key prefix of this
/// many bytes: a damaged rocksdb block loses the keys it holds and at most the rest of
/// their 1/65536 slice of the (uniformly spread) block hashes.
const SKIP_PREFIX_LEN: usize = 2;

/// The old store, opened with whatever column families it still has.
pub(super) struct OldStore {
    db: DB,
    path: PathBuf,
    /// Whether rocksdb repair ran before it would open.
    pub(super) repaired: bool,
}

/// What the scan of the bodies found.
pub(super) struct Scan {
    /// Bodies reachable from genesis, parents first (genesis itself excluded).
    pub(super) order: Vec<BlockHash>,
    /// Bodies read, genesis included.
    pub(super) bodies: usize,
}

impl OldStore {
    /// Opens the store at `path`, running rocksdb repair first if it will not open.
    pub(super) fn open(path: &Path) -> Result<OldStore, ReindexError> {
        let (db, repaired) = match try_open(path) {
            Ok(db) => (db, false),
            Err(first) if !holds_rocksdb_files(path) => {
                // Repair writes into the directory: never into one that is not a database.
                return Err(ReindexError::Unreadable {
                    path: path.to_path_buf(),
                    detail: format!("{first}; it holds no rocksdb files, so repair was not tried"),
                });
            }
            Err(first) => {
                eprintln!(
                    "reindex: rocksdb cannot open {} ({first}); running rocksdb repair",
                    path.display()
                );
                tracing::warn!(store = %path.display(), "reindex: rocksdb cannot open the store ({first}); running rocksdb repair");
                DB::repair(&Options::default(), path).map_err(|e| ReindexError::Unreadable {
                    path: path.to_path_buf(),
                    detail: e.into_string(),
                })?;
                let db = try_open(path).map_err(|detail| ReindexError::Unreadable {
                    path: path.to_path_buf(),
                    detail,
                })?;
                (db, true)
            }
        };
        Ok(OldStore {
            db,
            path: path.to_path_buf(),
            repaired,
        })
    }

    /// Reads every body's header and orders the bodies from genesis, parents first; at each
    /// height the old active chain first, then in the old first-seen order.
    pub(super) fn scan(
        &self,
        params: &ChainParams,
        unrecovered: &mut Vec<Unrecovered>,
    ) -> Result<Scan, ReindexError> {
        let Some(blocks) = self.db.cf_handle(CF_BLOCKS) else {
            lost(
                unrecovered,
                None,
                format!("column family `{CF_BLOCKS}` is missing: no bodies to recover"),
            );
            return Ok(Scan {
                order: Vec::new(),
                bodies: 0,
            });
        };
        let headers = self.headers(blocks, unrecovered);
        let genesis = params.genesis_hash;
        if !headers.is_empty() && !headers.contains_key(&genesis) {
            let foreign_genesis = headers
                .values()
                .any(|h| h.prev_blockhash == BlockHash::ZERO);
            if foreign_genesis {
                return Err(ReindexError::WrongNetwork {
                    path: self.path.clone(),
                    genesis,
                });
            }
        }
        let active = self.old_active_chain(&headers);
        let seqs = self.old_seqs();
        let mut children: HashMap<BlockHash, Vec<BlockHash>> = HashMap::new();
        for (hash, header) in &headers {
            if *hash != genesis {
                children
                    .entry(header.prev_blockhash)
                    .or_default()
                    .push(*hash);
            }
        }
        let mut order = Vec::new();
        let mut level = vec![genesis];
        while !level.is_empty() {
            let mut next: Vec<BlockHash> = level
                .iter()
                .filter_map(|h| children.remove(h))
                .flatten()
                .collect();
            next.sort_by_key(|h| {
                (
                    !active.contains(h),
                    seqs.get(h).copied().unwrap_or(u64::MAX),
                    *h,
                )
            });
            order.extend_from_slice(&next);
            level = next;
        }
        let reached: HashSet<&BlockHash> = order.iter().collect();
        let mut orphans: Vec<(&BlockHash, &BlockHeader)> = headers
            .iter()
            .filter(|(h, _)| **h != genesis && !reached.contains(h))
            .collect();
        orphans.sort_by_key(|(h, _)| **h);
        for (hash, header) in orphans {
            lost(
                unrecovered,
                Some(*hash),
                format!("its parent {} was not recovered", header.prev_blockhash),
            );
        }
        Ok(Scan {
            bodies: headers.len(),
            order,
        })
    }

    /// The body stored under `hash`.
    pub(super) fn body(&self, hash: &BlockHash) -> Result<Block, String> {
        let blocks = self
            .db
            .cf_handle(CF_BLOCKS)
            .ok_or_else(|| format!("column family `{CF_BLOCKS}` is missing"))?;
        let bytes = self
            .db
            .get_pinned_cf(blocks, hash.as_bytes())
            .map_err(|e| format!("unreadable: {e}"))?
            .ok_or("the body disappeared during the reindex")?;
        decode(&bytes).map_err(|e| format!("undecodable: {e}"))
    }

    /// The header of every body that decodes and hashes to its key.
    fn headers(
        &self,
        blocks: &ColumnFamily,
        unrecovered: &mut Vec<Unrecovered>,
    ) -> HashMap<BlockHash, BlockHeader> {
        let mut headers = HashMap::new();
        let (mut damaged, mut unreadable) = (Vec::new(), Vec::new());
        scan_past_damage(
            &self.db,
            CF_BLOCKS,
            blocks,
            &mut unreadable,
            |key, value| {
                let Ok(key) = <[u8; 32]>::try_from(key) else {
                    damaged.push(format!(
                        "a record of column family `{CF_BLOCKS}` has a {}-byte key {}",
                        key.len(),
                        hex::encode(key)
                    ));
                    return;
                };
                let hash = BlockHash::from_byte_array(key);
                match decode::<Block>(value) {
                    Ok(block) if block.block_hash() == hash => {
                        headers.insert(hash, block.header);
                    }
                    Ok(block) => damaged.push(format!(
                        "the body under {hash} is block {}",
                        block.block_hash()
                    )),
                    Err(e) => damaged.push(format!("the body under {hash} is undecodable: {e}")),
                }
            },
        );
        for reason in unreadable.into_iter().chain(damaged) {
            lost(unrecovered, None, reason);
        }
        headers
    }

    /// The old active chain as far as its bodies survive, if the tip record is readable.
    fn old_active_chain(&self, headers: &HashMap<BlockHash, BlockHeader>) -> HashSet<BlockHash> {
        let mut active = HashSet::new();
        let tip = self
            .db
            .cf_handle(CF_META)
            .and_then(|meta| self.db.get_cf(meta, META_TIP).ok().flatten())
            .and_then(|bytes| decode::<BlockHash>(&bytes).ok());
        let mut cursor = tip;
        while let Some(hash) = cursor {
            let Some(header) = headers.get(&hash) else {
                break;
            };
            if !active.insert(hash) {
                break;
            }
            cursor = Some(header.prev_blockhash);
        }
        active
    }

    /// First-seen order of the old index entries that are still readable.
    fn old_seqs(&self) -> HashMap<BlockHash, u64> {
        let mut seqs = HashMap::new();
        if let Some(index) = self.db.cf_handle(CF_INDEX) {
            let mut ignored = Vec::new();
            scan_past_damage(&self.db, CF_INDEX, index, &mut ignored, |_, value| {
                if let Ok(entry) = decode::<BlockEntry>(value) {
                    seqs.insert(entry.hash, entry.seq);
                }
            });
        }
        seqs
    }
}

/// Whether `path` holds rocksdb's files (`CURRENT`, a `MANIFEST-*`, a table or a log).
fn holds_rocksdb_files(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == "CURRENT"
                || name.starts_with("MANIFEST-")
                || name.ends_with(".sst")
                || name.ends_with(".log")
        })
    })
}

/// Opens the database at `path` with every column family it lists.
fn try_open(path: &Path) -> Result<DB, String> {
    let names = DB::list_cf(&Options::default(), path).map_err(|e| e.into_string())?;
    DB::open_cf(&Options::default(), path, &names).map_err(|e| e.into_string())
}

/// Visits every readable record of `cf` in key order. Where rocksdb reports damage, the
/// error goes to `damaged` and the walk resumes at the next [`SKIP_PREFIX_LEN`]-byte prefix.
fn scan_past_damage(
    db: &DB,
    name: &str,
    cf: &ColumnFamily,
    damaged: &mut Vec<String>,
    mut visit: impl FnMut(&[u8], &[u8]),
) {
    let mut from: Vec<u8> = Vec::new();
    loop {
        let mut read = ReadOptions::default();
        read.fill_cache(false);
        let mut it = db.raw_iterator_cf_opt(cf, read);
        it.seek(&from);
        let mut last: Option<Vec<u8>> = None;
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            visit(key, value);
            last = Some(key.to_vec());
            it.next();
        }
        let Err(e) = it.status() else { return };
        let resume_after = last.unwrap_or(from);
        let next = next_prefix(&resume_after);
        damaged.push(format!(
            "unreadable records after key {} of column family `{name}`: {e}{}",
            hex::encode(&resume_after),
            next.as_ref()
                .map(|n| format!(" (skipped to key prefix {})", hex::encode(n)))
                .unwrap_or_default()
        ));
        match next {
            Some(next) => from = next,
            None => return,
        }
    }
}

/// The smallest [`SKIP_PREFIX_LEN`]-byte prefix after `key`'s, `None` past the last one.
fn next_prefix(key: &[u8]) -> Option<Vec<u8>> {
    let mut prefix: Vec<u8> = key.iter().copied().take(SKIP_PREFIX_LEN).collect();
    prefix.resize(SKIP_PREFIX_LEN, 0);
    for i in (0..SKIP_PREFIX_LEN).rev() {
        if prefix[i] == u8::MAX {
            prefix[i] = 0;
        } else {
            prefix[i] += 1;
            return Some(prefix);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{OldStore, next_prefix};
    use crate::reindex::ReindexError;

    #[test]
    fn next_prefix_moves_past_the_damaged_slice() {
        assert_eq!(next_prefix(&[]), Some(vec![0, 1]));
        assert_eq!(next_prefix(&[0x12, 0x34, 0x56]), Some(vec![0x12, 0x35]));
        assert_eq!(next_prefix(&[0x12, 0xff, 9]), Some(vec![0x13, 0x00]));
        assert_eq!(next_prefix(&[0xff, 0xff]), None);
    }

    #[test]
    fn a_directory_without_rocksdb_files_is_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let Err(ReindexError::Unreadable { detail, .. }) = OldStore::open(dir.path()) else {
            panic!("a foreign directory opened as a store");
        };
        assert!(detail.contains("repair was not tried"), "{detail}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "nothing written into it");
    }
}
