//! `cairn rpc`: a `bitcoin-cli` for Cairn. Finds the node from `--datadir` (its `node.json`
//! and `.cookie`) or takes `--rpc-url` with `--cookie`; each PARAM is parsed as JSON when it
//! parses (numbers, booleans, arrays, objects), else passed as a string.

use crate::config::datadir_of;
use anyhow::bail;
use cairn_wallet::rpc::RpcClient;
use clap::Args;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `cairn rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// Data directory of the node [default: $CAIRN_DATADIR or ./.cairn]
    // Not `env = ...`: clap would count a set $CAIRN_DATADIR as `--datadir` and refuse an
    // explicit `--rpc-url`; the environment is only the fallback (see `datadir_of`).
    #[arg(long, conflicts_with = "rpc_url")]
    pub datadir: Option<PathBuf>,
    /// RPC URL, e.g. http://127.0.0.1:18443 (needs --cookie)
    #[arg(long, requires = "cookie")]
    pub rpc_url: Option<String>,
    /// Cookie file of the node at --rpc-url
    #[arg(long, requires = "rpc_url")]
    pub cookie: Option<PathBuf>,
    /// Method name, e.g. getblockchaininfo
    pub method: String,
    /// Parameters
    pub params: Vec<String>,
}

/// Parses one command-line parameter: JSON if it parses, else a string.
pub fn parse_param(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Runs `cairn rpc`: prints the result (strings bare, everything else pretty JSON).
pub fn run(args: RpcArgs) -> anyhow::Result<()> {
    let client = match (&args.rpc_url, &args.cookie) {
        (Some(url), Some(cookie)) => RpcClient::from_url(url, cookie)?,
        (None, None) => RpcClient::from_datadir(datadir_of(&args.datadir))?,
        _ => bail!("--rpc-url and --cookie go together"),
    };
    let params = Value::Array(args.params.iter().map(|p| parse_param(p)).collect());
    let text = match client.call(&args.method, params)? {
        Value::String(s) => s,
        Value::Null => return Ok(()),
        other => serde_json::to_string_pretty(&other)?,
    };
    // `cairn rpc ... | head` closes the pipe early: that is the reader's choice, not an error.
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_json_when_they_parse() {
        assert_eq!(parse_param("5"), Value::from(5));
        assert_eq!(parse_param("true"), Value::Bool(true));
        assert_eq!(parse_param("[1,2]"), serde_json::json!([1, 2]));
        assert_eq!(parse_param("crt1abc"), Value::String("crt1abc".into()));
        assert_eq!(parse_param("00ab"), Value::String("00ab".into()));
    }
}
