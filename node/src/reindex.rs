//! `cairn node --reindex`: rebuild the block index, the UTXO set and the tip from the block
//! bodies a (possibly damaged) chain store still holds.
//!
//! The bodies are read from the old store (after rocksdb's own repair if it cannot even be
//! opened), ordered by height from genesis and handed one by one to a fresh `ChainState`
//! in a new store beside the old one, through the same `accept_block` every block from a
//! peer takes: nothing is trusted, every rule is checked again and fork choice picks the
//! most-work valid tip. At equal work the old active chain is fed first, so it stays the
//! tip as it was. Bodies that cannot be recovered — unreadable, not hashing to their key,
//! invalid, or whose parent is lost — are logged one by one.
//!
//! Crash safety: the new store is built in `DATADIR/chain.reindex` and only replaces
//! `DATADIR/chain` once complete: `chain` is renamed to `chain.damaged`, `chain.reindex` to
//! `chain`, and `chain.damaged` is removed. A crash before the swap leaves the old store as
//! it was; one in the middle leaves `chain.damaged`, which a plain start refuses
//! ([`check_not_interrupted`]) and the next `--reindex` reads from.

mod bodies;

use crate::store::{Damage, RocksStore, StoreOpenError};
use bodies::OldStore;
use cairn_core::hash::BlockHash;
use cairn_core::store::StoreError;
use cairn_core::{ChainParams, ChainState, ImportOutcome};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the new store is built.
const STAGING_DIR: &str = "chain.reindex";
/// Where the old store waits while the new one takes its place.
const DAMAGED_DIR: &str = "chain.damaged";
/// The store's own directory in the datadir (as `DataDir::chain_path`).
const CHAIN_DIR: &str = "chain";
/// Most time between two progress lines.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// A body that did not make it into the rebuilt chain, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecovered {
    /// The block (its key in the old store), when known.
    pub hash: Option<BlockHash>,
    /// Why it was not recovered.
    pub reason: String,
}

/// What a reindex did.
#[derive(Debug, Clone)]
pub struct ReindexReport {
    /// Whether rocksdb repair had to run before the old store would open.
    pub repaired: bool,
    /// Bodies read from the old store (genesis included).
    pub bodies: usize,
    /// Bodies accepted into the new chain (active or side chain).
    pub accepted: usize,
    /// Everything that could not be recovered.
    pub unrecovered: Vec<Unrecovered>,
    /// The rebuilt tip.
    pub tip: BlockHash,
    /// Its height.
    pub height: u32,
}

