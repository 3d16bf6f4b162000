//! `cairn testnet view`, end to end: a real 3-node testnet, the view process, its JSON API,
//! its event stream and (when chromedriver is installed) the page in headless Chromium,
//! through a partition and a heal.

use crate::harness::{cairn_bin, regtest_genesis};
use cairn_rpc::RpcClient;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the view may take to show what the nodes did.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);

/// A testnet in a temp dir and, once started, a view on it; both stopped on drop.
struct Lab {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    view: Option<Child>,
    url: String,
    agent: ureq::Agent,
}

impl Lab {
    fn up(n: usize) -> Lab {
        Lab::up_with(n, &[])
    }

    /// A testnet of `n` nodes started with `up`'s `extra` flags.
    fn up_with(n: usize, extra: &[&str]) -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("devnet");
        let lab = Lab {
            _tmp: tmp,
            dir,
            view: None,
            url: String::new(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        };
        let genesis = regtest_genesis().to_str().unwrap().to_owned();
        let n = n.to_string();
        let mut args = vec!["up", "-n", &n, "--genesis", &genesis];
        args.extend_from_slice(extra);
        lab.testnet(&args);
        lab
    }

    fn testnet(&self, args: &[&str]) -> String {
        let out = Command::new(cairn_bin())
            .arg("testnet")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("CAIRN_DATADIR")
            .output()
            .expect("run cairn testnet");
        assert!(
            out.status.success(),
            "cairn testnet {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `cairn testnet view --addr 127.0.0.1:0` and reads the URL it prints.
    fn start_view(&mut self) {
        let mut child = Command::new(cairn_bin())
            .arg("testnet")
            .arg("--dir")
            .arg(&self.dir)
            .args(["view", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cairn testnet view");
        let stdout = child.stdout.take().unwrap();
        self.view = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(SHOW_TIMEOUT)
            .expect("the view prints its URL");
        let url = line
            .strip_prefix("view ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
            "{url}"
        );
        self.url = url.trim_end_matches('/').to_owned();
    }

    fn node(&self, name: &str) -> RpcClient {
        RpcClient::from_datadir(self.dir.join(name)).unwrap()
    }

    /// Mines `n` blocks on node `name`, paying dev key K for node K: two nodes mining on
    /// the same parent in the same second would otherwise find the very same block.
    fn generate(&self, name: &str, n: u32) -> Vec<String> {
        let devnet = cairn_rpc::Devnet::read(&self.dir).unwrap();
        let k = devnet.nodes.iter().position(|x| x.name == name).unwrap();
        let address = &devnet.dev_keys[k].address;
        let hashes = self
            .node(name)
            .call("generate", json!([n, address]))
            .unwrap();
        serde_json::from_value(hashes).unwrap()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .expect("HTTP to the view");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Polls `/api/tree` until `cond` holds; panics with the last tree.
    fn wait_tree(&self, what: &str, cond: impl Fn(&Tree) -> bool) -> Tree {
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            let (status, body) = self.get("/api/tree");
            assert_eq!(status, 200, "{body}");
            let tree = Tree(body);
            if cond(&tree) {
                return tree;
            }
            assert!(
                Instant::now() < deadline,
                "the view did not show {what} within {SHOW_TIMEOUT:?}: {:#}",
                tree.0
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut view) = self.view.take() {
            let _ = view.kill();
            let _ = view.wait();
        }
        let _ = Command::new(cairn_bin())
            .arg("testnet")
            .arg("--dir")
            .arg(&self.dir)
            .arg("down")
            .output();
    }
}

/// `/api/tree` with helpers.
struct Tree(Value);

impl Tree {
    fn node(&self, name: &str) -> Option<&Value> {
        self.0["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["name"] == name)
    }

    fn tip(&self, node: &str) -> Option<&str> {
        self.0["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["name"] == node)?["tip"]
            .as_str()
    }

    fn block(&self, hash: &str) -> Option<&Value> {
        self.0["blocks"]
            .as_array()?
            .iter()
            .find(|b| b["hash"] == hash)
    }

    fn names(&self, hash: &str, field: &str) -> Vec<String> {
        self.block(hash)
            .and_then(|b| b[field].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every INTERFACE field of `/api/tree` is there with its type.
fn assert_tree_shape(tree: &Value) {
    let nodes = tree["nodes"].as_array().expect("nodes is an array");
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert!(n["name"].is_string() && n["up"].is_boolean(), "{n}");
        assert!(n["tip"].is_string() && n["height"].is_u64(), "{n}");
    }
    let blocks = tree["blocks"].as_array().expect("blocks is an array");
    assert!(!blocks.is_empty());
    for b in blocks {
        assert_eq!(b["hash"].as_str().map(str::len), Some(64), "{b}");
        assert!(
            b["parent"].is_string() && b["height"].is_u64() && b["time"].is_u64(),
            "{b}"
        );
        assert!(b["txs"].is_u64() || b["txs"].is_null(), "{b}");
        for field in ["active_on", "known_by", "invalid_on"] {
            assert!(b[field].is_array(), "{field} in {b}");
        }
    }
}

/// Events of `/api/events` as they arrive: (when, name, data).
fn listen(url: &str) -> mpsc::Receiver<(Instant, String, Value)> {
    let (tx, rx) = mpsc::channel();
    let url = format!("{url}/api/events");
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(None)
            .build()
            .into();
        let response = agent.get(&url).call().expect("subscribe to /api/events");
        let _ = ready_tx.send(());
        let reader = BufReader::new(response.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                let data = serde_json::from_str(d.trim()).unwrap_or(Value::Null);
                if tx.send((Instant::now(), name.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the event stream opens");
    rx
}

/// node0 | node1,node2; node0 mines 1, node1 mines 2. Returns (node0's block, node1's two).
fn fork(lab: &Lab) -> (String, Vec<String>) {
    let base = lab
        .node("node1")
        .call("getbestblockhash", json!([]))
        .unwrap();
    lab.testnet(&["partition", "node0", "node1,node2"]);
    let a = lab.generate("node0", 1).remove(0);
    let b = lab.generate("node1", 2);
    let first = lab
        .node("node1")
        .call("getblock", json!([b[0], 1]))
        .unwrap();
    assert_eq!(
        first["previousblockhash"], base,
        "node1 mined on node0's block across the partition"
    );
    assert_ne!(a, b[0]);
    (a, b)
}

#[test]
fn view_shows_a_fork_resolve_over_its_api_and_events() {
    let mut lab = Lab::up(3);
    lab.start_view();
    let genesis = lab
        .node("node0")
        .call("getbestblockhash", json!([]))
        .unwrap();
    let genesis = genesis.as_str().unwrap().to_owned();
    let tree = lab.wait_tree("three nodes on genesis", |t| {
        ["node0", "node1", "node2"]
            .iter()
            .all(|n| t.tip(n) == Some(genesis.as_str()))
    });
    assert_tree_shape(&tree.0);

    // A common block; its tip event must come within a second of `generate` returning.
    let events = listen(&lab.url);
    let common = lab.generate("node0", 1).remove(0);
    let mined = Instant::now();
    let deadline = mined + Duration::from_secs(5);
    let latency = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, name, data) = events
            .recv_timeout(left)
            .expect("a tip event for node0's block");
        if name == "tip" && data["node"] == "node0" && data["hash"] == common.as_str() {
            assert_eq!(data["height"], 1);
            assert_eq!(data["reorg_depth"], 0);
            break at.saturating_duration_since(mined);
        }
    };
    eprintln!("tip event {} ms after generate", latency.as_millis());
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    lab.wait_tree("everyone on the common block", |t| {
        ["node0", "node1", "node2"]
            .iter()
            .all(|n| t.tip(n) == Some(common.as_str()))
    });

    let (a, b) = fork(&lab);
    let tree = lab.wait_tree("both branches with their tips", |t| {
        t.tip("node0") == Some(a.as_str())
            && t.tip("node1") == Some(b[1].as_str())
            && t.tip("node2") == Some(b[1].as_str())
    });
    assert_eq!(tree.names(&a, "active_on"), ["node0"]);
    assert_eq!(tree.names(&b[0], "active_on"), ["node1", "node2"]);
    assert_eq!(tree.block(&a).unwrap()["parent"], common.as_str());
    assert_eq!(tree.block(&b[0]).unwrap()["parent"], common.as_str());
    assert_eq!(tree.block(&a).unwrap()["status"], "active");
    let text = lab.testnet(&["view", "--text", "--last", "4"]);
    assert!(
        text.contains("<- node0") && text.contains("<- node1 node2"),
        "{text}"
    );

    lab.testnet(&["heal"]);
    let tree = lab.wait_tree("one chain and node0's block stale", |t| {
        ["node0", "node1", "node2"]
            .iter()
            .all(|n| t.tip(n) == Some(b[1].as_str()))
            && t.block(&a).is_some_and(|x| x["status"] == "stale")
    });
    assert!(tree.names(&a, "active_on").is_empty());
    assert!(tree.names(&a, "known_by").contains(&"node0".to_owned()));
    assert_eq!(tree.names(&b[1], "active_on"), ["node0", "node1", "node2"]);
    assert!(tree.0["stale"].as_u64() >= Some(1));
    let reorgs = tree.0["reorgs"].as_array().unwrap();
    assert!(
        reorgs
            .iter()
            .any(|r| r["node"] == "node0" && r["depth"] == 1),
        "{reorgs:?}"
    );
    let text = lab.testnet(&["view", "--text"]);
    assert!(
        text.contains("(stale)") && text.contains("<- node0 node1 node2"),
        "{text}"
    );

    let (status, detail) = lab.get(&format!("/api/block/{}", b[0]));
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["confirmations"],
        json!({"node0": 2, "node1": 2, "node2": 2})
    );
    assert_eq!(detail["parent"], common.as_str());
    assert!(
        detail["bits"].is_string() && detail["nonce"].is_u64(),
        "{detail}"
    );
    assert_eq!(
        detail["txids"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    let odds = detail["reversal_probability"].as_object().unwrap();
    let keys: Vec<&str> = odds.keys().map(String::as_str).collect();
    assert_eq!(keys, ["0.1", "0.25", "0.45"]);
    assert!(
        (odds["0.1"].as_f64().unwrap() - 0.0509779).abs() < 1e-6,
        "{odds:?}"
    );
    let (_, stale) = lab.get(&format!("/api/block/{a}"));
    assert_eq!(
        stale["confirmations"],
        json!({"node0": 0, "node1": 0, "node2": 0})
    );
    assert_eq!(stale["reversal_probability"]["0.45"], 1.0);
    let (status, _) = lab.get(&format!("/api/block/{}", "ab".repeat(32)));
    assert_eq!(status, 404);
    let (status, conflicts) = lab.get("/api/conflicts");
    assert_eq!((status, conflicts), (200, json!([])));
    let (status, _) = lab.get("/api/tree?from=soon");
    assert_eq!(status, 400);
    let (status, page) = lab.get("/");
    assert_eq!(status, 200);
    assert!(page.as_str().is_some_and(|p| p.contains("/page.js")));

    // A node that stops shows as down, with the last tip it had; the others stay up.
    let _ = lab.node("node2").call("stop", json!([]));
    lab.wait_tree("node2 down", |t| {
        let nodes = t.0["nodes"].as_array().unwrap();
        nodes[2]["up"] == false && nodes[2]["tip"] == b[1].as_str() && nodes[0]["up"] == true
    });

    // SIGTERM ends the view cleanly.
    let mut view = lab.view.take().unwrap();
    let pid = view.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = view.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the view ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn view_of_a_directory_without_a_testnet_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["view"][..], &["view", "--text"][..]] {
        let out = Command::new(cairn_bin())
            .arg("testnet")
            .arg("--dir")
            .arg(tmp.path())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains("devnet.json"),
            "{stderr}"
        );
    }
    let out = Command::new(cairn_bin())
        .args(["testnet", "view", "--last", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--last needs --text");
}

/// A WebDriver session on headless Chromium, driven over chromedriver's HTTP API.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser
            .agent
            .get(format!("{}/status", browser.base))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = browser._profile.path().display().to_string();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "eager",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,900", format!("--user-data-dir={profile}")],
            }
        }}});
        let answer = browser.post("/session", caps);
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .send_json(&body)
            .expect("WebDriver call");
        let v: Value = r.body_mut().read_json().expect("WebDriver answers JSON");
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.post(
            &format!("/session/{}/url", self.session),
            json!({ "url": url }),
        );
    }

    fn eval(&self, script: &str) -> Value {
        self.post(
            &format!("/session/{}/execute/sync", self.session),
            json!({"script": script, "args": []}),
        )
    }

    /// The tips and blocks the page shows: ({node: hash}, {hash: status}).
    fn dom(&self) -> (Value, Value) {
        let v = self.eval(
            "const tips = {}, blocks = {};\
             for (const e of document.querySelectorAll('[data-tip]')) tips[e.dataset.tip] = e.dataset.hash;\
             for (const e of document.querySelectorAll('[data-block]')) blocks[e.dataset.block] = e.dataset.status;\
             return [tips, blocks];",
        );
        (v[0].clone(), v[1].clone())
    }

    fn wait_dom(&self, what: &str, cond: impl Fn(&Value, &Value) -> bool) {
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            let (tips, blocks) = self.dom();
            if cond(&tips, &blocks) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not show {what}: tips {tips} blocks {blocks}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let mut r = self
            .agent
            .get(format!("{}/session/{}/screenshot", self.base, self.session))
            .call()
            .expect("screenshot");
        let v: Value = r.body_mut().read_json().unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("base64 PNG"))
            .unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot saved to {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(format!("{}/session/{}", self.base, self.session))
            .call();
        // Ending the session quits the browser; whatever chromedriver started that is
        // still running is killed by its own (positive) pid. Never by a process-group
        // (negative) pid: procps-ng 4.0.2's `kill -SIG -PGID` signals every process.
        for pid in descendants(self.driver.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Every live process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces, so split after its `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.retain(|p| *p != root && *p > 1);
    found
}

#[test]
fn page_draws_both_branches_then_one_chain_with_the_stale_block() {
    if !Path::new("/usr/bin/chromedriver").exists() {
        eprintln!(
            "SKIPPED page_draws_both_branches_then_one_chain_with_the_stale_block: /usr/bin/chromedriver is not installed"
        );
        return;
    }
    let mut lab = Lab::up(3);
    lab.start_view();
    let browser = Browser::start();
    browser.open(&format!("{}/", lab.url));
    browser.wait_dom("three tips", |tips, _| {
        tips.as_object().is_some_and(|t| t.len() == 3)
    });

    let (a, b) = fork(&lab);
    browser.wait_dom("two branches and their tips", |tips, blocks| {
        tips["node0"] == a.as_str()
            && tips["node1"] == b[1].as_str()
            && tips["node2"] == b[1].as_str()
            && blocks[&a] == "active"
            && blocks[&b[0]] == "active"
    });
    let shot = std::env::var_os("CAIRN_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| lab.dir.join("view.png"));
    browser.screenshot(&shot.with_extension("partition.png"));

    lab.testnet(&["heal"]);
    browser.wait_dom("one chain and a stale block", |tips, blocks| {
        ["node0", "node1", "node2"]
            .iter()
            .all(|n| tips[n] == b[1].as_str())
            && blocks[&a] == "stale"
            && blocks[&b[0]] == "active"
    });
    // Clicking a block opens its detail: confirmations per node and the reversal odds.
    browser.eval(&format!(
        "document.querySelector('[data-block=\"{}\"]').dispatchEvent(new MouseEvent('click', {{bubbles: true}}));",
        b[0]
    ));
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let text = browser.eval("return document.getElementById('detail-body').innerText;");
        let text = text.as_str().unwrap_or_default();
        if text.contains(&b[0]) && text.contains("attacker q = 0.45") && text.contains("node2") {
            break;
        }
        assert!(Instant::now() < deadline, "no block detail: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    browser.screenshot(&shot);
}

#[test]
fn a_byzantine_node_is_shown_banned_by_every_honest_node() {
    if !Path::new("/usr/bin/chromedriver").exists() {
        eprintln!(
            "SKIPPED a_byzantine_node_is_shown_banned_by_every_honest_node: /usr/bin/chromedriver is not installed"
        );
        return;
    }
    let mut lab = Lab::up_with(3, &["--byzantine", "node2=invalid-blocks"]);
    lab.start_view();
    let honest = lab.generate("node0", 2);
    lab.wait_tree("every node at the honest tip", |t| {
        ["node0", "node1", "node2"]
            .iter()
            .all(|n| t.tip(n) == Some(honest[1].as_str()))
    });
    let browser = Browser::start();
    browser.open(&format!("{}/", lab.url));
    browser.wait_dom("three tips", |tips, _| {
        tips.as_object().is_some_and(|t| t.len() == 3)
    });
    let marked = browser
        .eval("return document.querySelector('[data-node=\"node2\"]').dataset.byzantine || null;");
    assert_eq!(marked, "invalid-blocks", "node2 is drawn as Byzantine");

    let bad = lab.generate("node2", 1);
    let tree = lab.wait_tree("node2 banned by node0 and node1", |t| {
        ["node0", "node1"].iter().all(|n| {
            t.node(n)
                .and_then(|e| e["banned"].as_array())
                .is_some_and(|b| b.iter().any(|x| x == "node2"))
        })
    });
    assert_eq!(tree.node("node2").unwrap()["byzantine"], "invalid-blocks");
    assert!(
        tree.node("node2").unwrap()["banned"]
            .as_array()
            .is_some_and(|b| b.is_empty()),
        "the Byzantine node bans nobody: {:#}",
        tree.0
    );
    for honest_block in &honest {
        assert!(
            tree.names(honest_block, "invalid_on").is_empty(),
            "an honest block is invalid somewhere: {:#}",
            tree.0
        );
    }
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let by = browser.eval(
            "const n = document.querySelector('[data-node=\"node2\"]'); \
             return n ? [n.dataset.bannedBy, n.innerText] : null;",
        );
        if by[0] == "node0 node1"
            && by[1]
                .as_str()
                .is_some_and(|t| t.contains("banned by node0, node1"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page does not show the ban: {by}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let shot = std::env::var_os("CAIRN_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| lab.dir.join("view.png"));
    browser.screenshot(&shot.with_extension("byzantine.png"));
    // The invalid block itself is drawn as invalid wherever it arrived.
    let tree = lab.wait_tree("node2's block invalid on the honest nodes", |t| {
        !t.names(&bad[0], "invalid_on").is_empty()
    });
    assert!(tree.names(&bad[0], "active_on").is_empty(), "{:#}", tree.0);
}

/// Where each version of the one double spend stands: {txid: {node: presence}}.
fn versions(lab: &Lab) -> Option<Value> {
    let (status, conflicts) = lab.get("/api/conflicts");
    assert_eq!(status, 200, "{conflicts}");
    let list = conflicts.as_array()?;
    let c = list.first()?;
    assert!(
        c["outpoint"].as_str().is_some_and(|o| o.contains(':')),
        "{c}"
    );
    let map: serde_json::Map<String, Value> = c["txs"]
        .as_array()?
        .iter()
        .map(|t| {
            (
                t["txid"].as_str().unwrap_or_default().to_owned(),
                t["on"].clone(),
            )
        })
        .collect();
    Some(Value::Object(map))
}

fn wait_versions(lab: &Lab, what: &str, cond: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let v = versions(lab);
        if v.as_ref().is_some_and(&cond) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/api/conflicts never showed {what}: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_double_spend_across_a_partition_is_shown_until_one_version_wins() {
    let mut lab = Lab::up(3);
    lab.start_view();
    lab.testnet(&["partition", "node0", "node1,node2"]);
    let devnet = cairn_rpc::Devnet::read(&lab.dir).unwrap();
    let (to, to2) = (&devnet.dev_keys[1].address, &devnet.dev_keys[2].address);
    let out = Command::new(cairn_bin())
        .args(["wallet", "--datadir"])
        .arg(lab.dir.join("node0"))
        .arg("--genesis")
        .arg(regtest_genesis())
        .args(["--json", "double-spend", "--to", to, "--to2", to2])
        .args(["--amount", "700000000", "--node"])
        .arg(lab.dir.join("node0"))
        .arg("--node2")
        .arg(lab.dir.join("node1"))
        .env_remove("CAIRN_DATADIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tx1 = sent["first"]["txid"].as_str().unwrap().to_owned();
    let tx2 = sent["second"]["txid"].as_str().unwrap().to_owned();
    let on = |v: &Value, tx: &str, states: [&str; 3]| {
        ["node0", "node1", "node2"]
            .iter()
            .zip(states)
            .all(|(n, s)| v[tx][n] == s)
    };
    wait_versions(&lab, "each version in its side's mempools", |v| {
        on(v, &tx1, ["mempool", "absent", "absent"])
            && on(v, &tx2, ["absent", "mempool", "mempool"])
    });

    lab.generate("node0", 1);
    lab.generate("node1", 3);
    wait_versions(&lab, "each side confirming its version", |v| {
        on(v, &tx1, ["confirmed", "absent", "absent"])
            && on(v, &tx2, ["absent", "confirmed", "confirmed"])
    });

    lab.testnet(&["heal"]);
    wait_versions(&lab, "node1's version confirmed everywhere", |v| {
        on(v, &tx1, ["absent", "absent", "absent"])
            && on(v, &tx2, ["confirmed", "confirmed", "confirmed"])
    });
}
