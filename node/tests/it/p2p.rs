//! The peer-to-peer network between real `cairn node` processes on 127.0.0.1: gossip,
//! headers-first sync, partitions and their healing, misbehaving peers, peer management
//! RPCs. The misbehaving peers are small libp2p clients built here from the node's own
//! protocol module, so they speak exactly what the node speaks until they cheat.

use crate::harness::{Node, NodeOpts, genesis_coin, regtest, spend, wait_until};
use cairn_core::params::dev_secret_key;
use cairn_core::pow::Target;
use cairn_core::{Block, BlockHeader, Transaction, TxOut, encoding};
use cairn_node::network::behaviour::{self, Behaviour, BehaviourEvent};
use cairn_node::network::protocol::{self, Status, SyncRequest, SyncResponse, Topics};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, noise, tcp, yamux};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(60);

fn p2p(node: &Node) -> String {
    node.p2p.clone().expect("the node listens for peers")
}

fn peers_of(node: &Node) -> Vec<Value> {
    node.rpc("getpeerinfo", json!([]))
        .as_array()
        .expect("getpeerinfo is an array")
        .clone()
}

fn connected(node: &Node, other: &Node) -> bool {
    peers_of(node)
        .iter()
        .any(|p| p["peer_id"] == other.peer_id.as_str())
}

fn utxo_hash(node: &Node) -> String {
    node.rpc("gettxoutsetinfo", json!([]))["hash_serialized"]
        .as_str()
        .expect("hash")
        .to_owned()
}

fn mempool(node: &Node) -> Vec<String> {
    serde_json::from_value(node.rpc("getrawmempool", json!([]))).expect("txids")
}

fn banned(node: &Node) -> Vec<Value> {
    node.rpc("listbanned", json!([]))
        .as_array()
        .expect("listbanned is an array")
        .clone()
}

/// Waits until every node has the same tip and UTXO set hash; returns the tip.
fn converge(nodes: &[&Node]) -> String {
    let ok = wait_until(CONVERGE, || {
        let tips: Vec<String> = nodes.iter().map(|n| n.tip()).collect();
        tips.windows(2).all(|w| w[0] == w[1])
    });
    assert!(
        ok,
        "nodes did not converge: {:?}\n{}",
        nodes
            .iter()
            .map(|n| (n.height(), n.tip()))
            .collect::<Vec<_>>(),
        logs(nodes)
    );
    let hashes: Vec<String> = nodes.iter().map(|n| utxo_hash(n)).collect();
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "same tip, different UTXO sets: {hashes:?}"
    );
    nodes[0].tip()
}

