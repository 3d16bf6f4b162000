//! [`ChainState`]: the block tree, the active chain and the UTXO set behind a store.
//!
//! Every change to the store is one atomic [`StoreBatch`]: storing a block body with its
//! index entry, connecting a block (spent and created coins, undo data, tip), disconnecting
//! one. A crash between two batches leaves a consistent chain (perhaps mid-reorg, on a
//! valid chain with less work); [`ChainState::open`] then resumes and finishes the reorg.
//! Within one import, storing a block and connecting it share one batch ([`batch`]);
//! connecting is in [`connect`]; read-only queries in [`queries`]; invalid blocks,
//! `invalidateblock` and `reconsiderblock` in [`invalid`].

mod batch;
mod connect;
mod invalid;
mod queries;

pub use batch::GroupWriter;

use crate::block::{Block, BlockHeader};
use crate::block_index::{BlockEntry, Validity};
use crate::chain::fork_choice::ForkChoice;
use crate::chain::orphans::OrphanPool;
use crate::chain::outcome::{
    ChainError, HashedBlock, HeaderOutcome, ImportOutcome, ImportReport, TipChanged,
};
use crate::difficulty::{check_timewarp, next_bits};
use crate::hash::{BlockHash, Txid};
use crate::params::ChainParams;
use crate::pow::Target;
use crate::sigcache::SigCache;
use crate::sigcheck::Parallelism;
use crate::store::{BlockUndo, ChainStore, StoreBatch};
use crate::tx::{OutPoint, Transaction};
use crate::utxo::Coin;
use crate::validation::{BlockError, CheckedBlock, check_hashed_block, check_proof_of_work};
use batch::PendingWrite;
use std::collections::HashMap;
use std::sync::Arc;

pub mod admission;

/// Most headers returned for one locator (the sync protocol's page size).
pub const MAX_HEADERS_RESULTS: usize = 2000;

/// The chain: block tree, active chain, fork choice and UTXO set (in the store).
pub struct ChainState<S: ChainStore> {
    params: ChainParams,
    store: S,
    entries: HashMap<BlockHash, BlockEntry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// Active chain by height.
    active: Vec<BlockHash>,
    fork_choice: ForkChoice,
    orphans: OrphanPool,
    next_seq: u64,
    /// Bodies (with txids) the current operation stored, connected or disconnected, so
    /// connecting or disconnecting them again neither reads them back nor hashes their
    /// transactions again, and its [`TipChanged`] carries them without a read. `Some` only
    /// while an operation that reports a tip change runs ([`ChainState::operation`]);
    /// resuming in [`ChainState::open`] reports nothing, so it keeps nothing either.
    bodies: Option<HashMap<BlockHash, HashedBlock>>,
    /// What was stored in memory but not written yet: it joins the next batch ([`batch`]).
    pending: PendingWrite,
    /// Whether an operation runs, so that storing a block waits for its next batch.
    deferring: bool,
    /// Verified signatures shared with the mempool; connection skips what it holds.
    sigcache: Option<Arc<SigCache>>,
    /// How block signatures are verified.
    parallelism: Parallelism,
    /// Signature checks per job handed to the pool during block connection.
    check_chunk: usize,
}

impl<S: ChainStore> std::fmt::Debug for ChainState<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainState")
            .field("network", &self.params.network_id)
            .field("height", &self.height())
            .field("tip", &self.tip().hash)
            .field("blocks_known", &self.entries.len())
            .finish()
    }
}

impl<S: ChainStore> ChainState<S> {
    /// Opens the chain in `store`, writing the genesis block into an empty store, or
    /// resuming from the stored block index and tip.
    pub fn open(params: ChainParams, store: S) -> Result<Self, ChainError> {
        let mut chain = ChainState {
            params,
            store,
            entries: HashMap::new(),
            children: HashMap::new(),
            active: Vec::new(),
            fork_choice: ForkChoice::default(),
            orphans: OrphanPool::default(),
            next_seq: 1,
            bodies: None,
            pending: PendingWrite::default(),
            deferring: false,
            sigcache: None,
            parallelism: Parallelism::Auto,
            check_chunk: crate::sigcheck::CHUNK_CHECKS,
        };
        let stored = chain.store.load_index()?;
        if stored.is_empty() {
            chain.init_genesis()?;
            return Ok(chain);
        }
        for entry in stored {
            chain.next_seq = chain.next_seq.max(entry.seq + 1);
            chain.insert_entry(entry);
        }
        let genesis = chain.params.genesis_hash;
        if !chain.entries.contains_key(&genesis) {
            let stored = chain
                .entries
                .values()
                .find(|e| e.height == 0)
                .map(|e| e.hash)
                .unwrap_or(BlockHash::ZERO);
            return Err(ChainError::WrongNetwork {
                stored,
                expected: genesis,
            });
        }
        let tip = chain
            .store
            .tip()?
            .ok_or_else(|| ChainError::Corrupt("no tip recorded".into()))?;
        let mut cursor = Some(tip);
        while let Some(hash) = cursor {
            let entry = chain.entries.get(&hash).ok_or_else(|| {
                ChainError::Corrupt(format!("active block {hash} not in the index"))
            })?;
            chain.active.push(hash);
            cursor = (entry.height > 0).then_some(entry.header.prev_blockhash);
        }
        chain.active.reverse();
        if chain.active.first() != Some(&genesis) {
            return Err(ChainError::Corrupt(
                "active chain does not start at genesis".into(),
            ));
        }
        chain.rebuild_candidates();
        chain.activate_best_chain(&mut Vec::new())?;
        Ok(chain)
    }

