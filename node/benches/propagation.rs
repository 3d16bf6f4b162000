//! Block propagation latency across five real nodes on loopback, and headers-first sync
//! speed as a ratio to the same node's local block connection, measured in the same run
//! (STYLE.md §12).
//!
//! Run with `cargo bench -p cairn-node --bench propagation`. Every node is a real
//! `cairn node` process (the release binary of this package) on 127.0.0.1 with ephemeral
//! ports, a temporary datadir and the regtest genesis, started and driven over JSON-RPC by
//! the integration tests' harness; all of them are killed when the bench ends.
//!
//! **Propagation.** [`LINE_NODES`] nodes, twice. First in a *line*: node k is started with
//! `--peer` = node k-1 and every non-adjacent pair bans each other (`setban … add`), since
//! the node's Kademlia discovery would otherwise link every pair within seconds; a block
//! mined on node 0 then reaches node k after k gossip hops (receive, validate, store,
//! forward). Then five fresh nodes started the same way without bans: the topology
//! discovery builds (every pair linked, when it settles), where every node is one hop away.
//! Once every expected link has finished its handshake (`getpeerinfo`), [`WARMUP_ROUNDS`]
//! unrecorded rounds let gossipsub build its mesh, then each of [`ROUNDS`] rounds is:
//! `generate 1` on node 0; the instant its answer arrives is the start (the block is
//! published only once stored, so it cannot be forwarded much earlier than that); one
//! thread per node 1..4 polls `getbestblockhash` over a kept-alive HTTP connection every
//! [`POLL_INTERVAL`] (plus the round trip) and notes the first instant it reports the new
//! hash. Latency = that instant − the start. The printed poll period is the real
//! granularity (the sleep plus one RPC round trip): every figure is late by up to one
//! period, half of it on average. Median and p95 (nearest rank) are given per node and
//! over all (block, node) pairs.
//!
//! **Sync versus local connect.** One chain of [`SYNC_BLOCKS`] regtest blocks is built
//! in-process with `cairn_core`'s `TestChain` before anything is timed: a fan-out block,
//! then blocks of [`TXS_PER_BLOCK`] signed 1-input 2-output spends each. The same blocks
//! are then connected three ways, each into an empty chain:
//!
//! 1. *in-process*: `ChainState::accept_block` over the node's `RocksStore` in a temporary
//!    directory, as `benches/throughput.rs` does: consensus and storage alone (and, for
//!    scale, over a `MemoryStore`: consensus alone, no disk);
//! 2. *RPC connect*: a fresh node with no peers gets every block by `submitblock`, in
//!    order, one call at a time over one kept-alive connection (hex encoded beforehand):
//!    the node's own connect path (with its tx index and mempool update) plus one HTTP
//!    round trip per block;
//! 3. *sync*: another fresh node, started with `--peer` = the node of (2), which by then
//!    holds the whole chain; timed from its `ready` line until `getblockcount` (polled every
//!    [`SYNC_POLL`]) reaches the tip: dial, handshake, `GetHeaders`, then `GetBlocks`
//!    batches, each connected as it arrives.
//!
//! The ratios sync ÷ RPC connect and sync ÷ in-process are the figures to compare across
//! machines and commits; the absolute rates move with the machine and its load. The store
//! syncs two `WriteBatch`es per block, so where an fsync costs milliseconds every
//! disk-backed rate is close to 1 / (2 fsyncs) and the ratios sit near 1; the `MemoryStore`
//! line shows how much of a block's time is consensus work. With two
//! cores, the node processes, the pollers and this process share the CPU, so the
//! latencies include scheduling delays.

use cairn_core::chain::ChainState;
use cairn_core::store::ChainStore;
use cairn_core::testkit::SpendWorkload;
use cairn_core::{Block, ChainParams, ImportOutcome, MemoryStore};
use cairn_node::store::RocksStore;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[allow(dead_code)] // the integration tests use more of the harness than this bench does
#[path = "../tests/it/harness.rs"]
mod harness;

use harness::{Node, NodeOpts, wait_until};

