//! The libp2p behaviour of a Cairn node and the swarm around it: TCP + noise + yamux
//! (with link shaping beneath yamux, see [`super::shaping`]),
//! gossipsub (blocks and transactions), the sync request-response protocol, identify,
//! ping, Kademlia, optional mDNS, a block list for bans and connection limits.
//!
//! [`build_swarm`] is public so that tests can stand up a peer that speaks exactly the
//! node's protocols.

use super::NetworkError;
use super::codec::SyncCodec;
use super::protocol::{self, Topics};
use super::shaping::{self, LinkTable};
use cairn_core::ChainParams;
use futures::StreamExt;
use libp2p::gossipsub::{
    self, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, Swarm, allow_block_list, connection_limits, identify, mdns, ping, request_response,
};
use std::collections::HashSet;
use std::time::Duration;

/// Most established connections in total (Bitcoin Core's 125).
pub const MAX_CONNECTIONS: u32 = 125;
/// Most established inbound connections.
pub const MAX_INBOUND: u32 = 117;
/// Inbound connections accepted beyond [`MAX_INBOUND`] for a moment, so that a newcomer
/// can make the event loop evict a less useful peer instead of being refused outright.
pub const EVICTION_SLACK: u32 = 8;
/// Most connections to one peer (two nodes dialling each other at once end up with two).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Most incoming connections still in the handshake.
pub const MAX_PENDING_INBOUND: u32 = 32;
/// Timeout of one sync request (a batch of blocks may be several megabytes).
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval between pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A ping unanswered this long is a failure.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Gossipsub heartbeat.
pub const GOSSIP_HEARTBEAT: Duration = Duration::from_millis(700);
/// Interval between Kademlia random walks (discovery beyond the static peers).
pub const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);
/// An idle connection (no protocol keeps it alive) is closed after this long.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

pub use derived::{Behaviour, BehaviourEvent};

// The derive generates `BehaviourEvent`, whose variants carry no doc comments.
#[allow(missing_docs)]
mod derived {
    use super::*;

    /// Everything a Cairn node speaks.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Banned peers: their connections are denied and closed at once.
        pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
        /// Connection limits (also used to refuse everything while the network is inactive).
        pub limits: connection_limits::Behaviour,
        /// Blocks and transactions.
        pub gossipsub: gossipsub::Behaviour,
        /// Status, headers and blocks on request.
        pub sync: request_response::Behaviour<SyncCodec>,
        /// Learns peers' listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Liveness and round-trip times.
        pub ping: ping::Behaviour,
        /// Peer discovery beyond the static peers.
        pub kad: kad::Behaviour<MemoryStore>,
        /// Local-network discovery (`--mdns`).
        pub mdns: Toggle<mdns::tokio::Behaviour>,
    }
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Gossipsub refused the configuration.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// The transport could not be set up.
    #[error("transport: {0}")]
    Transport(String),
    /// mDNS could not start.
    #[error("mDNS: {0}")]
    Mdns(std::io::Error),
}

/// Connection limits while the network is active.
pub fn active_limits() -> connection_limits::ConnectionLimits {
    connection_limits::ConnectionLimits::default()
        .with_max_established(Some(MAX_CONNECTIONS))
        .with_max_established_incoming(Some(MAX_INBOUND + EVICTION_SLACK))
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_pending_incoming(Some(MAX_PENDING_INBOUND))
}

/// Connection limits while `setnetworkactive false`: nothing in, nothing out.
pub fn inactive_limits() -> connection_limits::ConnectionLimits {
    connection_limits::ConnectionLimits::default()
        .with_max_established(Some(0))
        .with_max_pending_incoming(Some(0))
        .with_max_pending_outgoing(Some(0))
}

/// Gossipsub peer scoring for a network whose nodes may all share one host.
///
/// - IP colocation is not penalised (weight 0, and loopback whitelisted anyway): a
///   testnet on 127.0.0.1 would otherwise graylist every peer.
/// - Mesh delivery-rate penalties are off: blocks are rare, so a peer that delivers few
///   messages is normal, not faulty.
/// - Invalid messages (our Reject) cost heavily; the event loop bans the sender as well.
pub fn peer_score_params(topics: &Topics) -> (PeerScoreParams, PeerScoreThresholds) {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    params
        .ip_colocation_factor_whitelist
        .insert(std::net::Ipv4Addr::LOCALHOST.into());
    params
        .ip_colocation_factor_whitelist
        .insert(std::net::Ipv6Addr::LOCALHOST.into());
    params.topics.insert(topics.blocks.hash(), topic.clone());
    params.topics.insert(topics.txs.hash(), topic);
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -200.0,
        graylist_threshold: -400.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

/// The gossipsub configuration: validate before forwarding, content-addressed message ids,
/// frames large enough for a maximum-size block.
pub fn gossipsub_config(params: &ChainParams) -> Result<gossipsub::Config, BuildError> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|message: &gossipsub::Message| {
            MessageId::from(cairn_core::hash::sha256(&message.data).to_vec())
        })
        .max_transmit_size(protocol::max_gossip_bytes(params))
        .heartbeat_interval(GOSSIP_HEARTBEAT)
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| BuildError::Gossipsub(e.to_string()))
}