    fn init_genesis(&mut self) -> Result<(), ChainError> {
        let block = self.params.genesis_block.clone();
        let hash = self.params.genesis_hash;
        let target = Target::from_compact(block.header.bits)
            .expect("initial_bits are validated when chain parameters load");
        let entry = BlockEntry {
            hash,
            header: block.header,
            height: 0,
            chainwork: target.work(),
            has_data: true,
            validity: Validity::Valid,
            seq: self.take_seq(),
        };
        // Genesis allocations are ordinary coins, spendable at once (like anvil's accounts).
        let txid = block.txs[0].txid();
        let coins_added = block.txs[0]
            .outputs
            .iter()
            .enumerate()
            .map(|(vout, output)| {
                (
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    Coin {
                        output: *output,
                        height: 0,
                        is_coinbase: false,
                    },
                )
            })
            .collect();
        self.write(StoreBatch {
            index: vec![entry.clone()],
            blocks: vec![(hash, &block)],
            coins_added,
            undo_put: vec![(hash, BlockUndo::default())],
            tip: Some(hash),
            ..Default::default()
        })?;
        self.fork_choice.insert(&entry);
        self.insert_entry(entry);
        self.active.push(hash);
        Ok(())
    }

    // ----- imports -------------------------------------------------------------------

    /// Accepts a header (headers-first sync): checks proof of work and its context, and
    /// adds it to the tree without a body.
    pub fn accept_header(
        &mut self,
        header: &BlockHeader,
        now: u64,
    ) -> Result<HeaderOutcome, ChainError> {
        let hash = header.block_hash();
        if let Some(entry) = self.entries.get(&hash) {
            return Ok(if entry.validity.is_invalid() {
                HeaderOutcome::Invalid(BlockError::KnownInvalid(hash))
            } else {
                HeaderOutcome::AlreadyHave
            });
        }
        match self.check_new_header(&hash, header, now) {
            Err(e) => Ok(HeaderOutcome::Invalid(e)),
            Ok(entry) => {
                self.write(StoreBatch {
                    index: vec![entry.clone()],
                    ..Default::default()
                })?;
                self.insert_entry(entry);
                Ok(HeaderOutcome::New)
            }
        }
    }

    /// Accepts a block: validates it, stores it, and moves the active chain to the best
    /// tip. Consensus verdicts are in the report; `Err` only for store failures.
    pub fn accept_block(&mut self, block: Block, now: u64) -> Result<ImportReport, ChainError> {
        let hash = block.block_hash();
        self.accept_checked(hash, |params| check_hashed_block(block, hash, params), now)
    }

    /// Accepts the block `hash`, running `check` (its context-free checks, or their result
    /// computed ahead: [`super::pipeline`]) only when the block is new to the tree.
    pub(super) fn accept_checked(
        &mut self,
        hash: BlockHash,
        check: impl FnOnce(&ChainParams) -> Result<CheckedBlock, BlockError>,
        now: u64,
    ) -> Result<ImportReport, ChainError> {
        self.operation(|chain| chain.import_and_activate(hash, check, now))
    }