/// Nodes in the propagation line (node 0 mines; nodes 1.. are 1.. hops away).
const LINE_NODES: usize = 5;
/// Recorded propagation rounds (one block each).
const ROUNDS: usize = 50;
/// Unrecorded rounds first, while gossipsub grafts its mesh.
const WARMUP_ROUNDS: usize = 3;
/// Pause between the pollers' `getbestblockhash` calls.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Pause between rounds, so that rounds never overlap.
const ROUND_GAP: Duration = Duration::from_millis(100);
/// Longest wait for one block to reach every node.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the expected links and their handshakes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Blocks of the synced chain (the fan-out block included).
const SYNC_BLOCKS: usize = 2000;
/// Spends in every block after the fan-out block.
const TXS_PER_BLOCK: usize = 4;
/// Coins each of the ten genesis allocations is split into by the fan-out block.
const FAN_OUT: usize = 20;
/// Fee of every generated spend, in base units.
const FEE: u64 = 1000;
/// Pause between `getblockcount` calls while the sync node catches up.
const SYNC_POLL: Duration = Duration::from_millis(10);
/// Longest wait for the sync node to reach the tip.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

fn main() {
    // `cargo bench` passes `--bench` (and any filter); this bench takes no options.
    let started = Instant::now();
    let line = propagation(Topology::Line);
    let discovered = propagation(Topology::Discovered);
    let sync = sync();
    println!("\nsummary of `cargo bench -p cairn-node --bench propagation`");
    print_propagation(&line);
    print_propagation(&discovered);
    print_sync(&sync);
    println!("  total bench time {:.1?}", started.elapsed());
}

// ----- JSON-RPC over a kept-alive connection -----------------------------------------------

/// A JSON-RPC client of one node that keeps its HTTP connection alive between calls (the
/// harness opens a new connection per call, which would dominate a 1 ms poll).
struct Client {
    agent: ureq::Agent,
    url: String,
    auth: String,
}

impl Client {
    fn new(node: &Node) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            agent,
            url: format!("http://{}/", node.rpc_addr),
            auth: node.auth(),
        }
    }

    /// Calls a method that must succeed.
    fn call(&self, method: &str, params: Value) -> Value {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let text = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Authorization", &self.auth)
            .send(body)
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap_or_else(|e| panic!("{method}: HTTP round trip failed: {e}"));
        let mut answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method}: non-JSON answer: {e}: {text}"));
        if let Some(err) = answer.get("error").filter(|e| !e.is_null()) {
            panic!("{method} failed: {err}");
        }
        answer["result"].take()
    }

    fn best_hash(&self) -> String {
        string(self.call("getbestblockhash", json!([])))
    }

    fn height(&self) -> u64 {
        self.call("getblockcount", json!([]))
            .as_u64()
            .expect("getblockcount is a number")
    }
}

fn string(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => panic!("expected a string, got {other}"),
    }
}

// ----- propagation -------------------------------------------------------------------------

/// What one poller saw: the first instant each tip hash was reported, and its pace.
#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
    polls: u64,
    polling: Duration,
}

/// How the five nodes are linked.
#[derive(Clone, Copy, PartialEq)]
enum Topology {
    /// Node k peers with node k-1 only: every other pair has banned each other
    /// (`setban … add`), since Kademlia discovery would otherwise link them.
    Line,
    /// Node k is started with `--peer` = node k-1, and discovery does the rest.
    Discovered,
}

impl Topology {
    fn describe(self) -> &'static str {
        match self {
            Topology::Line => {
                "a line: node k peers with node k-1, every other pair banned (`setban`)"
            }
            Topology::Discovered => {
                "as discovered: node k started with `--peer` node k-1, Kademlia adds the rest"
            }
        }
    }
}

struct Propagation {
    topology: Topology,
    /// Handshaken peers of each node while the rounds ran.
    degrees: Vec<usize>,
    /// Latency in ms of each recorded round, by follower (index 0 = node 1).
    by_node: Vec<Vec<f64>>,
    /// `generate 1` round trips, ms.
    generate_ms: Vec<f64>,
    /// Mean poll period of each poller, ms.
    poll_period_ms: Vec<f64>,
}

