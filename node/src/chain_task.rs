//! The one owner of the chain state and the mempool.
//!
//! [`NodeState`] lives on a dedicated OS thread (block validation and rocksdb writes are
//! blocking work that must not stall the async runtime). Everyone else holds a cheap,
//! cloneable [`ChainHandle`] whose named methods send it short jobs with a oneshot reply
//! (STYLE §4: one owner, handles for the rest). What changed is published as
//! [`NodeEvent`]s on a broadcast channel: the miner restarts on them, the network gossips them.

use crate::clock::SharedClock;
use crate::mempool::{Accepted, Mempool, MempoolConfig, MempoolError};
use crate::metrics::Metrics;
use crate::store::NodeStore;
use crate::strategy::{Strategy, StrategyKind};
use cairn_core::chain::pipeline::Prechecked;
use cairn_core::chain::{ChainError, ImportReport, TipChanged};
use cairn_core::sigcache::{DEFAULT_SIGCACHE_BYTES, SigCache};
use cairn_core::store::StoreError;
use cairn_core::{
    Amount, Block, BlockHash, ChainParams, ChainState, PubkeyHash, Transaction, Txid,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

mod group;
mod handle;
mod tree;
pub use group::{MAX_GROUP_BLOCKS, MAX_GROUP_BYTES};
pub use handle::{
    AddressMempool, BlockView, ChainHandle, ChainSample, ChainSummary, HashRate, QueryError,
    TxLocation, TxLookup, spawn,
};

/// How often the chain thread writes its UTXO cache to disk when nothing else did: the most
/// blocks a crash makes it connect again at the next start.
pub const COIN_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// A fresh random salt for the signature cache, so peers cannot predict its keys. Without
/// OS randomness the cache still works: its keys stay hashes of what was verified, only
/// predictable.
fn sigcache_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut salt) {
        tracing::warn!("no OS randomness for the signature cache salt: {e}");
    }
    salt
}

/// Where a block or transaction came from; decides whether the network must announce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Produced or submitted here (miner, RPC): the network announces it to peers.
    Local,
    /// Received from a peer (gossip or sync): gossipsub forwards what it validated, and
    /// synced blocks are old news, so nothing is announced and nothing is copied for it.
    Peer,
    /// Mined here by a selfish miner and kept private: stored, never announced; the
    /// [`Strategy`] decides when it becomes public, and the network hides it until then.
    Withheld,
}

/// What the node keeps of a block it imports, whichever way its checks ran.
struct ImportedBlock {
    hash: BlockHash,
    parent: BlockHash,
    txs: usize,
    /// The block itself, kept only when the network must announce it.
    announce: Option<Arc<Block>>,
    origin: Origin,
}

/// Something that changed in the node's state.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// The active tip moved.
    TipChanged {
        /// New tip.
        tip: BlockHash,
        /// Its height.
        height: u32,
        /// Blocks reverted (0 when the tip only advanced).
        reorg_depth: usize,
    },
    /// A block of [`Origin::Local`] was stored (new tip or side chain): announce it.
    BlockAccepted(Arc<Block>),
    /// The node knows a block (header or body) it did not know before, from anywhere: what
    /// a fork view draws as soon as it appears.
    BlockKnown {
        /// Its hash.
        hash: BlockHash,
        /// Its parent.
        parent: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A transaction entered the mempool (a better block template may exist).
    TxAccepted {
        /// Its txid.
        txid: Txid,
        /// The transaction when it is of [`Origin::Local`] and must be announced.
        relay: Option<Arc<Transaction>>,
    },
}

/// Chain state, mempool and the indexes the RPC needs.
pub struct NodeState {
    /// Blocks, fork choice, UTXO set.
    pub chain: ChainState<NodeStore>,
    /// Unconfirmed transactions.
    pub mempool: Mempool,
    /// Txid → block of every transaction on the active chain (rebuilt at start).
    pub tx_index: HashMap<Txid, BlockHash>,
    /// When this run of the node first knew each block (Unix ms), for `getblocktree` and
    /// the announce-to-connect metric. Blocks loaded from disk at start have no entry.
    first_seen: HashMap<BlockHash, u64>,
    /// Transaction counts of stored bodies, filled as bodies arrive or are first asked for.
    tx_counts: HashMap<BlockHash, usize>,
    /// Where time comes from (set by [`spawn`] to the node's clock).
    clock: SharedClock,
    /// The node's metrics.
    metrics: Arc<Metrics>,
    /// The miner's policy and the blocks it withholds.
    pub strategy: Strategy,
    events: broadcast::Sender<NodeEvent>,
    /// Events of an open group commit, sent once it is durable ([`group`]).
    held: Option<Vec<NodeEvent>>,
}