    fn import_and_activate(
        &mut self,
        hash: BlockHash,
        check: impl FnOnce(&ChainParams) -> Result<CheckedBlock, BlockError>,
        now: u64,
    ) -> Result<ImportReport, ChainError> {
        let old_tip = self.tip().hash;
        let mut invalidated = Vec::new();
        let outcome = self.import_block(hash, check, now, &mut invalidated);
        let result = outcome.and_then(|outcome| {
            self.activate_best_chain(&mut invalidated)?;
            Ok(outcome)
        });
        let mut outcome = result?;
        if let Some(pos) = invalidated.iter().position(|(h, _)| *h == hash) {
            outcome = ImportOutcome::Invalid(invalidated.remove(pos).1);
        } else if outcome == ImportOutcome::SideChain
            && let Some(entry) = self.entries.get(&hash)
        {
            if let Validity::InvalidAncestor(bad) = entry.validity {
                outcome = ImportOutcome::Invalid(BlockError::InvalidAncestor(bad));
            } else if self.is_active(&hash) {
                outcome = ImportOutcome::Active;
            }
        }
        let tip_changed = self.tip_change_since(&old_tip)?;
        Ok(ImportReport {
            outcome,
            tip_changed,
            invalidated,
        })
    }

    /// Stores `block` and any orphans it releases; does not activate.
    fn import_block(
        &mut self,
        hash: BlockHash,
        check: impl FnOnce(&ChainParams) -> Result<CheckedBlock, BlockError>,
        now: u64,
        invalidated: &mut Vec<(BlockHash, BlockError)>,
    ) -> Result<ImportOutcome, ChainError> {
        if let Some(entry) = self.entries.get(&hash) {
            if entry.validity.is_invalid() {
                return Ok(ImportOutcome::Invalid(BlockError::KnownInvalid(hash)));
            }
            if entry.has_data {
                return Ok(ImportOutcome::AlreadyHave);
            }
        }
        if self.orphans.contains(&hash) {
            return Ok(ImportOutcome::AlreadyHave);
        }
        let checked = match check(&self.params) {
            Ok(checked) => checked,
            Err(e) => {
                if e.is_permanent() && self.entries.contains_key(&hash) {
                    self.mark_invalid(&hash, &e)?;
                }
                return Ok(ImportOutcome::Invalid(e));
            }
        };
        let prev = checked.block().header.prev_blockhash;
        if !self.entries.contains_key(&hash) && !self.entries.contains_key(&prev) {
            let size = checked.block().encoded_size();
            self.orphans.insert(checked, size);
            return Ok(ImportOutcome::Orphan);
        }
        if let Err(e) = self.store_block(checked, now)? {
            return Ok(ImportOutcome::Invalid(e));
        }
        let mut released = vec![hash];
        while let Some(parent) = released.pop() {
            for child in self.orphans.take_children(&parent) {
                let child_hash = child.hash();
                match self.store_block(child, now)? {
                    Ok(()) => released.push(child_hash),
                    Err(e) => invalidated.push((child_hash, e)),
                }
            }
        }
        Ok(ImportOutcome::SideChain)
    }

    /// Header context checks for a header not yet in the tree; returns its new entry.
    fn check_new_header(
        &self,
        hash: &BlockHash,
        header: &BlockHeader,
        now: u64,
    ) -> Result<BlockEntry, BlockError> {
        let target = check_proof_of_work(hash, header.bits, &self.params)?;
        let parent = self
            .entries
            .get(&header.prev_blockhash)
            .ok_or(BlockError::UnknownParent(header.prev_blockhash))?;
        if parent.validity.is_invalid() {
            return Err(BlockError::InvalidAncestor(parent.hash));
        }
        let height = parent.height + 1;
        let expected = next_bits(
            &self.params,
            height,
            parent.header.bits,
            self.header_at_fn(&parent.hash),
        );
        if header.bits != expected {
            return Err(BlockError::WrongBits {
                expected: expected.0,
                got: header.bits.0,
            });
        }
        let median = self.median_time_past(&parent.hash);
        if header.time <= median {
            return Err(BlockError::TimeTooOld {
                time: header.time,
                median,
            });
        }
        let max = now.saturating_add(u64::from(self.params.max_future_block_time_secs));
        if u64::from(header.time) > max {
            return Err(BlockError::TimeTooNew {
                time: header.time,
                max,
            });
        }
        check_timewarp(
            &self.params,
            height,
            header.time,
            self.header_at_fn(&parent.hash),
        )?;
        Ok(BlockEntry {
            hash: *hash,
            header: *header,
            height,
            chainwork: parent.chainwork.saturating_add(target.work()),
            has_data: false,
            validity: Validity::HeaderValid,
            seq: 0,
        })
    }

