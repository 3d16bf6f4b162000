//! `cairn bench mempool`: independent valid transactions accepted per second by a fresh
//! pool (with the node's signature cache, cold: every signature verified) ÷ single-thread
//! k256 verifications per second. Second figure: what a full pool costs a block — the time
//! to import a block of `--block-txs` spends and bring the pool in line with the new tip
//! (`Mempool::update_for_tip_change`, as the node does after every tip change: a block that
//! only extends the tip removes what it confirmed or conflicts with), with `--pool-txs`
//! unrelated transactions in the pool ÷ the same with an empty pool.

use super::workload::{ChainWorkload, FEE};
use super::{Figure, Report, VERIFY_REFERENCE, median, progress, verifications_per_sec};
use anyhow::Context;
use cairn_core::chain::ChainState;
use cairn_core::params::dev_secret_key;
use cairn_core::sigcache::{DEFAULT_SIGCACHE_BYTES, SigCache, SigCacheKey};
use cairn_core::sigcheck::SigChecks;
use cairn_core::store::UtxoReader;
use cairn_core::testkit::{SpendWorkload, mine};
use cairn_core::{Amount, Block, ChainParams, Coin, MemoryStore, Transaction};
use cairn_node::mempool::{Mempool, MempoolConfig};
use clap::Args;
use indicatif::ProgressBar;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Salt of the bench's caches.
const SALT: [u8; 32] = [0xa5; 32];

/// What `cairn bench mempool` offers the pool.
#[derive(Args, Debug, Clone)]
pub struct MempoolArgs {
    /// Independent transactions offered to a fresh pool per run
    #[arg(long, default_value_t = 5000)]
    pub txs: usize,
    /// Transactions in the full pool when a block connects (0 skips that figure)
    #[arg(long, default_value_t = 20_000)]
    pub pool_txs: usize,
    /// Spends in the block connected against the full and the empty pool
    #[arg(long, default_value_t = 1000)]
    pub block_txs: usize,
    /// Timed runs per figure (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print one JSON line instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The generated chain, the transactions for the pool and a block to connect on its tip.
struct PoolWorkload {
    chain: ChainWorkload,
    /// Independent spends of confirmed coins, valid on the tip.
    pool_txs: Vec<Transaction>,
    /// A mined block of other spends on the tip, not connected anywhere yet.
    block: Block,
}

/// Runs the bench.
pub fn run(args: &MempoolArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.txs),
        "--txs must be in 1..=1000000"
    );
    anyhow::ensure!(
        args.pool_txs <= 1_000_000,
        "--pool-txs must be at most 1000000"
    );
    anyhow::ensure!(
        (1..=4000).contains(&args.block_txs),
        "--block-txs must be in 1..=4000 (the 1 MB block limit)"
    );
    anyhow::ensure!((1..=100).contains(&args.runs), "--runs must be in 1..=100");
    let full_runs = if args.pool_txs > 0 { 2 * args.runs } else { 0 };
    let bar = progress("mempool", (5 + args.runs + full_runs) as u64);
    bar.set_message("generating coins and transactions (signing, mining)");
    let work = PoolWorkload::generate(args);
    let verify = verifications_per_sec(5, Duration::from_millis(200), &bar);
    let reference = verify.distinct;

    let store = work.chain.work.builder.chain.store();
    let next_height = work.chain.work.builder.chain.height() + 1;
    let mut rates = Vec::new();
    for _ in 0..args.runs {
        bar.set_message("accepting into a fresh pool");
        let txs = work.pool_txs[..args.txs].to_vec();
        let mut pool = Mempool::new(work.chain.params.clone(), MempoolConfig::default());
        pool.set_sigcache(Arc::new(SigCache::with_max_bytes(
            SALT,
            DEFAULT_SIGCACHE_BYTES,
        )));
        let start = Instant::now();
        for tx in txs {
            pool.accept(tx, store, next_height, work.chain.now)
                .context("a generated independent spend was refused")?;
        }
        rates.push(args.txs as f64 / start.elapsed().as_secs_f64());
        bar.inc(1);
    }
    let accepted = median(rates);
    let mut figures = vec![
        Figure::new("txs", "transactions per run", args.txs as f64, ""),
        Figure::new(
            "accepted_per_sec",
            "accepted into a fresh pool",
            accepted,
            "txs/s",
        ),
    ];
    figures.extend(verify.figures(accepted / verify.one_signature));
    if args.pool_txs > 0 {
        figures.extend(full_pool_figures(&work, args, &bar)?);
    }
    bar.finish_and_clear();
    Ok(Report {
        bench: "mempool",
        ratio_to_reference: accepted / reference,
        reference: VERIFY_REFERENCE,
        reference_per_sec: reference,
        figures,
    })
}