impl NodeState {
    /// Wraps an opened chain; indexes the active chain's transactions.
    pub fn new(
        mut chain: ChainState<NodeStore>,
        events: broadcast::Sender<NodeEvent>,
    ) -> Result<Self, ChainError> {
        let mut mempool = Mempool::new(chain.params().clone(), MempoolConfig::default());
        // One signature cache: what the mempool verified, block connection skips.
        let sigcache = Arc::new(SigCache::with_max_bytes(
            sigcache_salt(),
            DEFAULT_SIGCACHE_BYTES,
        ));
        chain.set_sigcache(sigcache.clone());
        mempool.set_sigcache(sigcache);
        let mut state = NodeState {
            chain,
            mempool,
            tx_index: HashMap::new(),
            first_seen: HashMap::new(),
            tx_counts: HashMap::new(),
            clock: crate::clock::system(),
            metrics: Arc::new(Metrics::new()),
            strategy: Strategy::default(),
            events,
            held: None,
        };
        for height in 0..=state.chain.height() {
            let hash = state
                .chain
                .hash_at(height)
                .expect("heights up to the tip are active");
            let block = state.read_block(&hash)?;
            for tx in &block.txs {
                state.tx_index.insert(tx.txid(), hash);
            }
        }
        Ok(state)
    }

    /// Records into `metrics` from now on (the node's one registry).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same state with the miner following `kind` (`--strategy`).
    pub fn with_strategy(mut self, kind: StrategyKind) -> Self {
        self.strategy = Strategy::new(kind);
        self
    }

    /// Seconds since the epoch on the node's clock (for work the network hands the owner).
    pub fn now_secs(&self) -> u64 {
        self.clock.now_secs()
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        self.chain.params()
    }

    fn read_block(&self, hash: &BlockHash) -> Result<Block, ChainError> {
        self.chain
            .block(hash)?
            .ok_or_else(|| ChainError::Corrupt(format!("body of block {hash} missing")))
    }

    /// Imports a block from anywhere (miner, RPC, peer) and applies the consequences.
    pub fn submit_block(
        &mut self,
        block: Block,
        now: u64,
        origin: Origin,
    ) -> Result<ImportReport, ChainError> {
        let hash = block.block_hash();
        let (parent, txs) = (block.header.prev_blockhash, block.txs.len());
        // Only a local block is announced, so only it is kept beyond the import.
        let announce = (origin == Origin::Local).then(|| Arc::new(block.clone()));
        let imported = ImportedBlock {
            hash,
            parent,
            txs,
            announce,
            origin,
        };
        self.submit_imported(imported, now, |chain| chain.accept_block(block, now))
    }

    /// [`submit_block`](Self::submit_block) for a peer block whose context-free checks ran
    /// ahead ([`cairn_core::chain::pipeline`]); its `cairn_block_validation_seconds`
    /// observation then covers what ran on the chain thread, not those checks.
    pub fn submit_prechecked(
        &mut self,
        block: Prechecked,
        now: u64,
    ) -> Result<ImportReport, ChainError> {
        let imported = ImportedBlock {
            hash: block.hash(),
            parent: block.header().prev_blockhash,
            txs: block.txs(),
            announce: None,
            origin: Origin::Peer,
        };
        self.submit_imported(imported, now, |chain| chain.accept_prechecked(block, now))
    }

