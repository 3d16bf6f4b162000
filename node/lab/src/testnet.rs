//! `cairn testnet`: a local multi-node network in one directory.
//!
//! `up` starts N real `cairn node` processes in the background, each with `DIR/nodeK/` as
//! datadir, RPC and P2P on 127.0.0.1 (OS-chosen ports unless `--port-base`), connected as
//! `--topology` says (a full mesh by default, see [`crate::topology`]); it waits until every
//! node has exactly its peers, imports dev key K into node K's wallet and writes
//! `DIR/devnet.json`. `--hashrate` caps the nodes' mining and `--target-interval` makes a
//! genesis for the total ([`crate::conditions`]). `partition`, `eclipse` and `heal` live in
//! [`crate::partition`]; `down` stops every node of DIR cleanly.
//!
//! Decisions (documented in the README): `--mine` makes every node mine continuously with
//! one thread (forks then happen naturally); `--block-time S` makes node0 alone mine one
//! block every S seconds (predictable, like anvil). Running `up` on a DIR whose nodes were
//! stopped restarts them on their existing chains.

use crate::conditions::Conditions;
use crate::topology::neighbours;
use anyhow::{Context, bail};
use cairn_core::ChainParams;
use cairn_miner::format_hashrate;
use cairn_rpc::{DevKey, Devnet, DevnetNode, NodeInfo, RpcClient};
use cairn_wallet::cli::load_params;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Arguments of `cairn testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Directory of the testnet
    #[arg(long, global = true, default_value = "devnet")]
    pub dir: PathBuf,
    /// What to do
    #[command(subcommand)]
    pub command: TestnetCommand,
}

/// `cairn testnet` subcommands.
#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Start N nodes in a full mesh
    Up {
        /// Number of nodes
        #[arg(short = 'n', long = "nodes", default_value_t = 3)]
        n: usize,
        /// Every node mines continuously (one thread each)
        #[arg(long)]
        mine: bool,
        /// node0 mines one block every SECS seconds
        #[arg(long, value_name = "SECS")]
        block_time: Option<u64>,
        /// Network definition [default: the embedded dev network]
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Fixed ports: node K gets RPC port BASE+2K and P2P port BASE+2K+1 [default: OS-chosen]
        #[arg(long, value_name = "BASE")]
        port_base: Option<u16>,
        /// Shape every link with this added one-way delay (see `link`)
        #[arg(long, value_name = "MS")]
        latency: Option<f64>,
        /// Hash power and topology
        #[command(flatten)]
        conditions: Conditions,
        /// Run node NAME as a Byzantine node (repeatable; modes as for `cairn node --byzantine`)
        #[arg(long, value_name = "NAME=MODE[,MODE...]")]
        byzantine: Vec<String>,
    },
    /// Show every node's height, tip, peers, mempool and mining state
    Status,
    /// Split the network: `partition node0,node1 node2`, or cut one link: `--one-way A B`
    Partition {
        /// Close the direct link A–B from B's side only (B refuses A; see the README)
        #[arg(long)]
        one_way: bool,
        /// Groups of comma-separated node names, every node in exactly one group (with
        /// --one-way: the two nodes A B)
        #[arg(required = true, num_args = 2..)]
        groups: Vec<String>,
    },
    /// Replace every peer of NAME by one node
    Eclipse {
        /// The node to eclipse
        name: String,
        /// Its only peer [default: the next node]
        #[arg(long, value_name = "NODE")]
        by: Option<String>,
    },
    /// Change a node's hash-rate cap live (0 stops its hashing)
    Hashrate {
        /// The node
        name: String,
        /// Hashes per second (250k, 1.5M, 0)
        rate: String,
    },
    /// Undo partitions, one-way cuts and eclipses and restore the topology
    Heal,
    /// Shape the link between two nodes (both directions unless --one-way), replacing its
    /// previous shaping: delay, jitter, loss of blocks and transactions, a bandwidth cap
    Link(crate::links::LinkArgs),
    /// Stop every node of the testnet
    Down,
    /// Watch the merged block tree live in the browser, or print it with --text
    View(crate::view::ViewArgs),
}

/// `DIR/prometheus.yml`: a Prometheus scrape config for every node's metrics, labelled
/// with the node's name (`prometheus --config.file DIR/prometheus.yml`).
pub fn write_scrape_config(dir: &Path, devnet: &Devnet) -> anyhow::Result<()> {
    let mut yaml = format!(
        "# Prometheus scrape config for the testnet in {}, written by `cairn testnet up`.\n\
         scrape_configs:\n  - job_name: cairn\n    scrape_interval: 1s\n    static_configs:\n",
        dir.display()
    );
    for node in &devnet.nodes {
        let Some(url) = &node.metrics_url else {
            continue;
        };
        let target = url
            .trim_start_matches("http://")
            .trim_end_matches("/metrics");
        yaml.push_str(&format!(
            "      - targets: [\"{target}\"]\n        labels: {{node: \"{}\"}}\n",
            node.name
        ));
    }
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))
}

/// The node of `devnet` called `name`, or an error listing the names there are.
pub fn node_named<'a>(devnet: &'a Devnet, name: &str) -> anyhow::Result<&'a DevnetNode> {
    devnet.node(name).with_context(|| {
        format!(
            "no node named {name} (nodes: {})",
            devnet.names().join(", ")
        )
    })
}

/// An RPC client for a testnet node.
pub fn client(node: &DevnetNode) -> anyhow::Result<RpcClient> {
    Ok(
        RpcClient::from_url(&node.rpc_url, &node.cookie_file)?
            .with_timeout(Duration::from_secs(30)),
    )
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
}

/// Runs `cairn testnet`.
pub fn run(args: TestnetArgs) -> anyhow::Result<()> {
    let dir = args.dir;
    match args.command {
        TestnetCommand::Up {
            n,
            mine,
            block_time,
            genesis,
            port_base,
            latency,
            conditions,
            byzantine,
        } => {
            let links = crate::links::previous(&dir);
            let byzantine = byzantine_nodes(&byzantine, n)?;
            up(
                &dir,
                n,
                mine,
                block_time,
                genesis,
                port_base,
                &conditions,
                &byzantine,
            )?;
            crate::links::after_up(&dir, links, latency)
        }
        TestnetCommand::Status => status(&dir),
        TestnetCommand::Partition {
            one_way: true,
            groups,
        } => crate::partition::one_way(&dir, &groups),
        TestnetCommand::Partition { groups, .. } => crate::partition::partition(&dir, &groups),
        TestnetCommand::Eclipse { name, by } => {
            crate::partition::eclipse(&dir, &name, by.as_deref())
        }
        TestnetCommand::Hashrate { name, rate } => {
            crate::conditions::set_hashrate(&dir, &name, &rate)
        }
        TestnetCommand::Heal => crate::partition::heal(&dir),
        TestnetCommand::Link(args) => crate::links::link(&dir, &args),
        TestnetCommand::Down => down(&dir),
        TestnetCommand::View(args) => crate::view::run(&dir, args),
    }
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(message);
    bar
}

fn check_port_free(port: u16) -> anyhow::Result<()> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("port {port} on 127.0.0.1 is in use"))
}

/// Parses `--byzantine NAME=MODE[,MODE...]` flags into node name → modes (the node checks
/// the modes; here only that the name is one of the `n` nodes and given once).
pub fn byzantine_nodes(flags: &[String], n: usize) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for flag in flags {
        let Some((name, modes)) = flag.split_once('=') else {
            bail!("--byzantine {flag}: expected NAME=MODE[,MODE...], e.g. node2=lie-work");
        };
        if !(0..n).any(|k| format!("node{k}") == name) {
            bail!(
                "--byzantine {flag}: no node named {name} (nodes: node0 … node{})",
                n.saturating_sub(1)
            );
        }
        if modes.trim().is_empty() {
            bail!("--byzantine {flag}: no mode given");
        }
        if out.insert(name.to_owned(), modes.to_owned()).is_some() {
            bail!("--byzantine: {name} is named twice (list its modes once, comma-separated)");
        }
    }
    Ok(out)
}

/// Starts the testnet; returns its description.
// The flags of `testnet up`, one argument each: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn up(
    dir: &Path,
    n: usize,
    mine: bool,
    block_time: Option<u64>,
    genesis: Option<PathBuf>,
    port_base: Option<u16>,
    conditions: &Conditions,
    byzantine: &HashMap<String, String>,
) -> anyhow::Result<Devnet> {
    if n == 0 || n > 32 {
        bail!("-n must be between 1 and 32");
    }
    let names: Vec<String> = (0..n).map(|k| format!("node{k}")).collect();
    let resolved = conditions.resolve(&names)?;
    check_dir_is_free(dir)?;
    let genesis = genesis
        .map(|g| std::fs::canonicalize(&g).with_context(|| format!("genesis file {}", g.display())))
        .transpose()?;
    let mut params: ChainParams = load_params(genesis.as_deref())?;
    if let Some(base) = port_base {
        for k in 0..n as u16 {
            check_port_free(base + 2 * k)?;
            check_port_free(base + 2 * k + 1)?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let genesis = match conditions.interval_genesis(&dir, &params, &resolved.rates)? {
        Some(path) => {
            params = load_params(Some(&path))?;
            Some(path)
        }
        None => genesis,
    };
    let exe = std::env::current_exe().context("finding the cairn binary")?;

    let mut nodes: Vec<DevnetNode> = Vec::with_capacity(n);
    for (k, name) in names.iter().enumerate() {
        let peers = neighbours(&resolved.links, k);
        let launch = Launch {
            exe: &exe,
            datadir: dir.join(name),
            ports: port_base.map(|base| (base + 2 * k as u16, base + 2 * k as u16 + 1)),
            genesis: genesis.as_deref(),
            mine: mine.then_some(None).or_else(|| {
                // `--block-time S` makes node0 alone mine, one block every S seconds.
                block_time.filter(|_| k == 0).map(Some)
            }),
            hashrate: resolved.rates[k],
            byzantine: byzantine.get(name).map(String::as_str),
            peers: peers
                .iter()
                .filter_map(|&j| nodes.get(j))
                .map(|p| p.p2p.clone())
                .collect(),
        };
        let mut node = start_node(name, &launch)?;
        node.peers = Some(peers.iter().map(|&j| names[j].clone()).collect());
        nodes.push(node);
    }

    let devnet = Devnet {
        dev_keys: params
            .config
            .dev_accounts
            .iter()
            .map(|a| DevKey {
                name: a.name.clone(),
                address: a.address.clone(),
                secret_key_hex: a.secret_key_hex.clone(),
            })
            .collect(),
        nodes,
        genesis,
        partition: Vec::new(),
        links: Vec::new(),
        mining: if mine || resolved.rates.iter().any(Option::is_some) {
            "continuous".into()
        } else if let Some(secs) = block_time {
            format!("interval:{secs}")
        } else {
            "off".into()
        },
        topology: Some(resolved.topology.to_string()),
        seed: resolved.seed,
        ..Default::default()
    };
    devnet.write(&dir)?;
    write_scrape_config(&dir, &devnet)?;
    let bar = spinner(format!("connecting {n} nodes as {}", resolved.topology));
    crate::peering::apply(&devnet)?;
    bar.finish_with_message(format!(
        "{}: {} links between {n} nodes",
        resolved.topology,
        resolved.links.len()
    ));
    import_dev_keys(&devnet, &params)?;
    println!(
        "testnet up in {}: {} nodes, devnet.json written",
        dir.display(),
        devnet.nodes.len()
    );
    Ok(devnet)
}

/// Refuses a DIR whose testnet still runs, and a non-empty DIR that is no testnet.
fn check_dir_is_free(dir: &Path) -> anyhow::Result<()> {
    if dir.join("devnet.json").exists() {
        if let Ok(existing) = Devnet::read(dir) {
            let running: Vec<&str> = existing
                .nodes
                .iter()
                .filter(|node| pid_alive(node.pid))
                .map(|node| node.name.as_str())
                .collect();
            if !running.is_empty() {
                bail!(
                    "the testnet in {} is already up ({} running); `cairn testnet --dir {} down` stops it",
                    dir.display(),
                    running.join(", "),
                    dir.display()
                );
            }
        }
    } else if dir.exists() {
        let foreign: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("node") && name != crate::genesis::GENESIS_FILE)
            .collect();
        if !foreign.is_empty() {
            bail!(
                "{} is not empty and is not a cairn testnet directory (found {})",
                dir.display(),
                foreign.join(", ")
            );
        }
    }
    Ok(())
}

/// How one node of a testnet is started.
struct Launch<'a> {
    exe: &'a Path,
    datadir: PathBuf,
    /// RPC and P2P ports (none: OS-chosen).
    ports: Option<(u16, u16)>,
    genesis: Option<&'a Path>,
    /// `None`: no mining; `Some(None)`: continuous; `Some(Some(S))`: every S seconds.
    mine: Option<Option<u64>>,
    hashrate: Option<u64>,
    /// `--byzantine` modes.
    byzantine: Option<&'a str>,
    /// `--peer` multiaddrs.
    peers: Vec<String>,
}

/// Starts one `cairn node` in the background and waits until it is ready.
fn start_node(name: &str, launch: &Launch<'_>) -> anyhow::Result<DevnetNode> {
    let bar = spinner(format!("starting {name}"));
    let datadir = &launch.datadir;
    std::fs::create_dir_all(datadir).with_context(|| format!("creating {}", datadir.display()))?;
    let _ = std::fs::remove_file(NodeInfo::path(datadir));
    let (rpc_port, p2p_port) = launch.ports.unwrap_or((0, 0));
    let mut cmd = Command::new(launch.exe);
    cmd.arg("node")
        .arg("--datadir")
        .arg(datadir)
        .arg("--rpc-addr")
        .arg(format!("127.0.0.1:{rpc_port}"))
        .arg("--listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{p2p_port}"))
        .args(["--threads", "1"])
        .args(["--metrics", "127.0.0.1:0"]);
    if let Some(g) = launch.genesis {
        cmd.arg("--genesis").arg(g);
    }
    match launch.mine {
        Some(None) => {
            cmd.arg("--mine");
        }
        Some(Some(secs)) => {
            cmd.args(["--mine", "--block-time", &secs.to_string()]);
        }
        None => {}
    }
    if let Some(rate) = launch.hashrate {
        cmd.args(["--hashrate", &rate.to_string()]);
    }
    for peer in &launch.peers {
        cmd.arg("--peer").arg(peer);
    }
    if let Some(modes) = launch.byzantine {
        cmd.args(["--byzantine", modes]);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(datadir.join("node.log"))
        .with_context(|| format!("opening {}/node.log", datadir.display()))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(datadir.join("stdout.log"))?;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let info = match wait_ready(name, datadir, &mut child) {
        Ok(info) => info,
        Err(e) => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    let p2p = info
        .p2p
        .first()
        .map(|addr| format!("{addr}/p2p/{}", info.peer_id))
        .with_context(|| format!("{name} reported no p2p listen address"))?;
    bar.finish_with_message(format!("{name} ready: rpc {} p2p {p2p}", info.rpc));
    Ok(DevnetNode {
        name: name.to_owned(),
        datadir: datadir.clone(),
        rpc_url: format!("http://{}", info.rpc),
        cookie_file: cairn_rpc::auth::cookie_path(datadir),
        p2p,
        peer_id: info.peer_id,
        pid: child.id(),
        metrics_url: info.metrics.map(|addr| format!("http://{addr}/metrics")),
        hashrate: launch.hashrate,
        peers: None,
        byzantine: launch.byzantine.map(str::to_owned),
    })
}

/// Waits for the `node.json` of this very process, or says why the node did not start.
fn wait_ready(
    name: &str,
    datadir: &Path,
    child: &mut std::process::Child,
) -> anyhow::Result<NodeInfo> {
    let started = Instant::now();
    loop {
        if let Ok(info) = NodeInfo::read(datadir)
            && info.pid == child.id()
        {
            return Ok(info);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(datadir.join("node.log")).unwrap_or_default();
            let last: Vec<&str> = log.lines().rev().take(5).collect();
            bail!(
                "{name} exited ({status}) while starting: {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            bail!(
                "{name} did not become ready within {START_TIMEOUT:?}; see {}/node.log",
                datadir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Imports dev key K into node K's wallet (unencrypted: dev keys are public).
fn import_dev_keys(devnet: &Devnet, params: &ChainParams) -> anyhow::Result<()> {
    for (k, node) in devnet.nodes.iter().enumerate() {
        if let Some(account) = params.config.dev_accounts.get(k) {
            cairn_wallet::cli::import_dev_into(&node.datadir.join("wallet.json"), params, k as u32)
                .with_context(|| {
                    format!("importing {} into {}'s wallet", account.name, node.name)
                })?;
        }
    }
    Ok(())
}

/// The peer ids `client`'s node is connected to.
pub(crate) fn peer_ids(client: &RpcClient) -> anyhow::Result<BTreeSet<String>> {
    let peers = client.call("getpeerinfo", json!([]))?;
    Ok(peers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
        .collect())
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let devnet = Devnet::read(dir)?;
    println!(
        "{:<8} {:>7} {:<18} {:>5} {:>7} {:<8}",
        "node", "height", "tip", "peers", "mempool", "mining"
    );
    for node in &devnet.nodes {
        let row = (|| -> anyhow::Result<(Value, usize, Value, Value)> {
            let c = client(node)?;
            Ok((
                c.call("getblockchaininfo", json!([]))?,
                peer_ids(&c)?.len(),
                c.call("getmempoolinfo", json!([]))?,
                c.call("getmininginfo", json!([]))?,
            ))
        })();
        match row {
            Ok((info, peers, mempool, mining)) => {
                let tip = info["bestblockhash"].as_str().unwrap_or("?");
                println!(
                    "{:<8} {:>7} {:<18} {:>5} {:>7} {:<8}",
                    node.name,
                    info["blocks"].as_u64().unwrap_or(0),
                    format!("{}…", &tip[..tip.len().min(16)]),
                    peers,
                    mempool["size"].as_u64().unwrap_or(0),
                    match (
                        mining["mining"].as_bool(),
                        mining["hashrate_limit"].as_u64()
                    ) {
                        (Some(true), Some(cap)) => format!("≤{} H/s", format_hashrate(cap)),
                        (Some(true), None) => "yes".to_owned(),
                        _ => "no".to_owned(),
                    }
                );
            }
            Err(_) => println!("{:<8} {:>7}", node.name, "down"),
        }
    }
    if !devnet.partition.is_empty() {
        let groups: Vec<String> = devnet.partition.iter().map(|g| g.join(",")).collect();
        println!("partitioned: {}", groups.join(" | "));
    }
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let devnet = Devnet::read(dir)?;
    for node in &devnet.nodes {
        if !pid_alive(node.pid) {
            println!("{} was not running", node.name);
            continue;
        }
        if let Ok(c) = client(node) {
            let _ = c.call("stop", json!([]));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while pid_alive(node.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if pid_alive(node.pid) {
            let _ = Command::new("kill")
                .args(["-TERM", &node.pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while pid_alive(node.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if pid_alive(node.pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &node.pid.to_string()])
                .status();
            println!("{} did not stop in time and was killed", node.name);
        } else {
            println!("{} stopped", node.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod byzantine_flag_tests {
    use super::byzantine_nodes;

    #[test]
    fn byzantine_flags_name_a_node_and_its_modes() {
        let flags = vec![
            "node2=lie-work,tx-flood".to_owned(),
            "node0=equivocate".to_owned(),
        ];
        let map = byzantine_nodes(&flags, 3).unwrap();
        assert_eq!(map["node2"], "lie-work,tx-flood");
        assert_eq!(map["node0"], "equivocate");
        for (bad, why) in [
            ("node3=lie-work", "no node named node3"),
            ("lie-work", "expected NAME=MODE"),
            ("node1=", "no mode given"),
        ] {
            let err = byzantine_nodes(&[bad.to_owned()], 3)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let twice = vec!["node1=lie-work".to_owned(), "node1=tx-flood".to_owned()];
        assert!(
            byzantine_nodes(&twice, 3)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
