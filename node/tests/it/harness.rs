//! Starts real `cairn node` processes on 127.0.0.1 (ephemeral ports, temp datadirs) and
//! drives them over JSON-RPC exactly as a user would. Every process is killed on drop and
//! every wait is bounded.

use cairn_core::{Amount, ChainParams, OutPoint, SecretKey, Transaction, TxOut, encoding};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a node may take to print its `ready` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A regtest genesis file shared by every node of this test process.
pub fn regtest_genesis() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("genesis.json");
        let config = cairn_core::ChainParams::regtest().config;
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&config).expect("config serialises"),
        )
        .expect("write genesis");
        (dir, path)
    });
    path
}

/// How to start a node.
#[derive(Debug, Clone, Default)]
pub struct NodeOpts {
    /// `--peer` multiaddrs.
    pub peers: Vec<String>,
    /// Further flags.
    pub extra_args: Vec<String>,
    /// Genesis file (default: regtest).
    pub genesis: Option<PathBuf>,
}

/// An error answer of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcFailure {
    /// HTTP status.
    pub status: u16,
    /// JSON-RPC code (0 if none).
    pub code: i64,
    /// Message.
    pub message: String,
}

/// A running node.
pub struct Node {
    child: Option<Child>,
    dir: tempfile::TempDir,
    opts: NodeOpts,
    log_filter: &'static str,
    /// `127.0.0.1:PORT`.
    pub rpc_addr: String,
    /// `__cookie__:HEX`.
    pub cookie: String,
    /// P2P multiaddr (with `/p2p/ID`) if the node listens.
    pub p2p: Option<String>,
    /// libp2p peer id.
    pub peer_id: String,
}

/// Path of the `cairn` binary under test.
pub fn cairn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

impl Node {
    /// Starts a node in a fresh temp datadir and waits for `ready`.
    pub fn start(opts: NodeOpts) -> Node {
        Node::start_logging(opts, "info")
    }

    /// [`Node::start`] with `RUST_LOG=log_filter` (kept across restarts).
    pub fn start_logging(opts: NodeOpts, log_filter: &'static str) -> Node {
        let dir = tempfile::tempdir().expect("temp datadir");
        let mut node = Node {
            child: None,
            dir,
            opts,
            log_filter,
            rpc_addr: String::new(),
            cookie: String::new(),
            p2p: None,
            peer_id: String::new(),
        };
        node.launch();
        node
    }

