//! How the pool follows the active chain's tip.
//!
//! The common case, a tip that only advanced, costs work in proportion to the blocks
//! connected (Bitcoin Core's `removeForBlock`): their transactions leave the pool, and so do
//! the pool transactions that spent an outpoint one of them spent (double spends that lost),
//! with their descendants. Nothing else needs checking: every other pool transaction spends
//! coins still unspent on the new tip (confirmed ones nobody in the blocks spent, or outputs
//! of pool parents or of the transactions just confirmed), and a higher tip can only make a
//! lock height or a coinbase's maturity more satisfied, never less. Only a reorganisation
//! (a reverted block) re-validates the whole pool, because reverted coins and heights can
//! make any transaction invalid.

use super::graph::Entry;
use super::{Mempool, MempoolError};
use cairn_core::chain::HashedBlock;
use cairn_core::store::{StoreError, UtxoReader};
use cairn_core::{Block, TipChanged, Transaction, Txid};
use std::collections::HashSet;

/// What a tip change did to the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReorgReport {
    /// Transactions of reverted blocks now back in the pool.
    pub returned: Vec<Txid>,
    /// Pool transactions dropped: conflicts of the connected blocks and transactions
    /// invalid on the new chain (spending a reverted coinbase, premature, non-final, …).
    pub removed: Vec<Txid>,
}

impl Mempool {
    /// The active chain's tip moved as `change` says; `utxos` is the UTXO set of the new tip
    /// and `next_height` its height + 1. A tip that only advanced takes
    /// [`Mempool::connect_blocks`] (work in proportion to the blocks); a reorganisation, or a
    /// tip that moved back, takes [`Mempool::reorg`] (re-validates the pool).
    pub fn update_for_tip_change<U: UtxoReader + ?Sized>(
        &mut self,
        change: &TipChanged,
        utxos: &U,
        next_height: u32,
        now: u64,
    ) -> Result<ReorgReport, StoreError> {
        if change.reverted.is_empty() {
            return Ok(self.connect_blocks(&change.connected));
        }
        self.reorg(
            change.returned_txs.clone(),
            &change.connected,
            utxos,
            next_height,
            now,
        )
    }

    /// Blocks joined the active chain on top of the previous tip (oldest first, with their
    /// txids): removes what they confirmed and what conflicts with them, reading no coins.
    pub fn connect_blocks(&mut self, connected: &[HashedBlock]) -> ReorgReport {
        self.missing_inputs.clear();
        let mut removed = Vec::new();
        for block in connected {
            removed.extend(self.remove_confirmed(&block.block.txs, &block.txids));
        }
        ReorgReport {
            returned: Vec::new(),
            removed,
        }
    }

    /// A block joined the active chain: removes its transactions, and every pool
    /// transaction spending an outpoint one of them spent (a double spend that lost), with
    /// descendants. Returns the conflicts removed; the confirmed ones are not listed.
    pub fn remove_for_block(&mut self, block: &Block) -> Vec<Txid> {
        self.missing_inputs.clear();
        let txids: Vec<Txid> = block.txs.iter().map(Transaction::txid).collect();
        self.remove_confirmed(&block.txs, &txids)
    }

    /// [`remove_for_block`](Self::remove_for_block) with the block's txids already known
    /// (`txids[i]` is `txs[i]`'s).
    fn remove_confirmed(&mut self, txs: &[Transaction], txids: &[Txid]) -> Vec<Txid> {
        debug_assert_eq!(txs.len(), txids.len());
        let non_coinbase = || txs.iter().zip(txids).filter(|(tx, _)| !tx.is_coinbase());
        for (_, txid) in non_coinbase() {
            if self.entries.contains_key(txid) {
                self.remove_entry(txid);
            }
        }
        let conflicts: Vec<Txid> = non_coinbase()
            .flat_map(|(tx, _)| &tx.inputs)
            .filter_map(|input| self.spenders.get(&input.prevout).copied())
            .collect();
        self.remove_with_descendants(conflicts)
    }

    /// The active chain reorganised: `returned_txs` are the non-coinbase transactions of
    /// the reverted blocks, oldest first ([`cairn_core::TipChanged::returned_txs`]);
    /// `connected_blocks` the blocks connected, oldest first, with their txids
    /// ([`cairn_core::TipChanged::connected`]); `utxos` the UTXO set of the new tip and
    /// `next_height` its height + 1.
    ///
    /// Removes what the connected blocks confirmed or conflict with, then rebuilds the pool
    /// by validating the returned transactions and then every pool transaction (in arrival
    /// order, keeping arrival times) against the new chain, so whatever the new chain made
    /// invalid is dropped: spends of reverted coinbases, premature or non-final spends,
    /// descendants of any of them. Signatures are not checked again: each was verified
    /// against the outputs its inputs name, and an outpoint's output is fixed by its txid
    /// on every branch. Also serves a tip that only moved back (`invalidateblock`).
    ///
    /// On a store error the pool holds what was re-validated before it.
    pub fn reorg<U: UtxoReader + ?Sized>(
        &mut self,
        returned_txs: Vec<Transaction>,
        connected_blocks: &[HashedBlock],
        utxos: &U,
        next_height: u32,
        now: u64,
    ) -> Result<ReorgReport, StoreError> {
        self.missing_inputs.clear();
        let mut removed = Vec::new();
        for connected in connected_blocks {
            removed.extend(self.remove_confirmed(&connected.block.txs, &connected.txids));
        }
        let mut old: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
        old.sort_by_key(|e| e.seq);
        self.spenders.clear();
        self.bytes = 0;

        let mut returned = Vec::new();
        for tx in returned_txs {
            match self.accept_at(tx, utxos, next_height, now, false) {
                Ok(accepted) => returned.push(accepted.txid),
                Err(MempoolError::Store(e)) => return Err(e),
                Err(_) => {}
            }
        }
        for entry in old {
            let (txid, time) = (entry.txid, entry.time);
            match self.accept_at(entry.tx, utxos, next_height, time, false) {
                Ok(accepted) => {
                    removed.extend(accepted.replaced.into_iter().chain(accepted.evicted))
                }
                Err(MempoolError::Store(e)) => return Err(e),
                Err(_) => removed.push(txid),
            }
        }
        returned.retain(|t| self.entries.contains_key(t));
        let mut seen = HashSet::new();
        removed.retain(|t| !self.entries.contains_key(t) && seen.insert(*t));
        Ok(ReorgReport { returned, removed })
    }
}
