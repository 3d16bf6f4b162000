//! `cairn bench sync`: headers-first sync between two real nodes on loopback ÷ the same
//! chain's in-process connect over the in-memory store, in the same run.
//!
//! A chain of `--blocks` regtest blocks (a fan-out block, then blocks of
//! `--txs-per-block` signed one-input two-output spends) is generated before anything is
//! timed. The reference connects it with `ChainState::accept_block` into a `MemoryStore`
//! (consensus alone, no disk; median of `--runs`). Then it is connected once into a
//! rocksdb store in a fresh datadir (also reported: consensus plus disk, in-process), a
//! node is started on that datadir, and a second node is started empty with `--peer` =
//! the first. Sync time runs from the second node's `ready` line until its
//! `getblockcount` (polled every [`POLL`]) reaches the tip: dial, handshake, headers,
//! bodies, connection, storage. Disk-bound, so the disk's synced-write latency is
//! measured beside it (as `dd bs=4k oflag=dsync` would).

use super::nodes::{BenchNode, write_regtest_genesis};
use super::store::synced_write_ms;
use super::workload::{ChainWorkload, FEE};
use super::{Figure, Report, median, progress};
use anyhow::Context;
use cairn_core::chain::ChainState;
use cairn_core::testkit::SpendWorkload;
use cairn_core::{ChainParams, MemoryStore};
use cairn_node::store::RocksStore;
use clap::Args;
use std::time::Duration;

/// Pause between `getblockcount` calls while the second node catches up.
const POLL: Duration = Duration::from_millis(10);
/// Longest wait for the sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1800);
/// Blocks generated per progress step.
const GENERATE_STEP: usize = 100;

/// The chain `cairn bench sync` generates and how often the reference is measured.
#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// Blocks in the generated chain (the fan-out block included)
    #[arg(long, default_value_t = 5000)]
    pub blocks: usize,
    /// Spends per block after the fan-out block (one input each)
    #[arg(long, default_value_t = 4)]
    pub txs_per_block: usize,
    /// Timed runs of the in-memory reference (the median is reported); the sync runs once
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print one JSON line instead of a table
    #[arg(long)]
    pub json: bool,
}

impl SyncArgs {
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (2..=100_000).contains(&self.blocks),
            "--blocks must be in 2..=100000"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.txs_per_block),
            "--txs-per-block must be in 1..=1000"
        );
        anyhow::ensure!((1..=100).contains(&self.runs), "--runs must be in 1..=100");
        Ok(())
    }
}

/// Runs the bench.
pub fn run(args: &SyncArgs) -> anyhow::Result<Report> {
    args.check()?;
    let steps = args.blocks.div_ceil(GENERATE_STEP) + args.runs + 4;
    let bar = progress("sync", steps as u64);
    let work = generate(args, &bar);
    let blocks = work.blocks.len() as f64;
    let tip = work
        .blocks
        .last()
        .expect("at least two blocks")
        .block_hash();

    let mut memory = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        bar.set_message("reference: connecting into memory");
        let mut chain = ChainState::open(work.params.clone(), MemoryStore::new())
            .expect("the memory store cannot fail");
        memory.push(blocks / work.import(&mut chain)?.as_secs_f64());
        bar.inc(1);
    }
    let memory = median(memory);

    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    bar.set_message("timing synced writes");
    let sync_ms = synced_write_ms(scratch.path())?;
    bar.inc(1);
    let genesis = write_regtest_genesis(scratch.path())?;
    let source_dir = scratch.path().join("source");
    bar.set_message("connecting into the source node's rocksdb");
    let rocks = {
        let store = RocksStore::open(&source_dir.join("chain")).context("opening a store")?;
        let mut chain =
            ChainState::open(work.params.clone(), store).context("writing the genesis block")?;
        blocks / work.import(&mut chain)?.as_secs_f64()
    };
    bar.inc(1);

    bar.set_message("starting the source node");
    let source = BenchNode::start(&source_dir, &genesis, &[])?;
    anyhow::ensure!(
        source.height()? == blocks as u64,
        "the source node did not load the generated chain"
    );
    bar.inc(1);
    bar.set_message("syncing a fresh node from the source");
    let syncing = BenchNode::start(
        &scratch.path().join("syncing"),
        &genesis,
        std::slice::from_ref(&source.p2p),
    )?;
    let elapsed = syncing.wait_for_height(blocks as u64, POLL, SYNC_TIMEOUT)?;
    anyhow::ensure!(
        syncing.best_hash()? == tip.to_string(),
        "the synced node ended on another tip"
    );
    bar.inc(1);
    drop(syncing);
    drop(source);
    bar.finish_and_clear();
    let synced = blocks / elapsed.as_secs_f64();
    Ok(Report {
        bench: "sync",
        ratio_to_reference: synced / memory,
        reference: "in-memory connect, same chain (blocks/s)",
        reference_per_sec: memory,
        figures: vec![
            Figure::new("blocks", "blocks synced", blocks, ""),
            Figure::new(
                "txs_per_block",
                "spends per block",
                args.txs_per_block as f64,
                "",
            ),
            Figure::new(
                "blocks_per_sec_sync",
                "sync between two nodes",
                synced,
                "blocks/s",
            ),
            Figure::new("sync_secs", "sync time", elapsed.as_secs_f64(), "s"),
            Figure::new(
                "blocks_per_sec_rocksdb",
                "in-process connect into rocksdb",
                rocks,
                "blocks/s",
            ),
            Figure::new(
                "disk_sync_write_ms",
                "disk: one synced 4 KiB write",
                sync_ms,
                "ms",
            ),
        ],
    })
}

/// The chain `args` describes: a fan-out block, then full blocks of spends.
fn generate(args: &SyncArgs, bar: &indicatif::ProgressBar) -> ChainWorkload {
    bar.set_message("generating the chain (signing, mining)");
    let params = ChainParams::regtest();
    let accounts = params.config.dev_accounts.len().max(1);
    // Every spend makes two coins of one, so the fan-out only has to cover one block.
    let fan_out = args.txs_per_block.div_ceil(accounts);
    let mut work = SpendWorkload::new(params, fan_out, FEE);
    bar.inc(1);
    let mut left = args.blocks - 1;
    while left > 0 {
        let step = left.min(GENERATE_STEP);
        work.add_blocks(step, args.txs_per_block);
        left -= step;
        bar.inc(1);
    }
    ChainWorkload::from_work(work)
}
