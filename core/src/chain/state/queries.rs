//! What [`ChainState`] answers without changing anything: the tip, entries, blocks and
//! coins, ancestors and median time, the next difficulty, chain tips, locators and headers
//! for sync, and block templates.

use super::{ChainState, MAX_HEADERS_RESULTS};
use crate::amount::Amount;
use crate::block::{Block, BlockHeader};
use crate::block_index::{BlockEntry, Validity};
use crate::chain::outcome::{ChainTip, TipStatus};
use crate::difficulty::{median_time, next_bits};
use crate::hash::BlockHash;
use crate::keys::PubkeyHash;
use crate::merkle::merkle_root;
use crate::params::{ChainParams, MEDIAN_TIME_SPAN};
use crate::pow::CompactTarget;
use crate::store::{ChainStore, StoreError, UtxoStats};
use crate::tx::{OutPoint, Transaction, TxOut};
use crate::utxo::Coin;

impl<S: ChainStore> ChainState<S> {
    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The store (read access for RPC queries).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back (e.g. to close it).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The active tip.
    pub fn tip(&self) -> &BlockEntry {
        let hash = self
            .active
            .last()
            .expect("the active chain always holds genesis");
        &self.entries[hash]
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        self.tip().height
    }

    /// An entry of the block tree.
    pub fn entry(&self, hash: &BlockHash) -> Option<&BlockEntry> {
        self.entries.get(hash)
    }

    /// Every entry of the block tree (header or body) at height `from` or above, in no
    /// particular order: what a fork view draws.
    pub fn entries_from(&self, from: u32) -> impl Iterator<Item = &BlockEntry> {
        self.entries.values().filter(move |e| e.height >= from)
    }

    /// Number of blocks in the tree (headers included).
    pub fn tree_len(&self) -> usize {
        self.entries.len()
    }