    /// Runs `import` (the chain's import of the block `block` describes) and applies the
    /// consequences.
    fn submit_imported(
        &mut self,
        block: ImportedBlock,
        now: u64,
        import: impl FnOnce(&mut ChainState<NodeStore>) -> Result<ImportReport, ChainError>,
    ) -> Result<ImportReport, ChainError> {
        let ImportedBlock {
            hash,
            parent,
            txs,
            announce,
            origin,
        } = block;
        // A selfish miner watches for blocks that lengthen the public chain.
        let watched = (origin == Origin::Peer && self.strategy.kind() != StrategyKind::Honest)
            .then_some(hash);
        if origin == Origin::Peer {
            self.metrics.blocks_received.inc();
        }
        let was_known = self.chain.entry(&hash).is_some();
        let started = std::time::Instant::now();
        let report = import(&mut self.chain);
        self.metrics
            .block_validation
            .observe(started.elapsed().as_secs_f64());
        let report = report?;
        if self.chain.entry(&hash).is_some_and(|e| e.has_data) {
            self.tx_counts.insert(hash, txs);
        }
        if !was_known {
            self.note_known(hash, parent);
        }
        use cairn_core::ImportOutcome::*;
        if let Some(block) = announce.filter(|_| matches!(report.outcome, Active | SideChain)) {
            self.emit(NodeEvent::BlockAccepted(block));
        }
        if let Some(change) = &report.tip_changed {
            self.apply_tip_change(change, now);
        }
        if let Some(hash) = watched.filter(|_| matches!(report.outcome, Active | SideChain)) {
            self.strategy_saw_peer_block(&hash);
        }
        Ok(report)
    }

    /// Imports a block the local miner found: announced at once by an honest miner,
    /// withheld (and perhaps some earlier ones published) by a selfish one.
    pub fn submit_mined_block(
        &mut self,
        block: Block,
        now: u64,
    ) -> Result<ImportReport, ChainError> {
        if self.strategy.kind() == StrategyKind::Honest {
            return self.submit_block(block, now, Origin::Local);
        }
        let hash = block.block_hash();
        let report = self.submit_block(block, now, Origin::Withheld)?;
        if report.outcome == cairn_core::ImportOutcome::Active {
            let height = self.chain.tip().height;
            if let Some(publish) = self.strategy.on_mined(hash, height) {
                self.publish(&publish);
            }
        }
        Ok(report)
    }

    fn strategy_saw_peer_block(&mut self, hash: &BlockHash) {
        let Some(entry) = self.chain.entry(hash) else {
            return;
        };
        let (height, parent) = (entry.height, entry.header.prev_blockhash);
        let publish = self.strategy.on_peer_block(height, &parent);
        self.publish(&publish);
    }

    /// Announces withheld blocks the strategy made public, in order.
    fn publish(&mut self, hashes: &[BlockHash]) {
        for hash in hashes {
            match self.chain.block(hash) {
                Ok(Some(block)) => {
                    tracing::info!(%hash, "publishing a withheld block");
                    self.emit(NodeEvent::BlockAccepted(Arc::new(block)));
                }
                Ok(None) => tracing::error!(%hash, "withheld block to publish has no body"),
                Err(e) => tracing::error!(%hash, "reading a withheld block to publish: {e}"),
            }
        }
    }

    /// `getmininginfo`'s `strategy`: the policy's state and the tip peers may know about.
    pub fn strategy_info(&self) -> serde_json::Value {
        let mut info = self.strategy.info();
        let public = self.public_tip();
        info["public_tip"] = serde_json::Value::String(public.hash.to_string());
        info["public_tip_height"] = public.height.into();
        info
    }

    /// The tip peers may know about: the active tip, or below the blocks a selfish miner
    /// withholds.
    pub fn public_tip(&self) -> &cairn_core::chain::BlockEntry {
        let tip = self.chain.tip();
        match self.strategy.public_height_limit() {
            Some(limit) if limit < tip.height => self
                .chain
                .hash_at(limit)
                .and_then(|h| self.chain.entry(&h))
                .expect("heights below the tip are active and indexed"),
            _ => tip,
        }
    }

