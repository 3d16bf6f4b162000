//! # cairn-core: the consensus rules of Cairn
//!
//! Blocks, UTXO transactions, SHA-256d proof of work, merkle roots, difficulty, validation
//! and the block tree with most-work fork choice. This crate is pure logic: **no I/O, no
//! clock, no randomness, no threads**. Time comes in as a parameter; storage is reached
//! through the narrow traits of [`store`]; results say what changed
//! ([`chain::ImportOutcome`]) and the node performs the effects.

pub mod address;
pub mod amount;
pub mod block;
pub mod encoding;
pub mod hash;
pub mod keys;
pub mod merkle;
pub mod params;
pub mod pow;
pub mod tx;

pub use amount::Amount;
pub use block::{Block, BlockHeader};
pub use hash::{BlockHash, Hash256, MerkleRoot, Txid, Wtxid};
pub use keys::{PubkeyHash, SecretKey};
pub use params::ChainParams;
pub use pow::{CompactTarget, Target, Work};
pub use tx::{OutPoint, Transaction, TxIn, TxOut};