    /// Stores a checked block's body and index entry; makes it (and descendants waiting for
    /// it) fork-choice candidates when their whole chain is available.
    fn store_block(
        &mut self,
        checked: CheckedBlock,
        now: u64,
    ) -> Result<Result<(), BlockError>, ChainError> {
        let hash = checked.hash();
        let header = checked.block().header;
        let mut entry = match self.entries.get(&hash) {
            Some(entry) => entry.clone(),
            None => match self.check_new_header(&hash, &header, now) {
                Ok(entry) => entry,
                Err(e) => return Ok(Err(e)),
            },
        };
        let parent = self.entries.get(&header.prev_blockhash).cloned();
        if let Some(parent) = &parent
            && parent.validity.is_invalid()
        {
            let bad = match parent.validity {
                Validity::InvalidAncestor(root) => root,
                _ => parent.hash,
            };
            entry.validity = Validity::InvalidAncestor(bad);
            self.write(StoreBatch {
                index: vec![entry.clone()],
                ..Default::default()
            })?;
            self.insert_entry(entry);
            return Ok(Err(BlockError::InvalidAncestor(bad)));
        }
        entry.has_data = true;
        let parent_available = parent.is_some_and(|p| p.seq > 0);
        if parent_available {
            entry.seq = self.take_seq();
        }
        let txids: Arc<[Txid]> = checked.txids().into();
        let body = Arc::new(checked.into_block());
        self.write_deferred(vec![entry.clone()], Some((hash, body.clone())))?;
        if parent_available {
            self.fork_choice.insert(&entry);
        }
        let height = entry.height;
        self.insert_entry(entry);
        if let Some(bodies) = &mut self.bodies {
            bodies.insert(
                hash,
                HashedBlock {
                    hash,
                    height,
                    block: body,
                    txids,
                },
            );
        }
        if parent_available {
            self.release_descendants(&hash)?;
        }
        Ok(Ok(()))
    }

    /// Blocks stored before their ancestors' bodies (headers-first) become candidates once
    /// the gap closes.
    fn release_descendants(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let mut updated = Vec::new();
        let mut stack: Vec<BlockHash> = self.children.get(hash).cloned().unwrap_or_default();
        while let Some(child) = stack.pop() {
            let seq = self.next_seq;
            let Some(entry) = self.entries.get_mut(&child) else {
                continue;
            };
            if !entry.has_data || entry.seq != 0 {
                continue;
            }
            entry.seq = seq;
            self.next_seq += 1;
            if !entry.validity.is_invalid() {
                self.fork_choice.insert(entry);
            }
            updated.push(entry.clone());
            stack.extend(self.children.get(&child).into_iter().flatten().copied());
        }
        if !updated.is_empty() {
            self.write_deferred(updated, None)?;
        }
        Ok(())
    }

    // ----- fork choice and reorgs ----------------------------------------------------

    /// Moves the active chain to the best candidate tip, disconnecting to the fork point
    /// and connecting forward. A block that fails to connect is marked invalid (with its
    /// descendants) and the next best candidate is tried, so the loop ends on the best
    /// valid chain — possibly the one it started from.
    fn activate_best_chain(
        &mut self,
        invalidated: &mut Vec<(BlockHash, BlockError)>,
    ) -> Result<(), ChainError> {
        while let Some(best) = self.fork_choice.best_tip() {
            if best == self.tip().hash {
                break;
            }
            let fork = self.find_fork(&best);
            while self.tip().hash != fork {
                self.disconnect_tip()?;
            }
            for hash in self.path_from(&fork, &best) {
                if let Err(e) = self.connect_block(&hash)? {
                    self.mark_invalid(&hash, &e)?;
                    invalidated.push((hash, e));
                    break;
                }
            }
            let tip = self.tip().clone();
            self.fork_choice.prune_below(&tip);
        }
        Ok(())
    }

    /// The last block of the active chain on the way from `hash` to genesis.
    fn find_fork(&self, hash: &BlockHash) -> BlockHash {
        let mut cur = *hash;
        while !self.is_active(&cur) {
            match self.entries.get(&cur) {
                Some(entry) if entry.height > 0 => cur = entry.header.prev_blockhash,
                _ => return self.active[0],
            }
        }
        cur
    }

    /// Hashes from just after `ancestor` up to `tip`, oldest first.
    fn path_from(&self, ancestor: &BlockHash, tip: &BlockHash) -> Vec<BlockHash> {
        let mut path = Vec::new();
        let mut cur = *tip;
        while cur != *ancestor {
            path.push(cur);
            cur = self.entries[&cur].header.prev_blockhash;
        }
        path.reverse();
        path
    }

