//! # cairn-lab: driving Cairn nodes from outside
//!
//! `cairn testnet` ([`testnet`]) and, as they come, the fork view, scenarios and experiments:
//! the code that starts `cairn node` processes and talks to them exactly as a user would,
//! over the RPC contract of `cairn-rpc` and the files it defines (`node.json`,
//! `devnet.json`). Everything the lab shows is therefore something a user could check with
//! `cairn rpc`.
//!
//! What it never does: depend on `cairn-node` or reach into a node's state, store or
//! network; it uses `cairn-core` only for chain parameters, encoding and keys, and the
//! wallet for signing.

pub mod conditions;
pub mod genesis;
pub mod links;
pub mod partition;
pub mod testnet;
pub mod topology;