impl PoolWorkload {
    fn generate(args: &MempoolArgs) -> PoolWorkload {
        let params = ChainParams::regtest();
        let pool = args.txs.max(args.pool_txs);
        let mut work = SpendWorkload::new(params, 100, FEE);
        work.widen(pool + args.block_txs, 50);
        let pool_txs = work.spends(pool);
        let block_txs = work.spends(args.block_txs);
        let builder = &work.builder;
        let now = builder.now() + u64::from(builder.params().block_interval_secs);
        let fees = Amount::from_base(FEE * block_txs.len() as u64);
        let template = builder.chain.block_template(
            dev_secret_key(0).pubkey_hash(),
            block_txs,
            fees,
            now,
            b"bench mempool".to_vec(),
        );
        let block = mine(template, builder.params());
        let mut chain = ChainWorkload::from_work(work);
        chain.now = now + 1;
        PoolWorkload {
            chain,
            pool_txs,
            block,
        }
    }
}

/// Milliseconds to import the block and update the pool, with a full and an empty pool.
fn full_pool_figures(
    work: &PoolWorkload,
    args: &MempoolArgs,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Figure>> {
    bar.set_message("verifying the pool's signatures once");
    let seed = SigCache::new(SALT, 1);
    let keys = pool_keys(
        &work.pool_txs[..args.pool_txs],
        work.chain.work.builder.chain.store(),
        &work.chain.params,
        &seed,
    )?;
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        for (pool_size, samples) in [0, args.pool_txs].into_iter().zip(&mut times) {
            bar.set_message(format!("connecting a block, {pool_size} txs in the pool"));
            samples.push(connect_with_pool(work, pool_size, &keys)?.as_secs_f64() * 1000.0);
            bar.inc(1);
        }
    }
    let [empty, full] = times.map(median);
    Ok(vec![
        Figure::new(
            "pool_txs",
            "transactions in the full pool",
            args.pool_txs as f64,
            "",
        ),
        Figure::new(
            "block_txs",
            "spends in the connected block",
            args.block_txs as f64,
            "",
        ),
        Figure::new(
            "connect_empty_pool_ms",
            "block import + pool update, empty",
            empty,
            "ms",
        ),
        Figure::new(
            "connect_full_pool_ms",
            "block import + pool update, full",
            full,
            "ms",
        ),
        Figure::new("full_pool_slowdown", "full ÷ empty", full / empty, ""),
    ])
}

/// The salted keys of every signature of `txs`, each verified once.
fn pool_keys(
    txs: &[Transaction],
    utxos: &MemoryStore,
    params: &ChainParams,
    cache: &SigCache,
) -> anyhow::Result<Vec<SigCacheKey>> {
    let mut keys = Vec::with_capacity(txs.len());
    for tx in txs {
        let spent: Vec<Coin> = tx
            .inputs
            .iter()
            .map(|i| utxos.coin(&i.prevout))
            .collect::<Result<Option<_>, _>>()?
            .context("a pool transaction spends no confirmed coin")?;
        let mut checks = SigChecks::with_capacity(spent.len());
        checks.push_tx(0, tx, &spent, params);
        for check in checks.iter() {
            check.run(Some(cache), false)?;
            keys.push(cache.key(
                &check.sighash,
                &check.input.public_key,
                &check.input.signature,
            ));
        }
    }
    Ok(keys)
}

/// One timed import of the block over a fresh chain with `pool_size` pool transactions
/// (accepted untimed, their signatures already in the shared cache as on a live node).
fn connect_with_pool(
    work: &PoolWorkload,
    pool_size: usize,
    keys: &[SigCacheKey],
) -> anyhow::Result<Duration> {
    let params = &work.chain.params;
    let mut chain =
        ChainState::open(params.clone(), MemoryStore::new()).expect("the memory store cannot fail");
    work.chain.import(&mut chain)?;
    let cache = Arc::new(SigCache::with_max_bytes(SALT, DEFAULT_SIGCACHE_BYTES));
    keys[..pool_size].iter().for_each(|k| cache.insert(*k));
    chain.set_sigcache(cache.clone());
    let mut pool = Mempool::new(params.clone(), MempoolConfig::default());
    pool.set_sigcache(cache);
    let next_height = chain.height() + 1;
    let now = work.chain.now;
    for tx in &work.pool_txs[..pool_size] {
        pool.accept(tx.clone(), chain.store(), next_height, now)
            .context("a generated pool transaction was refused")?;
    }
    let block = work.block.clone();
    let start = Instant::now();
    let report = chain
        .accept_block(block, now)
        .context("the memory store failed")?;
    let change = report
        .tip_changed
        .context("the bench block did not move the tip")?;
    pool.update_for_tip_change(&change, chain.store(), chain.height() + 1, now)?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        pool.len() == pool_size,
        "the pool lost transactions to an unrelated block"
    );
    Ok(elapsed)
}