fn propagation(topology: Topology) -> Propagation {
    eprintln!(
        "propagation: starting {LINE_NODES} nodes, {}",
        topology.describe()
    );
    let mut nodes: Vec<Node> = Vec::with_capacity(LINE_NODES);
    for k in 0..LINE_NODES {
        let peers = match nodes.last() {
            Some(prev) => vec![prev.p2p.clone().expect("nodes listen")],
            None => vec![],
        };
        let node = Node::start(NodeOpts {
            peers,
            ..NodeOpts::default()
        });
        if topology == Topology::Line {
            for other in nodes.iter().take(k.saturating_sub(1)) {
                ban(&node, other);
                ban(other, &node);
            }
        }
        eprintln!("  node {k}: {}", node.peer_id);
        nodes.push(node);
    }
    let expected = |k: usize| -> Vec<String> {
        (0..LINE_NODES)
            .filter(|&j| j != k && (topology == Topology::Discovered || j.abs_diff(k) == 1))
            .map(|j| nodes[j].peer_id.clone())
            .collect()
    };
    let settled = wait_until(CONNECT_TIMEOUT, || {
        (0..LINE_NODES).all(|k| {
            let mut peers = handshaken_peers(&nodes[k]);
            let mut want = expected(k);
            peers.sort();
            want.sort();
            peers == want
        })
    });
    let degrees = || -> Vec<usize> { nodes.iter().map(|n| handshaken_peers(n).len()).collect() };
    match topology {
        Topology::Line => assert!(settled, "the line did not form: degrees {:?}", degrees()),
        // Not an error: the figures then describe whatever discovery built.
        Topology::Discovered if !settled => {
            eprintln!(
                "  discovery did not link every pair: degrees {:?}",
                degrees()
            )
        }
        Topology::Discovered => {}
    }
    eprintln!("  links handshaken, degrees {:?}", degrees());

    let miner = Client::new(&nodes[0]);
    let followers = &nodes[1..];
    let seen: Vec<Mutex<Seen>> = followers.iter().map(|_| Mutex::default()).collect();
    let stop = AtomicBool::new(false);
    let mut by_node = vec![Vec::with_capacity(ROUNDS); followers.len()];
    let mut generate_ms = Vec::with_capacity(ROUNDS);

    std::thread::scope(|scope| {
        for (node, seen) in followers.iter().zip(&seen) {
            let client = Client::new(node);
            let stop = &stop;
            scope.spawn(move || poll_tips(&client, stop, seen));
        }
        // Every poller's assertions fail loudly; stop them whatever happens here.
        let _stop_pollers = StopOnDrop(&stop);
        for round in 0..WARMUP_ROUNDS + ROUNDS {
            let before = Instant::now();
            let hashes = miner.call("generate", json!([1]));
            let start = Instant::now();
            let hash = string(hashes[0].clone());
            let deadline = start + ROUND_TIMEOUT;
            let arrivals: Vec<Instant> = loop {
                let arrived: Option<Vec<Instant>> = seen
                    .iter()
                    .map(|s| s.lock().expect("poller alive").first.get(&hash).copied())
                    .collect();
                if let Some(arrived) = arrived {
                    break arrived;
                }
                assert!(
                    Instant::now() < deadline,
                    "block {hash} did not reach every node within {ROUND_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            };
            let latencies: Vec<f64> = arrivals.iter().map(|at| signed_ms(*at, start)).collect();
            if round < WARMUP_ROUNDS {
                eprintln!("  warm-up round {round}: {}", fmt_ms(&latencies));
            } else {
                generate_ms.push(ms(start - before));
                for (node, latency) in latencies.into_iter().enumerate() {
                    by_node[node].push(latency);
                }
            }
            std::thread::sleep(ROUND_GAP);
        }
    });

    let after = degrees();
    if topology == Topology::Line {
        assert_eq!(
            after,
            (0..LINE_NODES)
                .map(|k| expected(k).len())
                .collect::<Vec<_>>(),
            "the line changed during the rounds"
        );
    }
    let poll_period_ms = seen
        .iter()
        .map(|s| {
            let s = s.lock().expect("poller finished");
            ms(s.polling) / s.polls.max(1) as f64
        })
        .collect();
    eprintln!("  {ROUNDS} rounds recorded, degrees after {after:?}; stopping the nodes");
    Propagation {
        topology,
        degrees: after,
        by_node,
        generate_ms,
        poll_period_ms,
    }
}

/// `node` bans `other` for an hour (closing any connection and refusing new ones).
fn ban(node: &Node, other: &Node) {
    node.rpc("setban", json!([other.peer_id, "add", 3600]));
}

/// The peers of `node` whose status it has received.
fn handshaken_peers(node: &Node) -> Vec<String> {
    node.rpc("getpeerinfo", json!([]))
        .as_array()
        .expect("getpeerinfo is an array")
        .iter()
        .filter(|p| !p["best_height"].is_null())
        .map(|p| p["peer_id"].as_str().expect("peer id").to_owned())
        .collect()
}

/// Sets the flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Polls `getbestblockhash` until `stop`, noting when each hash is first reported.
fn poll_tips(client: &Client, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let started = Instant::now();
    let mut last = String::new();
    let mut polls = 0;
    while !stop.load(Ordering::Relaxed) {
        let hash = client.best_hash();
        let at = Instant::now();
        polls += 1;
        if hash != last {
            seen.lock()
                .expect("reader never panics holding it")
                .first
                .entry(hash.clone())
                .or_insert(at);
            last = hash;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let mut seen = seen.lock().expect("reader never panics holding it");
    seen.polls = polls;
    seen.polling = started.elapsed();
}

// ----- sync versus local connect -----------------------------------------------------------

struct Sync {
    blocks: usize,
    txs: usize,
    kb_per_block: f64,
    /// Blocks per second of each way.
    in_memory: f64,
    in_process: f64,
    rpc_connect: f64,
    sync: f64,
    /// From spawning the sync node to its `ready` line (not part of the sync time).
    sync_node_startup: Duration,
}

fn sync() -> Sync {
    let built = Instant::now();
    let blocks = build_chain();
    let txs: usize = blocks.iter().map(|b| b.txs.len() - 1).sum();
    let bytes: usize = blocks.iter().map(Block::encoded_size).sum();
    let kb_per_block = bytes as f64 / blocks.len() as f64 / 1000.0;
    eprintln!(
        "sync: built {} blocks ({txs} non-coinbase txs, {kb_per_block:.2} kB per block) in {:.1?}",
        blocks.len(),
        built.elapsed()
    );
    let n = blocks.len();
    let tip = blocks.last().expect("a chain").block_hash().to_string();

    // 1. In-process: ChainState over MemoryStore (no disk), then over RocksStore.
    let in_memory = {
        let mut chain = ChainState::open(ChainParams::regtest(), MemoryStore::new())
            .expect("memory store cannot fail");
        let elapsed = connect_all(&mut chain, blocks.clone());
        assert_eq!(chain.tip().hash.to_string(), tip);
        eprintln!("  in-process connect (memory): {n} blocks in {elapsed:.2?}");
        n as f64 / elapsed.as_secs_f64()
    };
    let in_process = {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = RocksStore::open(&dir.path().join("chain")).expect("fresh store opens");
        let mut chain =
            ChainState::open(ChainParams::regtest(), store).expect("genesis is written");
        let elapsed = connect_all(&mut chain, blocks.clone());
        assert_eq!(chain.tip().hash.to_string(), tip);
        eprintln!("  in-process connect (rocksdb): {n} blocks in {elapsed:.2?}");
        n as f64 / elapsed.as_secs_f64()
    };

    // 2. RPC connect: submitblock into a node without peers.
    let source = Node::start(NodeOpts::default());
    let rpc_connect = {
        let hexes: Vec<String> = blocks
            .iter()
            .map(|b| hex::encode(cairn_core::encoding::encode(b)))
            .collect();
        let client = Client::new(&source);
        let start = Instant::now();
        for hex in hexes {
            let answer = client.call("submitblock", json!([hex]));
            assert!(answer.is_null(), "submitblock answered {answer}");
        }
        let elapsed = start.elapsed();
        assert_eq!(client.best_hash(), tip);
        eprintln!("  submitblock connect: {n} blocks in {elapsed:.2?}");
        n as f64 / elapsed.as_secs_f64()
    };

    // 3. Headers-first sync from that node.
    let spawned = Instant::now();
    let syncing = Node::start(NodeOpts {
        peers: vec![source.p2p.clone().expect("nodes listen")],
        ..NodeOpts::default()
    });
    let ready = Instant::now();
    let client = Client::new(&syncing);
    let deadline = ready + SYNC_TIMEOUT;
    while client.height() < n as u64 {
        assert!(
            Instant::now() < deadline,
            "the sync node did not reach height {n} within {SYNC_TIMEOUT:?}"
        );
        std::thread::sleep(SYNC_POLL);
    }
    let elapsed = ready.elapsed();
    assert_eq!(client.best_hash(), tip);
    eprintln!("  headers-first sync: {n} blocks in {elapsed:.2?}");

    Sync {
        blocks: n,
        txs,
        kb_per_block,
        in_memory,
        in_process,
        rpc_connect,
        sync: n as f64 / elapsed.as_secs_f64(),
        sync_node_startup: ready - spawned,
    }
}

/// Accepts `blocks` in order into `chain`, as the node does; returns the time it took.
fn connect_all<S: ChainStore>(chain: &mut ChainState<S>, blocks: Vec<Block>) -> Duration {
    let now = unix_now();
    let start = Instant::now();
    for block in blocks {
        let report = chain.accept_block(block, now).expect("store works");
        assert_eq!(report.outcome, ImportOutcome::Active);
    }
    start.elapsed()
}

/// A chain of [`SYNC_BLOCKS`] regtest blocks: one fan-out block, then blocks of
/// [`TXS_PER_BLOCK`] spends of the oldest confirmed coins, each into two.
fn build_chain() -> Vec<Block> {
    let mut work = SpendWorkload::new(ChainParams::regtest(), FAN_OUT, FEE);
    work.add_blocks(SYNC_BLOCKS - 1, TXS_PER_BLOCK);
    work.blocks
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

// ----- figures ---------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `at − start` in ms, negative if `at` is earlier.
fn signed_ms(at: Instant, start: Instant) -> f64 {
    match at.checked_duration_since(start) {
        Some(d) => ms(d),
        None => -ms(start - at),
    }
}

fn fmt_ms(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.1} ms"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Median (mean of the middle two for an even count) and p95 (nearest rank) of `values`.
fn median_p95(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    assert!(n > 0, "no samples");
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let rank = (0.95 * n as f64).ceil() as usize;
    (median, sorted[rank.max(1) - 1])
}

fn print_propagation(p: &Propagation) {
    println!(
        "\npropagation: {LINE_NODES} nodes on 127.0.0.1, {}; degrees {:?}\n  \
         {ROUNDS} blocks mined on node 0 by `generate 1`; latency = first `getbestblockhash` \
         showing the block − `generate` answered\n  \
         poll period {} ms (sleep {POLL_INTERVAL:?} + round trip): each figure is late by up \
         to one period",
        p.topology.describe(),
        p.degrees,
        p.poll_period_ms
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    let row = |label: &str, values: &[f64]| {
        let (median, p95) = median_p95(values);
        println!("  {label:<28} median {median:>6.1} ms   p95 {p95:>6.1} ms");
    };
    row("generate 1 (RPC)", &p.generate_ms);
    let last = p.by_node.len();
    for (i, latencies) in p.by_node.iter().enumerate() {
        let k = i + 1;
        let label = match p.topology {
            Topology::Line if k == 1 => "node 1 (1 hop)".to_owned(),
            Topology::Line if k == last => format!("node {k} ({k} hops, farthest)"),
            Topology::Line => format!("node {k} ({k} hops)"),
            Topology::Discovered => format!("node {k}"),
        };
        row(&label, latencies);
    }
    let all: Vec<f64> = p.by_node.iter().flatten().copied().collect();
    row(&format!("all {} (block, node) pairs", all.len()), &all);
    if p.topology == Topology::Line {
        let per_hop: Vec<f64> = p.by_node[last - 1]
            .iter()
            .map(|v| v / last as f64)
            .collect();
        row("node 4 ÷ 4 hops", &per_hop);
    }
}

fn print_sync(s: &Sync) {
    println!(
        "\nsync: {} blocks ({} non-coinbase txs, {:.2} kB per block), each way into an empty \
         chain",
        s.blocks, s.txs, s.kb_per_block
    );
    let row = |label: &str, rate: f64| {
        println!(
            "  {label:<46} {rate:>7.0} blocks/s  {:>6.2} ms/block",
            1000.0 / rate
        );
    };
    row("in-process connect, MemoryStore (no disk)", s.in_memory);
    row("in-process connect, RocksStore", s.in_process);
    row("RPC connect (submitblock, one at a time)", s.rpc_connect);
    row("headers-first sync from a peer", s.sync);
    println!(
        "  (sync node start-up {:.2?}, not included)\n  \
         ratio sync ÷ RPC connect                 {:.3}\n  \
         ratio sync ÷ in-process RocksStore       {:.3}\n  \
         ratio sync ÷ in-process MemoryStore      {:.3}",
        s.sync_node_startup,
        s.sync / s.rpc_connect,
        s.sync / s.in_process,
        s.sync / s.in_memory,
    );
}
