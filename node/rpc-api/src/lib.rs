//! # cairn-rpc: the contract between a Cairn node and everything that talks to it
//!
//! One home for what `../shared/INTERFACE.md` fixes on the wire and on disk, shared by the
//! node (which answers), the wallet and the lab (which ask), so the two sides cannot drift:
//! - [`codes`]: the JSON-RPC error codes (JSON-RPC 2.0's and Bitcoin Core's numbering);
//! - [`auth`]: the cookie, `DATADIR/.cookie` = `__cookie__:HEX`;
//! - [`files`]: `DATADIR/node.json` and a testnet's `DIR/devnet.json`;
//! - [`types`]: the result shapes of the methods other crates read back;
//! - [`shaping`]: a link's shaping settings and their bounds (`setlinkshaping`, `devnet.json`);
//! - [`client`]: a small blocking JSON-RPC client.
//!
//! What it never holds: consensus types or rules (those are `cairn-core`'s; this crate speaks
//! hex strings and integers exactly as they appear in JSON), the server (`cairn-node`), or
//! anything async.

pub mod auth;
pub mod client;
pub mod codes;
pub mod files;
pub mod shaping;
pub mod types;

pub use auth::{COOKIE_USER, Cookie};
pub use client::{DEFAULT_TIMEOUT, RpcClient, RpcError};
pub use files::{DevKey, Devnet, DevnetNode, Eclipse, FileError, NodeInfo};
