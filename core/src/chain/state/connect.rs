//! Connecting a block to the active tip: the UTXO, amount and ordering rules run in block
//! order on this thread while every input's signature check is collected and handed, a
//! chunk at a time, to the other cores, which verify while the pass goes on
//! ([`crate::sigcheck::queue`]), skipping triples the signature cache holds. The pass stops
//! early once a handed-over check has failed: the verdict is then that failure or an
//! earlier one.
//!
//! The verdict is exactly the sequential one. Sequentially, transaction `i`'s signatures
//! are checked after its inputs' rules and before its fee is added, and every transaction
//! before `i` was checked completely. So when a non-signature rule fails at transaction
//! `k`, the signature checks collected so far (those of transactions before `k`, and of
//! `k` itself when only its fee overflowed) run first, and a failure among them wins.

use super::ChainState;
use crate::amount::Amount;
use crate::block_index::Validity;
use crate::chain::outcome::{ChainError, HashedBlock};
use crate::hash::{BlockHash, ShortLivedHasher, Txid};
use crate::sigcheck::{CheckQueue, Parallelism, QueueRun, verify_while};
use crate::store::{BlockUndo, ChainStore, StoreBatch};
use crate::tx::{OutPoint, Transaction};
use crate::utxo::Coin;
use crate::validation::{BlockError, TxError, check_tx_inputs};
use std::collections::HashMap;

/// What the in-order pass over a block's transactions produced.
struct Pass {
    created: HashMap<OutPoint, Coin, ShortLivedHasher>,
    spent_from_store: Vec<(OutPoint, Coin)>,
    fees: Amount,
    /// The first rule other than a signature that failed, in block order.
    failed: Option<BlockError>,
}

impl<S: ChainStore> ChainState<S> {
    /// Connects the child of the active tip: checks every contextual rule and writes the
    /// UTXO changes, undo data and new tip in one batch (with the block's body when this
    /// operation stored it, see [`ChainState::write`]).
    pub(super) fn connect_block(
        &mut self,
        hash: &BlockHash,
    ) -> Result<Result<(), BlockError>, ChainError> {
        let entry = self.entries[hash].clone();
        debug_assert_eq!(entry.header.prev_blockhash, self.tip().hash);
        let HashedBlock { block, txids, .. } = self.body(hash, "block")?;
        let height = entry.height;
        let coinbase = &block.txs[0];
        if coinbase.lock_height != height {
            return Ok(Err(BlockError::BadCoinbaseHeight {
                expected: height,
                got: coinbase.lock_height,
            }));
        }
        let inputs = block.txs.iter().map(|tx| tx.inputs.len()).sum();
        let run = QueueRun {
            cache: self.sigcache.as_deref(),
            take: true,
            parallelism: self.parallelism,
            chunk: self.check_chunk,
        };
        let (pass, verdict) = verify_while(run, inputs, |checks| {
            self.connect_pass(&block.txs, &txids, height, checks)
        });
        let pass = pass?;
        if let Err(failure) = verdict {
            return Ok(Err(BlockError::Tx {
                index: failure.tx_index,
                txid: txids[failure.tx_index],
                error: failure.error,
            }));
        }
        let Pass {
            created,
            spent_from_store,
            fees,
            failed,
        } = pass;
        if let Some(error) = failed {
            return Ok(Err(error));
        }
        let paid = Amount::checked_sum(coinbase.outputs.iter().map(|o| o.amount))
            .expect("output sums were checked context-free");
        let allowed = match self.params.subsidy(height).checked_add(fees) {
            Some(a) => a,
            None => return Ok(Err(BlockError::FeeOverflow)),
        };
        if paid > allowed {
            return Ok(Err(BlockError::CoinbaseTooLarge { paid, allowed }));
        }

        let mut connected = entry;
        connected.validity = Validity::Valid;
        let coins_spent = spent_from_store.iter().map(|(o, _)| *o).collect();
        self.write(StoreBatch {
            index: vec![connected.clone()],
            coins_added: created.into_iter().collect(),
            coins_spent,
            undo_put: vec![(
                *hash,
                BlockUndo {
                    spent: spent_from_store,
                },
            )],
            tip: Some(*hash),
            ..Default::default()
        })?;
        self.entries.insert(*hash, connected);
        self.active.push(*hash);
        Ok(Ok(()))
    }

