//! Consensus validation rules, as typed errors that name the rule broken.
//!
//! - [`check_transaction`]: context-free transaction rules.
//! - [`check_block`]: context-free block rules; success yields a [`CheckedBlock`].
//! - [`check_tx_inputs`] and [`verify_tx_signatures`]: rules that need the spent coins;
//!   shared by block connection and the mempool so both enforce exactly the same thing.
//!
//! Header rules that need the chain (difficulty, time) live in [`crate::chain`].

use crate::amount::Amount;
use crate::block::Block;
use crate::hash::{BlockHash, MerkleRoot, ShortLivedHasher, Txid};
use crate::keys::SignatureError;
use crate::merkle::merkle_root;
use crate::params::ChainParams;
use crate::pow::{PowError, Target};
use crate::sigcheck::{Parallelism, SigChecks};
use crate::tx::{MAX_TX_DATA, OutPoint, Transaction};
use crate::utxo::Coin;
use rayon::prelude::*;
use std::collections::HashSet;

/// The only transaction version this release accepts.
pub const TX_VERSION: u32 = 1;

/// A transaction rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Unknown version.
    #[error("unsupported transaction version {0}")]
    Version(u32),
    /// No outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// Zero-value output.
    #[error("output {0} has zero value")]
    ZeroOutput(usize),
    /// Output above the total supply (CVE-2010-5139).
    #[error("output {index} of {amount} exceeds the maximum money supply")]
    OutputTooLarge {
        /// Output index.
        index: usize,
        /// Its amount.
        amount: Amount,
    },
    /// Sum of outputs overflows or exceeds the supply (CVE-2010-5139).
    #[error("sum of outputs overflows or exceeds the maximum money supply")]
    OutputTotalTooLarge,
    /// The same outpoint spent twice in one transaction (CVE-2018-17144).
    #[error("input {0} is spent twice in the same transaction")]
    DuplicateInput(OutPoint),
    /// Too many free bytes.
    #[error("data field of {0} bytes exceeds {MAX_TX_DATA}")]
    DataTooLong(usize),
    /// Larger than a block can hold.
    #[error("transaction of {size} bytes exceeds the block size limit {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// A coinbase where only ordinary transactions belong (mempool, or not first in a block).
    #[error("coinbase transaction outside the first position of a block")]
    UnexpectedCoinbase,
    /// Spends a coin that does not exist or is already spent.
    #[error("input {0} is missing or already spent")]
    MissingOrSpent(OutPoint),
    /// Spends a coinbase output before it matured.
    #[error(
        "input {outpoint} spends a coinbase of height {coin_height} before maturity ({confirmations} of {maturity} confirmations)"
    )]
    PrematureCoinbaseSpend {
        /// The coin.
        outpoint: OutPoint,
        /// Its height.
        coin_height: u32,
        /// Confirmations it would have.
        confirmations: u32,
        /// Required.
        maturity: u32,
    },
    /// Inputs overflow.
    #[error("sum of inputs overflows")]
    InputTotalOverflow,
    /// Spends more than it has.
    #[error("inputs {inputs} are below outputs {outputs}")]
    InputsBelowOutputs {
        /// Sum of inputs.
        inputs: Amount,
        /// Sum of outputs.
        outputs: Amount,
    },
    /// Not yet minable.
    #[error("lock height {lock_height} not reached at height {height}")]
    NonFinal {
        /// The tx's lock height.
        lock_height: u32,
        /// The height it would be mined at.
        height: u32,
    },
    /// The public key does not hash to the spent output's address.
    #[error("input {index}: public key does not match the spent output's address")]
    WrongKey {
        /// Input index.
        index: usize,
    },
    /// The signature does not verify.
    #[error("input {index}: {error}")]
    BadSignature {
        /// Input index.
        index: usize,
        /// Why.
        error: SignatureError,
    },
}

