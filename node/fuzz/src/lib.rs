//! # cairn-fuzz: coverage-guided fuzz targets for Cairn's untrusted inputs
//!
//! Every byte string a peer, an RPC client or the disk can hand the node goes through one of
//! these [`targets`]: block and transaction decoding, the p2p frames (gossip payloads and the
//! sync protocol's framed requests and responses), JSON-RPC request parsing, and a decoded
//! block fed through `check_block` and `accept_block` on a fixed 3-block chain. Each target
//! is a plain `fn(&[u8])` that panics only when an invariant breaks (a decoded value that does
//! not re-encode to the same bytes, a rejected block that moved the tip, ...), so the same
//! function runs under the fuzzer and in the CI smoke replay ([`smoke`]).
//!
//! ## Why AFL++ through cargo-afl
//! The machine that builds Cairn has only stable Rust and no way to install nightly, which
//! rules out cargo-fuzz/libFuzzer (`-Z sanitizer`). Of the stable-toolchain fuzzers:
//! - **cargo-afl** (AFL++) instruments with rustc's stable `-C passes=sancov-module` and
//!   links AFL++'s runtime; `cargo install cargo-afl` builds AFL++ itself from the crate, so
//!   it needs nothing from the system beyond a C compiler. It runs in persistent mode (1000
//!   inputs per fork), minimises corpora (`cargo afl cmin`) and reports `execs_done` in
//!   `fuzzer_stats`.
//! - **honggfuzz-rs** also works on stable but needs `binutils-dev` and `libunwind-dev` from
//!   the system and has no corpus minimiser of its own; it offers nothing here that AFL++ lacks.
//!
//! So the fuzzer binaries (`src/bin/fuzz_*.rs`, feature `afl`) are built by
//! `scripts/fuzz.sh` with `cargo afl build`, and nothing in the workspace's own build or test
//! command needs cargo-afl.
//!
//! What this crate never does: touch the network or the disk outside the corpus directories
//! it is pointed at; every chain it builds is in memory.

pub mod seeds;
pub mod smoke;
pub mod targets;
