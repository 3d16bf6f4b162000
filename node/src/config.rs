//! `cairn node` settings: command-line flags over `DATADIR/cairn.toml` over defaults.

use crate::strategy::StrategyKind;
use anyhow::{Context, bail};
use cairn_core::ChainParams;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default data directory when neither `--datadir` nor `$CAIRN_DATADIR` is given.
pub const DEFAULT_DATADIR: &str = ".cairn";
/// Default RPC address: loopback with an OS-chosen port (reported in `node.json`).
pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:0";
/// Default P2P listen address: loopback only; listening publicly must be asked for.
pub const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `cairn node` (each also a key of `cairn.toml`, same name with `_`).
#[derive(Debug, Clone, Args, Default)]
pub struct NodeArgs {
    /// Data directory [default: $CAIRN_DATADIR or ./.cairn]
    #[arg(long, env = "CAIRN_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// Network definition [default: the embedded dev network genesis.json]
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// P2P listen multiaddr (repeatable) [default: /ip4/127.0.0.1/tcp/0]
    #[arg(long)]
    pub listen: Vec<String>,
    /// Peer to connect to at start and keep connected (repeatable)
    #[arg(long)]
    pub peer: Vec<String>,
    /// JSON-RPC address [default: 127.0.0.1:0]
    #[arg(long)]
    pub rpc_addr: Option<SocketAddr>,
    /// Allow --rpc-addr and --metrics beyond loopback (the cookie is still required)
    #[arg(long)]
    pub rpc_allow_remote: bool,
    /// Mine continuously (or every --block-time seconds)
    #[arg(long)]
    pub mine: bool,
    /// Address coinbases pay to [default: dev account 0]
    #[arg(long)]
    pub miner_address: Option<String>,
    /// Mining threads [default: 1]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Mine one block every SECS seconds instead of continuously (like anvil's --block-time)
    #[arg(long, value_name = "SECS")]
    pub block_time: Option<u64>,
    /// Mine at most RATE hashes per second (e.g. 250k, 1.5M; 0 hashes nothing); implies --mine
    #[arg(long, value_name = "RATE", value_parser = hashrate_arg)]
    pub hashrate: Option<u64>,
    /// Discover peers on the local network with mDNS
    #[arg(long)]
    pub mdns: bool,
    /// Log format [default: text]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Misbehave on purpose: empty-bodies, invalid-blocks, equivocate, lie-work, tx-flood,
    /// withhold-blocks
    #[arg(long, value_name = "MODE[,MODE...]")]
    pub byzantine: Option<String>,
    /// Most inbound peers from one IP address [default: 32]
    #[arg(long, hide = true)]
    pub max_inbound_per_ip: Option<u32>,
    /// Most inbound peers; beyond, the least useful one is evicted [default: 117]
    #[arg(long, hide = true)]
    pub max_inbound: Option<u32>,
    /// Most RPC connections open at once; one more is refused with HTTP 503 [default: 1024]
    #[arg(long, value_name = "N")]
    pub rpc_max_connections: Option<usize>,
    /// Most RPC requests answered at once; more are refused with HTTP 503 [default: 64]
    #[arg(long, value_name = "N")]
    pub rpc_max_in_flight: Option<usize>,
    /// Close an RPC connection idle this long (tests) [default: 120]
    #[arg(long, value_name = "SECS", hide = true)]
    pub rpc_idle_timeout: Option<u64>,
    /// Serve Prometheus metrics on GET /metrics at this address (e.g. 127.0.0.1:0)
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Mining policy: honest announces every block, selfish withholds them (Eyal–Sirer) [default: honest]
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyKind>,
    /// Rebuild the block index, UTXO set and tip from the stored block bodies, then serve
    #[arg(long)]
    pub reindex: bool,
    /// UTXO cache in MiB: coin changes wait in memory and reach the disk with their tip; 0 writes every change through [default: 64]
    #[arg(long, value_name = "MB")]
    pub dbcache: Option<u64>,
}

