//! Integration tests of `cairn node`: real processes driven through JSON-RPC.

mod bench;
mod byzantine;
mod experiment;
mod harness;
mod hashrate;
mod links;
mod node;
mod observe;
mod p2p;
mod scenario;
mod sync_crash;
mod sync_peers;
mod testnet;
mod utxo_scan;
mod view;
mod wallet;