impl TxError {
    /// The reject reason users search for (Bitcoin Core's spelling where one exists).
    pub fn reject_reason(&self) -> &'static str {
        match self {
            TxError::Version(_) => "version",
            TxError::NoOutputs => "bad-txns-vout-empty",
            TxError::ZeroOutput(_) => "bad-txns-vout-zero",
            TxError::OutputTooLarge { .. } => "bad-txns-vout-toolarge",
            TxError::OutputTotalTooLarge => "bad-txns-txouttotal-toolarge",
            TxError::DuplicateInput(_) => "bad-txns-inputs-duplicate",
            TxError::DataTooLong(_) => "bad-txns-data-toolong",
            TxError::TooLarge { .. } => "bad-txns-oversize",
            TxError::UnexpectedCoinbase => "coinbase",
            TxError::MissingOrSpent(_) => "bad-txns-inputs-missingorspent",
            TxError::PrematureCoinbaseSpend { .. } => "bad-txns-premature-spend-of-coinbase",
            TxError::InputTotalOverflow => "bad-txns-inputvalues-outofrange",
            TxError::InputsBelowOutputs { .. } => "bad-txns-in-belowout",
            TxError::NonFinal { .. } => "bad-txns-nonfinal",
            TxError::WrongKey { .. } | TxError::BadSignature { .. } => {
                "mandatory-script-verify-flag-failed"
            }
        }
    }

    /// Whether a peer that relayed a transaction breaking this rule must be dishonest or
    /// broken: a context-free rule or a signature. Rules that depend on the receiver's view
    /// of the chain (missing inputs, maturity, lock height, amounts of the spent coins) are
    /// not verdicts on the sender. Used to score peers, like
    /// [`BlockError::is_misbehavior`].
    pub fn is_misbehavior(&self) -> bool {
        match self {
            TxError::Version(_)
            | TxError::NoOutputs
            | TxError::ZeroOutput(_)
            | TxError::OutputTooLarge { .. }
            | TxError::OutputTotalTooLarge
            | TxError::DuplicateInput(_)
            | TxError::DataTooLong(_)
            | TxError::TooLarge { .. }
            | TxError::UnexpectedCoinbase
            | TxError::WrongKey { .. }
            | TxError::BadSignature { .. } => true,
            TxError::MissingOrSpent(_)
            | TxError::PrematureCoinbaseSpend { .. }
            | TxError::InputTotalOverflow
            | TxError::InputsBelowOutputs { .. }
            | TxError::NonFinal { .. } => false,
        }
    }
}