/// `DATADIR/cairn.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    genesis: Option<PathBuf>,
    listen: Option<Vec<String>>,
    peer: Option<Vec<String>>,
    rpc_addr: Option<SocketAddr>,
    rpc_allow_remote: Option<bool>,
    mine: Option<bool>,
    miner_address: Option<String>,
    threads: Option<usize>,
    block_time: Option<u64>,
    hashrate: Option<FileHashRate>,
    mdns: Option<bool>,
    log_format: Option<LogFormat>,
    byzantine: Option<String>,
    max_inbound_per_ip: Option<u32>,
    max_inbound: Option<u32>,
    rpc_max_connections: Option<usize>,
    rpc_max_in_flight: Option<usize>,
    rpc_idle_timeout: Option<u64>,
    metrics: Option<SocketAddr>,
    strategy: Option<StrategyKind>,
    reindex: Option<bool>,
    dbcache: Option<u64>,
}

/// `hashrate` in `cairn.toml`: `hashrate = "250k"` or `hashrate = 250000`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileHashRate {
    Number(u64),
    Text(String),
}

/// Parses `--hashrate` for clap (a bad value is a usage error, exit 2).
fn hashrate_arg(text: &str) -> Result<u64, String> {
    cairn_miner::parse_hashrate(text).map_err(|e| e.to_string())
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory.
    pub datadir: PathBuf,
    /// Network parameters.
    pub params: ChainParams,
    /// P2P listen addresses.
    pub listen: Vec<String>,
    /// Static peers.
    pub peers: Vec<String>,
    /// RPC bind address.
    pub rpc_addr: SocketAddr,
    /// What the RPC server takes on at once.
    pub rpc_limits: crate::rpc::limits::RpcLimits,
    /// Where to serve metrics (none: not served).
    pub metrics: Option<SocketAddr>,
    /// Mine from the start.
    pub mine: bool,
    /// Coinbase address (validated).
    pub miner_address: String,
    /// Mining threads.
    pub threads: usize,
    /// Interval mining.
    pub block_time: Option<u64>,
    /// Hash-rate cap in hashes per second (`None`: as fast as the threads go).
    pub hashrate: Option<u64>,
    /// mDNS discovery.
    pub mdns: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Byzantine faults (`--byzantine`); none for an honest node.
    pub faults: crate::byzantine::Faults,
    /// Inbound peer limits.
    pub limits: crate::network::PeerLimits,
    /// Mining policy.
    pub strategy: StrategyKind,
    /// Rebuild the chain store from its block bodies before serving (`--reindex`).
    pub reindex: bool,
    /// Budget of the UTXO cache in front of the chain store, in bytes (`--dbcache`).
    pub dbcache_bytes: usize,
}

