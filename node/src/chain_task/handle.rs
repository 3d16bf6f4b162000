//! [`ChainHandle`]: the typed questions and commands everyone else sends the chain owner.
//!
//! Each query is a named method that runs a short job on the chain thread and returns
//! owned data, so the thread's queue only ever holds bounded work. Whole-UTXO-set scans
//! never run there: they read a rocksdb snapshot through a [`StoreReader`] on tokio's
//! blocking pool (see `store::snapshot`), and block import goes on meanwhile.

use super::{NodeEvent, NodeState, NodeStopped, Origin};
use crate::clock::SharedClock;
use crate::mempool::{Accepted, EntryInfo, MempoolError, MempoolInfo};
use crate::store::{AddressCoins, SnapshotUtxoStats, StoreReader};
use cairn_core::chain::{BlockEntry, ChainError, ChainTip, ImportReport};
use cairn_core::store::StoreError;
use cairn_core::{Amount, Block, BlockHash, ChainParams, OutPoint, PubkeyHash, Transaction, Txid};
use cairn_rpc::types::BlockTree;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};

type Job = Box<dyn FnOnce(&mut NodeState) + Send>;

/// A query that reached the node but failed there (`Failed`), or could not reach it.
#[derive(Debug, thiserror::Error)]
pub enum QueryError<E> {
    /// The node is shutting down.
    #[error(transparent)]
    Stopped(#[from] NodeStopped),
    /// The chain owner or the store answered with an error.
    #[error(transparent)]
    Failed(E),
}

/// What `getblockchaininfo` needs from the chain, read in one step.
#[derive(Debug, Clone)]
pub struct ChainSummary {
    /// The active tip.
    pub tip: BlockEntry,
    /// Its median time past.
    pub median_time: u32,
    /// Headers in the block tree.
    pub headers: usize,
    /// Orphan blocks held.
    pub orphans: usize,
}

/// A stored block with where it sits in the block tree.
#[derive(Debug, Clone)]
pub struct BlockView {
    /// The block.
    pub block: Block,
    /// Its index entry.
    pub entry: BlockEntry,
    /// Depth on the active chain (1 = the tip), -1 off it.
    pub confirmations: i64,
    /// The next block on the active chain, if it is active and not the tip.
    pub next: Option<BlockHash>,
    /// Its median time past.
    pub median_time: u32,
}

/// Where a confirmed transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// The block holding it.
    pub block: BlockHash,
    /// That block's height.
    pub height: u32,
    /// Its depth on the active chain (-1 off it).
    pub confirmations: i64,
}

/// A transaction found in the mempool (`location` none) or on the active chain.
#[derive(Debug, Clone)]
pub struct TxLookup {
    /// The transaction.
    pub tx: Transaction,
    /// Its block, when confirmed.
    pub location: Option<TxLocation>,
}

/// The tip and the network hash rate estimated up to it.
#[derive(Debug, Clone)]
pub struct HashRate {
    /// The active tip.
    pub tip: BlockEntry,
    /// Hashes per second over the window.
    pub hashps: f64,
}

/// The mempool's view of one address.
#[derive(Debug, Clone, Default)]
pub struct AddressMempool {
    /// Confirmed outputs of the address that pool transactions spend.
    pub spent: Vec<OutPoint>,
    /// Outputs pool transactions pay to it.
    pub received: Vec<(OutPoint, Amount)>,
}

/// What the metrics sampler reads from the chain owner once a second.
#[derive(Debug, Clone, Copy)]
pub struct ChainSample {
    /// Blocks with a body on no active chain.
    pub stale_blocks: usize,
    /// Transactions in the mempool.
    pub mempool_txs: usize,
    /// Their bytes.
    pub mempool_bytes: usize,
    /// Memory the UTXO cache takes.
    pub utxo_cache_bytes: usize,
    /// Coin changes it holds since its last flush.
    pub utxo_cache_coins: usize,
    /// Its flushes since the start.
    pub utxo_cache_flushes: u64,
}

/// A cheap handle to the state owner.
#[derive(Clone)]
pub struct ChainHandle {
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<NodeEvent>,
    params: Arc<ChainParams>,
    clock: SharedClock,
    reader: StoreReader,
}