/// A block rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Encoded block too large.
    #[error("block of {size} bytes exceeds {max}")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// No transactions at all.
    #[error("block has no transactions")]
    NoTransactions,
    /// `bits` is not a valid target.
    #[error("invalid bits: {0}")]
    BadBits(PowError),
    /// Target easier than the network allows.
    #[error("target above the proof-of-work limit")]
    TargetAboveLimit,
    /// The hash does not meet the target.
    #[error("block hash {0} does not meet its target")]
    HighHash(BlockHash),
    /// Transactions do not hash to the header's merkle root.
    #[error("merkle root mismatch: header {header}, transactions {computed}")]
    BadMerkleRoot {
        /// In the header.
        header: MerkleRoot,
        /// Computed.
        computed: MerkleRoot,
    },
    /// The first transaction is not a coinbase.
    #[error("first transaction is not a coinbase")]
    FirstNotCoinbase,
    /// More than one coinbase.
    #[error("transaction {0} is a second coinbase")]
    MultipleCoinbase(usize),
    /// Two transactions with the same txid.
    #[error("duplicate transaction {0}")]
    DuplicateTx(Txid),
    /// An outpoint spent twice in the block (CVE-2018-17144).
    #[error("outpoint {0} spent twice in the block")]
    DuplicateSpend(OutPoint),
    /// A transaction broke a rule.
    #[error("transaction {index} ({txid}): {error}")]
    Tx {
        /// Position in the block.
        index: usize,
        /// Its txid.
        txid: Txid,
        /// The rule.
        error: TxError,
    },
    /// Parent unknown (only reported for headers; blocks become orphans).
    #[error("previous block {0} not found")]
    UnknownParent(BlockHash),
    /// Descends from a block known to be invalid.
    #[error("descends from invalid block {0}")]
    InvalidAncestor(BlockHash),
    /// The block itself is already known to be invalid.
    #[error("block {0} is already known to be invalid")]
    KnownInvalid(BlockHash),
    /// Wrong difficulty.
    #[error("bits {got:#010x} differ from the required {expected:#010x}")]
    WrongBits {
        /// Required.
        expected: u32,
        /// In the header.
        got: u32,
    },
    /// Not after the median time past.
    #[error("time {time} is not after the median time past {median}")]
    TimeTooOld {
        /// Header time.
        time: u32,
        /// Median of the last 11.
        median: u32,
    },
    /// Too far in the future for this node's clock.
    #[error("time {time} is more than the allowed drift ahead of now ({max})")]
    TimeTooNew {
        /// Header time.
        time: u32,
        /// Latest allowed.
        max: u64,
    },
    /// BIP54: a retarget-window boundary timestamp moved too far back.
    #[error("timewarp: time {time} below the bound {min} at a retarget boundary")]
    Timewarp {
        /// Header time.
        time: u32,
        /// Lowest allowed.
        min: u32,
    },
    /// BIP34: coinbase does not carry the block height.
    #[error("coinbase lock height {got} is not the block height {expected}")]
    BadCoinbaseHeight {
        /// Block height.
        expected: u32,
        /// In the coinbase.
        got: u32,
    },
    /// Coinbase pays more than subsidy plus fees.
    #[error("coinbase pays {paid}, more than subsidy plus fees {allowed}")]
    CoinbaseTooLarge {
        /// Paid.
        paid: Amount,
        /// Allowed.
        allowed: Amount,
    },
    /// Fees overflow.
    #[error("sum of fees overflows")]
    FeeOverflow,
}

impl BlockError {
    /// The reject reason users search for.
    pub fn reject_reason(&self) -> &'static str {
        match self {
            BlockError::TooLarge { .. } | BlockError::NoTransactions => "bad-blk-length",
            BlockError::BadBits(_)
            | BlockError::TargetAboveLimit
            | BlockError::WrongBits { .. } => "bad-diffbits",
            BlockError::HighHash(_) => "high-hash",
            BlockError::BadMerkleRoot { .. } => "bad-txnmrklroot",
            BlockError::FirstNotCoinbase => "bad-cb-missing",
            BlockError::MultipleCoinbase(_) => "bad-cb-multiple",
            BlockError::DuplicateTx(_) => "bad-txns-duplicate",
            BlockError::DuplicateSpend(_) => "bad-txns-inputs-duplicate",
            BlockError::Tx { error, .. } => error.reject_reason(),
            BlockError::UnknownParent(_) => "prev-blk-not-found",
            BlockError::InvalidAncestor(_) => "bad-prevblk",
            BlockError::KnownInvalid(_) => "duplicate-invalid",
            BlockError::TimeTooOld { .. } => "time-too-old",
            BlockError::TimeTooNew { .. } => "time-too-new",
            BlockError::Timewarp { .. } => "time-timewarp-attack",
            BlockError::BadCoinbaseHeight { .. } => "bad-cb-height",
            BlockError::CoinbaseTooLarge { .. } => "bad-cb-amount",
            BlockError::FeeOverflow => "bad-txns-accumulated-fee-outofrange",
        }
    }

    /// Whether the header's hash itself is proven invalid by this error, so that the block
    /// may be marked invalid forever. A body that does not match its header (merkle mismatch)
    /// says nothing about the header: the real body may still come. Nor does an oversized
    /// body, rejected before it is hashed and so before it is matched to the header. A time
    /// too far ahead may become valid later. An unknown parent is not a verdict at all.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            BlockError::BadMerkleRoot { .. }
                | BlockError::TooLarge { .. }
                | BlockError::TimeTooNew { .. }
                | BlockError::UnknownParent(_)
                | BlockError::HighHash(_)
                | BlockError::BadBits(_)
                | BlockError::TargetAboveLimit
        )
    }

    /// Whether a peer that sent this block must be dishonest or broken (as opposed to merely
    /// being on another chain or having another clock). Used to score peers.
    pub fn is_misbehavior(&self) -> bool {
        !matches!(
            self,
            BlockError::TimeTooNew { .. } | BlockError::UnknownParent(_)
        )
    }

    /// Whether the body, not the header, is at fault: the peer that sent it misbehaved, yet
    /// the block under this header may still be valid (a mutated body, Core's
    /// `BLOCK_MUTATED`), so its body is worth asking another peer for.
    pub fn is_body_fault(&self) -> bool {
        self.is_misbehavior() && !self.is_permanent()
    }
}

