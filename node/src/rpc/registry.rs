//! Every JSON-RPC method, declared once: name, parameter synopsis, help line and handler.
//! Dispatch, `help` and the README's method table all come from [`METHODS`] (STYLE §14).
//!
//! A handler is an `async fn(Arc<RpcContext>, P) -> Result<Value, RpcError>` where `P` is
//! its params struct; the `method!` macro wraps it so the parameters are parsed by `P`'s
//! [`FromArgs`](super::params::FromArgs) before the handler runs.

use super::params::Args;
use super::{RpcContext, RpcError, chain, codes, control, mempool, mining, network};
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

/// Runs one method on already-split positional parameters.
pub type Handler = fn(Arc<RpcContext>, Args) -> BoxFuture<'static, Result<Value, RpcError>>;

/// One method of the table.
pub struct Method {
    /// Its name.
    pub name: &'static str,
    /// Its parameters, e.g. `blockhash [verbosity]` (empty when it takes none).
    pub synopsis: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
    /// Parses the parameters and runs it.
    pub run: Handler,
    /// Only parses the parameters (what `run` does first): the fuzz target's entry point.
    pub parse: fn(&Args) -> Result<(), RpcError>,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("synopsis", &self.synopsis)
            .finish_non_exhaustive()
    }
}

/// Declares a table entry whose handler takes its params struct by value.
macro_rules! method {
    ($name:literal, $synopsis:literal, $help:literal, $handler:path) => {
        Method {
            name: $name,
            synopsis: $synopsis,
            help: $help,
            run: |ctx, args| {
                Box::pin(async move {
                    let params = super::params::FromArgs::from_args(&args)?;
                    $handler(ctx, params).await
                })
            },
            parse: |args| parse_only($handler, args),
        }
    };
}

/// Parses `args` as `handler`'s params struct without running it.
fn parse_only<P, F, Fut>(_handler: F, args: &Args) -> Result<(), RpcError>
where
    P: super::params::FromArgs,
    F: Fn(Arc<RpcContext>, P) -> Fut,
{
    P::from_args(args).map(drop)
}

/// The table, in the README's order.
pub static METHODS: &[Method] = &[
    method!(
        "getblockchaininfo",
        "",
        "Summary of the active chain and this network's parameters.",
        chain::getblockchaininfo
    ),
    method!(
        "getblockcount",
        "",
        "Height of the active tip.",
        chain::getblockcount
    ),
    method!(
        "getbestblockhash",
        "",
        "Hash of the active tip.",
        chain::getbestblockhash
    ),
    method!(
        "getblockhash",
        "height",
        "Hash of the block at a height of the active chain.",
        chain::getblockhash
    ),
    method!(
        "getblock",
        "blockhash [verbosity 0|1|2]",
        "A block as hex (0), an object with txids (1) or with decoded transactions (2).",
        chain::getblock
    ),
    method!(
        "getchaintips",
        "",
        "Every leaf of the block tree with its branch length and status.",
        chain::getchaintips
    ),
    method!(
        "getblocktree",
        "[from_height]",
        "Every known block at or above a height (default: tip - 100) with parent, status and first-seen time.",
        chain::getblocktree
    ),
    method!(
        "getrawmempool",
        "[verbose]",
        "Txids in the mempool, or an object of their fee, size, feerate, time and depends.",
        mempool::getrawmempool
    ),
    method!(
        "getmempoolinfo",
        "",
        "Number of transactions, their bytes and the minimum relay fee rate.",
        mempool::getmempoolinfo
    ),
    method!(
        "sendrawtransaction",
        "hexstring",
        "Submits a raw transaction to the mempool and relays it; returns its txid.",
        mempool::sendrawtransaction
    ),
    method!(
        "testmempoolaccept",
        "hexstring|[hexstring,...]",
        "Whether the mempool would accept transactions, without adding them.",
        mempool::testmempoolaccept
    ),
    method!(
        "getrawtransaction",
        "txid [verbose]",
        "A mempool or active-chain transaction as hex or as an object.",
        chain::getrawtransaction
    ),
    method!(
        "getaddressutxos",
        "address",
        "The unspent outputs paying an address.",
        chain::getaddressutxos
    ),
    method!(
        "getaddressmempool",
        "address",
        "What mempool transactions spend from and pay to an address.",
        mempool::getaddressmempool
    ),
    method!(
        "getbalance",
        "address [minconf]",
        "Sum of an address's unspent outputs with at least minconf confirmations (default 1).",
        chain::getbalance
    ),
    method!(
        "gettxoutsetinfo",
        "",
        "Count, total and hash of the UTXO set, with the tip it belongs to.",
        chain::gettxoutsetinfo
    ),
    method!(
        "submitblock",
        "hexdata",
        "Submits a raw block; null when accepted, else its reject reason.",
        chain::submitblock
    ),
    method!(
        "generate",
        "nblocks [address]",
        "Mines blocks now on the local tip; returns their hashes.",
        mining::generate
    ),
    method!(
        "setmining",
        "mine [threads]",
        "Turns continuous (or --block-time interval) mining on or off.",
        mining::setmining
    ),
    method!(
        "sethashrate",
        "rate",
        "Caps mining at rate hashes/s (250000, \"250k\", \"1.5M\"; 0 hashes nothing, null uncaps) and turns it on.",
        mining::sethashrate
    ),
    method!(
        "getmininginfo",
        "",
        "Tip, difficulty, network and local hash rates, and the miner's settings.",
        mining::getmininginfo
    ),
    method!(
        "invalidateblock",
        "blockhash",
        "Marks a block invalid and moves off it.",
        chain::invalidateblock
    ),
    method!(
        "reconsiderblock",
        "blockhash",
        "Undoes invalidateblock on a block and its descendants.",
        chain::reconsiderblock
    ),
    method!(
        "getpeerinfo",
        "",
        "The connected peers.",
        network::getpeerinfo
    ),
    method!(
        "addnode",
        "multiaddr [add|remove|onetry]",
        "Adds, removes or tries once a peer to keep connected.",
        network::addnode
    ),
    method!(
        "disconnectnode",
        "peer_id",
        "Closes the connections to a peer.",
        network::disconnectnode
    ),
    method!(
        "setban",
        "peer_id add|remove [bantime] [absolute]",
        "Bans a peer for bantime seconds (default 24 h) or until a unix time, or lifts a ban.",
        network::setban
    ),
    method!(
        "listbanned",
        "",
        "The banned peers, why and until when.",
        network::listbanned
    ),
    method!(
        "setnetworkactive",
        "state",
        "Turns all p2p networking on or off; returns the new state.",
        network::setnetworkactive
    ),
    method!(
        "setlinkshaping",
        "peer_id [{latency_ms, jitter_ms, loss_pct, bandwidth_kbit}]",
        "Shapes the link with a peer: delay, ± jitter and a kbit/s cap on what this node sends it, the % of its blocks and transactions lost on arrival; no settings remove it.",
        network::setlinkshaping
    ),
    method!(
        "getlinkshaping",
        "[peer_id]",
        "The shaped links of this node (setlinkshaping).",
        network::getlinkshaping
    ),
    method!("stop", "", "Stops the node cleanly.", control::stop),
    method!(
        "help",
        "[method]",
        "The method names, or one method's parameters and help line.",
        control::help
    ),
];

