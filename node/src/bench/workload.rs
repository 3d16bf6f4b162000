//! The generated chain the benches connect: a fan-out block, then full blocks of signed
//! one-input two-output spends (`cairn_core::testkit::SpendWorkload`, as the criterion
//! benchmark `node/benches/throughput.rs` uses). Generating it (signing, mining) is never
//! timed.

use anyhow::Context;
use cairn_core::chain::pipeline::{self, Prechecked};
use cairn_core::chain::{ChainState, GroupWriter};
use cairn_core::params::ChainParams;
use cairn_core::sigcache::{SigCache, SigCacheKey};
use cairn_core::sigcheck::SigChecks;
use cairn_core::store::ChainStore;
use cairn_core::testkit::SpendWorkload;
use cairn_core::{Block, Coin, ImportOutcome, OutPoint};
use clap::Args;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Fee of every generated spend, in base units (well above the relay minimum).
pub const FEE: u64 = 1000;
/// Most spends per block: about 200 bytes each, within the 1 MB block limit.
const MAX_TXS_PER_BLOCK: usize = 4000;

/// The shape of the generated chain and how often it is connected.
#[derive(Args, Debug, Clone)]
pub struct ChainArgs {
    /// Full blocks in the generated chain (after the fan-out block)
    #[arg(long, default_value_t = 10)]
    pub blocks: usize,
    /// Spends per full block (one input each)
    #[arg(long, default_value_t = 1000)]
    pub txs_per_block: usize,
    /// Timed runs per figure (the median is reported)
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Print one JSON line instead of a table
    #[arg(long)]
    pub json: bool,
}

impl ChainArgs {
    /// Refuses shapes that cannot be built or measured.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1000).contains(&self.blocks),
            "--blocks must be in 1..=1000"
        );
        anyhow::ensure!(
            (1..=MAX_TXS_PER_BLOCK).contains(&self.txs_per_block),
            "--txs-per-block must be in 1..={MAX_TXS_PER_BLOCK} (the 1 MB block limit)"
        );
        anyhow::ensure!((1..=100).contains(&self.runs), "--runs must be in 1..=100");
        Ok(())
    }
}

/// A generated chain, ready to connect again and again.
pub struct ChainWorkload {
    /// Its parameters (regtest).
    pub params: ChainParams,
    /// Every block after genesis, oldest first.
    pub blocks: Vec<Block>,
    /// Inputs in `blocks` (one signature each).
    pub inputs: usize,
    /// A "now" at which every block is acceptable.
    pub now: u64,
    /// The builder, at the tip of `blocks`, with its leftover confirmed coins.
    pub work: SpendWorkload,
}

impl ChainWorkload {
    /// Builds the chain `args` describes.
    pub fn generate(args: &ChainArgs, progress: &ProgressBar) -> ChainWorkload {
        progress.set_message("generating the chain (signing, mining)");
        let params = ChainParams::regtest();
        let accounts = params.config.dev_accounts.len().max(1);
        let fan_out = args.txs_per_block.div_ceil(accounts);
        let mut work = SpendWorkload::new(params.clone(), fan_out, FEE);
        for _ in 0..args.blocks {
            work.add_blocks(1, args.txs_per_block);
            progress.inc(1);
        }
        Self::from_work(work)
    }

    /// Takes the blocks `work` built.
    pub fn from_work(mut work: SpendWorkload) -> ChainWorkload {
        let blocks = std::mem::take(&mut work.blocks);
        let inputs = blocks
            .iter()
            .flat_map(|b| &b.txs)
            .map(|tx| tx.inputs.len())
            .sum();
        ChainWorkload {
            params: work.builder.params().clone(),
            blocks,
            inputs,
            now: work.builder.now(),
            work,
        }
    }

    /// Connects every block into `chain` as the node's sync imports a batch: in order,
    /// each block's context-free checks one block ahead on another thread
    /// ([`pipeline`]); returns the time it took. Cloning the blocks is not timed.
    pub fn import<S: ChainStore>(&self, chain: &mut ChainState<S>) -> anyhow::Result<Duration> {
        let blocks = self.blocks.clone();
        let start = Instant::now();
        let failed = pipeline::import_in_order(&self.params, blocks, |block| {
            match self.accept(chain, block) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        });
        failed.map_or(Ok(start.elapsed()), Err)
    }

    /// Like [`import`](Self::import), with the blocks in group commits of `group` blocks
    /// (as sync imports them: one sync per group).
    pub fn import_grouped<S: ChainStore + GroupWriter>(
        &self,
        chain: &mut ChainState<S>,
        group: usize,
    ) -> anyhow::Result<Duration> {
        let blocks = self.blocks.clone();
        let start = Instant::now();
        let mut in_group = 0;
        let failed = pipeline::import_in_order(&self.params, blocks, |block| {
            if in_group == 0 {
                chain.begin_group();
            }
            in_group += 1;
            let mut step = self.accept(chain, block);
            if step.is_ok() && in_group >= group {
                in_group = 0;
                step = chain
                    .commit_group()
                    .context("the store failed to commit a group");
            }
            match step {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if in_group > 0 {
            chain
                .commit_group()
                .context("the store failed to commit a group")?;
        }
        Ok(start.elapsed())
    }

    /// Imports one generated block, which must become the tip.
    fn accept<S: ChainStore>(
        &self,
        chain: &mut ChainState<S>,
        block: Prechecked,
    ) -> anyhow::Result<()> {
        let hash = block.hash();
        let report = chain
            .accept_prechecked(block, self.now)
            .context("the store failed during the bench")?;
        anyhow::ensure!(
            report.outcome == ImportOutcome::Active,
            "generated block {hash} did not connect: {:?}",
            report.outcome
        );
        Ok(())
    }

    /// The salted cache keys of every signature in the chain, each verified once (as the
    /// mempool would on acceptance): inserting them into a cache of the same salt warms it.
    pub fn verified_keys(&self, cache: &SigCache) -> anyhow::Result<Vec<SigCacheKey>> {
        let mut coins: HashMap<OutPoint, Coin> = HashMap::new();
        let mut keys = Vec::with_capacity(self.inputs);
        let genesis = std::iter::once(&self.params.genesis_block);
        for (height, block) in genesis.chain(&self.blocks).enumerate() {
            for (index, tx) in block.txs.iter().enumerate() {
                let txid = tx.txid();
                if index > 0 {
                    let spent: Vec<Coin> = tx
                        .inputs
                        .iter()
                        .map(|i| coins.remove(&i.prevout))
                        .collect::<Option<_>>()
                        .context("a generated spend has no coin")?;
                    let mut checks = SigChecks::with_capacity(spent.len());
                    checks.push_tx(index, tx, &spent, &self.params);
                    for check in checks.iter() {
                        check
                            .run(Some(cache), false)
                            .context("a generated signature does not verify")?;
                        let input = check.input;
                        keys.push(cache.key(&check.sighash, &input.public_key, &input.signature));
                    }
                }
                for (vout, output) in tx.outputs.iter().enumerate() {
                    let coin = Coin {
                        output: *output,
                        height: height as u32,
                        is_coinbase: index == 0 && height > 0,
                    };
                    let vout = vout as u32;
                    coins.insert(cairn_core::OutPoint { txid, vout }, coin);
                }
            }
        }
        Ok(keys)
    }
}
