//! Integration tests of `cairn node`: real processes driven through JSON-RPC.

mod byzantine;
mod experiment;
mod garbage;
mod harness;
mod hashrate;
mod links;
mod load;
mod node;
mod observe;
mod p2p;
mod scenario;
mod secrets;
mod security;
mod soak;
mod testnet;
mod utxo_scan;
mod view;
mod wallet;
