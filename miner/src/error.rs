//! What can go wrong when configuring or running the miner.

/// An error from the miner: a bad configuration or template, never a hashing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinerError {
    /// `--kernel NAME` names no kernel.
    #[error("unknown miner kernel {0:?} (known kernels: sha-ni, avx512, avx2, portable)")]
    UnknownKernel(String),
    /// The kernel exists but this CPU lacks the instructions it needs.
    #[error("miner kernel {0} is not supported by this CPU")]
    KernelUnavailable(&'static str),
    /// A miner needs at least one worker thread.
    #[error("the miner needs at least one thread")]
    NoThreads,
    /// A search was given no nonces to sweep.
    #[error("the nonce range to search is empty")]
    EmptyNonceRange,
    /// The template has no transactions, so no coinbase to carry the extranonce.
    #[error("block template has no transactions: the coinbase must come first")]
    MissingCoinbase,
    /// The template's first transaction spends inputs, so it is not a coinbase.
    #[error("the template's first transaction has inputs: it is not a coinbase")]
    FirstTxNotCoinbase,
    /// The coinbase data leaves no room for the extranonce.
    #[error(
        "coinbase data is {len} bytes; with the {extranonce}-byte extranonce it must fit in {max}"
    )]
    CoinbaseDataTooLong {
        /// Length of the template's coinbase data.
        len: usize,
        /// Bytes the extranonce takes.
        extranonce: usize,
        /// The most data a transaction may carry.
        max: usize,
    },
    /// A benchmark was asked to run for no time at all.
    #[error("benchmark duration must be positive")]
    ZeroDuration,
    /// A hash rate (`--hashrate`, `sethashrate`) that is not a number of hashes per second.
    #[error("bad hash rate {input:?}: {reason} (write hashes per second, e.g. 250k, 1.5M or 0)")]
    BadHashRate {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A worker thread panicked (a bug in the miner).
    #[error("a miner worker thread panicked")]
    WorkerPanicked,
}