fn logs(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| {
            let log = n.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            format!(
                "--- {} ---\n{}",
                n.peer_id,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_connected(a: &Node, b: &Node) {
    assert!(
        wait_until(CONVERGE, || connected(a, b) && connected(b, a)),
        "{} and {} did not connect\n{}",
        a.peer_id,
        b.peer_id,
        logs(&[a, b])
    );
}

fn send(node: &Node, tx: &Transaction) -> String {
    node.rpc(
        "sendrawtransaction",
        json!([hex::encode(encoding::encode(tx))]),
    )
    .as_str()
    .expect("txid")
    .to_owned()
}

/// Whether `node` holds the body of block `hash`.
fn knows(node: &Node, hash: &str) -> bool {
    node.try_rpc("getblock", json!([hash, 1])).is_ok()
}

#[test]
fn blocks_mined_before_any_peer_reach_peers_that_connect_later_even_at_equal_work() {
    // Two lone nodes each mine one block: their gossip finds no subscriber. Once they
    // connect, neither has more work than the other, so sync fetches nothing: only
    // publishing again when a peer subscribes tells each about the other's block.
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        extra_args: vec![
            "--miner-address".into(),
            regtest().config.dev_accounts[1].address.clone(),
        ],
        ..NodeOpts::default()
    });
    let block_a = a.generate(1).remove(0);
    let block_b = b.generate(1).remove(0);
    assert_ne!(block_a, block_b);
    a.rpc("addnode", json!([p2p(&b), "add"]));
    wait_connected(&a, &b);
    assert!(
        wait_until(CONVERGE, || knows(&a, &block_b) && knows(&b, &block_a)),
        "the lone blocks never crossed\n{}",
        logs(&[&a, &b])
    );
    // Equal work keeps the first seen: each stays on its own block, the other's a fork.
    assert_eq!(a.tip(), block_a);
    assert_eq!(b.tip(), block_b);
}

#[test]
fn three_nodes_converge_and_a_transaction_sent_to_one_is_mined_by_another() {
    let a = Node::start(NodeOpts::default());
    // A line: a — b — c, so everything c learns from a was forwarded by b.
    let b = Node::start(NodeOpts {
        peers: vec![p2p(&a)],
        ..Default::default()
    });
    let c = Node::start(NodeOpts {
        peers: vec![p2p(&b)],
        ..Default::default()
    });
    wait_connected(&a, &b);
    wait_connected(&b, &c);

    a.generate(10);
    let tip = converge(&[&a, &b, &c]);
    assert_eq!(c.height(), 10);

    let (payer, payee) = (dev_secret_key(1), dev_secret_key(2));
    let tx = spend(&payer, &[genesis_coin(&a, &payer)], &payee, 5_000_000, 1000);
    let txid = send(&a, &tx);
    assert!(
        wait_until(CONVERGE, || mempool(&c).contains(&txid)),
        "tx did not reach c\n{}",
        logs(&[&a, &b, &c])
    );
    let mined = c.generate(1);
    let new_tip = converge(&[&a, &b, &c]);
    assert_eq!(new_tip, mined[0]);
    assert_ne!(new_tip, tip);
    let block = a.rpc("getblock", json!([new_tip, 1]));
    assert!(
        block["tx"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == txid.as_str()),
        "c mined the tx: {block}"
    );
    assert!(
        wait_until(CONVERGE, || mempool(&a).is_empty()
            && mempool(&b).is_empty()),
        "confirmed tx left the mempools"
    );

    // Kademlia: a and c find each other through b although neither named the other.
    assert!(
        wait_until(CONVERGE, || connected(&a, &c)),
        "a and c never met\n{}",
        logs(&[&a, &b, &c])
    );

    // getpeerinfo fields of INTERFACE.md, with sensible values.
    assert!(wait_until(CONVERGE, || peers_of(&b)
        .iter()
        .all(|p| p["best_height"] == 11 && p["ping_ms"].is_number())));
    for p in peers_of(&b) {
        for field in [
            "peer_id",
            "addr",
            "inbound",
            "connected_since",
            "best_height",
            "ping_ms",
            "misbehavior",
        ] {
            assert!(p.get(field).is_some(), "getpeerinfo lacks {field}: {p}");
        }
        assert_eq!(p["misbehavior"], 0);
        assert!(
            p["addr"]
                .as_str()
                .unwrap()
                .starts_with("/ip4/127.0.0.1/tcp/")
        );
    }
}

#[test]
fn partition_heals_to_the_heavier_chain_and_the_losing_side_keeps_its_transactions() {
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        peers: vec![p2p(&a)],
        ..Default::default()
    });
    let c = Node::start(NodeOpts {
        peers: vec![p2p(&a), p2p(&b)],
        ..Default::default()
    });
    wait_connected(&a, &b);
    wait_connected(&a, &c);
    wait_connected(&b, &c);
    a.generate(3);
    let before = converge(&[&a, &b, &c]);

    // Partition {a, b} | {c}: disconnect and ban across the groups, both directions.
    for (node, other) in [(&a, &c), (&b, &c), (&c, &a), (&c, &b)] {
        node.rpc("setban", json!([other.peer_id, "add"]));
    }
    assert!(wait_until(CONVERGE, || peers_of(&c).is_empty()
        && peers_of(&a).len() == 1
        && peers_of(&b).len() == 1));

    // The minority mines a block with a transaction in it; the majority mines more.
    let (payer, payee) = (dev_secret_key(3), dev_secret_key(4));
    let tx = spend(&payer, &[genesis_coin(&c, &payer)], &payee, 7_000_000, 1000);
    let txid = send(&c, &tx);
    let losing = c.generate(2);
    a.generate(4);
    let winning = converge(&[&a, &b]);
    assert_eq!(c.height(), 5);
    assert_eq!(a.height(), 7);
    assert_ne!(c.tip(), winning);

    // Heal: lift the bans and reconnect.
    for (node, other) in [(&a, &c), (&b, &c), (&c, &a), (&c, &b)] {
        node.rpc("setban", json!([other.peer_id, "remove"]));
    }
    c.rpc("addnode", json!([p2p(&a), "add"]));
    let healed = converge(&[&a, &b, &c]);
    assert_eq!(healed, winning);
    assert_ne!(healed, before);

    // The losing branch is a valid fork on c and its transaction is back in c's mempool.
    let tips = c.rpc("getchaintips", json!([]));
    let fork = tips
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["hash"] == losing[1].as_str())
        .unwrap_or_else(|| panic!("losing tip in {tips}"));
    assert_eq!(fork["status"], "valid-fork", "{tips}");
    assert_eq!(fork["branchlen"], 2);
    assert!(
        wait_until(CONVERGE, || mempool(&c).contains(&txid)),
        "the losing side's tx returned to its mempool"
    );
    assert!(banned(&a).is_empty() && banned(&c).is_empty());
}

