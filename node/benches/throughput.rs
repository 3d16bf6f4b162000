//! Block-connection and mempool throughput, in transactions per second and as a ratio to
//! k256 signature verification measured in the same run (STYLE.md §12).
//!
//! What is measured (`cargo bench -p cairn-node --bench throughput`):
//!
//! - `reference/verify_signature`: one `cairn_core::keys::verify_signature` of a valid
//!   low-S signature over a 32-byte hash, including the public-key decompression every
//!   input pays. Every transaction below carries exactly one signature, so a ratio of 1.0
//!   would mean "nothing but the signature check costs anything".
//! - `connect_block/{memory,rocksdb}`: importing a generated chain of [`BLOCKS`] blocks of
//!   [`TXS_PER_BLOCK`] signed 1-input 2-output spends (after one fan-out block) into a
//!   fresh `ChainState` with `accept_block`, block by block, as the node does: context-free
//!   checks, storing the body, connecting (coins, amounts, signatures), writing the UTXO
//!   changes. Over `MemoryStore` this is the consensus cost alone; over `RocksStore` (a
//!   temporary directory) it adds the node's real storage: one synced `WriteBatch` per
//!   block (body and connection together).
//! - `mempool_accept/{memory,rocksdb}`: `Mempool::accept` of [`MEMPOOL_TXS`] independent
//!   signed transactions spending confirmed coins of the generated chain, into a fresh
//!   pool, reading coins from the chain's `MemoryStore` or from a `RocksStore` holding the
//!   same chain.
//!
//! Building the chain (mining, signing) happens once, before anything is timed; so do
//! opening stores and cloning blocks or transactions for each iteration.
//!
//! The absolute figures move with the machine (and with whatever else runs on it); the
//! ratios to the reference are what compare across machines and commits. They are printed
//! at the end from the medians of the very samples criterion analysed in this process.
//! The chain benchmarks take one import per sample, so criterion warns that it cannot
//! complete the samples in the target time: expected, and harmless.

use cairn_core::chain::ChainState;
use cairn_core::hash::sha256d;
use cairn_core::keys::verify_signature;
use cairn_core::params::ChainParams;
use cairn_core::store::{ChainStore, UtxoReader};
use cairn_core::testkit::{SpendWorkload, TestChain};
use cairn_core::{Block, ImportOutcome, MemoryStore, Transaction};
use cairn_node::mempool::{Mempool, MempoolConfig};
use cairn_node::store::RocksStore;
use criterion::{Criterion, SamplingMode, Throughput, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Full blocks in the generated chain (after the fan-out block).
const BLOCKS: usize = 20;
/// Spends per full block (~200 bytes each: about a fifth of the 1 MB block limit).
const TXS_PER_BLOCK: usize = 1000;
/// Outputs of each of the ten fan-out transactions (one per genesis dev allocation).
const FAN_OUT: usize = 100;
/// Transactions offered to a fresh mempool per iteration.
const MEMPOOL_TXS: usize = 2000;
/// Fee of every generated spend, in base units (well above the 1/byte relay minimum).
const FEE: u64 = 1000;

/// Samples of the reference benchmark.
const REFERENCE_SAMPLES: usize = 50;
/// Samples of the chain and mempool benchmarks (criterion's minimum).
const HEAVY_SAMPLES: usize = 10;

// ----- the generated workload ------------------------------------------------------------

/// A chain to import and transactions to offer the mempool, built once.
struct Workload {
    params: ChainParams,
    /// Every block after genesis, in order.
    blocks: Vec<Block>,
    /// Non-coinbase transactions in `blocks`.
    chain_txs: u64,
    /// A "now" at which every block is acceptable.
    now: u64,
    /// The builder, at the tip of `blocks` (its store is the `MemoryStore` UTXO set).
    builder: TestChain,
    /// Independent transactions valid on top of the tip, spending confirmed coins.
    pool_txs: Vec<Transaction>,
}

impl Workload {
    fn generate() -> Workload {
        let started = Instant::now();
        let mut work = SpendWorkload::new(ChainParams::regtest(), FAN_OUT, FEE);
        work.add_blocks(BLOCKS, TXS_PER_BLOCK);
        let pool_txs = work.spends(MEMPOOL_TXS);
        let chain_txs = work.tx_count() as u64;
        let params = work.builder.params().clone();
        let blocks = std::mem::take(&mut work.blocks);
        let bytes: usize = blocks.iter().map(Block::encoded_size).sum();
        eprintln!(
            "workload: {} blocks ({} non-coinbase txs, {:.0} kB per block on average), \
             {MEMPOOL_TXS} mempool txs; generated in {:.1?}",
            blocks.len(),
            chain_txs,
            bytes as f64 / blocks.len() as f64 / 1000.0,
            started.elapsed(),
        );
        let now = work.builder.now();
        Workload {
            params,
            blocks,
            chain_txs,
            now,
            builder: work.builder,
            pool_txs,
        }
    }

    /// Imports every block into `chain`; returns the time it took.
    fn import<S: ChainStore>(&self, chain: &mut ChainState<S>, blocks: Vec<Block>) -> Duration {
        let start = Instant::now();
        for block in blocks {
            let report = chain.accept_block(block, self.now).expect("store works");
            assert_eq!(report.outcome, ImportOutcome::Active);
        }
        start.elapsed()
    }

    /// A fresh chain state over a new `RocksStore` in a new temporary directory.
    fn fresh_rocks(&self) -> (tempfile::TempDir, ChainState<RocksStore>) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = RocksStore::open(&dir.path().join("chain")).expect("fresh store opens");
        let chain = ChainState::open(self.params.clone(), store).expect("genesis is written");
        (dir, chain)
    }
}