impl ChainHandle {
    /// Runs `f` on the state owner and returns its result.
    ///
    /// Kept `pub(crate)` only for the network, until its queries are typed like the ones
    /// below; new callers add a named method instead.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeState) -> R + Send + 'static,
    ) -> Result<R, NodeStopped> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |state| {
            let _ = reply.send(f(state));
        });
        self.jobs.send(job).await.map_err(|_| NodeStopped)?;
        answer.await.map_err(|_| NodeStopped)
    }

    /// [`call`](Self::call) from a plain thread (the miner's).
    fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeState) -> R + Send + 'static,
    ) -> Result<R, NodeStopped> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |state| {
            let _ = reply.send(f(state));
        });
        self.jobs.blocking_send(job).map_err(|_| NodeStopped)?;
        answer.blocking_recv().map_err(|_| NodeStopped)
    }

    /// Subscribes to state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// The chain parameters (immutable, so readable without a round trip).
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The node's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Publishes `event` without any change of state: a Byzantine mode
    /// ([`crate::byzantine`]) gossips blocks and transactions it did not import.
    pub fn announce(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// Events published and not yet seen by the slowest subscriber.
    pub fn backlog(&self) -> usize {
        self.events.len()
    }

    // Chain reads.

    /// The active tip.
    pub async fn tip(&self) -> Result<BlockEntry, NodeStopped> {
        self.call(|s| s.chain.tip().clone()).await
    }

    /// The tip with the block tree's counts.
    pub async fn chain_summary(&self) -> Result<ChainSummary, NodeStopped> {
        self.call(|s| {
            let tip = s.chain.tip().clone();
            ChainSummary {
                median_time: s.chain.median_time_past(&tip.hash),
                headers: s.chain.tree_len(),
                orphans: s.chain.orphan_count(),
                tip,
            }
        })
        .await
    }

    /// The hash at `height` on the active chain.
    pub async fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeStopped> {
        self.call(move |s| s.chain.hash_at(height)).await
    }

    /// A stored block body.
    pub async fn block(&self, hash: BlockHash) -> Result<Option<Block>, QueryError<StoreError>> {
        self.call(move |s| s.chain.block(&hash))
            .await?
            .map_err(QueryError::Failed)
    }

    /// A stored block with its place in the tree (none if body or entry is missing).
    pub async fn block_view(
        &self,
        hash: BlockHash,
    ) -> Result<Option<BlockView>, QueryError<StoreError>> {
        self.call(move |s| block_view(s, &hash))
            .await?
            .map_err(QueryError::Failed)
    }

    /// Every leaf of the block tree.
    pub async fn chain_tips(&self) -> Result<Vec<ChainTip>, NodeStopped> {
        self.call(|s| s.chain.chain_tips()).await
    }

    /// Every block known at height `from` or above (`getblocktree`).
    pub async fn block_tree(
        &self,
        from: Option<u32>,
    ) -> Result<Result<BlockTree, ChainError>, NodeStopped> {
        self.call(move |s| s.block_tree(from)).await
    }

    /// Stored blocks on no active chain of this node, the mempool's size and bytes and the
    /// UTXO cache's: what the metrics sample once a second.
    pub async fn sample(&self) -> Result<ChainSample, NodeStopped> {
        self.call(|s| {
            let info = s.mempool.info();
            let cache = s.chain.store();
            ChainSample {
                stale_blocks: s.stale_block_count(),
                mempool_txs: info.size,
                mempool_bytes: info.bytes,
                utxo_cache_bytes: cache.usage_bytes(),
                utxo_cache_coins: cache.coin_changes(),
                utxo_cache_flushes: cache.flushes(),
            }
        })
        .await
    }

    /// The tip and the hash rate of the last `window` blocks.
    pub async fn hash_rate(&self, window: u32) -> Result<HashRate, NodeStopped> {
        self.call(move |s| HashRate {
            tip: s.chain.tip().clone(),
            hashps: network_hashps(s, window),
        })
        .await
    }

    /// A transaction from the mempool or the active chain.
    pub async fn transaction(
        &self,
        txid: Txid,
    ) -> Result<Option<TxLookup>, QueryError<StoreError>> {
        self.call(move |s| transaction(s, &txid))
            .await?
            .map_err(QueryError::Failed)
    }

    // Chain commands.

    /// Imports a block (RPC `submitblock`) as [`Origin::Local`].
    pub async fn submit_block(&self, block: Block) -> Result<ImportReport, QueryError<ChainError>> {
        let clock = self.clock.clone();
        self.call(move |s| s.submit_block(block, clock.now_secs(), Origin::Local))
            .await?
            .map_err(QueryError::Failed)
    }

    /// [`submit_block`](Self::submit_block) from a plain thread (the miner's).
    pub fn submit_block_blocking(
        &self,
        block: Block,
    ) -> Result<ImportReport, QueryError<ChainError>> {
        let clock = self.clock.clone();
        self.call_blocking(move |s| s.submit_block(block, clock.now_secs(), Origin::Local))?
            .map_err(QueryError::Failed)
    }

    /// A block the local miner found, from its thread: announced, or withheld by a selfish
    /// miner ([`NodeState::submit_mined_block`]).
    pub fn submit_mined_block_blocking(
        &self,
        block: Block,
    ) -> Result<ImportReport, QueryError<ChainError>> {
        let clock = self.clock.clone();
        self.call_blocking(move |s| s.submit_mined_block(block, clock.now_secs()))?
            .map_err(QueryError::Failed)
    }

    /// `getmininginfo`'s `strategy`: the miner's policy and the tip peers may know about.
    pub async fn strategy_info(&self) -> Result<serde_json::Value, NodeStopped> {
        self.call(|s| s.strategy_info()).await
    }

    /// A block template on the tip paying `pay_to`, timed now, from a plain thread.
    pub fn template_blocking(
        &self,
        pay_to: PubkeyHash,
        extra_data: Vec<u8>,
    ) -> Result<Block, NodeStopped> {
        let clock = self.clock.clone();
        self.call_blocking(move |s| s.block_template(pay_to, clock.now_secs(), extra_data))
    }

    /// `invalidateblock`.
    pub async fn invalidate(&self, hash: BlockHash) -> Result<(), QueryError<ChainError>> {
        let clock = self.clock.clone();
        self.call(move |s| s.invalidate_block(&hash, clock.now_secs()))
            .await?
            .map_err(QueryError::Failed)
    }

    /// `reconsiderblock`.
    pub async fn reconsider(&self, hash: BlockHash) -> Result<(), QueryError<ChainError>> {
        let clock = self.clock.clone();
        self.call(move |s| s.reconsider_block(&hash, clock.now_secs()))
            .await?
            .map_err(QueryError::Failed)
    }

    // Mempool.

    /// Submits a transaction as [`Origin::Local`].
    pub async fn submit_tx(&self, tx: Transaction) -> Result<Accepted, QueryError<MempoolError>> {
        let clock = self.clock.clone();
        self.call(move |s| s.submit_tx(tx, clock.now_secs(), Origin::Local))
            .await?
            .map_err(QueryError::Failed)
    }

    /// Checks each transaction against the tip and the pool without adding it.
    pub async fn test_accept(
        &self,
        txs: Vec<Transaction>,
    ) -> Result<Vec<(Txid, Result<Accepted, MempoolError>)>, NodeStopped> {
        self.call(move |s| {
            let next = s.chain.height() + 1;
            txs.iter()
                .map(|tx| (tx.txid(), s.mempool.test_accept(tx, s.chain.store(), next)))
                .collect()
        })
        .await
    }

    /// The pool's txids in arrival order.
    pub async fn mempool_txids(&self) -> Result<Vec<Txid>, NodeStopped> {
        self.call(|s| s.mempool.txids()).await
    }

    /// The pool's entries in arrival order.
    pub async fn mempool_entries(&self) -> Result<Vec<EntryInfo>, NodeStopped> {
        self.call(|s| s.mempool.entries()).await
    }

    /// The pool's totals.
    pub async fn mempool_info(&self) -> Result<MempoolInfo, NodeStopped> {
        self.call(|s| s.mempool.info()).await
    }

    /// What the pool spends from and pays to `address`.
    pub async fn address_mempool(
        &self,
        address: PubkeyHash,
    ) -> Result<AddressMempool, NodeStopped> {
        self.call(move |s| {
            let (spent, received) = s.mempool.address_activity(&address);
            AddressMempool { spent, received }
        })
        .await
    }

    /// Drops transactions that waited longer than the pool's expiry; returns them.
    pub async fn expire_mempool(&self) -> Result<Vec<Txid>, NodeStopped> {
        let clock = self.clock.clone();
        self.call(move |s| s.mempool.expire(clock.now_secs())).await
    }

    // UTXO set scans, on a snapshot off the chain thread.

    /// Writes the UTXO cache to the store. A snapshot taken after this returns holds at
    /// least every coin change up to the tip at the call (the scans below do it first).
    pub async fn flush_coins(&self) -> Result<(), QueryError<StoreError>> {
        self.call(|s| s.flush_coins())
            .await?
            .map_err(QueryError::Failed)
    }

    /// `gettxoutsetinfo`'s summary with the tip it belongs to.
    pub async fn utxo_stats(&self) -> Result<SnapshotUtxoStats, QueryError<StoreError>> {
        self.flush_coins().await?;
        let reader = self.reader.clone();
        scan(move || reader.utxo_stats_at_snapshot()).await
    }

    /// The coins paying `address`, with the tip they were read at.
    pub async fn address_coins(
        &self,
        address: PubkeyHash,
    ) -> Result<AddressCoins, QueryError<StoreError>> {
        self.flush_coins().await?;
        let reader = self.reader.clone();
        scan(move || reader.address_coins_at_snapshot(&address)).await
    }
}