#[test]
fn late_joiner_syncs_thousands_of_blocks_headers_first() {
    let a = Node::start(NodeOpts::default());
    let blocks = 2100; // more than one full headers reply (2000)
    let started = Instant::now();
    assert_eq!(a.generate(blocks).len(), blocks as usize);
    eprintln!("mined {blocks} blocks in {:?}", started.elapsed());

    let started = Instant::now();
    let late = Node::start(NodeOpts {
        peers: vec![p2p(&a)],
        ..Default::default()
    });
    let ok = wait_until(Duration::from_secs(240), || late.height() == blocks as u64);
    assert!(
        ok,
        "late joiner stuck at {}\n{}",
        late.height(),
        logs(&[&a, &late])
    );
    eprintln!("synced {blocks} blocks in {:?}", started.elapsed());
    converge(&[&a, &late]);
    assert!(
        late.log().contains("synced from peer"),
        "caught up by sync, not gossip"
    );
    // The joiner's new blocks still reach the old node by gossip.
    let mined = late.generate(1);
    assert!(wait_until(CONVERGE, || a.tip() == mined[0]));
}

#[test]
fn node_of_another_network_is_disconnected_and_not_redialled() {
    let dir = tempfile::tempdir().unwrap();
    let other_genesis = dir.path().join("other.json");
    let mut config = regtest().config;
    config.network_id = "cairn-other".into();
    std::fs::write(&other_genesis, serde_json::to_vec(&config).unwrap()).unwrap();

    let a = Node::start(NodeOpts::default());
    let other = Node::start(NodeOpts {
        peers: vec![p2p(&a)],
        genesis: Some(other_genesis),
        ..Default::default()
    });
    assert!(
        wait_until(CONVERGE, || other.log().contains("another network")
            && a.log().contains("another network")),
        "{}",
        logs(&[&a, &other])
    );
    assert!(wait_until(CONVERGE, || peers_of(&a).is_empty()
        && peers_of(&other).is_empty()));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        peers_of(&other).is_empty(),
        "redialled a peer of another network"
    );
    assert_eq!(
        other.log().matches("peer connected").count(),
        1,
        "{}",
        other.log()
    );
}