/// Seconds per iteration of every `iter_custom` call, by benchmark id, in call order.
/// Criterion calls the routine for warm-up first, then once per sample, so the last
/// `samples` entries of an id are exactly the samples criterion analyses.
static SAMPLES: Mutex<BTreeMap<&'static str, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &'static str, iters: u64, elapsed: Duration) -> Duration {
    let per_iter = elapsed.as_secs_f64() / iters as f64;
    SAMPLES
        .lock()
        .expect("not poisoned")
        .entry(id)
        .or_default()
        .push(per_iter);
    elapsed
}

/// Median seconds per iteration over the last `samples` calls of `id` (criterion's median:
/// the mean of the middle two for an even count), and how many samples it rests on.
fn median(id: &str, samples: usize) -> Option<(f64, usize)> {
    let all = SAMPLES.lock().expect("not poisoned");
    let calls = all.get(id)?;
    let mut last: Vec<f64> = calls[calls.len().saturating_sub(samples)..].to_vec();
    last.sort_by(f64::total_cmp);
    let n = last.len();
    let mid = if n % 2 == 1 {
        last[n / 2]
    } else {
        (last[n / 2 - 1] + last[n / 2]) / 2.0
    };
    Some((mid, n))
}

/// Non-coinbase transactions per chain import, set once the workload exists.
static CHAIN_TXS: AtomicU64 = AtomicU64::new(0);

// ----- benchmarks --------------------------------------------------------------------------

fn reference(c: &mut Criterion) {
    let key = cairn_core::params::dev_secret_key(1);
    let public_key = key.public_key();
    let hash = sha256d(b"cairn throughput reference");
    let signature = key.sign_hash(&hash);
    verify_signature(&public_key, &hash, &signature).expect("a valid low-S signature");

    let mut group = c.benchmark_group("reference");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(REFERENCE_SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("verify_signature", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let ok = verify_signature(
                    black_box(&public_key),
                    black_box(&hash),
                    black_box(&signature),
                );
                black_box(ok).expect("valid");
            }
            record("reference/verify_signature", iters, start.elapsed())
        })
    });
    group.finish();
}