/// Runs a blocking store scan on tokio's blocking pool.
async fn scan<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, QueryError<StoreError>> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(QueryError::Failed),
        // The pool is shutting down (or the scan panicked, which the runtime logs).
        Err(_) => Err(QueryError::Stopped(NodeStopped)),
    }
}

/// Starts the state-owner thread. It runs until every handle is dropped, then flushes
/// the store; join the returned thread to wait for that. Time is read from `clock`.
pub fn spawn(state: NodeState, clock: SharedClock) -> (ChainHandle, std::thread::JoinHandle<()>) {
    let (jobs, mut inbox) = mpsc::channel::<Job>(1024);
    let clock_for_state = clock.clone();
    let handle = ChainHandle {
        jobs,
        events: state.events.clone(),
        params: Arc::new(state.params().clone()),
        clock,
        reader: state.chain.store().inner().reader(),
    };
    let thread = std::thread::Builder::new()
        .name("chain".into())
        .spawn(move || {
            let mut state = state;
            state.clock = clock_for_state;
            while let Some(job) = inbox.blocking_recv() {
                job(&mut state);
            }
            state.close();
        })
        .expect("spawning the chain thread");
    (handle, thread)
}

fn confirmations(state: &NodeState, hash: &BlockHash) -> i64 {
    match state.chain.entry(hash) {
        Some(e) if state.chain.is_active(hash) => i64::from(state.chain.height() - e.height) + 1,
        _ => -1,
    }
}

