//! Integration tests of `cairn node`: real processes driven through JSON-RPC.

mod bench;
mod byzantine;
mod corpus;
mod corruption;
mod experiment;
mod garbage;
mod harness;
mod hashrate;
mod header_spam;
mod links;
mod load;
mod node;
mod observe;
mod p2p;
mod scenario;
mod secrets;
mod security;
mod soak;
mod sync_crash;
mod sync_peers;
mod test_peer;
mod testnet;
mod torture;
mod utxo_scan;
mod view;
mod wallet;
