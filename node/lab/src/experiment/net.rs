//! The testnet an experiment runs on: started and stopped with `cairn testnet` (as child
//! processes of this `cairn`, so their output stays off the experiment's stdout), on a
//! regtest genesis so that `generate` is instant, with one node configuration per node
//! written to its `cairn.toml` beforehand.

use anyhow::{Context, bail};
use cairn_core::ChainParams;
use cairn_rpc::{Devnet, RpcClient};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the nodes may take to agree after the last event.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One node's settings.
#[derive(Debug, Clone, Default)]
pub struct NodeSetup {
    /// `strategy = …` in its `cairn.toml` (`None`: honest).
    pub strategy: Option<&'static str>,
    /// Index of the dev account its coinbases pay to.
    pub pays_dev: usize,
}

/// Stops a testnet's nodes (and removes its directory unless it was the user's) on drop,
/// whether or not `up` got as far as writing `devnet.json`.
struct Guard {
    dir: PathBuf,
    remove: bool,
}

/// A running testnet; stopped when dropped.
pub struct Net {
    guard: Guard,
    /// The testnet's description.
    pub devnet: Devnet,
    /// One RPC client per node, in node order.
    pub clients: Vec<RpcClient>,
    /// The network's parameters (regtest).
    pub params: ChainParams,
}

fn cairn_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the cairn binary")
}

/// Runs `cairn testnet --dir DIR ARGS…`; its stdout is dropped, its error becomes ours.
pub fn testnet_cli(dir: &Path, args: &[String]) -> anyhow::Result<()> {
    let out = Command::new(cairn_exe()?)
        .arg("testnet")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running cairn testnet {}", args.join(" ")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        bail!("cairn testnet {}: {line}", args.join(" "));
    }
    Ok(())
}

impl Net {
    /// Starts one node per entry of `nodes` under `root` (a fresh temporary directory when
    /// `None`), with `extra` appended to `cairn testnet up`.
    pub fn up(root: Option<&Path>, nodes: &[NodeSetup], extra: &[String]) -> anyhow::Result<Net> {
        let (root, remove) = match root {
            Some(r) => (r.to_path_buf(), false),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let dir = std::env::temp_dir()
                    .join(format!("cairn-experiment-{}-{nanos}", std::process::id()));
                (dir, true)
            }
        };
        let dir = root.join("testnet");
        if dir.exists() {
            bail!(
                "{} exists: an experiment needs a fresh directory",
                dir.display()
            );
        }
        let params = ChainParams::regtest();
        let genesis = root.join("genesis.json");
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        std::fs::write(&genesis, serde_json::to_vec_pretty(&params.config)?)
            .with_context(|| format!("writing {}", genesis.display()))?;
        for (k, node) in nodes.iter().enumerate() {
            let datadir = dir.join(format!("node{k}"));
            std::fs::create_dir_all(&datadir)?;
            let account = params
                .config
                .dev_accounts
                .get(node.pays_dev)
                .with_context(|| format!("the regtest network has no dev{}", node.pays_dev))?;
            let mut toml = format!("miner_address = \"{}\"\n", account.address);
            if let Some(strategy) = node.strategy {
                toml.push_str(&format!("strategy = \"{strategy}\"\n"));
            }
            std::fs::write(datadir.join("cairn.toml"), toml)?;
        }
        let mut args = vec![
            "up".to_string(),
            "-n".into(),
            nodes.len().to_string(),
            "--genesis".into(),
            genesis.display().to_string(),
        ];
        args.extend_from_slice(extra);
        // From here on, dropping `guard` stops whatever did start.
        let guard = Guard { dir, remove };
        testnet_cli(&guard.dir, &args)?;
        let devnet = Devnet::read(&guard.dir)?;
        let clients = devnet
            .nodes
            .iter()
            .map(crate::testnet::client)
            .collect::<anyhow::Result<_>>()?;
        Ok(Net {
            guard,
            devnet,
            clients,
            params,
        })
    }

    /// The testnet directory (for `cairn testnet partition|heal`).
    pub fn dir(&self) -> &Path {
        &self.guard.dir
    }

    /// Mines one block on node `k` now; returns its hash.
    pub fn generate(&self, k: usize) -> anyhow::Result<String> {
        let hashes: Vec<String> = self.clients[k]
            .call_as("generate", json!([1]))
            .with_context(|| format!("generate on node{k}"))?;
        hashes
            .into_iter()
            .next()
            .context("generate returned no block")
    }

    /// Whether node `k` has block `hash` (stored, not just its header).
    pub fn knows(&self, k: usize, hash: &str) -> anyhow::Result<bool> {
        match self.clients[k].call("getblock", json!([hash, 1])) {
            Ok(_) => Ok(true),
            Err(e) if e.is_answer() => Ok(false),
            Err(e) => Err(e).with_context(|| format!("asking node{k} for block {hash}")),
        }
    }

    /// Node `k`'s best block hash.
    pub fn best(&self, k: usize) -> anyhow::Result<String> {
        Ok(self.clients[k].call_as("getbestblockhash", json!([]))?)
    }

    /// Node `k`'s active chain from height 1 up, as block hashes.
    pub fn active_chain(&self, k: usize) -> anyhow::Result<Vec<String>> {
        let height: u64 = self.clients[k].call_as("getblockcount", json!([]))?;
        let mut out = Vec::with_capacity(height as usize);
        for chunk in (1..=height).collect::<Vec<_>>().chunks(500) {
            let calls: Vec<(&str, Value)> =
                chunk.iter().map(|h| ("getblockhash", json!([h]))).collect();
            for answer in self.clients[k].batch(&calls)? {
                out.push(
                    answer?
                        .as_str()
                        .context("getblockhash answered no string")?
                        .to_owned(),
                );
            }
        }
        Ok(out)
    }

    /// Waits until every node has the same best block.
    pub fn converge(&self) -> anyhow::Result<String> {
        wait_for("the nodes to agree on a tip", || {
            let tips: Vec<String> = (0..self.clients.len())
                .map(|k| self.best(k))
                .collect::<anyhow::Result<_>>()?;
            Ok(tips
                .windows(2)
                .all(|w| w[0] == w[1])
                .then(|| tips[0].clone()))
        })
    }
}

/// Polls `check` until it yields a value, for at most [`SETTLE_TIMEOUT`].
pub fn wait_for<T>(
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {SETTLE_TIMEOUT:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.dir.join("devnet.json").exists() {
            let _ = testnet_cli(&self.dir, &["down".to_string()]);
        } else {
            // `up` failed half-way: stop the nodes it did start, by their recorded pids.
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                if let Ok(info) = cairn_rpc::NodeInfo::read(&entry.path()) {
                    let _ = Command::new("kill")
                        .args(["-TERM", &info.pid.to_string()])
                        .status();
                }
            }
        }
        if self.remove
            && let Some(root) = self.dir.parent()
        {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// The `--help` text of `cairn ARGS…` (to learn what this build's commands accept).
pub fn cairn_help(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cairn_exe()?)
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running cairn {} --help", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
