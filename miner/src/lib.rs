//! # cairn-miner: proof-of-work search for Cairn blocks
//!
//! Given a block template and a target, find a header whose SHA-256d, read as a
//! little-endian 256-bit integer, is at most the target — as fast as the CPU allows.
//!
//! - [`Miner`] runs the search on N threads over disjoint `(extranonce, nonce)` ranges handed
//!   out by an atomic counter; when the 32-bit nonce space of one extranonce runs out, the
//!   next unit simply carries the next extranonce (see [`extranonce`] for the coinbase layout),
//!   so no worker waits for another.
//! - A [`CancelToken`] stops every worker within a fraction of a millisecond (the node cancels
//!   when the tip or the template changes); every worker is joined before a search returns.
//! - [`Kernel`]s hash many nonces at once from a midstate, picked at run time by CPU feature
//!   detection: AVX-512 (16 lanes), SHA-NI (interleaved), AVX2 (8 lanes), and the portable
//!   `sha2`-based kernel that every target has. They are the only `unsafe` code of the crate,
//!   confined to the `kernel` module, each with a safe scalar twin the tests compare it with.
//! - [`bench`] measures every kernel against a plain midstate miner measured in the same run
//!   (`cairn bench miner`).
//!
//! The miner never validates blocks beyond their proof of work: that is `cairn-core`'s job.
//!
//! Measured on a 2-core Intel Xeon (Sapphire Rapids class) VM, one thread, relative to a plain
//! midstate miner on the `sha2` crate: AVX-512 about 3.0x, SHA-NI about 1.2x (its round
//! instruction issues only every third cycle there), AVX2 about 1.1x; the order of
//! [`Kernel::ALL`] follows these figures.

mod bench;
mod cancel;
mod error;
pub mod extranonce;
mod kernel;
mod search;

pub use bench::{BenchConfig, BenchReport, KernelRate, bench};
pub use cancel::CancelToken;
pub use error::MinerError;
pub use extranonce::{EXTRANONCE_LEN, with_extranonce};
pub use kernel::Kernel;
pub use search::{Miner, MinerConfig};