/// The entry of `name`.
pub fn lookup(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// The entry of `method`, or the -32601 answer.
fn found(method: &str) -> Result<&'static Method, RpcError> {
    lookup(method).ok_or_else(|| {
        RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )
    })
}

/// Runs one method.
pub async fn call(
    ctx: &Arc<RpcContext>,
    method: &str,
    list: Vec<Value>,
) -> Result<Value, RpcError> {
    let entry = found(method)?;
    let args = Args {
        method: entry.name,
        list,
    };
    (entry.run)(ctx.clone(), args).await
}

/// What [`call`] decides before any handler runs: whether the method exists and its
/// parameters parse. Pure (no node needed), for the fuzz target.
pub fn parse_call(method: &str, list: Vec<Value>) -> Result<(), RpcError> {
    let entry = found(method)?;
    (entry.parse)(&Args {
        method: entry.name,
        list,
    })
}

/// Every method name, sorted (what `help` answers).
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = METHODS.iter().map(|m| m.name).collect();
    names.sort_unstable();
    names
}

/// `name synopsis`: how to call a method.
pub fn usage(m: &Method) -> String {
    if m.synopsis.is_empty() {
        m.name.to_owned()
    } else {
        format!("{} {}", m.name, m.synopsis)
    }
}

/// The table as markdown (`| method | params | help |`), for the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| method | params | help |\n|---|---|---|\n");
    for m in METHODS {
        let params = if m.synopsis.is_empty() {
            "–".to_owned()
        } else {
            m.synopsis.replace('|', "\\|")
        };
        out.push_str(&format!("| `{}` | {params} | {} |\n", m.name, m.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The methods of `../shared/INTERFACE.md`.
    const INTERFACE: &[&str] = &[
        "getblockchaininfo",
        "getblockcount",
        "getbestblockhash",
        "getblockhash",
        "getblock",
        "getchaintips",
        "getrawmempool",
        "getmempoolinfo",
        "sendrawtransaction",
        "testmempoolaccept",
        "getrawtransaction",
        "getaddressutxos",
        "getbalance",
        "getpeerinfo",
        "addnode",
        "disconnectnode",
        "setban",
        "listbanned",
        "setnetworkactive",
        "generate",
        "setmining",
        "getmininginfo",
        "invalidateblock",
        "reconsiderblock",
        "gettxoutsetinfo",
        "stop",
    ];

    #[test]
    fn every_interface_method_is_registered_exactly_once() {
        for name in INTERFACE {
            let count = METHODS.iter().filter(|m| m.name == *name).count();
            assert_eq!(count, 1, "{name} is registered {count} times");
        }
        let unique: HashSet<&str> = METHODS.iter().map(|m| m.name).collect();
        assert_eq!(unique.len(), METHODS.len(), "a method is registered twice");
    }

    #[test]
    fn help_lists_every_method_and_every_method_has_help() {
        let names = names();
        assert_eq!(names.len(), METHODS.len());
        for m in METHODS {
            assert!(names.contains(&m.name));
            assert!(!m.help.is_empty() && !m.help.contains('\n'), "{}", m.name);
        }
        for name in INTERFACE {
            assert!(names.contains(name), "help does not list {name}");
        }
    }

    #[test]
    fn readme_documents_every_registered_method() {
        let readme = include_str!("../../../README.md");
        let table = markdown_table();
        for m in METHODS {
            assert!(
                readme.contains(&format!("`{}`", m.name)),
                "README.md's RPC table lacks `{}`; its row would be:\n{}",
                m.name,
                table
                    .lines()
                    .find(|l| l.starts_with(&format!("| `{}` ", m.name)))
                    .unwrap_or_default()
            );
        }
        assert_eq!(table.lines().count(), METHODS.len() + 2);
    }
}
