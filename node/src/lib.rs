//! # cairn-node: the Cairn full node
//!
//! Storage on rocksdb, the mempool, the JSON-RPC server, mining integration and (later)
//! the libp2p network, around the pure consensus rules of `cairn-core`.

pub mod mempool;
pub mod store;