fn block_view(state: &NodeState, hash: &BlockHash) -> Result<Option<BlockView>, StoreError> {
    let Some(block) = state.chain.block(hash)? else {
        return Ok(None);
    };
    let Some(entry) = state.chain.entry(hash).cloned() else {
        return Ok(None);
    };
    let next = state
        .chain
        .is_active(hash)
        .then(|| state.chain.hash_at(entry.height + 1))
        .flatten();
    Ok(Some(BlockView {
        block,
        confirmations: confirmations(state, hash),
        next,
        median_time: state.chain.median_time_past(hash),
        entry,
    }))
}

fn transaction(state: &NodeState, txid: &Txid) -> Result<Option<TxLookup>, StoreError> {
    if let Some(tx) = state.mempool.get(txid) {
        return Ok(Some(TxLookup {
            tx: tx.clone(),
            location: None,
        }));
    }
    let Some(hash) = state.tx_index.get(txid).copied() else {
        return Ok(None);
    };
    let Some(block) = state.chain.block(&hash)? else {
        return Ok(None);
    };
    let Some(tx) = block.txs.into_iter().find(|t| t.txid() == *txid) else {
        return Ok(None);
    };
    Ok(Some(TxLookup {
        tx,
        location: Some(TxLocation {
            block: hash,
            height: state.chain.entry(&hash).map_or(0, |e| e.height),
            confirmations: confirmations(state, &hash),
        }),
    }))
}