    /// The in-order pass: finds each input's coin (created earlier in the block or in the
    /// store), applies the input rules and sums fees, pushing signature checks into
    /// `checks`. Stops at the first failure, recorded in [`Pass::failed`], or as soon as a
    /// signature check already handed to the pool has failed (that failure, or an earlier
    /// one, is the verdict).
    fn connect_pass<'a>(
        &self,
        txs: &'a [Transaction],
        txids: &[Txid],
        height: u32,
        checks: &mut CheckQueue<'_, '_, 'a>,
    ) -> Result<Pass, ChainError> {
        // Sized once: growing a map to a full block's ~2,000 outputs rehashes it about ten
        // times, on the thread that feeds the pool.
        let outputs = txs.iter().map(|tx| tx.outputs.len()).sum();
        let inputs = txs.iter().map(|tx| tx.inputs.len()).sum();
        let mut pass = Pass {
            created: HashMap::with_capacity_and_hasher(outputs, ShortLivedHasher::default()),
            spent_from_store: Vec::with_capacity(inputs),
            fees: Amount::ZERO,
            failed: None,
        };
        let mut spent_coins: Vec<Coin> = Vec::new();
        for (index, (tx, txid)) in txs.iter().zip(txids.iter()).enumerate() {
            if checks.failed() {
                return Ok(pass);
            }
            let tx_err = |error| BlockError::Tx {
                index,
                txid: *txid,
                error,
            };
            if index > 0 {
                spent_coins.clear();
                for input in &tx.inputs {
                    let coin = if let Some(coin) = pass.created.remove(&input.prevout) {
                        coin
                    } else if let Some(coin) = self.store.coin(&input.prevout)? {
                        pass.spent_from_store.push((input.prevout, coin));
                        coin
                    } else {
                        pass.failed = Some(tx_err(TxError::MissingOrSpent(input.prevout)));
                        return Ok(pass);
                    };
                    spent_coins.push(coin);
                }
                let fee = match check_tx_inputs(tx, &spent_coins, height, &self.params) {
                    Ok(fee) => fee,
                    Err(e) => {
                        pass.failed = Some(tx_err(e));
                        return Ok(pass);
                    }
                };
                checks.push_tx(index, tx, &spent_coins, &self.params);
                pass.fees = match pass.fees.checked_add(fee) {
                    Some(f) => f,
                    None => {
                        pass.failed = Some(BlockError::FeeOverflow);
                        return Ok(pass);
                    }
                };
            }
            for (vout, output) in tx.outputs.iter().enumerate() {
                let coin = Coin {
                    output: *output,
                    height,
                    is_coinbase: index == 0,
                };
                let outpoint = OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                };
                pass.created.insert(outpoint, coin);
            }
        }
        Ok(pass)
    }

    /// Shares a signature cache with this chain state (the node gives the mempool's):
    /// block connection skips, and removes, the triples it finds there.
    pub fn set_sigcache(&mut self, cache: std::sync::Arc<crate::sigcache::SigCache>) {
        self.sigcache = Some(cache);
    }

    /// How block signatures are verified: [`Parallelism::Auto`] by default;
    /// [`Parallelism::Sequential`] is the reference the parallel verdict must equal (tests,
    /// benchmarks).
    pub fn set_parallelism(&mut self, parallelism: Parallelism) {
        self.parallelism = parallelism;
    }

    /// How many signature checks are handed to the pool as one job while a block's
    /// transactions are checked in order ([`crate::sigcheck::CHUNK_CHECKS`] by default; at
    /// least 1). The verdict does not depend on it; tests vary it to cross job boundaries.
    pub fn set_check_chunk(&mut self, checks: usize) {
        self.check_chunk = checks.max(1);
    }
}

#[cfg(test)]
mod tests;