/// Context-free transaction rules (shared by blocks and the mempool).
pub fn check_transaction(tx: &Transaction, params: &ChainParams) -> Result<(), TxError> {
    if tx.version != TX_VERSION {
        return Err(TxError::Version(tx.version));
    }
    if tx.outputs.is_empty() {
        return Err(TxError::NoOutputs);
    }
    if tx.data.len() > MAX_TX_DATA {
        return Err(TxError::DataTooLong(tx.data.len()));
    }
    let mut total = Amount::ZERO;
    for (index, output) in tx.outputs.iter().enumerate() {
        if output.amount == Amount::ZERO {
            return Err(TxError::ZeroOutput(index));
        }
        if output.amount > params.max_money {
            return Err(TxError::OutputTooLarge {
                index,
                amount: output.amount,
            });
        }
        total = total
            .checked_add(output.amount)
            .ok_or(TxError::OutputTotalTooLarge)?;
        if total > params.max_money {
            return Err(TxError::OutputTotalTooLarge);
        }
    }
    if tx.inputs.len() > 1 {
        let mut seen: HashSet<OutPoint, ShortLivedHasher> =
            HashSet::with_capacity_and_hasher(tx.inputs.len(), ShortLivedHasher::default());
        for input in &tx.inputs {
            if !seen.insert(input.prevout) {
                return Err(TxError::DuplicateInput(input.prevout));
            }
        }
    }
    let size = tx.encoded_size();
    if size > params.max_block_size {
        return Err(TxError::TooLarge {
            size,
            max: params.max_block_size,
        });
    }
    Ok(())
}

/// A block that passed every context-free rule, with the hashes computed on the way.
#[derive(Debug, Clone)]
pub struct CheckedBlock {
    block: Block,
    hash: BlockHash,
    txids: Vec<Txid>,
}

impl CheckedBlock {
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }
    /// Its header hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }
    /// Txids in block order.
    pub fn txids(&self) -> &[Txid] {
        &self.txids
    }
    /// Gives the block back.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// Checks the header's proof of work against its own `bits` and the network's limit.
pub fn check_proof_of_work(
    hash: &BlockHash,
    bits: crate::pow::CompactTarget,
    params: &ChainParams,
) -> Result<Target, BlockError> {
    let target = Target::from_compact(bits).map_err(BlockError::BadBits)?;
    if target > params.pow_limit {
        return Err(BlockError::TargetAboveLimit);
    }
    if !target.is_met_by(hash) {
        return Err(BlockError::HighHash(*hash));
    }
    Ok(target)
}

/// Blocks with fewer transactions hash their ids on the calling thread: waking the pool
/// costs tens of microseconds, an id about one.
const PARALLEL_MIN_TXS: usize = 64;

/// Context-free block rules: proof of work, size, merkle root, coinbase placement,
/// duplicate transactions and duplicate spends, and every transaction's own rules.
pub fn check_block(block: Block, params: &ChainParams) -> Result<CheckedBlock, BlockError> {
    let hash = block.block_hash();
    check_hashed_block(block, hash, params)
}