    /// Hash of the active block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|e| self.active.get(e.height as usize) == Some(hash))
    }

    /// A stored block body.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }

    /// An unspent coin of the active chain.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.store.coin(outpoint)
    }

    /// UTXO set summary.
    pub fn utxo_stats(&self) -> Result<UtxoStats, StoreError> {
        UtxoStats::compute(&self.store)
    }

    /// Number of orphan blocks held.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// The first missing ancestor of an orphan (what to request from peers).
    pub fn orphan_root(&self, hash: &BlockHash) -> Option<BlockHash> {
        self.orphans.missing_root(hash)
    }

    /// The ancestor of `from` at `height` (`height` ≤ its height).
    pub fn ancestor(&self, from: &BlockHash, height: u32) -> Option<&BlockEntry> {
        let mut cur = self.entries.get(from)?;
        if height > cur.height {
            return None;
        }
        loop {
            if cur.height == height {
                return Some(cur);
            }
            if self.is_active(&cur.hash) {
                return self.entries.get(&self.active[height as usize]);
            }
            cur = self.entries.get(&cur.header.prev_blockhash)?;
        }
    }

    /// Median time of the last [`MEDIAN_TIME_SPAN`] blocks ending at `hash`.
    pub fn median_time_past(&self, hash: &BlockHash) -> u32 {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cur = self.entries.get(hash);
        while let Some(entry) = cur {
            times.push(entry.header.time);
            if times.len() == MEDIAN_TIME_SPAN || entry.height == 0 {
                break;
            }
            cur = self.entries.get(&entry.header.prev_blockhash);
        }
        median_time(times)
    }

    pub(super) fn header_at_fn<'a>(
        &'a self,
        parent: &'a BlockHash,
    ) -> impl Fn(u32) -> BlockHeader + 'a {
        move |h| {
            self.ancestor(parent, h)
                .expect("ancestors of an indexed block are indexed")
                .header
        }
    }

    /// The `bits` a child of `parent` must carry.
    pub fn next_bits(&self, parent: &BlockHash) -> Option<CompactTarget> {
        let entry = self.entries.get(parent)?;
        Some(next_bits(
            &self.params,
            entry.height + 1,
            entry.header.bits,
            self.header_at_fn(parent),
        ))
    }

    /// The earliest timestamp a child of `parent` may carry (median time past and BIP54).
    pub fn min_next_time(&self, parent: &BlockHash) -> Option<u32> {
        let entry = self.entries.get(parent)?;
        let height = entry.height + 1;
        let window = self.params.retarget_window;
        let mut min = self.median_time_past(parent).saturating_add(1);
        if height % window == 0 {
            min = min.max(
                entry
                    .header
                    .time
                    .saturating_sub(self.params.timewarp_grace_secs),
            );
        }
        if height % window == window - 1 && height >= window - 1 {
            min = min.max(self.ancestor(parent, height - (window - 1))?.header.time);
        }
        Some(min)
    }

    /// The leaves of the block tree (and the active tip), as `getchaintips` shows them.
    pub fn chain_tips(&self) -> Vec<ChainTip> {
        let tip = self.tip().hash;
        let mut tips: Vec<ChainTip> = self
            .entries
            .values()
            .filter(|e| e.hash == tip || self.children.get(&e.hash).is_none_or(|c| c.is_empty()))
            .map(|e| {
                let fork = self.find_fork(&e.hash);
                let fork_height = self.entries.get(&fork).map_or(0, |f| f.height);
                let status = if self.is_active(&e.hash) {
                    TipStatus::Active
                } else if e.validity.is_invalid() {
                    TipStatus::Invalid
                } else if e.seq == 0 {
                    TipStatus::HeadersOnly
                } else if e.validity == Validity::Valid {
                    TipStatus::ValidFork
                } else {
                    TipStatus::ValidHeaders
                };
                ChainTip {
                    height: e.height,
                    hash: e.hash,
                    branchlen: e.height - fork_height,
                    status,
                }
            })
            .collect();
        tips.sort_by(|a, b| b.height.cmp(&a.height).then(a.hash.cmp(&b.hash)));
        tips
    }

    /// A block locator for the active chain: the last 10 hashes, then exponentially
    /// sparser back to genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.active.len() as i64 - 1;
        let mut step = 1i64;
        while height > 0 {
            out.push(self.active[height as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.push(self.active[0]);
        out
    }

    /// Headers of the active chain after the first locator hash found on it, up to `max`
    /// (at most [`MAX_HEADERS_RESULTS`]) or until `stop`.
    pub fn headers_after(
        &self,
        locator: &[BlockHash],
        stop: Option<BlockHash>,
        max: usize,
    ) -> Vec<BlockHeader> {
        let start = locator
            .iter()
            .find_map(|h| self.is_active(h).then(|| self.entries[h].height))
            .unwrap_or(0);
        let max = max.min(MAX_HEADERS_RESULTS);
        let mut out = Vec::new();
        for hash in self.active.iter().skip(start as usize + 1).take(max) {
            out.push(self.entries[hash].header);
            if Some(*hash) == stop {
                break;
            }
        }
        out
    }

    /// A block template on the active tip: a coinbase paying subsidy plus `fees` to
    /// `pay_to` with `extra_data`, then `txs` in order; nonce zero.
    pub fn block_template(
        &self,
        pay_to: PubkeyHash,
        txs: Vec<Transaction>,
        fees: Amount,
        now: u64,
        extra_data: Vec<u8>,
    ) -> Block {
        let tip = self.tip().hash;
        self.block_template_on(&tip, pay_to, txs, fees, now, extra_data)
            .expect("the tip is indexed")
    }

    /// A block template on any known `parent` (tests and fork scenarios build side chains).
    pub fn block_template_on(
        &self,
        parent: &BlockHash,
        pay_to: PubkeyHash,
        txs: Vec<Transaction>,
        fees: Amount,
        now: u64,
        extra_data: Vec<u8>,
    ) -> Option<Block> {
        let tip = self.entries.get(parent)?;
        let height = tip.height + 1;
        let reward = self
            .params
            .subsidy(height)
            .checked_add(fees)
            .expect("fees of valid transactions are bounded by the money supply");
        let coinbase = Transaction {
            version: crate::validation::TX_VERSION,
            inputs: vec![],
            outputs: vec![TxOut {
                amount: reward,
                address: pay_to,
            }],
            lock_height: height,
            data: extra_data,
        };
        let mut all = Vec::with_capacity(txs.len() + 1);
        all.push(coinbase);
        all.extend(txs);
        let wtxids: Vec<_> = all.iter().map(Transaction::wtxid).collect();
        let min_time = self.min_next_time(&tip.hash)?;
        let header = BlockHeader {
            version: 1,
            prev_blockhash: tip.hash,
            merkle_root: merkle_root(&wtxids),
            time: min_time.max(u32::try_from(now).unwrap_or(u32::MAX)),
            bits: self.next_bits(&tip.hash)?,
            nonce: 0,
        };
        Some(Block { header, txs: all })
    }
}