/// Hashes per second the network did over the last `window` blocks (work / time).
fn network_hashps(state: &NodeState, window: u32) -> f64 {
    let tip = state.chain.tip();
    // The genesis timestamp is arbitrary (set in genesis.json), so windows start at block 1.
    let start_height = tip.height.saturating_sub(window).max(1);
    if tip.height <= start_height {
        return 0.0;
    }
    let Some(start) = state
        .chain
        .hash_at(start_height)
        .and_then(|h| state.chain.entry(&h))
    else {
        return 0.0;
    };
    let seconds = f64::from(tip.header.time.saturating_sub(start.header.time));
    if seconds <= 0.0 {
        return 0.0;
    }
    (tip.chainwork.as_f64() - start.chainwork.as_f64()) / seconds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::store::RocksStore;
    use cairn_core::ChainState;
    use cairn_core::params::dev_secret_key;
    use cairn_core::testkit::signed_spend;
    use cairn_core::{ImportOutcome, TxOut};

    /// A node state on a fresh store in `dir`, the clock it reads, and its owner thread.
    fn start(
        dir: &tempfile::TempDir,
    ) -> (ChainHandle, Arc<ManualClock>, std::thread::JoinHandle<()>) {
        let params = ChainParams::regtest();
        let store = RocksStore::open(&dir.path().join("chain")).expect("open store");
        let store = cairn_core::store::CoinCache::new(store, 8 * cairn_core::store::MIB);
        let genesis_time = u64::from(params.genesis_block.header.time);
        let chain = ChainState::open(params, store).expect("open chain");
        let (events, _) = broadcast::channel(16);
        let state = NodeState::new(chain, events).expect("index");
        let clock = Arc::new(ManualClock::at_secs(genesis_time + 1_000));
        let (handle, thread) = spawn(state, clock.clone());
        (handle, clock, thread)
    }

    #[tokio::test]
    async fn templates_and_mempool_entries_take_the_injected_clock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (chain, clock, thread) = start(&dir);
        let now = clock.now_secs();
        let miner = chain.clone();
        let template = tokio::task::spawn_blocking(move || {
            miner.template_blocking(PubkeyHash([7; 20]), vec![1])
        })
        .await
        .expect("template task")
        .expect("template");
        assert_eq!(u64::from(template.header.time), now);

        clock.advance_millis(5_000);
        let genesis = &chain.params().genesis_block.txs[0];
        let coin = OutPoint {
            txid: genesis.txid(),
            vout: 1,
        };
        let key = dev_secret_key(1);
        let amount = genesis.outputs[1].amount;
        let tx = signed_spend(
            chain.params(),
            &[(coin, amount)],
            &key,
            vec![TxOut {
                amount: amount
                    .checked_sub(Amount::from_base(10_000))
                    .expect("funded"),
                address: key.pubkey_hash(),
            }],
        );
        chain.submit_tx(tx).await.expect("accepted");
        let entries = chain.mempool_entries().await.expect("entries");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].time, now + 5);
        drop(chain);
        thread.join().expect("chain thread");
    }

    #[tokio::test]
    async fn utxo_stats_come_from_a_snapshot_at_the_current_tip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (chain, _clock, thread) = start(&dir);
        let miner = chain.clone();
        let block = tokio::task::spawn_blocking(move || {
            let template = miner.template_blocking(PubkeyHash([7; 20]), vec![2])?;
            let block = cairn_core::testkit::mine(template, miner.params());
            let report = miner.submit_block_blocking(block.clone());
            Ok::<_, QueryError<ChainError>>((block, report?))
        })
        .await
        .expect("mining task")
        .expect("mined");
        assert_eq!(block.1.outcome, ImportOutcome::Active);
        let at = chain.utxo_stats().await.expect("stats");
        let tip = chain.tip().await.expect("tip");
        assert_eq!((at.tip, at.height), (tip.hash, 1));
        assert_eq!(at.tip, block.0.block_hash());
        drop(chain);
        thread.join().expect("chain thread");
    }
}
