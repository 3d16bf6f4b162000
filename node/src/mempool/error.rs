//! Why the mempool turned a transaction away, with the reject reasons users search for.

use super::FeeRate;
use cairn_core::store::StoreError;
use cairn_core::{Amount, OutPoint, TxError, Txid};

/// A transaction the mempool did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The pool already holds a transaction with this txid.
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(Txid),
    /// A consensus rule, checked by `cairn-core` exactly as block connection checks it
    /// (coinbase, context-free rules, missing input, maturity, amounts, lock height,
    /// signatures).
    #[error(transparent)]
    Tx(#[from] TxError),
    /// Spends what pool transactions already spend, without meeting the rules to replace
    /// them (full replace-by-fee, see [`ReplacementRule`]).
    #[error("transaction {txid} conflicts with mempool transaction {conflict}: {rule}")]
    Conflict {
        /// The rejected transaction.
        txid: Txid,
        /// A pool transaction it conflicts with.
        conflict: Txid,
        /// The replacement rule it failed.
        rule: ReplacementRule,
    },
    /// A replacement spends an output of a transaction it would evict (BIP125 rule 2's
    /// sibling in Bitcoin Core: the replacement would orphan itself).
    #[error("transaction {txid} spends an output of {conflict}, which it would replace")]
    SpendsConflictingTx {
        /// The rejected transaction.
        txid: Txid,
        /// The pool transaction it both spends from and replaces.
        conflict: Txid,
    },
    /// Pays less than the minimum relay fee rate.
    #[error("fee {fee} for {size} bytes is below the minimum relay fee rate {min} per byte")]
    MinRelayFee {
        /// Its fee.
        fee: Amount,
        /// Its encoded size.
        size: usize,
        /// The required rate, base units per byte.
        min: u64,
    },
    /// Too many unconfirmed ancestors or descendants (bounds the work every pool update does).
    #[error("{what} would exceed the limit of {limit} unconfirmed transactions")]
    TooLongChain {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The pool is full and this transaction pays the lowest fee rate in it.
    #[error("mempool full: the transaction's fee rate is the lowest in the pool")]
    Full,
    /// The chain store failed while reading coins: not a verdict on the transaction.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The replace-by-fee rule a conflicting transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacementRule {
    /// Its fee is not above the sum of the fees of everything it would evict.
    InsufficientFee {
        /// Its fee.
        fee: Amount,
        /// Fees of the conflicts and their descendants.
        evicted: Amount,
    },
    /// Its fee rate is not above that of a direct conflict.
    InsufficientFeeRate {
        /// Its fee rate.
        rate: FeeRate,
        /// The conflict's fee rate.
        conflict_rate: FeeRate,
    },
    /// Bitcoin Core's rule 4: the fee it adds over everything it would evict does not pay
    /// for its own size at the minimum relay fee rate.
    InsufficientRelayFee {
        /// Its fee minus the fees of everything it would evict.
        additional: Amount,
        /// Its size times the minimum relay fee rate.
        required: Amount,
    },
    /// Bitcoin Core's rule 5: it would evict more transactions than the limit (counted as
    /// the direct conflicts' descendant counts, themselves included).
    TooManyReplacements {
        /// Transactions it would evict, at most.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl ReplacementRule {
    /// The reject reason: Bitcoin Core's words for rules 4 and 5, and
    /// `txn-mempool-conflict` (the interface's reason for a double spend) for a replacement
    /// that does not outbid what it conflicts with.
    pub fn reject_reason(&self) -> &'static str {
        match self {
            ReplacementRule::InsufficientFee { .. }
            | ReplacementRule::InsufficientFeeRate { .. } => "txn-mempool-conflict",
            ReplacementRule::InsufficientRelayFee { .. } => "insufficient fee",
            ReplacementRule::TooManyReplacements { .. } => "too many potential replacements",
        }
    }
}

impl std::fmt::Display for ReplacementRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplacementRule::InsufficientFee { fee, evicted } => write!(
                f,
                "fee {fee} is not above the {evicted} paid by the transactions it would replace"
            ),
            ReplacementRule::InsufficientFeeRate {
                rate,
                conflict_rate,
            } => write!(
                f,
                "fee rate {rate} is not above the conflict's {conflict_rate}"
            ),
            ReplacementRule::InsufficientRelayFee {
                additional,
                required,
            } => write!(
                f,
                "the {additional} it adds over the transactions it would replace does not pay \
                 the {required} its relay costs at the minimum relay fee rate"
            ),
            ReplacementRule::TooManyReplacements { count, limit } => write!(
                f,
                "it would replace {count} transactions, more than the limit of {limit}"
            ),
        }
    }
}

impl MempoolError {
    /// The reject reason of `sendrawtransaction`/`testmempoolaccept` (Bitcoin Core's
    /// spelling). A [`MempoolError::Store`] is not a rejection: the RPC should report it as
    /// an internal error, not as code -26.
    pub fn reject_reason(&self) -> String {
        match self {
            MempoolError::AlreadyKnown(_) => "txn-already-known",
            MempoolError::Tx(error) => error.reject_reason(),
            MempoolError::Conflict { rule, .. } => rule.reject_reason(),
            MempoolError::SpendsConflictingTx { .. } => "bad-txns-spends-conflicting-tx",
            MempoolError::MinRelayFee { .. } => "min relay fee not met",
            MempoolError::TooLongChain { .. } => "too-long-mempool-chain",
            MempoolError::Full => "mempool full",
            MempoolError::Store(_) => "storage-error",
        }
        .to_string()
    }

    /// The outpoint of a missing input: the transaction may be an orphan whose parent has
    /// not arrived yet, rather than invalid.
    pub fn missing_outpoint(&self) -> Option<OutPoint> {
        match self {
            MempoolError::Tx(TxError::MissingOrSpent(outpoint)) => Some(*outpoint),
            _ => None,
        }
    }
}
