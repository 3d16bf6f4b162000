//! The fuzz targets, declared once (STYLE §14): the fuzzer binaries, the seed generator and
//! the smoke tests all find them in [`TARGETS`].
//!
//! A target takes any byte string and panics only when one of its invariants breaks; an
//! input the node would refuse is not a failure, a panic or a wrong answer on it is.

pub mod accept;
pub mod decode;
pub mod p2p;
pub mod rpc;

pub use accept::block_accept;
pub use decode::{block_decode, tx_decode};
pub use p2p::p2p_frame;
pub use rpc::rpc_request;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the corpus directory `node/fuzz/corpus/<name>` and the binary `fuzz_<name>`.
    pub name: &'static str,
    /// What it feeds the bytes to and what it asserts.
    pub about: &'static str,
    /// The target itself.
    pub run: fn(&[u8]),
}

/// Every target.
pub static TARGETS: &[Target] = &[
    Target {
        name: "block_decode",
        about: "Block decoding; a decoded block re-encodes byte for byte and check_block does not panic",
        run: block_decode,
    },
    Target {
        name: "tx_decode",
        about: "Transaction decoding; a decoded tx re-encodes byte for byte and check_transaction does not panic",
        run: tx_decode,
    },
    Target {
        name: "p2p_frame",
        about: "Gossip payloads and framed sync requests/responses (first byte picks which); decoded frames re-frame byte for byte",
        run: p2p_frame,
    },
    Target {
        name: "rpc_request",
        about: "JSON-RPC body, envelope and every method's parameter parsing, as the server runs them",
        run: rpc_request,
    },
    Target {
        name: "block_accept",
        about: "A decoded block (as sent, and with its header repaired to commit to its body) through check_block and accept_block on a fixed 3-block chain",
        run: block_accept,
    },
];

/// Builds what the targets share (the fixed chain, the parameters) before the fuzzer's
/// first input, so AFL++ does not count that work against the first execution.
pub fn warm_up() {
    let _ = accept::fixture();
}

/// The target called `name`.
pub fn lookup(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
