//! Real `cairn node` processes for the network benches (`sync`, `propagate`): this same
//! binary, started on 127.0.0.1 with ephemeral ports, a datadir of the caller's and the
//! regtest genesis, driven over the RPC contract like any user would. Each process is
//! stopped over RPC when its [`BenchNode`] is dropped, and killed by its pid if it does
//! not exit in time.

use anyhow::{Context, bail};
use cairn_rpc::{Cookie, RpcClient};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to print its `ready` line.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped node may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes the regtest network definition into `dir`; returns its path (for `--genesis`).
pub fn write_regtest_genesis(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("genesis.json");
    let config = cairn_core::ChainParams::regtest().config;
    let text = serde_json::to_vec_pretty(&config).context("serialising the regtest config")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A running node.
pub struct BenchNode {
    child: Child,
    datadir: PathBuf,
    /// A client keeping its HTTP connection alive between calls.
    pub client: RpcClient,
    /// Its P2P multiaddr with `/p2p/ID`.
    pub p2p: String,
}

impl BenchNode {
    /// Starts `cairn node` on `datadir` (created if missing) with `--peer` for each of
    /// `peers`, and waits for its `ready` line. Its log goes to `DATADIR/node.log`.
    pub fn start(datadir: &Path, genesis: &Path, peers: &[String]) -> anyhow::Result<BenchNode> {
        std::fs::create_dir_all(datadir)
            .with_context(|| format!("creating {}", datadir.display()))?;
        let exe = std::env::current_exe().context("finding the cairn binary")?;
        let log = std::fs::File::create(datadir.join("node.log")).context("creating node.log")?;
        let mut command = Command::new(exe);
        command
            .arg("node")
            .arg("--datadir")
            .arg(datadir)
            .arg("--genesis")
            .arg(genesis)
            .args(["--rpc-addr", "127.0.0.1:0"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
        for peer in peers {
            command.args(["--peer", peer]);
        }
        // Per-block info lines would cost the synced node time the bench charges to sync.
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = command
            .env_remove("CAIRN_DATADIR")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting cairn node")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the node in {} printed no ready line within {START_TIMEOUT:?} (see its node.log)",
                    datadir.display()
                );
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .filter_map(|f| f.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        };
        let (Some(rpc), Some(p2p)) = (field("rpc"), field("p2p").filter(|p| p != "none")) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("unexpected ready line: {line}");
        };
        let cookie = Cookie::read(&datadir.join(".cookie")).context("reading the node's cookie")?;
        Ok(BenchNode {
            child,
            datadir: datadir.to_path_buf(),
            client: RpcClient::new(&rpc, Some(cookie)),
            p2p,
        })
    }

    /// Calls `method`, which must succeed.
    pub fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.client
            .call(method, params)
            .with_context(|| format!("{method} on the node in {}", self.datadir.display()))
    }

    /// `getblockcount`.
    pub fn height(&self) -> anyhow::Result<u64> {
        self.call("getblockcount", json!([]))?
            .as_u64()
            .context("getblockcount is not a number")
    }

    /// `getbestblockhash`.
    pub fn best_hash(&self) -> anyhow::Result<String> {
        match self.call("getbestblockhash", json!([]))? {
            Value::String(hash) => Ok(hash),
            other => bail!("getbestblockhash answered {other}"),
        }
    }

    /// Peer ids of the peers whose status this node has received.
    pub fn handshaken_peers(&self) -> anyhow::Result<Vec<String>> {
        let peers = self.call("getpeerinfo", json!([]))?;
        Ok(peers
            .as_array()
            .context("getpeerinfo is not an array")?
            .iter()
            .filter(|p| !p["best_height"].is_null())
            .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Waits until `getblockcount` reaches `height`, polling every `poll`; the time it took.
    pub fn wait_for_height(
        &self,
        height: u64,
        poll: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        while self.height()? < height {
            if start.elapsed() > timeout {
                bail!(
                    "the node in {} did not reach height {height} within {timeout:?}",
                    self.datadir.display()
                );
            }
            std::thread::sleep(poll);
        }
        Ok(start.elapsed())
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        let _ = self.client.call("stop", json!([]));
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // `Child::kill` signals this one pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
