//! `cairn bench store`: the same generated chain connected into rocksdb (a fresh temporary
//! directory per run) and into the in-memory store, in the same run: blocks per second ÷
//! blocks per second. What rocksdb costs beyond the consensus work during sync, where
//! blocks are group-committed ([`GROUP`] blocks per sync, as one sync request brings);
//! also measured one synced `WriteBatch` per block (how a block mined or gossiped alone is
//! stored), which the disk's synced-write latency bounds: that is measured here too. The
//! headline is the node's own sync path: group commits behind the default `--dbcache`
//! UTXO cache (flushed at the end, inside the timing); the rows without it are beside it.

use super::workload::{ChainArgs, ChainWorkload};
use super::{Figure, Report, median, progress};
use anyhow::Context;
use cairn_core::MemoryStore;
use cairn_core::chain::ChainState;
use cairn_core::store::MIB;
use cairn_node::config::DEFAULT_DBCACHE_MB;
use cairn_node::store::{NodeStore, RocksStore};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Blocks per group commit: what one sync request brings.
const GROUP: usize = cairn_node::network::protocol::MAX_BLOCKS_PER_REQUEST;
/// Synced 4 KiB writes timed for the disk's latency.
const SYNC_PROBES: usize = 50;

/// Runs the bench.
pub fn run(args: &ChainArgs) -> anyhow::Result<Report> {
    args.check()?;
    let runs = args.runs;
    let bar = progress("store", (args.blocks + 1 + 4 * runs) as u64);
    let work = ChainWorkload::generate(args, &bar);
    let blocks = work.blocks.len() as f64;
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    bar.set_message("timing synced writes");
    let sync_ms = synced_write_ms(scratch.path())?;
    bar.inc(1);

    let measured = measure(&work, scratch.path(), runs, &bar)?;
    bar.finish_and_clear();
    Ok(Report {
        bench: "store",
        ratio_to_reference: measured.cached / measured.memory,
        reference: "in-memory connect, same chain (blocks/s)",
        reference_per_sec: measured.memory,
        figures: measured.figures(blocks, args.txs_per_block, sync_ms),
    })
}

/// Median blocks per second of each way of connecting, and the coin records written.
#[derive(Debug, Clone, Copy)]
struct Measured {
    memory: f64,
    /// One synced batch per block, `--dbcache 0`.
    rocks: f64,
    /// Group commits, `--dbcache 0`.
    grouped: f64,
    /// Group commits behind the default cache: the node's sync path.
    cached: f64,
    /// Coin records written by the last run, with the default cache and with none.
    coin_writes: (u64, u64),
}