/// Why a reindex failed.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// The old store cannot be opened even after rocksdb repair.
    #[error("cannot read the chain store {} even after rocksdb repair: {detail}", .path.display())]
    Unreadable {
        /// The old store.
        path: PathBuf,
        /// rocksdb's last message.
        detail: String,
    },
    /// The old store holds bodies of another network's chain: nothing is rebuilt.
    #[error("the chain store {} holds another network's blocks (not genesis {genesis}); refusing to rebuild it", .path.display())]
    WrongNetwork {
        /// The old store.
        path: PathBuf,
        /// This network's genesis.
        genesis: BlockHash,
    },
    /// The new store cannot be created.
    #[error("cannot create the rebuilt chain store: {0}")]
    Create(#[from] StoreOpenError),
    /// Writing the rebuilt chain failed.
    #[error("writing the rebuilt chain store {} failed: {detail}", .path.display())]
    Write {
        /// The new store.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Moving the stores into place failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// The operation.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Refuses a plain start on a datadir whose last `--reindex` stopped between moving the old
/// store away and moving the new one in (the chain would otherwise start from genesis).
pub fn check_not_interrupted(datadir: &Path) -> Result<(), Damage> {
    let damaged = datadir.join(DAMAGED_DIR);
    if !datadir.join(CHAIN_DIR).exists() && damaged.exists() {
        return Err(Damage::new(
            "an interrupted --reindex left the chain store in chain.damaged and no chain store",
            damaged,
        ));
    }
    Ok(())
}

/// Rebuilds `DATADIR/chain` from the bodies it holds (see the module docs); `now` is the
/// time blocks are checked against (Unix seconds).
pub fn run(datadir: &Path, params: &ChainParams, now: u64) -> Result<ReindexReport, ReindexError> {
    let chain_dir = datadir.join(CHAIN_DIR);
    let staging = datadir.join(STAGING_DIR);
    let damaged = datadir.join(DAMAGED_DIR);
    let io = |what: String| move |source| ReindexError::Io { what, source };
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(io(format!("remove the leftover {}", staging.display())))?;
    }
    let source = if chain_dir.exists() {
        if damaged.exists() {
            // A finished reindex that stopped before removing the old store.
            std::fs::remove_dir_all(&damaged)
                .map_err(io(format!("remove the leftover {}", damaged.display())))?;
        }
        Some(chain_dir.clone())
    } else {
        damaged.exists().then(|| damaged.clone())
    };
    tracing::info!(datadir = %datadir.display(), "reindex: rebuilding the chain store from the stored block bodies");
    let report = {
        let old = match &source {
            Some(path) => Some(OldStore::open(path)?),
            None => None,
        };
        rebuild(old.as_ref(), &staging, params, now)?
    };
    if let Some(source) = &source {
        if *source == chain_dir {
            std::fs::rename(&chain_dir, &damaged).map_err(io(format!(
                "move {} to {}",
                chain_dir.display(),
                damaged.display()
            )))?;
        }
        std::fs::rename(&staging, &chain_dir).map_err(io(format!(
            "move {} to {}",
            staging.display(),
            chain_dir.display()
        )))?;
        sync_dir(datadir).map_err(io(format!("sync {}", datadir.display())))?;
        std::fs::remove_dir_all(&damaged).map_err(io(format!("remove {}", damaged.display())))?;
    } else {
        std::fs::rename(&staging, &chain_dir).map_err(io(format!(
            "move {} to {}",
            staging.display(),
            chain_dir.display()
        )))?;
    }
    tracing::info!(
        height = report.height,
        tip = %report.tip,
        bodies = report.bodies,
        accepted = report.accepted,
        unrecovered = report.unrecovered.len(),
        "reindex: done"
    );
    Ok(report)
}

/// Feeds the old store's bodies into a new chain state at `staging`.
fn rebuild(
    old: Option<&OldStore>,
    staging: &Path,
    params: &ChainParams,
    now: u64,
) -> Result<ReindexReport, ReindexError> {
    let write_error = |detail: String| ReindexError::Write {
        path: staging.to_path_buf(),
        detail,
    };
    let store = RocksStore::open(staging)?;
    let mut chain =
        ChainState::open(params.clone(), store).map_err(|e| write_error(e.to_string()))?;
    let mut unrecovered = Vec::new();
    let (order, bodies, repaired) = match old {
        Some(old) => {
            let scan = old.scan(params, &mut unrecovered)?;
            (scan.order, scan.bodies, old.repaired)
        }
        None => (Vec::new(), 0, false),
    };
    let mut progress = Progress::new(order.len());
    let mut accepted = 0;
    for hash in &order {
        progress.tick();
        let Some(old) = old else { break };
        let block = match old.body(hash) {
            Ok(block) => block,
            Err(reason) => {
                lost(&mut unrecovered, Some(*hash), reason);
                continue;
            }
        };
        let report = chain
            .accept_block(block, now)
            .map_err(|e| write_error(e.to_string()))?;
        match report.outcome {
            ImportOutcome::Active | ImportOutcome::SideChain => accepted += 1,
            ImportOutcome::AlreadyHave => {}
            ImportOutcome::Orphan => lost(
                &mut unrecovered,
                Some(*hash),
                "its parent was not recovered".into(),
            ),
            ImportOutcome::Invalid(e) => {
                lost(&mut unrecovered, Some(*hash), format!("invalid: {e}"))
            }
        }
        for (bad, e) in report.invalidated {
            if bad != *hash {
                lost(&mut unrecovered, Some(bad), format!("invalid: {e}"));
            }
        }
    }
    progress.finish();
    let (tip, height) = (chain.tip().hash, chain.height());
    chain
        .into_store()
        .flush()
        .map_err(|StoreError(e)| write_error(e))?;
    Ok(ReindexReport {
        repaired,
        bodies,
        accepted,
        unrecovered,
        tip,
        height,
    })
}

/// Records and logs a body that was not recovered.
fn lost(unrecovered: &mut Vec<Unrecovered>, hash: Option<BlockHash>, reason: String) {
    match &hash {
        Some(hash) => tracing::warn!(block = %hash, "reindex: not recovered: {reason}"),
        None => tracing::warn!("reindex: not recovered: {reason}"),
    }
    unrecovered.push(Unrecovered { hash, reason });
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// `reindex: N/M blocks` on stderr: a bar on a terminal, else a line every 5 % or 2 s.
struct Progress {
    total: usize,
    done: usize,
    /// `done` when the last line was printed.
    printed: usize,
    last: Instant,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "reindex: {bar:40} {pos}/{len} blocks ({eta} left)",
                )
                .expect("the template is valid"),
            );
            bar
        });
        if bar.is_none() {
            eprintln!("reindex: 0/{total} blocks");
        }
        Progress {
            total,
            done: 0,
            printed: 0,
            last: Instant::now(),
            bar,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done as u64);
            return;
        }
        let step = (self.total / 20).max(1);
        if self.done.is_multiple_of(step) || self.last.elapsed() >= PROGRESS_INTERVAL {
            self.print();
        }
    }

    fn print(&mut self) {
        eprintln!("reindex: {}/{} blocks", self.done, self.total);
        self.printed = self.done;
        self.last = Instant::now();
    }

    fn finish(&mut self) {
        match &self.bar {
            Some(bar) => bar.finish(),
            None if self.printed != self.done => self.print(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::store::BlockReader;
    use cairn_core::testkit::TestChain;

    /// What a test datadir holds: the datadir, the params, the builder and the 6-block chain.
    type Forked = (
        tempfile::TempDir,
        ChainParams,
        TestChain,
        Vec<cairn_core::Block>,
    );

    /// A datadir whose store holds a 6-block chain and an equal-work 3-block branch off
    /// height 3, the branch seen first if `branch_first` (then it is the tip).
    fn forked_datadir_seen(branch_first: bool) -> Forked {
        let dir = tempfile::tempdir().unwrap();
        let params = ChainParams::regtest();
        let mut kit = TestChain::new(params.clone());
        let main = kit.build_chain(6);
        let side = kit.build_on(&main[2].block_hash(), 3);
        let store = RocksStore::open(&dir.path().join(CHAIN_DIR)).unwrap();
        let mut chain = ChainState::open(params.clone(), store).unwrap();
        let order: Vec<&cairn_core::Block> = if branch_first {
            main[..3].iter().chain(&side).chain(&main[3..]).collect()
        } else {
            main.iter().chain(&side).collect()
        };
        for block in order {
            chain.accept_block(block.clone(), kit.now()).unwrap();
        }
        let tip = if branch_first { &side[2] } else { &main[5] };
        assert_eq!(chain.tip().hash, tip.block_hash());
        drop(chain);
        (dir, params, kit, main)
    }

    fn forked_datadir() -> Forked {
        forked_datadir_seen(false)
    }

    #[test]
    fn at_equal_work_the_old_tip_stays_whichever_branch_it_was() {
        let (dir, params, kit, main) = forked_datadir_seen(true);
        let report = run(dir.path(), &params, kit.now()).unwrap();
        assert_eq!(report.height, 6);
        assert_ne!(
            report.tip,
            main[5].block_hash(),
            "the branch seen first stays the tip"
        );
        let (dir, params, kit, main) = forked_datadir_seen(false);
        let report = run(dir.path(), &params, kit.now()).unwrap();
        assert_eq!(report.tip, main[5].block_hash());
    }

    #[test]
    fn the_old_tip_stays_at_equal_work_and_everything_is_accepted_again() {
        let (dir, params, kit, main) = forked_datadir();
        let report = run(dir.path(), &params, kit.now()).unwrap();
        assert_eq!((report.tip, report.height), (main[5].block_hash(), 6));
        assert_eq!((report.bodies, report.accepted), (10, 9));
        assert!(report.unrecovered.is_empty(), "{:?}", report.unrecovered);
        assert!(!report.repaired);
        assert!(!dir.path().join(STAGING_DIR).exists());
        assert!(!dir.path().join(DAMAGED_DIR).exists());
        let store = RocksStore::open(&dir.path().join(CHAIN_DIR)).unwrap();
        store.check_integrity().unwrap();
        assert_eq!(store.tip().unwrap(), Some(main[5].block_hash()));
        assert_eq!(store.load_index().unwrap().len(), 10);
    }

    #[test]
    fn bodies_above_a_lost_one_are_logged_with_the_missing_parent() {
        let (dir, params, kit, main) = forked_datadir();
        {
            let db = rocksdb::DB::open_cf(
                &rocksdb::Options::default(),
                dir.path().join(CHAIN_DIR),
                ["default", "index", "blocks", "coins", "undo", "meta"],
            )
            .unwrap();
            db.delete_cf(
                db.cf_handle("blocks").unwrap(),
                main[4].block_hash().as_bytes(),
            )
            .unwrap();
        }
        let report = run(dir.path(), &params, kit.now()).unwrap();
        // Heights 5 and 6 of the main chain are gone; the side branch (height 6) wins.
        assert_eq!(report.height, 6);
        assert_ne!(report.tip, main[5].block_hash());
        assert_eq!(
            report.unrecovered,
            vec![Unrecovered {
                hash: Some(main[5].block_hash()),
                reason: format!("its parent {} was not recovered", main[4].block_hash()),
            }]
        );
    }

    #[test]
    fn an_interrupted_swap_is_refused_and_the_next_reindex_reads_the_old_store() {
        let (dir, params, kit, main) = forked_datadir();
        std::fs::rename(dir.path().join(CHAIN_DIR), dir.path().join(DAMAGED_DIR)).unwrap();
        let damage = check_not_interrupted(dir.path()).unwrap_err();
        assert!(
            damage.to_string().contains("interrupted --reindex"),
            "{damage}"
        );
        let report = run(dir.path(), &params, kit.now()).unwrap();
        assert_eq!(report.tip, main[5].block_hash());
        check_not_interrupted(dir.path()).unwrap();
    }

    #[test]
    fn an_empty_datadir_reindexes_to_genesis() {
        let dir = tempfile::tempdir().unwrap();
        let params = ChainParams::regtest();
        let report = run(dir.path(), &params, 0).unwrap();
        assert_eq!((report.tip, report.height), (params.genesis_hash, 0));
        assert!(dir.path().join(CHAIN_DIR).join("CURRENT").exists());
    }
}