    /// Disconnects the active tip using its undo data, in one batch.
    fn disconnect_tip(&mut self) -> Result<(), ChainError> {
        let tip = self.tip().clone();
        if tip.height == 0 {
            return Err(ChainError::Genesis);
        }
        let body = self.body(&tip.hash, "active block")?;
        let undo = self.store.undo(&tip.hash)?.ok_or_else(|| {
            ChainError::Corrupt(format!("undo data of active block {} missing", tip.hash))
        })?;
        let mut coins_spent = Vec::new();
        for (tx, &txid) in body.block.txs.iter().zip(body.txids.iter()) {
            coins_spent.extend((0..tx.outputs.len() as u32).map(|vout| OutPoint { txid, vout }));
        }
        self.write(StoreBatch {
            coins_spent,
            coins_added: undo.spent,
            undo_delete: vec![tip.hash],
            tip: Some(tip.header.prev_blockhash),
            ..Default::default()
        })?;
        self.active.pop();
        Ok(())
    }

    /// Net change of the active chain from `old_tip` to the current tip.
    ///
    /// Every block in it was disconnected or connected by this operation, so its body is in
    /// [`Self::bodies`] and nothing is read back.
    fn tip_change_since(&mut self, old_tip: &BlockHash) -> Result<Option<TipChanged>, ChainError> {
        let new_tip = self.tip().hash;
        if *old_tip == new_tip {
            return Ok(None);
        }
        let fork = self.find_fork(old_tip);
        let fork_height = self.entries[&fork].height;
        let mut reverted_hashes = Vec::new();
        let mut cur = *old_tip;
        while cur != fork {
            reverted_hashes.push(cur);
            cur = self.entries[&cur].header.prev_blockhash;
        }
        let connected_hashes = self.active[fork_height as usize + 1..].to_vec();
        let mut moved = |hashes: Vec<BlockHash>, what: &str| {
            hashes
                .into_iter()
                .map(|hash| {
                    debug_assert!(
                        self.bodies.as_ref().is_some_and(|b| b.contains_key(&hash)),
                        "{what} {hash} did not pass through this operation"
                    );
                    self.body(&hash, what)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let reverted = moved(reverted_hashes, "reverted block")?;
        let connected = moved(connected_hashes, "connected block")?;
        let returned_txs = reverted
            .iter()
            .rev()
            .flat_map(|b| b.block.txs.iter().skip(1).cloned())
            .collect();
        Ok(Some(TipChanged {
            reverted,
            connected,
            returned_txs,
        }))
    }

    /// The body of `hash` (a `what`, for the corruption message) with its txids: from
    /// [`Self::bodies`], else read from the store, hashed once and kept there for the rest
    /// of the operation.
    fn body(&mut self, hash: &BlockHash, what: &str) -> Result<HashedBlock, ChainError> {
        if let Some(body) = self.bodies.as_ref().and_then(|b| b.get(hash)) {
            return Ok(body.clone());
        }
        let block =
            match self.pending_body(hash) {
                Some(block) => block,
                None => Arc::new(self.store.block(hash)?.ok_or_else(|| {
                    ChainError::Corrupt(format!("body of {what} {hash} missing"))
                })?),
            };
        let body = HashedBlock {
            hash: *hash,
            height: self.entries[hash].height,
            txids: block.txs.iter().map(Transaction::txid).collect(),
            block,
        };
        if let Some(bodies) = &mut self.bodies {
            bodies.insert(*hash, body.clone());
        }
        Ok(body)
    }

    /// Runs one operation that reports a tip change (an import, `invalidateblock`,
    /// `reconsiderblock`) with an empty [`Self::bodies`], and drops what it cached
    /// whatever its result: the cache only spares work within one operation.
    fn operation<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, ChainError>,
    ) -> Result<T, ChainError> {
        self.bodies = Some(HashMap::new());
        self.deferring = true;
        let result = op(self);
        self.deferring = false;
        // Whatever the operation's result, what it stored reaches the store before it
        // returns; a failure to write it is the operation's failure.
        let flushed = self.flush_pending();
        self.bodies = None;
        let value = result?;
        flushed?;
        Ok(value)
    }

    fn rebuild_candidates(&mut self) {
        self.fork_choice.clear();
        for entry in self.entries.values() {
            if entry.seq > 0 && !entry.validity.is_invalid() {
                self.fork_choice.insert(entry);
            }
        }
    }

    fn insert_entry(&mut self, entry: BlockEntry) {
        if entry.height > 0 && !self.entries.contains_key(&entry.hash) {
            self.children
                .entry(entry.header.prev_blockhash)
                .or_default()
                .push(entry.hash);
        }
        self.entries.insert(entry.hash, entry);
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}