/// [`check_block`] for a caller that already hashed the header: `hash` must be
/// `block.block_hash()`.
pub fn check_hashed_block(
    block: Block,
    hash: BlockHash,
    params: &ChainParams,
) -> Result<CheckedBlock, BlockError> {
    debug_assert_eq!(hash, block.block_hash());
    check_proof_of_work(&hash, block.header.bits, params)?;
    // Sized before anything is hashed, so an oversized body costs a walk of its lengths, not
    // a hash of every byte. The header has not been matched to this body yet, so the error
    // is no verdict on the header (see `BlockError::is_permanent`).
    let size = block.encoded_size();
    if size > params.max_block_size {
        return Err(BlockError::TooLarge {
            size,
            max: params.max_block_size,
        });
    }
    // A full block's ids and each transaction's own rules are most of this function's
    // work, and nothing else runs meanwhile: every core takes a share (the results are in
    // block order, and each transaction's verdict is consulted below at its place in the
    // in-order walk, so the error reported is the sequential one).
    let per_tx = |tx: &Transaction| {
        let (txid, wtxid) = tx.ids();
        (txid, wtxid, check_transaction(tx, params))
    };
    let checked: Vec<_> = if block.txs.len() >= PARALLEL_MIN_TXS {
        block.txs.par_iter().map(per_tx).collect()
    } else {
        block.txs.iter().map(per_tx).collect()
    };
    let (txids, wtxids): (Vec<Txid>, Vec<_>) = checked.iter().map(|(t, w, _)| (*t, *w)).unzip();
    let computed = merkle_root(&wtxids);
    if computed != block.header.merkle_root {
        return Err(BlockError::BadMerkleRoot {
            header: block.header.merkle_root,
            computed,
        });
    }
    // Only now, with the body proven to be the one the header commits to, may a rule it
    // breaks condemn the header: an empty body under a real header is a mutated body
    // (BadMerkleRoot above, never cached as invalid), an empty body under a header that
    // commits to no transactions is an invalid block.
    if block.txs.is_empty() {
        return Err(BlockError::NoTransactions);
    }
    if !block.txs[0].is_coinbase() {
        return Err(BlockError::FirstNotCoinbase);
    }
    let mut seen_txids: HashSet<Txid, ShortLivedHasher> =
        HashSet::with_capacity_and_hasher(txids.len(), ShortLivedHasher::default());
    let inputs = block.txs.iter().map(|tx| tx.inputs.len()).sum();
    let mut spent: HashSet<OutPoint, ShortLivedHasher> =
        HashSet::with_capacity_and_hasher(inputs, ShortLivedHasher::default());
    for (index, (tx, (txid, _, verdict))) in block.txs.iter().zip(checked).enumerate() {
        if index > 0 && tx.is_coinbase() {
            return Err(BlockError::MultipleCoinbase(index));
        }
        if !seen_txids.insert(txid) {
            return Err(BlockError::DuplicateTx(txid));
        }
        verdict.map_err(|error| BlockError::Tx { index, txid, error })?;
        for input in &tx.inputs {
            if !spent.insert(input.prevout) {
                return Err(BlockError::DuplicateSpend(input.prevout));
            }
        }
    }
    Ok(CheckedBlock { block, hash, txids })
}

/// The first block height at which an output of a coinbase mined at `coin_height` may be
/// spent: `maturity` confirmations later. The one statement of the maturity rule; the
/// mempool and wallets ask it rather than counting confirmations themselves.
pub fn coinbase_spendable_height(coin_height: u32, maturity: u32) -> u32 {
    coin_height.saturating_add(maturity)
}