    /// The process id, while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        self.dir.path()
    }

    /// A `cairn node` command on this datadir with the test's flags.
    pub fn command(&self) -> Command {
        let genesis = self
            .opts
            .genesis
            .clone()
            .unwrap_or_else(|| regtest_genesis().to_path_buf());
        let mut cmd = Command::new(cairn_bin());
        cmd.arg("node")
            .arg("--datadir")
            .arg(self.dir.path())
            .arg("--genesis")
            .arg(genesis)
            .args([
                "--rpc-addr",
                "127.0.0.1:0",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ]);
        for peer in &self.opts.peers {
            cmd.args(["--peer", peer]);
        }
        cmd.args(&self.opts.extra_args)
            .env_remove("CAIRN_DATADIR")
            .env("RUST_LOG", self.log_filter);
        cmd
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("node.log"))
            .expect("node log file");
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cairn node");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        self.child = Some(child);
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => panic!(
                "node did not become ready within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            ),
        };
        for field in line.split_whitespace().skip(1) {
            match field.split_once('=') {
                Some(("rpc", v)) => self.rpc_addr = v.to_owned(),
                Some(("p2p", v)) if v != "none" => self.p2p = Some(v.to_owned()),
                Some(("peer_id", v)) => self.peer_id = v.to_owned(),
                _ => {}
            }
        }
        self.cookie = std::fs::read_to_string(self.dir.path().join(".cookie"))
            .expect("cookie written before ready");
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// Posts a raw body with an optional `Authorization` header value; returns status and body.
    pub fn post_raw(&self, body: &str, authorization: Option<&str>) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut request = agent
            .post(format!("http://{}/", self.rpc_addr))
            .header("Content-Type", "application/json");
        if let Some(auth) = authorization {
            request = request.header("Authorization", auth);
        }
        let mut response = request.send(body).expect("HTTP round trip to the node");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    }

    /// The Basic auth header value of the cookie.
    pub fn auth(&self) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(self.cookie.trim())
        )
    }

    /// Calls a method; `Err` carries the JSON-RPC error.
    pub fn try_rpc(&self, method: &str, params: Value) -> Result<Value, RpcFailure> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (status, text) = self.post_raw(&body, Some(&self.auth()));
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method}: non-JSON answer (HTTP {status}): {e}: {text}"));
        if let Some(err) = answer.get("error").filter(|e| !e.is_null()) {
            return Err(RpcFailure {
                status,
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(answer["result"].clone())
    }

    /// Its active tip (`getbestblockhash`).
    pub fn tip(&self) -> String {
        self.rpc("getbestblockhash", json!([]))
            .as_str()
            .expect("getbestblockhash is a hash")
            .to_owned()
    }

    /// Its active chain's height (`getblockcount`).
    pub fn height(&self) -> u64 {
        self.rpc("getblockcount", json!([]))
            .as_u64()
            .expect("getblockcount is a number")
    }

    /// Calls a method that must succeed.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e:?}"))
    }

    /// Mines `n` blocks now; returns their hashes.
    pub fn generate(&self, n: u32) -> Vec<String> {
        serde_json::from_value(self.rpc("generate", json!([n]))).expect("generate returns hashes")
    }

    /// Stops the node over RPC and waits for the process to exit (bounded).
    pub fn stop(&mut self) {
        let _ = self.try_rpc("stop", json!([]));
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "node exited with {status}; log:\n{}",
                            self.log()
                        );
                        return;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("node did not stop within 30 s; log:\n{}", self.log());
                    }
                }
            }
        }
    }

    /// Starts the node again on the same datadir.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Starts the node again on the same datadir after [`kill`](Self::kill) (a crash).
    pub fn start_after_kill(&mut self) {
        assert!(self.child.is_none(), "the node is still running");
        self.launch();
    }

    /// Kills the process without a clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Node {
    /// Starts the node again on its datadir after a [`Node::kill`] (no clean stop), with
    /// `extra` flags for this start only; waits for `ready`.
    pub fn relaunch_with(&mut self, extra: &[&str]) {
        self.kill();
        let saved = self.opts.extra_args.clone();
        self.opts
            .extra_args
            .extend(extra.iter().map(|a| a.to_string()));
        self.launch();
        self.opts.extra_args = saved;
    }

    /// Runs `cairn node` on this (stopped) datadir with `extra` flags, expecting it to exit
    /// within `timeout`; returns its exit code (`None`: it had to be killed) and stderr.
    pub fn run_to_exit(&self, extra: &[&str], timeout: Duration) -> (Option<i32>, String) {
        assert!(self.child.is_none(), "stop or kill the node first");
        let err_path = self.dir.path().join("exit-run.stderr");
        let err = std::fs::File::create(&err_path).expect("stderr file");
        let mut child = self
            .command()
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn cairn node");
        let deadline = Instant::now() + timeout;
        let code = loop {
            match child.try_wait().expect("wait for cairn node") {
                Some(status) => break status.code(),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        (code, std::fs::read_to_string(&err_path).unwrap_or_default())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The resident set size of process `pid` in kB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The regtest parameters every test node runs on.
pub fn regtest() -> ChainParams {
    ChainParams::regtest()
}

/// `key`'s address on regtest.
pub fn address(key: &SecretKey) -> String {
    regtest().address(&key.pubkey_hash())
}

/// `key`'s coins as the node reports them: (outpoint, amount, height, coinbase).
pub fn utxos(node: &Node, key: &SecretKey) -> Vec<(OutPoint, u64, u64, bool)> {
    let list = node.rpc("getaddressutxos", json!([address(key)]));
    list.as_array()
        .expect("getaddressutxos returns an array")
        .iter()
        .map(|u| {
            let txid = u["txid"].as_str().unwrap().parse().unwrap();
            let vout = u["vout"].as_u64().unwrap() as u32;
            (
                OutPoint { txid, vout },
                u["amount"].as_u64().unwrap(),
                u["height"].as_u64().unwrap(),
                u["coinbase"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The genesis allocation of `key` (a dev account), as the node reports it.
pub fn genesis_coin(node: &Node, key: &SecretKey) -> (OutPoint, u64) {
    utxos(node, key)
        .into_iter()
        .find(|c| c.2 == 0)
        .map(|(outpoint, amount, _, _)| (outpoint, amount))
        .expect("genesis allocation")
}

/// A signed payment of `amount` from `key`'s `coins` to `to`, the rest minus `fee` back to `key`.
pub fn spend(
    key: &SecretKey,
    coins: &[(OutPoint, u64)],
    to: &SecretKey,
    amount: u64,
    fee: u64,
) -> Transaction {
    let total: u64 = coins.iter().map(|(_, a)| a).sum();
    let mut outputs = vec![TxOut {
        amount: Amount::from_base(amount),
        address: to.pubkey_hash(),
    }];
    let change = total - amount - fee;
    if change > 0 {
        outputs.push(TxOut {
            amount: Amount::from_base(change),
            address: key.pubkey_hash(),
        });
    }
    let amounts: Vec<(OutPoint, Amount)> = coins
        .iter()
        .map(|(o, a)| (*o, Amount::from_base(*a)))
        .collect();
    cairn_core::testkit::signed_spend(&regtest(), &amounts, key, outputs)
}

/// Raw transaction hex, as `sendrawtransaction` takes it.
pub fn hex_of(tx: &Transaction) -> String {
    hex::encode(encoding::encode(tx))
}
