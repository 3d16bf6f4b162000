//! # cairn-core: the consensus rules of Cairn
//!
//! Blocks, UTXO transactions, SHA-256d proof of work, merkle roots, difficulty, validation
//! and the block tree with most-work fork choice. This crate is pure logic: **no I/O, no
//! clock, no randomness**; threads only as computation (block signatures verify on a
//! rayon pool, [`sigcheck`]). Time comes in as a parameter; storage is reached
//! through the narrow traits of [`store`]; results say what changed
//! ([`chain::ImportReport`], [`chain::TipChanged`]) and the node performs the effects.
//!
//! Where to look: the fork choice is [`chain::fork_choice`]; reorgs are
//! [`chain::ChainState`]; every consensus rule is in [`validation`] or [`difficulty`];
//! every constant comes from [`params::ChainParams`].

pub mod address;
pub mod amount;
pub mod block;
pub mod block_index;
pub mod chain;
pub mod difficulty;
pub mod encoding;
pub mod hash;
pub mod keys;
pub mod merkle;
pub mod params;
pub mod pow;
pub mod sigcache;
pub mod sigcheck;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tx;
pub mod utxo;
pub mod validation;

pub use amount::Amount;
pub use block::{Block, BlockHeader};
pub use chain::{ChainState, ImportOutcome, ImportReport, TipChanged};
pub use hash::{BlockHash, Hash256, MerkleRoot, Txid, Wtxid};
pub use keys::{PubkeyHash, SecretKey};
pub use params::ChainParams;
pub use pow::{CompactTarget, Target, Work};
pub use store::MemoryStore;
pub use tx::{OutPoint, Transaction, TxIn, TxOut};
pub use utxo::Coin;
pub use validation::{BlockError, TxError};