/// Rules that need the coins a transaction spends (`spent[i]` for input `i`), at the height
/// it would be mined at. Returns the fee. Does not check signatures.
pub fn check_tx_inputs(
    tx: &Transaction,
    spent: &[Coin],
    height: u32,
    params: &ChainParams,
) -> Result<Amount, TxError> {
    debug_assert_eq!(spent.len(), tx.inputs.len());
    if tx.lock_height > height {
        return Err(TxError::NonFinal {
            lock_height: tx.lock_height,
            height,
        });
    }
    let mut inputs = Amount::ZERO;
    for (input, coin) in tx.inputs.iter().zip(spent) {
        if coin.is_coinbase
            && height < coinbase_spendable_height(coin.height, params.coinbase_maturity)
        {
            return Err(TxError::PrematureCoinbaseSpend {
                outpoint: input.prevout,
                coin_height: coin.height,
                confirmations: height.saturating_sub(coin.height),
                maturity: params.coinbase_maturity,
            });
        }
        inputs = inputs
            .checked_add(coin.output.amount)
            .ok_or(TxError::InputTotalOverflow)?;
        if inputs > params.max_money {
            return Err(TxError::InputTotalOverflow);
        }
    }
    let outputs = Amount::checked_sum(tx.outputs.iter().map(|o| o.amount))
        .ok_or(TxError::OutputTotalTooLarge)?;
    inputs
        .checked_sub(outputs)
        .ok_or(TxError::InputsBelowOutputs { inputs, outputs })
}

/// Checks every input's public key against the spent output and its signature, in input
/// order; the first failure is the verdict. Blocks run the same checks through
/// [`crate::sigcheck::SigChecks`], in parallel, and reach the same verdict.
pub fn verify_tx_signatures(
    tx: &Transaction,
    spent: &[Coin],
    params: &ChainParams,
) -> Result<(), TxError> {
    let mut checks = SigChecks::with_capacity(tx.inputs.len());
    checks.push_tx(0, tx, spent, params);
    checks
        .verify(None, false, Parallelism::Sequential)
        .map_err(|failure| failure.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rules_independent_of_the_receivers_chain_are_misbehavior() {
        let outpoint = OutPoint::default();
        let context_free = [
            TxError::Version(2),
            TxError::NoOutputs,
            TxError::ZeroOutput(0),
            TxError::OutputTooLarge {
                index: 0,
                amount: Amount::ZERO,
            },
            TxError::OutputTotalTooLarge,
            TxError::DuplicateInput(outpoint),
            TxError::DataTooLong(0),
            TxError::TooLarge { size: 0, max: 0 },
            TxError::UnexpectedCoinbase,
            TxError::WrongKey { index: 0 },
            TxError::BadSignature {
                index: 0,
                error: SignatureError::HighS,
            },
        ];
        for error in context_free {
            assert!(error.is_misbehavior(), "{error}");
        }
        let contextual = [
            TxError::MissingOrSpent(outpoint),
            TxError::PrematureCoinbaseSpend {
                outpoint,
                coin_height: 1,
                confirmations: 0,
                maturity: 100,
            },
            TxError::InputTotalOverflow,
            TxError::InputsBelowOutputs {
                inputs: Amount::ZERO,
                outputs: Amount::ZERO,
            },
            TxError::NonFinal {
                lock_height: 5,
                height: 1,
            },
        ];
        for error in contextual {
            assert!(!error.is_misbehavior(), "{error}");
        }
    }

    #[test]
    fn only_a_body_that_does_not_match_its_header_is_worth_asking_another_peer_for() {
        let hash = BlockHash::from_byte_array([7; 32]);
        let root = MerkleRoot::from_byte_array([1; 32]);
        let mutated = [
            BlockError::BadMerkleRoot {
                header: root,
                computed: MerkleRoot::from_byte_array([2; 32]),
            },
            BlockError::TooLarge { size: 2, max: 1 },
        ];
        for error in mutated {
            assert!(error.is_body_fault(), "{error}");
        }
        let not_the_body = [
            // The header commits to these: no other body under it can be valid.
            BlockError::NoTransactions,
            BlockError::FirstNotCoinbase,
            BlockError::Tx {
                index: 1,
                txid: Txid::from_byte_array([3; 32]),
                error: TxError::MissingOrSpent(OutPoint::default()),
            },
            BlockError::KnownInvalid(hash),
            BlockError::InvalidAncestor(hash),
            // Not the sender's fault.
            BlockError::TimeTooNew { time: 2, max: 1 },
            BlockError::UnknownParent(hash),
        ];
        for error in not_the_body {
            assert!(!error.is_body_fault(), "{error}");
        }
    }
}