#[test]
fn peer_management_rpcs() {
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        peers: vec![p2p(&a)],
        ..Default::default()
    });
    wait_connected(&a, &b);

    // Parameter errors are -32602 with a message that says what is wrong.
    for (method, params) in [
        ("setban", json!(["not-a-peer", "add"])),
        ("setban", json!([b.peer_id, "ban"])),
        ("setban", json!([b.peer_id, "add", -1])),
        ("setnetworkactive", json!(["yes"])),
        ("setnetworkactive", json!([])),
        ("addnode", json!(["not a multiaddr"])),
        ("addnode", json!([p2p(&b), "sometimes"])),
        ("disconnectnode", json!([])),
        ("getpeerinfo", json!([1])),
    ] {
        let e = a.try_rpc(method, params.clone()).expect_err(method);
        assert_eq!(e.code, -32602, "{method} {params}: {e:?}");
        assert!(!e.message.is_empty());
    }
    let unknown = PeerId::random().to_base58();
    assert_eq!(
        a.try_rpc("disconnectnode", json!([unknown]))
            .unwrap_err()
            .code,
        -29
    );
    assert_eq!(
        a.try_rpc("setban", json!([unknown, "remove"]))
            .unwrap_err()
            .code,
        -30
    );

    // disconnectnode: b redials a, its static peer, within the first backoff.
    a.rpc("disconnectnode", json!([b.peer_id]));
    assert!(wait_until(CONVERGE, || b
        .log()
        .contains("peer disconnected")));
    wait_connected(&a, &b);

    // setnetworkactive false: everyone disconnected, nothing dialled; true: back.
    assert_eq!(b.rpc("setnetworkactive", json!([false])), json!(false));
    assert!(wait_until(CONVERGE, || peers_of(&a).is_empty()
        && peers_of(&b).is_empty()));
    std::thread::sleep(Duration::from_secs(2));
    assert!(peers_of(&b).is_empty(), "an inactive node dialled out");
    a.rpc("addnode", json!([p2p(&b), "onetry"]));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        peers_of(&b).is_empty(),
        "an inactive node accepted a connection"
    );
    assert_eq!(b.rpc("setnetworkactive", json!([true])), json!(true));
    wait_connected(&a, &b);

    // setban with a time limit: banned, listed with its reason, released when it ends.
    a.rpc("setban", json!([b.peer_id, "add", 3]));
    let bans = banned(&a);
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0]["peer_id"], b.peer_id.as_str());
    assert_eq!(bans[0]["reason"], "manually banned");
    assert!(bans[0]["banned_until"].as_u64().unwrap() > 0);
    assert!(wait_until(CONVERGE, || peers_of(&a).is_empty()));
    assert_eq!(
        a.try_rpc("addnode", json!([p2p(&b)])).unwrap_err().code,
        -29,
        "adding a banned peer is refused"
    );
    assert!(
        wait_until(CONVERGE, || banned(&a).is_empty()),
        "ban expired"
    );
    wait_connected(&a, &b);
}

// ----- misbehaving peers ------------------------------------------------------------------

/// The status an honest node on genesis would send.
fn genesis_status() -> Status {
    let params = regtest();
    Status {
        protocol_version: protocol::PROTOCOL_VERSION,
        network_id: params.network_id.clone(),
        genesis_hash: params.genesis_hash,
        params_hash: params.params_hash,
        best_hash: params.genesis_hash,
        best_height: 0,
        chainwork: cairn_core::Work::ZERO,
        user_agent: "cairn-test-peer".into(),
    }
}

/// Polls a test swarm for `duration`, answering the node's status requests like an
/// honest peer; returns whether `stop` became true.
async fn pump(
    swarm: &mut Swarm<Behaviour>,
    duration: Duration,
    mut stop: impl FnMut(&SwarmEvent<BehaviourEvent>) -> bool,
) -> bool {
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request: Ok(SyncRequest::Status(_)), channel, .. }, ..
                })) = event {
                    let _ = swarm.behaviour_mut().sync.send_response(channel, SyncResponse::Status(genesis_status()));
                    continue;
                }
                if stop(&event) {
                    return true;
                }
            }
            _ = &mut deadline => return false,
        }
    }
}