/// Connects the workload `runs` times each way, into fresh stores under `scratch`.
fn measure(
    work: &ChainWorkload,
    scratch: &Path,
    runs: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Measured> {
    let blocks = work.blocks.len() as f64;
    let (mut memory, mut rocks, mut grouped, mut cached) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut coin_writes = (0, 0);
    let dbcache = DEFAULT_DBCACHE_MB as usize * MIB;
    for run in 0..runs {
        bar.set_message("connecting into memory");
        let mut chain = ChainState::open(work.params.clone(), MemoryStore::new())
            .expect("the memory store cannot fail");
        memory.push(blocks / work.import(&mut chain)?.as_secs_f64());
        bar.inc(1);

        bar.set_message("connecting into rocksdb");
        let path = scratch.join(format!("chain-{run}"));
        let (seconds, uncached_writes) = connect_into_rocksdb(work, &path, 0, None)?;
        rocks.push(blocks / seconds);
        bar.inc(1);

        bar.set_message("connecting into rocksdb, group commits");
        let path = scratch.join(format!("grouped-{run}"));
        grouped.push(blocks / connect_into_rocksdb(work, &path, 0, Some(GROUP))?.0);
        bar.inc(1);

        bar.set_message("connecting into rocksdb, group commits and the UTXO cache");
        let path = scratch.join(format!("cached-{run}"));
        let (seconds, cached_writes) = connect_into_rocksdb(work, &path, dbcache, Some(GROUP))?;
        cached.push(blocks / seconds);
        coin_writes = (cached_writes, uncached_writes);
        bar.inc(1);
    }
    Ok(Measured {
        memory: median(memory),
        rocks: median(rocks),
        grouped: median(grouped),
        cached: median(cached),
        coin_writes,
    })
}

impl Measured {
    fn figures(&self, blocks: f64, txs_per_block: usize, sync_ms: f64) -> Vec<Figure> {
        let Measured {
            memory,
            rocks,
            grouped,
            cached,
            coin_writes,
        } = *self;
        vec![
            Figure::new("blocks", "blocks connected per run", blocks, ""),
            Figure::new(
                "txs_per_block",
                "spends per full block",
                txs_per_block as f64,
                "",
            ),
            Figure::new(
                "blocks_per_sec_rocksdb_cached",
                "connect into rocksdb, group commits, default --dbcache (the node's sync path)",
                cached,
                "blocks/s",
            ),
            Figure::new("dbcache_mb", "UTXO cache", DEFAULT_DBCACHE_MB as f64, "MiB"),
            Figure::new(
                "coin_records_written",
                "coin puts and deletes written to rocksdb, default --dbcache",
                coin_writes.0 as f64,
                "",
            ),
            Figure::new(
                "coin_records_written_no_cache",
                "the same, --dbcache 0",
                coin_writes.1 as f64,
                "",
            ),
            Figure::new(
                "ratio_grouped_no_cache",
                "group commits, --dbcache 0 ÷ in-memory",
                grouped / memory,
                "",
            ),
            Figure::new(
                "blocks_per_sec_rocksdb_grouped",
                "connect into rocksdb, group commits, --dbcache 0",
                grouped,
                "blocks/s",
            ),
            Figure::new(
                "blocks_per_sec_rocksdb",
                "connect into rocksdb, one sync per block, --dbcache 0",
                rocks,
                "blocks/s",
            ),
            Figure::new(
                "ratio_per_block_sync",
                "one sync per block ÷ in-memory",
                rocks / memory,
                "",
            ),
            Figure::new(
                "blocks_per_sec_memory",
                "connect into memory",
                memory,
                "blocks/s",
            ),
            Figure::new(
                "disk_sync_write_ms",
                "disk: one synced 4 KiB write",
                sync_ms,
                "ms",
            ),
        ]
    }
}

/// Connects the workload into a fresh rocksdb store at `path` behind a UTXO cache of
/// `dbcache` bytes, in group commits of `group` blocks (or one sync per block), flushes the
/// cache, and removes the store; returns the seconds it took and the coin records it wrote.
fn connect_into_rocksdb(
    work: &ChainWorkload,
    path: &Path,
    dbcache: usize,
    group: Option<usize>,
) -> anyhow::Result<(f64, u64)> {
    let store = RocksStore::open(path).context("opening a fresh rocksdb store")?;
    let mut chain = ChainState::open(work.params.clone(), NodeStore::new(store, dbcache))
        .context("writing the genesis block")?;
    let imported = match group {
        Some(group) => work.import_grouped(&mut chain, group)?,
        None => work.import(&mut chain)?,
    };
    let start = Instant::now();
    chain.flush_coins().context("flushing the UTXO cache")?;
    let seconds = (imported + start.elapsed()).as_secs_f64();
    let coin_writes = chain.store().coin_writes();
    drop(chain);
    std::fs::remove_dir_all(path).context("removing the bench store")?;
    Ok((seconds, coin_writes))
}

/// Median milliseconds of one 4 KiB write followed by `fdatasync`, in `dir` (the disk the
/// stores are on): the floor under one block's synced batch.
pub(super) fn synced_write_ms(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("sync-probe");
    let mut file = std::fs::File::create(&path).context("creating the sync probe file")?;
    let page = [0u8; 4096];
    let mut samples = Vec::with_capacity(SYNC_PROBES);
    for _ in 0..SYNC_PROBES {
        let start = Instant::now();
        file.write_all(&page).context("writing the sync probe")?;
        file.sync_data().context("syncing the sync probe")?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    drop(file);
    std::fs::remove_file(&path).context("removing the sync probe")?;
    Ok(median(samples))
}