    /// Brings indexes and mempool in line with a moved tip, then announces it. The change
    /// carries its blocks with their txids, so nothing is read back from the store.
    ///
    /// Nothing here can fail the chain step: the chain state has already committed it. The
    /// mempool fails only when the store cannot read coins while it re-validates, and then
    /// keeps just the transactions it re-validated against the new tip: the pool is
    /// smaller than it could be but never wrong, and the chain is untouched. So that is
    /// logged and the tip is still announced. Failing here instead would tell the miner,
    /// sync and RPC that a block now on the active chain was not taken (and a mempool
    /// problem is no corruption of chain data); a failing store resurfaces as
    /// `ChainError::Store` at the next chain step that touches it.
    pub fn apply_tip_change(&mut self, change: &TipChanged, now: u64) {
        for block in &change.reverted {
            for txid in block.txids.iter() {
                self.tx_index.remove(txid);
            }
        }
        for block in &change.connected {
            for txid in block.txids.iter() {
                self.tx_index.insert(*txid, block.hash);
            }
        }
        let now_ms = self.clock.now_millis();
        for block in &change.connected {
            if let Some(first) = self.first_seen.get(&block.hash) {
                let secs = now_ms.saturating_sub(*first) as f64 / 1000.0;
                self.metrics.block_announce_to_connect.observe(secs);
            }
        }
        let next_height = self.chain.height() + 1;
        if let Err(e) =
            self.mempool
                .update_for_tip_change(change, self.chain.store(), next_height, now)
        {
            tracing::error!(
                "mempool update after the tip change stopped early, the pool keeps what it re-validated: {e}"
            );
        }
        let tip = self.chain.tip();
        if change.reorg_depth() > 0 {
            tracing::info!(depth = change.reorg_depth(), connected = change.connected.len(), tip = %tip.hash, height = tip.height, "reorganised");
        } else {
            tracing::info!(tip = %tip.hash, height = tip.height, "new tip");
        }
        let event = NodeEvent::TipChanged {
            tip: tip.hash,
            height: tip.height,
            reorg_depth: change.reorg_depth(),
        };
        self.emit(event);
    }

    /// Submits a transaction to the mempool; announces it when it is local.
    pub fn submit_tx(
        &mut self,
        tx: Transaction,
        now: u64,
        origin: Origin,
    ) -> Result<Accepted, MempoolError> {
        let relay = (origin == Origin::Local).then(|| Arc::new(tx.clone()));
        if origin == Origin::Peer {
            self.metrics.txs_received.inc();
        }
        let next_height = self.chain.height() + 1;
        let accepted = self
            .mempool
            .accept(tx, self.chain.store(), next_height, now)?;
        self.emit(NodeEvent::TxAccepted {
            txid: accepted.txid,
            relay,
        });
        Ok(accepted)
    }

    /// A block template on the tip from the best mempool transactions.
    pub fn block_template(&self, pay_to: PubkeyHash, now: u64, extra_data: Vec<u8>) -> Block {
        // Leave room for the header, the coinbase and the length prefixes.
        let budget = self.params().max_block_size.saturating_sub(1000);
        let (txs, fees): (Vec<Transaction>, Amount) = self.mempool.select_for_block(budget);
        self.chain
            .block_template(pay_to, txs, fees, now, extra_data)
    }

    /// `invalidateblock`.
    pub fn invalidate_block(&mut self, hash: &BlockHash, now: u64) -> Result<(), ChainError> {
        if let Some(change) = self.chain.invalidate_block(hash)? {
            self.apply_tip_change(&change, now);
        }
        Ok(())
    }

    /// `reconsiderblock`.
    pub fn reconsider_block(&mut self, hash: &BlockHash, now: u64) -> Result<(), ChainError> {
        if let Some(change) = self.chain.reconsider_block(hash)? {
            self.apply_tip_change(&change, now);
        }
        Ok(())
    }

    /// Writes the UTXO cache to the store (with the tip it belongs to), if it holds
    /// anything.
    pub fn flush_coins(&mut self) -> Result<(), StoreError> {
        let flushes = self.chain.store().flushes();
        let pending = self.chain.store().coin_changes();
        self.chain.flush_coins()?;
        if self.chain.store().flushes() > flushes {
            tracing::debug!(
                coins = pending,
                height = self.chain.height(),
                "UTXO cache flushed"
            );
        }
        Ok(())
    }

    /// Flushes the UTXO cache and the store before the process exits.
    pub fn close(&mut self) {
        if let Err(e) = self.flush_coins() {
            tracing::error!("flushing the UTXO cache: {e}");
        }
        if let Err(e) = self.chain.store().inner().flush() {
            tracing::error!("flushing the chain store: {e}");
        }
    }
}

/// The node has stopped; its state is gone.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the node is shutting down")]
pub struct NodeStopped;
