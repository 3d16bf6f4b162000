//! Signature checks of a block, collected while the UTXO rules run in order and verified
//! across all cores meanwhile ([`queue`], Bitcoin Core's `CCheckQueue`).
//!
//! The verdict does not depend on the thread count: the failure reported is the one the
//! sequential rule ([`crate::validation::verify_tx_signatures`], transaction by transaction,
//! input by input) meets first, the lowest (transaction, input) position. A thread pool is
//! computation, not I/O: this crate still touches no file, socket or clock.

use crate::hash::Hash256;
use crate::keys::{PubkeyHash, verify_signature};
use crate::params::ChainParams;
use crate::sigcache::SigCache;
use crate::tx::{SighashCache, Transaction, TxIn};
use crate::utxo::Coin;
use crate::validation::TxError;
use rayon::prelude::*;

pub mod queue;
pub use queue::{CHUNK_CHECKS, CheckQueue, QueueRun, verify_while};

/// Fewer checks than this verify on the calling thread: handing them to the pool costs more
/// than it saves.
pub const PARALLEL_MIN_CHECKS: usize = 16;

/// Threads a block's signatures are verified on (rayon's pool: one per core, or
/// `RAYON_NUM_THREADS`).
pub fn verification_threads() -> usize {
    rayon::current_num_threads()
}

/// One input's signature check: its key against the spent output's address, then its
/// signature over its sighash.
#[derive(Debug, Clone)]
pub struct SigCheck<'a> {
    /// Position of the transaction in its block (or 0 for a lone transaction).
    pub tx_index: usize,
    /// Position of the input in its transaction.
    pub input_index: usize,
    /// The input (public key and signature).
    pub input: &'a TxIn,
    /// The address of the output it spends.
    pub address: PubkeyHash,
    /// The message it signs.
    pub sighash: Hash256,
}

impl SigCheck<'_> {
    /// Runs the check. With a `cache`, a triple found there is not verified again; `take`
    /// removes what it finds (block connection), otherwise a verified triple is inserted
    /// (the mempool).
    pub fn run(&self, cache: Option<&SigCache>, take: bool) -> Result<(), TxError> {
        let index = self.input_index;
        if PubkeyHash::of(&self.input.public_key) != self.address {
            return Err(TxError::WrongKey { index });
        }
        let Some(cache) = cache else {
            return verify_signature(&self.input.public_key, &self.sighash, &self.input.signature)
                .map_err(|error| TxError::BadSignature { index, error });
        };
        let key = cache.key(&self.sighash, &self.input.public_key, &self.input.signature);
        let hit = if take {
            cache.take(&key)
        } else {
            cache.contains(&key)
        };
        if hit {
            return Ok(());
        }
        verify_signature(&self.input.public_key, &self.sighash, &self.input.signature)
            .map_err(|error| TxError::BadSignature { index, error })?;
        if !take {
            cache.insert(key);
        }
        Ok(())
    }
}

/// Where a failed check is and why: the transaction's position in the block and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigCheckFailure {
    /// Position of the transaction in the block.
    pub tx_index: usize,
    /// The rule broken (`WrongKey` or `BadSignature`, naming the input).
    pub error: TxError,
}

/// How a batch of checks runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// On the rayon pool when there are at least [`PARALLEL_MIN_CHECKS`], else inline.
    Auto,
    /// Always on the calling thread, in order (the reference the parallel run must match).
    Sequential,
}

/// The signature checks of a block, in (transaction, input) order.
#[derive(Debug, Default)]
pub struct SigChecks<'a> {
    checks: Vec<SigCheck<'a>>,
}

impl<'a> SigChecks<'a> {
    /// Room for `inputs` checks.
    pub fn with_capacity(inputs: usize) -> Self {
        SigChecks {
            checks: Vec::with_capacity(inputs),
        }
    }

    /// Adds the checks of every input of `tx` (at `tx_index` in its block), which spends
    /// `spent` (one coin per input).
    pub fn push_tx(
        &mut self,
        tx_index: usize,
        tx: &'a Transaction,
        spent: &[Coin],
        params: &ChainParams,
    ) {
        debug_assert_eq!(spent.len(), tx.inputs.len());
        let amounts: Vec<_> = spent.iter().map(|c| c.output.amount).collect();
        let sighashes = SighashCache::new(tx, &params.network_magic, &amounts);
        for (input_index, (input, coin)) in tx.inputs.iter().zip(spent).enumerate() {
            self.checks.push(SigCheck {
                tx_index,
                input_index,
                input,
                address: coin.output.address,
                sighash: sighashes.sighash(input_index),
            });
        }
    }

    /// The checks, in (transaction, input) order.
    pub fn iter(&self) -> impl Iterator<Item = &SigCheck<'a>> {
        self.checks.iter()
    }

    /// Number of checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Runs every check (see [`SigCheck::run`] for `cache` and `take`); the first failure in
    /// (transaction, input) order, whatever the parallelism.
    pub fn verify(
        &self,
        cache: Option<&SigCache>,
        take: bool,
        parallelism: Parallelism,
    ) -> Result<(), SigCheckFailure> {
        let failure = |check: &SigCheck<'_>| {
            check.run(cache, take).err().map(|error| SigCheckFailure {
                tx_index: check.tx_index,
                error,
            })
        };
        let first =
            if parallelism == Parallelism::Sequential || self.checks.len() < PARALLEL_MIN_CHECKS {
                self.checks.iter().find_map(failure)
            } else {
                // `find_map_first`: of every failure found, the one earliest in order; checks
                // after an already-found failure may be skipped, earlier ones never are.
                self.checks.par_iter().find_map_first(failure)
            };
        first.map_or(Ok(()), Err)
    }
}

/// Verifies one transaction's signatures (the mempool), consulting and filling `cache`.
/// The same verdict as [`crate::validation::verify_tx_signatures`].
pub fn verify_tx_signatures_cached(
    tx: &Transaction,
    spent: &[Coin],
    params: &ChainParams,
    cache: &SigCache,
) -> Result<(), TxError> {
    let mut checks = SigChecks::with_capacity(tx.inputs.len());
    checks.push_tx(0, tx, spent, params);
    checks
        .verify(Some(cache), false, Parallelism::Sequential)
        .map_err(|f| f.error)
}