/// A test peer speaking the node's protocols, connected to `node` and subscribed.
async fn gossiping_peer(node: &Node) -> Swarm<Behaviour> {
    let mut swarm =
        behaviour::build_swarm(Keypair::generate_ed25519(), &regtest(), false).expect("test swarm");
    swarm
        .dial(p2p(node).parse::<Multiaddr>().unwrap())
        .expect("dial");
    let node_id: PeerId = node.peer_id.parse().unwrap();
    let blocks = Topics::new(&regtest().network_id).blocks.hash();
    let subscribed = pump(&mut swarm, Duration::from_secs(20), |e| {
        matches!(e, SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }))
            if *peer_id == node_id && *topic == blocks)
    })
    .await;
    assert!(
        subscribed,
        "the node did not subscribe the test peer to blocks"
    );
    swarm
}

/// A block on `parent` whose hash does not meet its target.
fn invalid_pow_block(parent: &str, height: u32) -> Block {
    let params = regtest();
    let coinbase = Transaction {
        version: 1,
        inputs: vec![],
        outputs: vec![TxOut {
            amount: params.subsidy(height),
            address: dev_secret_key(9).pubkey_hash(),
        }],
        lock_height: height,
        data: b"cheat".to_vec(),
    };
    let mut header = BlockHeader {
        version: 1,
        prev_blockhash: parent.parse().unwrap(),
        merkle_root: cairn_core::merkle::merkle_root(&[coinbase.wtxid()]),
        time: cairn_node::clock::Clock::now_secs(&cairn_node::clock::SystemClock) as u32,
        bits: params.initial_bits,
        nonce: 0,
    };
    let target = Target::from_compact(header.bits).unwrap();
    while target.is_met_by(&header.block_hash()) {
        header.nonce += 1;
    }
    Block {
        header,
        txs: vec![coinbase],
    }
}

fn ban_of(node: &Node, peer: &PeerId) -> Option<Value> {
    banned(node)
        .into_iter()
        .find(|b| b["peer_id"] == peer.to_base58().as_str())
}

/// Waits (pumping the swarm) until `node` bans the swarm's peer id; returns how long it took.
async fn until_banned(node: &Node, swarm: &mut Swarm<Behaviour>, limit: Duration) -> Duration {
    let me = *swarm.local_peer_id();
    let started = Instant::now();
    while ban_of(node, &me).is_none() {
        assert!(
            started.elapsed() < limit,
            "not banned within {limit:?}\n{}",
            node.log()
        );
        pump(swarm, Duration::from_millis(20), |_| false).await;
    }
    started.elapsed()
}