/// The data directory the flags point at (`--datadir`, `$CAIRN_DATADIR`, or `./.cairn`).
pub fn datadir_of(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone()
        .or_else(|| std::env::var_os("CAIRN_DATADIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATADIR))
}

/// Loads a `genesis.json` or the embedded dev network.
pub fn load_params(genesis: Option<&Path>) -> anyhow::Result<ChainParams> {
    match genesis {
        None => Ok(ChainParams::devnet()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ChainParams::from_json(&text).with_context(|| format!("loading {}", path.display()))
        }
    }
}

impl NodeConfig {
    /// Merges flags over `cairn.toml` over defaults and validates the result.
    pub fn resolve(args: NodeArgs) -> anyhow::Result<NodeConfig> {
        let datadir = datadir_of(&args.datadir);
        let toml_path = datadir.join("cairn.toml");
        let file: FileConfig = match std::fs::read_to_string(&toml_path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("parsing {}", toml_path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", toml_path.display())),
        };
        let genesis = args.genesis.or(file.genesis);
        let params = load_params(genesis.as_deref())?;
        let miner_address = match args.miner_address.or(file.miner_address) {
            Some(addr) => {
                params
                    .parse_address(&addr)
                    .with_context(|| format!("--miner-address {addr}"))?;
                addr
            }
            None => match params.config.dev_accounts.first() {
                Some(dev0) => dev0.address.clone(),
                None => bail!("this network has no dev accounts: pass --miner-address"),
            },
        };
        let threads = args.threads.or(file.threads).unwrap_or(1);
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        if args.block_time.or(file.block_time) == Some(0) {
            bail!("--block-time must be at least 1 second");
        }
        let hashrate = match (args.hashrate, file.hashrate) {
            (Some(rate), _) => Some(rate),
            (None, Some(FileHashRate::Number(rate))) => Some(rate),
            (None, Some(FileHashRate::Text(text))) => Some(
                cairn_miner::parse_hashrate(&text)
                    .with_context(|| format!("hashrate in {}", toml_path.display()))?,
            ),
            (None, None) => None,
        };
        if hashrate.is_some_and(|rate| rate > cairn_miner::rate::MAX_HASHRATE) {
            bail!(
                "hashrate in {} is above 1e15 hashes per second",
                toml_path.display()
            );
        }
        let rpc_addr = args
            .rpc_addr
            .or(file.rpc_addr)
            .unwrap_or_else(|| DEFAULT_RPC_ADDR.parse().expect("valid default"));
        let metrics = args.metrics.or(file.metrics);
        let allow_remote = args.rpc_allow_remote || file.rpc_allow_remote.unwrap_or(false);
        check_loopback("--rpc-addr", rpc_addr, allow_remote)?;
        if let Some(addr) = metrics {
            check_loopback("--metrics", addr, allow_remote)?;
        }
        let rpc_limits = rpc_limits(
            args.rpc_max_connections.or(file.rpc_max_connections),
            args.rpc_max_in_flight.or(file.rpc_max_in_flight),
            args.rpc_idle_timeout.or(file.rpc_idle_timeout),
        )?;
        let listen = if !args.listen.is_empty() {
            args.listen
        } else {
            file.listen
                .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()])
        };
        Ok(NodeConfig {
            datadir,
            params,
            listen,
            peers: if !args.peer.is_empty() {
                args.peer
            } else {
                file.peer.unwrap_or_default()
            },
            metrics,
            rpc_addr,
            rpc_limits,
            // A hash-rate cap only means something while mining: `--hashrate` implies it.
            mine: args.mine || file.mine.unwrap_or(false) || hashrate.is_some(),
            miner_address,
            threads,
            block_time: args.block_time.or(file.block_time),
            hashrate,
            mdns: args.mdns || file.mdns.unwrap_or(false),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            faults: crate::byzantine::parse(&args.byzantine.or(file.byzantine).unwrap_or_default())
                .context("--byzantine")?,
            limits: crate::network::PeerLimits::new(
                args.max_inbound.or(file.max_inbound),
                args.max_inbound_per_ip.or(file.max_inbound_per_ip),
            ),
            strategy: args.strategy.or(file.strategy).unwrap_or_default(),
            reindex: args.reindex || file.reindex.unwrap_or(false),
            dbcache_bytes: dbcache_bytes(args.dbcache.or(file.dbcache))?,
        })
    }
}

/// `--dbcache` when none is given, in MiB. Bitcoin Core defaults to 450; a testnet's UTXO
/// set is small, and a machine runs several nodes.
pub const DEFAULT_DBCACHE_MB: u64 = 64;
/// The largest `--dbcache`, in MiB (Core's cap on 64-bit machines is far larger; a
/// testnet node never needs more than this).
pub const MAX_DBCACHE_MB: u64 = 16 * 1024;

/// `--dbcache MB` (or `dbcache` in `cairn.toml`) in bytes.
fn dbcache_bytes(mb: Option<u64>) -> anyhow::Result<usize> {
    let mb = mb.unwrap_or(DEFAULT_DBCACHE_MB);
    if mb > MAX_DBCACHE_MB {
        bail!("--dbcache {mb} is more than the largest UTXO cache, {MAX_DBCACHE_MB} MiB");
    }
    Ok(usize::try_from(mb).expect("at most MAX_DBCACHE_MB") * cairn_core::store::MIB)
}

/// Refuses a listener beyond loopback unless `--rpc-allow-remote` (or `rpc_allow_remote`
/// in `cairn.toml`) says so: an RPC port reachable from the network is one leaked cookie
/// away from an emptied wallet, and the metrics port has no credential at all.
fn check_loopback(flag: &str, addr: SocketAddr, allow_remote: bool) -> anyhow::Result<()> {
    if addr.ip().to_canonical().is_loopback() || allow_remote {
        return Ok(());
    }
    bail!(
        "{flag} {addr} is not a loopback address: refusing to listen beyond this machine \
         without --rpc-allow-remote (rpc_allow_remote = true in cairn.toml)"
    )
}

/// `--rpc-max-connections`, `--rpc-max-in-flight` and `--rpc-idle-timeout` over the
/// defaults.
fn rpc_limits(
    max_connections: Option<usize>,
    max_in_flight: Option<usize>,
    idle_secs: Option<u64>,
) -> anyhow::Result<crate::rpc::limits::RpcLimits> {
    let defaults = crate::rpc::limits::RpcLimits::default();
    let limits = crate::rpc::limits::RpcLimits {
        max_connections: max_connections.unwrap_or(defaults.max_connections),
        max_in_flight: max_in_flight.unwrap_or(defaults.max_in_flight),
        idle_timeout: idle_secs.map_or(defaults.idle_timeout, std::time::Duration::from_secs),
    };
    if limits.max_connections == 0 || limits.max_in_flight == 0 || idle_secs == Some(0) {
        bail!(
            "--rpc-max-connections, --rpc-max-in-flight and --rpc-idle-timeout must be at least 1"
        );
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cairn.toml"),
            "threads = 3\nmine = true\nrpc_addr = \"127.0.0.1:9999\"\n",
        )
        .unwrap();
        let args = NodeArgs {
            datadir: Some(dir.path().into()),
            threads: Some(2),
            ..Default::default()
        };
        let config = NodeConfig::resolve(args).unwrap();
        assert_eq!(config.threads, 2);
        assert!(config.mine);
        assert_eq!(config.rpc_addr.to_string(), "127.0.0.1:9999");
        assert_eq!(config.listen, vec![DEFAULT_LISTEN.to_owned()]);
        assert_eq!(
            config.miner_address,
            ChainParams::devnet().config.dev_accounts[0].address
        );
    }

    #[test]
    fn hashrate_comes_from_the_flag_or_the_file_and_implies_mining() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |toml: &str, flag: Option<u64>| {
            std::fs::write(dir.path().join("cairn.toml"), toml).unwrap();
            NodeConfig::resolve(NodeArgs {
                datadir: Some(dir.path().into()),
                hashrate: flag,
                ..Default::default()
            })
        };
        let config = resolve("", None).unwrap();
        assert_eq!((config.hashrate, config.mine), (None, false));
        let config = resolve("hashrate = \"1.5M\"\n", None).unwrap();
        assert_eq!((config.hashrate, config.mine), (Some(1_500_000), true));
        let config = resolve("hashrate = 2000\n", None).unwrap();
        assert_eq!(config.hashrate, Some(2000));
        let config = resolve("hashrate = \"1.5M\"\n", Some(0)).unwrap();
        assert_eq!((config.hashrate, config.mine), (Some(0), true));
        let err = format!("{:#}", resolve("hashrate = \"fast\"\n", None).unwrap_err());
        assert!(
            err.contains("cairn.toml") && err.contains("\"fast\""),
            "{err}"
        );
        assert_eq!(hashrate_arg("250k"), Ok(250_000));
        assert!(hashrate_arg("250x").unwrap_err().contains("suffixes"));
    }

    #[test]
    fn reindex_comes_from_the_flag_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |toml: &str, flag: bool| {
            std::fs::write(dir.path().join("cairn.toml"), toml).unwrap();
            NodeConfig::resolve(NodeArgs {
                datadir: Some(dir.path().into()),
                reindex: flag,
                ..Default::default()
            })
            .unwrap()
            .reindex
        };
        assert!(!resolve("", false));
        assert!(resolve("", true));
        assert!(resolve("reindex = true\n", false));
        assert!(resolve("reindex = false\n", true));
    }

    #[test]
    fn dbcache_comes_from_the_flag_over_the_file_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |toml: &str, flag: Option<u64>| {
            std::fs::write(dir.path().join("cairn.toml"), toml).unwrap();
            NodeConfig::resolve(NodeArgs {
                datadir: Some(dir.path().into()),
                dbcache: flag,
                ..Default::default()
            })
            .map(|c| c.dbcache_bytes)
        };
        let mib = cairn_core::store::MIB;
        assert_eq!(resolve("", None).unwrap(), 64 * mib);
        assert_eq!(resolve("dbcache = 8\n", None).unwrap(), 8 * mib);
        assert_eq!(resolve("dbcache = 8\n", Some(0)).unwrap(), 0);
        let err = resolve("", Some(MAX_DBCACHE_MB + 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--dbcache 16385") && err.contains("16384 MiB"),
            "{err}"
        );
    }

    #[test]
    fn listeners_beyond_loopback_need_rpc_allow_remote() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |toml: &str, args: NodeArgs| {
            std::fs::write(dir.path().join("cairn.toml"), toml).unwrap();
            NodeConfig::resolve(NodeArgs {
                datadir: Some(dir.path().into()),
                ..args
            })
        };
        let remote: SocketAddr = "0.0.0.0:8332".parse().unwrap();
        let err = format!(
            "{:#}",
            resolve(
                "",
                NodeArgs {
                    rpc_addr: Some(remote),
                    ..Default::default()
                }
            )
            .unwrap_err()
        );
        assert!(
            err.contains("--rpc-addr 0.0.0.0:8332") && err.contains("--rpc-allow-remote"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            resolve("metrics = \"0.0.0.0:9100\"\n", NodeArgs::default()).unwrap_err()
        );
        assert!(
            err.contains("--metrics 0.0.0.0:9100") && err.contains("--rpc-allow-remote"),
            "{err}"
        );
        let ipv6_loopback: SocketAddr = "[::1]:0".parse().unwrap();
        let config = resolve(
            "",
            NodeArgs {
                rpc_addr: Some(ipv6_loopback),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(config.rpc_addr, ipv6_loopback);
        let config = resolve(
            "",
            NodeArgs {
                rpc_addr: Some(remote),
                metrics: Some(remote),
                rpc_allow_remote: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((config.rpc_addr, config.metrics), (remote, Some(remote)));
        let config = resolve(
            "rpc_allow_remote = true\nrpc_addr = \"0.0.0.0:8332\"\n",
            NodeArgs::default(),
        )
        .unwrap();
        assert_eq!(config.rpc_addr, remote);
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cairn.toml"), "thread = 3\n").unwrap();
        let args = NodeArgs {
            datadir: Some(dir.path().into()),
            ..Default::default()
        };
        let err = format!("{:#}", NodeConfig::resolve(args).unwrap_err());
        assert!(err.contains("cairn.toml"), "{err}");
        let args = NodeArgs {
            datadir: Some(dir.path().join("x")),
            miner_address: Some("crt1bogus".into()),
            ..Default::default()
        };
        assert!(
            format!("{:#}", NodeConfig::resolve(args).unwrap_err()).contains("--miner-address")
        );
    }
}
