//! Integration tests of `cairn node`: real processes driven through JSON-RPC.

mod harness;
mod hashrate;
mod node;
mod p2p;
mod testnet;
mod utxo_scan;
mod wallet;