/// Request-response codec that writes whatever bytes it is given: to send frames no honest
/// codec would.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        use futures::AsyncReadExt;
        let mut out = Vec::new();
        io.take(1024).read_to_end(&mut out).await?;
        Ok(out)
    }
    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        use futures::AsyncWriteExt;
        io.write_all(&req).await?;
        io.close().await
    }
    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn misbehaving_peers_are_banned_at_once_and_honest_peers_are_unaffected() {
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        peers: vec![p2p(&a)],
        ..Default::default()
    });
    wait_connected(&a, &b);
    a.generate(3);
    let before = converge(&[&a, &b]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topics = Topics::new(&regtest().network_id);
    let limit = Duration::from_secs(1);

    rt.block_on(async {
        // 1. An invalid proof of work over gossip: a consensus offense, banned at once.
        let mut cheat = gossiping_peer(&a).await;
        let block = invalid_pow_block(&before, 4);
        cheat.behaviour_mut().gossipsub.publish(topics.blocks.clone(), encoding::encode(&block)).expect("published");
        let took = until_banned(&a, &mut cheat, Duration::from_secs(10)).await;
        eprintln!("invalid-PoW gossip peer banned after {took:?}");
        assert!(took <= limit, "banned after {took:?}");
        let ban = ban_of(&a, cheat.local_peer_id()).unwrap();
        assert!(ban["reason"].as_str().unwrap().contains("high-hash"), "{ban}");
        // Its connection is closed, and a new one is refused at once.
        let node_id: PeerId = a.peer_id.parse().unwrap();
        assert!(!peers_of(&a).iter().any(|p| p["peer_id"] == cheat.local_peer_id().to_base58().as_str()));
        cheat.dial(p2p(&a).parse::<Multiaddr>().unwrap()).unwrap();
        let closed = pump(&mut cheat, Duration::from_secs(5), |e| {
            matches!(e, SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if *peer_id == node_id)
                || matches!(e, SwarmEvent::OutgoingConnectionError { .. })
        })
        .await;
        assert!(closed, "a banned peer's new connection was not closed");

        // 2. Undecodable gossip, twice: malformed messages add up to a ban.
        let mut garbler = gossiping_peer(&a).await;
        for garbage in [&b"\xde\xad\xbe\xef not a block"[..], &[0xff; 300][..]] {
            garbler.behaviour_mut().gossipsub.publish(topics.blocks.clone(), garbage.to_vec()).expect("published");
        }
        let took = until_banned(&a, &mut garbler, Duration::from_secs(10)).await;
        eprintln!("garbage gossip peer banned after {took:?}");
        assert!(took <= limit, "banned after {took:?}");
        assert!(ban_of(&a, garbler.local_peer_id()).unwrap()["reason"].as_str().unwrap().contains("malformed"));

        // 3. On the sync protocol: a frame announcing 100 MB, then garbage bytes.
        let key = Keypair::generate_ed25519();
        let raw_id = key.public().to_peer_id();
        let mut raw = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|_| {
                request_response::Behaviour::<RawCodec>::new([(protocol::SYNC_PROTOCOL, ProtocolSupport::Outbound)], request_response::Config::default())
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        raw.dial(p2p(&a).parse::<Multiaddr>().unwrap()).unwrap();
        let up = async {
            loop {
                if let SwarmEvent::ConnectionEstablished { .. } = raw.select_next_some().await {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), up).await.expect("raw peer connected");
        let mut oversized = (100u32 * 1024 * 1024).to_le_bytes().to_vec();
        oversized.extend_from_slice(&[0; 64]);
        let mut garbage = 40u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xee; 40]);
        raw.behaviour_mut().send_request(&node_id, oversized);
        raw.behaviour_mut().send_request(&node_id, garbage);
        let started = Instant::now();
        while ban_of(&a, &raw_id).is_none() {
            assert!(started.elapsed() < Duration::from_secs(10), "raw peer not banned\n{}", a.log());
            let _ = tokio::time::timeout(Duration::from_millis(20), raw.select_next_some()).await;
        }
        let took = started.elapsed();
        eprintln!("oversized+garbage sync peer banned after {took:?}");
        assert!(took <= limit, "banned after {took:?}");
        assert!(ban_of(&a, &raw_id).unwrap()["reason"].as_str().unwrap().contains("malformed"));
    });

    // The honest peer stayed connected with a clean record, and nothing was lost.
    assert!(connected(&a, &b) && connected(&b, &a));
    assert!(
        peers_of(&a).iter().all(|p| p["misbehavior"] == 0),
        "{:?}",
        peers_of(&a)
    );
    assert_eq!(a.tip(), before);
    assert_eq!(banned(&a).len(), 3);
    assert!(banned(&b).is_empty());
    let mined = a.generate(2);
    assert_eq!(converge(&[&a, &b]), mined[1]);
}