fn chain_and_mempool(c: &mut Criterion) {
    let work = Workload::generate();
    CHAIN_TXS.store(work.chain_txs, Ordering::Relaxed);

    let mut group = c.benchmark_group("connect_block");
    group
        .throughput(Throughput::Elements(work.chain_txs))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(HEAVY_SAMPLES)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut chain = ChainState::open(work.params.clone(), MemoryStore::new())
                    .expect("memory store cannot fail");
                total += work.import(&mut chain, work.blocks.clone());
            }
            record("connect_block/memory", iters, total)
        })
    });
    group.bench_function("rocksdb", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, mut chain) = work.fresh_rocks();
                total += work.import(&mut chain, work.blocks.clone());
                // Closing the database and deleting the directory are not timed.
            }
            record("connect_block/rocksdb", iters, total)
        })
    });
    group.finish();

    // The same chain, once, in rocksdb: the coins the node's mempool reads.
    let (_rocks_dir, mut rocks_chain) = work.fresh_rocks();
    work.import(&mut rocks_chain, work.blocks.clone());
    let next_height = work.builder.chain.height() + 1;

    let mut group = c.benchmark_group("mempool_accept");
    group
        .throughput(Throughput::Elements(MEMPOOL_TXS as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(HEAVY_SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("memory", |b| {
        b.iter_custom(|iters| {
            let total = accept_all(&work, work.builder.chain.store(), next_height, iters);
            record("mempool_accept/memory", iters, total)
        })
    });
    group.bench_function("rocksdb", |b| {
        b.iter_custom(|iters| {
            let total = accept_all(&work, rocks_chain.store(), next_height, iters);
            record("mempool_accept/rocksdb", iters, total)
        })
    });
    group.finish();
}

/// Times `iters` rounds of offering every pool transaction to a fresh mempool.
fn accept_all<U: UtxoReader>(work: &Workload, utxos: &U, next_height: u32, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let txs = work.pool_txs.clone();
        let mut pool = Mempool::new(work.params.clone(), MempoolConfig::default());
        let start = Instant::now();
        for tx in txs {
            pool.accept(tx, utxos, next_height, work.now)
                .expect("an independent valid spend");
        }
        total += start.elapsed();
        black_box(&pool);
    }
    total
}

/// Prints txs/s and the ratio to the reference, from this run's medians.
fn ratios(_: &mut Criterion) {
    let Some((verify_secs, verify_n)) = median("reference/verify_signature", REFERENCE_SAMPLES)
    else {
        eprintln!("\nratios: the reference was not measured in this run; none printed");
        return;
    };
    let verifications = 1.0 / verify_secs;
    println!(
        "\nthroughput summary (medians of this run; ratio = txs/s ÷ verifications/s)\n  \
         {:<24} {:>10.0} verifications/s  ({verify_n} samples)",
        "reference", verifications
    );
    let chain_txs = CHAIN_TXS.load(Ordering::Relaxed) as f64;
    for (id, txs) in [
        ("connect_block/memory", chain_txs),
        ("connect_block/rocksdb", chain_txs),
        ("mempool_accept/memory", MEMPOOL_TXS as f64),
        ("mempool_accept/rocksdb", MEMPOOL_TXS as f64),
    ] {
        let Some((secs, n)) = median(id, HEAVY_SAMPLES) else {
            continue;
        };
        let rate = txs / secs;
        let ratio = rate / verifications;
        println!(
            "  {id:<24} {rate:>10.0} txs/s            ({n} samples)  ratio {ratio:.3} \
             (one tx costs {:.2} signature verifications)",
            1.0 / ratio
        );
    }
}

/// The group, in a private module: `criterion_group!` defines an undocumented `pub fn`.
mod group {
    use super::{chain_and_mempool, ratios, reference};
    criterion::criterion_group!(benches, reference, chain_and_mempool, ratios);
}
criterion_main!(group::benches);