impl Behaviour {
    /// The behaviour of a node of `params`' network with identity `key`.
    pub fn new(key: &Keypair, params: &ChainParams, mdns: bool) -> Result<Behaviour, BuildError> {
        let peer_id = key.public().to_peer_id();
        let topics = Topics::new(&params.network_id);

        let mut gossipsub = gossipsub::Behaviour::new(
            MessageAuthenticity::Signed(key.clone()),
            gossipsub_config(params)?,
        )
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?;
        let (score_params, thresholds) = peer_score_params(&topics);
        gossipsub
            .with_peer_score(score_params, thresholds)
            .map_err(BuildError::Gossipsub)?;
        for topic in [&topics.blocks, &topics.txs] {
            gossipsub
                .subscribe(topic)
                .map_err(|e| BuildError::Gossipsub(e.to_string()))?;
        }

        let sync = request_response::Behaviour::with_codec(
            SyncCodec,
            [(
                protocol::SYNC_PROTOCOL,
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(SYNC_REQUEST_TIMEOUT),
        );

        let identify = identify::Behaviour::new(
            identify::Config::new(protocol::IDENTIFY_PROTOCOL_VERSION.into(), key.public())
                .with_agent_version(protocol::USER_AGENT.into()),
        );

        let ping = ping::Behaviour::new(
            ping::Config::new()
                .with_interval(PING_INTERVAL)
                .with_timeout(PING_TIMEOUT),
        );

        let mut kad_config = kad::Config::new(protocol::kad_protocol(&params.network_id));
        // Bootstrapped by the event loop when it has peers (Kademlia's own timer warns
        // every minute on a node that has none).
        kad_config.set_periodic_bootstrap_interval(None);
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        // Loopback testnets never confirm an external address, which would leave Kademlia in
        // client mode and invisible to other nodes' routing tables.
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(BuildError::Mdns)?,
            )
        } else {
            None
        };

        Ok(Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(active_limits()),
            gossipsub,
            sync,
            identify,
            ping,
            kad,
            mdns: mdns.into(),
        })
    }
}

/// A swarm over TCP + noise + yamux running [`Behaviour`], every link unshaped. Must be
/// called inside a tokio runtime.
pub fn build_swarm(
    key: Keypair,
    params: &ChainParams,
    mdns: bool,
) -> Result<Swarm<Behaviour>, BuildError> {
    build_shaped_swarm(key, params, mdns, LinkTable::default())
}

/// A swarm over TCP + noise + shaped yamux ([`shaping::transport`]) running [`Behaviour`],
/// its links shaped as `links` says. Must be called inside a tokio runtime.
pub fn build_shaped_swarm(
    key: Keypair,
    params: &ChainParams,
    mdns: bool,
    links: LinkTable,
) -> Result<Swarm<Behaviour>, BuildError> {
    let behaviour = Behaviour::new(&key, params, mdns)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            shaping::transport(key, links)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
        })
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

/// Starts listening on every address of `listen` and waits (up to `timeout`) until each
/// is bound; returns the addresses actually listened on (ports resolved).
pub(crate) async fn listen(
    swarm: &mut Swarm<Behaviour>,
    listen: &[Multiaddr],
    timeout: Duration,
) -> Result<Vec<Multiaddr>, NetworkError> {
    let mut listeners = HashSet::new();
    for addr in listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        listeners.insert(id);
    }
    let mut listen_addrs = Vec::new();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while !listeners.is_empty() {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    listeners.remove(&listener_id);
                    listen_addrs.push(address);
                }
                SwarmEvent::ListenerClosed { addresses, reason, .. } => {
                    return Err(NetworkError::Listen {
                        addr: format!("{addresses:?}"),
                        reason: match reason { Ok(()) => "closed".into(), Err(e) => e.to_string() },
                    });
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NetworkError::Listen { addr: format!("{listen:?}"), reason: error.to_string() });
                }
                _ => {}
            },
            _ = &mut deadline => {
                return Err(NetworkError::Listen { addr: format!("{listen:?}"), reason: "no address after 10 s".into() });
            }
        }
    }
    Ok(listen_addrs)
}
