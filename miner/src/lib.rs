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
//! - A [`Throttle`] caps a search at a live-adjustable number of hashes per second, spread
//!   evenly in time (a continuously refilled token bucket, slices of a few milliseconds), so
//!   block finds stay a Poisson process and a capped worker sleeps instead of spinning.
//! - [`bench()`] measures every kernel against a plain midstate miner measured in the same run
//!   (`cairn bench miner`).
//!
//! The miner never validates blocks beyond their proof of work: that is `cairn-core`'s job.
//!
//! Measured on a 2-core Intel Xeon (Sapphire Rapids class, 2.9 GHz) VM, one thread, relative to
//! a plain midstate miner (openssl's SHA-NI SHA-256 throughput, halved): AVX-512 2.8x, SHA-NI
//! 1.3x, AVX2 1.1x, portable 0.8x; two threads scale 1.95-2x. AVX-512 sits at about 94% of
//! what two 512-bit ALU ports allow (about 2,850 vector operations per 16 nonces, rotates on one
//! port); SHA-NI is bound by `sha256rnds2`, which issues only every third cycle there. The
//! order of [`Kernel::ALL`] follows these figures.

mod bench;
mod cancel;
mod error;
pub mod extranonce;
mod kernel;
pub mod rate;
mod search;
mod throttle;

pub use bench::{BenchConfig, BenchReport, KernelRate, bench};
pub use cancel::CancelToken;
pub use error::MinerError;
pub use extranonce::{EXTRANONCE_LEN, with_extranonce};
pub use kernel::Kernel;
pub use rate::{format_hashrate, parse_hashrate};
pub use search::{Miner, MinerConfig};
pub use throttle::{BURST, IDLE_POLL, QUANTUM, Throttle};
