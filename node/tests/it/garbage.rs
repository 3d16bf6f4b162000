//! Garbage on the p2p port: many TCP connections writing random bytes at a node while an
//! honest peer is connected and mining. The node stays up, keeps the honest peer (same
//! connection, never banned), follows its blocks, answers RPC, and its memory stays bounded.

use crate::harness::{Node, NodeOpts, rss_kb, wait_until};
use rand::RngCore;
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `127.0.0.1:PORT` of a `/ip4/127.0.0.1/tcp/PORT/...` multiaddr.
fn tcp_addr(multiaddr: &str) -> String {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    assert_eq!((parts[1], parts[3]), ("ip4", "tcp"), "{multiaddr}");
    format!("{}:{}", parts[2], parts[4])
}

/// The `getpeerinfo` entry of `peer_id` on `node`.
fn peer_entry(node: &Node, peer_id: &str) -> Option<Value> {
    node.rpc("getpeerinfo", json!([]))
        .as_array()
        .expect("getpeerinfo is an array")
        .iter()
        .find(|p| p["peer_id"] == peer_id)
        .cloned()
}

/// One garbage writer: connects, writes random bytes until the node closes, reconnects,
/// until `share` bytes are written or `until` passes.
fn write_garbage(
    addr: String,
    share: u64,
    until: Instant,
    written: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
) {
    let mut rng = rand::rng();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut mine = 0u64;
    while mine < share && Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect_timeout(
            &addr.parse().expect("socket address"),
            Duration::from_secs(5),
        ) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        while mine < share && Instant::now() < until {
            rng.fill_bytes(&mut chunk);
            match stream.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    mine += n as u64;
                    written.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Floods `target`'s p2p port from `connections` connections with `total` bytes while
/// `honest` (connected to it) mines a block every 200 ms; checks what must hold.
fn flood(connections: usize, total: u64, limit: Duration) {
    let target = Node::start(NodeOpts::default());
    let honest = Node::start(NodeOpts {
        peers: vec![target.p2p.clone().expect("target listens")],
        ..Default::default()
    });
    assert!(
        wait_until(Duration::from_secs(30), || peer_entry(
            &target,
            &honest.peer_id
        )
        .is_some()),
        "honest peer never connected"
    );
    let since = peer_entry(&target, &honest.peer_id).expect("connected")["connected_since"].clone();
    let pid = target.pid().expect("target runs");
    let base = rss_kb(pid).expect("RSS");
    let mut peak = base;
    let addr = tcp_addr(target.p2p.as_deref().expect("p2p address"));
    let written = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + limit;
    let writers: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, written, opened) = (addr.clone(), written.clone(), opened.clone());
            let share = total / connections as u64;
            std::thread::spawn(move || write_garbage(addr, share, until, written, opened))
        })
        .collect();
    let mut mined = 0u64;
    while writers.iter().any(|w| !w.is_finished()) || mined < 3 {
        honest.generate(1);
        mined += 1;
        assert!(target.rpc("getblockcount", json!([])).is_u64());
        peak = peak.max(rss_kb(pid).expect("target still runs"));
        std::thread::sleep(Duration::from_millis(200));
    }
    for w in writers {
        w.join().expect("writer thread");
    }
    let sent = written.load(Ordering::Relaxed);
    eprintln!(
        "garbage: {sent} bytes from {connections} writers ({} TCP connections opened) in \
         {:.1} s; {mined} blocks mined meanwhile; target RSS {base} kB before, peak {peak} kB",
        opened.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert!(
        sent >= total * 9 / 10,
        "only {sent} of {total} bytes written"
    );
    let honest_tip = honest.rpc("getbestblockhash", json!([]));
    assert!(
        wait_until(Duration::from_secs(30), || target
            .rpc("getbestblockhash", json!([]))
            == honest_tip),
        "target did not follow the honest peer's {mined} blocks"
    );
    let entry = peer_entry(&target, &honest.peer_id).expect("honest peer still connected");
    assert_eq!(
        entry["connected_since"], since,
        "honest peer was reconnected"
    );
    let banned = target.rpc("listbanned", json!([]));
    assert!(
        !banned.to_string().contains(&honest.peer_id),
        "honest peer banned: {banned}"
    );
    assert!(
        peak < base + 256 * 1024,
        "RSS grew from {base} kB to {peak} kB"
    );
}

#[test]
fn garbage_on_the_p2p_port_keeps_the_node_and_its_honest_peer() {
    flood(50, 10 * 1024 * 1024, Duration::from_secs(60));
}

#[test]
#[ignore = "heavy: 100 MB of random bytes from 50 connections"]
fn hundred_megabytes_of_garbage_on_the_p2p_port() {
    flood(50, 100 * 1024 * 1024, Duration::from_secs(600));
}
