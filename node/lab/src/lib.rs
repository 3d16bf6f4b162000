//! # cairn-lab: driving Cairn nodes from outside
//!
//! `cairn testnet` ([`testnet`]), the fork view ([`view`], `cairn testnet view`) with the
//! theory it shows beside what it sees ([`theory`]) and, as they come, scenarios and experiments:
//! the code that starts `cairn node` processes and talks to them exactly as a user would,
//! over the RPC contract of `cairn-rpc` and the files it defines (`node.json`,
//! `devnet.json`). Everything the lab shows is therefore something a user could check with
//! `cairn rpc`.
//!
//! What it never does: depend on `cairn-node` or reach into a node's state, store or
//! network; it uses `cairn-core` only for chain parameters, encoding and keys, and the
//! wallet for signing.

pub mod conditions;
pub mod experiment;
pub mod genesis;
pub mod links;
pub mod partition;
pub mod peering;
pub mod scenario;
pub mod testnet;
pub mod theory;
pub mod topology;
pub mod view;
