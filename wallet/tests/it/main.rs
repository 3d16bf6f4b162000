//! Integration tests of cairn-wallet: the RPC client and `cairn wallet` end to end, against
//! a fake node speaking the node's JSON-RPC over real HTTP.

mod cli;
mod fake_node;
mod rpc;
