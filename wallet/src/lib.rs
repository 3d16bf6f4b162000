//! # cairn-wallet: keys, coin selection, signing and deliberate double spends
//!
//! The wallet of Cairn. It holds k256 keys in a file encrypted at rest ([`keystore`]),
//! learns about its coins from a node over JSON-RPC only (the contract crate `cairn-rpc`, re-exported as [`rpc`]; [`coins`]), selects
//! coins ([`coin_selection`], pure), builds and signs payments and pairs of conflicting
//! spends ([`wallet::Wallet`]) and exposes all of it as `cairn wallet …` ([`cli`]).
//!
//! What it must never do: spend the same coin twice *by accident* (coins its own
//! unconfirmed transactions spend are excluded), write a half-finished wallet file (every
//! write is atomic), or lose a change key (it is saved before the transaction that pays
//! to it is broadcast). Deliberate double spends are [`wallet::Wallet::build_conflicting_pair`].
//!
//! The consensus rules (what a valid signature is, the encoding, addresses) are
//! `cairn-core`'s; this crate only uses them.

pub mod cli;
pub mod coin_selection;
pub mod coins;
pub mod keystore;
pub mod wallet;

pub use cairn_rpc as rpc;
pub use cairn_rpc::{RpcClient, RpcError};
pub use coin_selection::{Candidate, FeePolicy, Selection, SelectionError, SizeModel};
pub use coins::{Balance, CoinSnapshot, WalletCoin};
pub use keystore::{KdfParams, Keystore, KeystoreError, WalletFile};
pub use wallet::{
    BuiltTx, ConflictRequest, ConflictingPair, KeyKind, PaymentRequest, Wallet, WalletError,
};
