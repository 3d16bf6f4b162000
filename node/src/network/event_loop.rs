//! The one task that owns the libp2p swarm (STYLE §4, after rust-libp2p's file-sharing
//! example). It `select!`s over swarm events, commands from [`NetworkHandle`]s, verdicts
//! of the gossip validator, answers computed by helper tasks, the node's own events (to
//! publish what was mined or submitted here) and a housekeeping tick, and hands each to
//! the module that owns the concern:
//!
//! - `connections`: the peers connected now;
//! - `handshake`: the status exchange;
//! - `sync_server`: answers to peers' sync requests; `requests`: the ones we send;
//! - `relay`: gossip in and out;
//! - `scoring`: misbehaviour and bans (kept on disk by [`super::ban_store`]);
//! - `discovery`: static peers, Identify, Kademlia, mDNS;
//! - `commands`: what a handle asks.
//!
//! Nothing here waits on the chain owner: work that needs the chain (answering requests,
//! computing our status, validating gossip) runs on helper tasks that send their results
//! back through a channel, so a slow block import never stalls the swarm.

use super::behaviour::{self, Behaviour, BehaviourEvent};
use super::codec::InboundRequest;
use super::connections::Connections;
use super::discovery::Discovery;
use super::handshake::{self, Handshake, StatusOutcome};
use super::peers::{self, Offense};
use super::protocol::{Status, SyncResponse, Topics};
use super::relay::Relay;
use super::requests::Requests;
use super::scoring::Scoring;
use super::shaping::LinkTable;
use super::sync::{self, Trigger};
use super::sync_server::SyncServer;
use super::{Command, NetworkError, NetworkHandle, PeerLimits, Started, gossip};
use crate::byzantine::{self, Faults};
use crate::chain_task::{ChainHandle, NodeEvent};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns, ping};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// Housekeeping interval: redials, ban expiry, status refresh.
const TICK: Duration = Duration::from_millis(250);
/// Gossip messages waiting for validation; beyond this, new ones are ignored.
const GOSSIP_QUEUE: usize = 4096;

/// How the loop runs, beyond its swarm and peers.
pub(super) struct Settings {
    /// How long to wait for the listeners.
    pub(super) listen_timeout: Duration,
    /// Byzantine faults (none for an honest node).
    pub(super) faults: Faults,
    /// Inbound peer limits.
    pub(super) limits: PeerLimits,
}

/// Results of helper tasks.
pub(super) enum Internal {
    /// Our status, computed: send it to these peers.
    SendStatus { peers: Vec<PeerId>, status: Status },
    /// The answer to a peer's sync request, computed: send it.
    Respond {
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
}

/// Builds the swarm, binds the listeners, spawns the loop and its helpers.
#[allow(clippy::too_many_arguments)]
pub(super) async fn spawn(
    key: Keypair,
    links: LinkTable,
    chain: ChainHandle,
    listen: Vec<Multiaddr>,
    static_peers: Vec<Multiaddr>,
    mdns: bool,
    scoring: Scoring,
    settings: Settings,
) -> Result<Started, NetworkError> {
    let Settings {
        listen_timeout,
        faults,
        limits,
    } = settings;
    let params = chain.params().clone();
    let local_peer_id = key.public().to_peer_id();
    let mut swarm = behaviour::build_shaped_swarm(key, &params, mdns, links.clone())?;
    let listen_addrs = behaviour::listen(&mut swarm, &listen, listen_timeout).await?;
    scoring.block_banned(&mut swarm);

    let (commands_tx, commands) = mpsc::channel(256);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let handle = NetworkHandle {
        commands: commands_tx,
        shutdown: Arc::new(shutdown_tx),
        local_peer_id,
        links: links.clone(),
    };

    let (jobs_tx, jobs_rx) = mpsc::channel(GOSSIP_QUEUE);
    let (verdicts_tx, verdicts) = mpsc::channel(GOSSIP_QUEUE);
    let (triggers_tx, triggers_rx) = mpsc::channel(1024);
    let (internal_tx, internal) = mpsc::channel(1024);
    let validator = gossip::Validator::new(chain.clone(), jobs_rx, verdicts_tx);
    let mut helpers = vec![
        tokio::spawn(validator.run()),
        tokio::spawn(sync::run(chain.clone(), handle.clone(), triggers_rx)),
    ];
    if faults.tx_flood {
        helpers.push(tokio::spawn(byzantine::flood_transactions(chain.clone())));
    }

    let now = Instant::now();
    let event_loop = EventLoop {
        node_events: chain.subscribe(),
        relay: Relay::new(
            Topics::new(&params.network_id),
            jobs_tx,
            links.clone(),
            faults.equivocate,
        ),
        discovery: Discovery::new(local_peer_id, &params.network_id, &static_peers, now),
        handshake: Handshake::new(params, now),
        sync_server: SyncServer::new(chain.clone(), internal_tx.clone(), faults),
        chain,
        swarm,
        local_peer_id,
        commands,
        shutdown,
        verdicts,
        internal,
        internal_tx,
        sync_triggers: triggers_tx,
        connections: Connections::default(),
        scoring,
        requests: Requests::new(links),
        active: true,
        listen_addrs: listen_addrs.clone(),
        helpers,
        faults,
        limits,
    };
    let task = tokio::spawn(event_loop.run());
    let with_id = listen_addrs
        .into_iter()
        .map(|a| a.with(Protocol::P2p(local_peer_id)))
        .collect();
    Ok(Started {
        handle,
        task,
        listen_addrs: with_id,
        peer_id: local_peer_id,
    })
}

/// The swarm's owner.
pub(super) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    chain: ChainHandle,
    pub(super) local_peer_id: PeerId,
    commands: mpsc::Receiver<Command>,
    shutdown: watch::Receiver<bool>,
    verdicts: mpsc::Receiver<gossip::Verdict>,
    internal: mpsc::Receiver<Internal>,
    internal_tx: mpsc::Sender<Internal>,
    node_events: broadcast::Receiver<NodeEvent>,
    sync_triggers: mpsc::Sender<Trigger>,
    pub(super) connections: Connections,
    pub(super) handshake: Handshake,
    sync_server: SyncServer,
    relay: Relay,
    pub(super) scoring: Scoring,
    pub(super) discovery: Discovery,
    pub(super) requests: Requests,
    pub(super) active: bool,
    pub(super) listen_addrs: Vec<Multiaddr>,
    helpers: Vec<JoinHandle<()>>,
    faults: Faults,
    limits: PeerLimits,
}

impl EventLoop {
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut node_events_open = true;
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(verdict) = self.verdicts.recv() => self.relay.on_verdict(
                    &mut self.swarm, &mut self.connections, &mut self.scoring, &self.sync_triggers, verdict,
                ),
                Some(internal) = self.internal.recv() => self.on_internal(internal),
                event = self.node_events.recv(), if node_events_open => match event {
                    Ok(NodeEvent::TipChanged { .. }) => self.handshake.tip_moved(),
                    Ok(event) => self.relay.publish(&mut self.swarm, event),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "network fell behind the node's events; some local blocks or transactions were not announced");
                    }
                    Err(broadcast::error::RecvError::Closed) => node_events_open = false,
                },
                _ = tick.tick() => self.housekeeping(),
                _ = self.shutdown.changed() => break,
            }
        }
        for helper in &self.helpers {
            helper.abort();
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        self.scoring.close().await;
        tracing::info!("p2p network stopped");
    }

    // ----- swarm events --------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let now = Instant::now();
                self.discovery.connected(peer_id, connection_id, now);
                if !self.active {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 {
                    let addr = peers::split_p2p(endpoint.get_remote_address()).0;
                    let inbound = endpoint.is_listener();
                    if inbound && !self.admit_inbound(peer_id, &addr) {
                        return;
                    }
                    tracing::info!(peer = %peer_id, %addr, inbound, "peer connected");
                    self.connections.opened(
                        peer_id,
                        addr,
                        inbound,
                        self.chain.clock().now_secs(),
                        now,
                    );
                    self.evict_if_full(peer_id);
                    self.send_status(vec![peer_id]);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                if self.connections.closed(&peer_id) {
                    match &cause {
                        Some(e) => tracing::info!(peer = %peer_id, "peer disconnected: {e}"),
                        None => tracing::info!(peer = %peer_id, "peer disconnected"),
                    }
                }
                self.sync_server.peer_gone(&peer_id);
                self.relay.peer_gone(&mut self.swarm, &peer_id);
                let _ = self
                    .sync_triggers
                    .try_send(Trigger::PeerGone { peer: peer_id });
                self.discovery.disconnected(peer_id, Instant::now());
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let static_peer = self.discovery.dial_failed(connection_id, &error);
                if !static_peer {
                    tracing::debug!(peer = ?peer_id, "outgoing connection failed: {error}");
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, "incoming connection failed: {error}");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if !self.listen_addrs.contains(&address) {
                    self.listen_addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address);
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.relay.on_gossip_event(
                &mut self.swarm,
                &mut self.connections,
                &mut self.scoring,
                event,
            ),
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.discovery.on_identify(&mut self.swarm, peer_id, info)
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Ping(ping::Event { peer, result, .. }) => {
                if self.connections.on_ping(&peer, result) {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => self.dial_discovered(peer, addresses.into_vec()),
            BehaviourEvent::Kad(_) => {}
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    self.dial_discovered(peer, vec![addr]);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(_)) => {}
            BehaviourEvent::Blocked(never) => match never {},
            BehaviourEvent::Limits(never) => match never {},
        }
    }

    /// Dials a peer found by Kademlia or mDNS, if the network is on and wants it.
    fn dial_discovered(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let refused = !self.active || self.refused(&peer);
        let connected = self.connections.len();
        self.discovery
            .dial_discovered(&mut self.swarm, peer, addrs, connected, refused);
    }

    /// Whether `peer` must not be dialled: banned, or of another network.
    fn refused(&self, peer: &PeerId) -> bool {
        self.scoring.is_banned(peer) || self.handshake.is_incompatible(peer)
    }

    // ----- sync protocol --------------------------------------------------------------

    fn on_sync_event(&mut self, event: request_response::Event<InboundRequest, SyncResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => match request {
                Ok(request) => {
                    let status = self.sync_server.on_request(
                        &mut self.swarm,
                        &mut self.connections,
                        &mut self.scoring,
                        peer,
                        request,
                        channel,
                    );
                    if let Some(status) = status {
                        self.on_status(peer, status);
                    }
                }
                // Dropping the channel closes the stream without an answer.
                Err(e) => self.punish(peer, Offense::Malformed(e.to_string())),
            },
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match self.requests.on_response(peer, request_id, response) {
                Some(Ok(status)) => self.on_status(peer, status),
                Some(Err(offense)) => self.punish(peer, offense),
                None => {}
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(offense) = self.requests.on_failure(peer, request_id, error) {
                    self.punish(peer, offense);
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "inbound sync request failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    /// A peer told us its status (in a request or a response).
    fn on_status(&mut self, peer: PeerId, status: Status) {
        match self
            .handshake
            .on_status(&mut self.connections, peer, status)
        {
            StatusOutcome::Malformed => self.punish(
                peer,
                Offense::Malformed("status with oversized strings".into()),
            ),
            StatusOutcome::OtherNetwork => {
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
            }
            StatusOutcome::Sync(trigger) => {
                self.relay.handshake_done(
                    &mut self.swarm,
                    &mut self.connections,
                    &mut self.scoring,
                    &peer,
                );
                let _ = self.sync_triggers.try_send(trigger);
            }
            StatusOutcome::Gone => {}
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::SendStatus { peers, status } => {
                for peer in peers {
                    if self.swarm.is_connected(&peer) {
                        self.requests
                            .send_status(&mut self.swarm, peer, status.clone());
                    }
                }
            }
            Internal::Respond {
                peer,
                channel,
                response,
            } => {
                self.sync_server.answered(peer, &response);
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!(%peer, "sync response not sent: the request timed out or the connection closed");
                }
            }
        }
    }

    fn send_status(&mut self, peers: Vec<PeerId>) {
        handshake::send_status(
            &self.chain,
            &self.internal_tx,
            &mut self.connections,
            peers,
            self.faults.lie_work,
        );
    }

    // ----- inbound limits (Sybil resistance) ---------------------------------------------

    /// Whether an inbound peer from `addr` may stay: not beyond the per-IP limit.
    fn admit_inbound(&mut self, peer: PeerId, addr: &Multiaddr) -> bool {
        let from_ip = self.connections.inbound_from_ip(addr);
        if from_ip < self.limits.max_inbound_per_ip as usize {
            return true;
        }
        tracing::info!(%peer, %addr, from_ip, "refusing an inbound peer: too many from its IP address");
        let _ = self.swarm.disconnect_peer_id(peer);
        false
    }

    /// Beyond the inbound limit, evicts the least useful inbound peer (or the newcomer,
    /// when every other one is protected).
    fn evict_if_full(&mut self, newcomer: PeerId) {
        if self.connections.inbound_count() <= self.limits.max_inbound as usize {
            return;
        }
        let victim = self
            .connections
            .eviction_candidate(&newcomer)
            .unwrap_or(newcomer);
        tracing::info!(peer = %victim, "inbound slots full: evicting a peer");
        let _ = self.swarm.disconnect_peer_id(victim);
    }

    fn punish(&mut self, peer: PeerId, offense: Offense) {
        self.scoring.punish(&mut self.swarm, peer, offense);
    }

    // ----- housekeeping -----------------------------------------------------------------

    fn housekeeping(&mut self) {
        self.scoring.expire(&mut self.swarm);
        self.scoring.flush();
        self.redial_static_peers();
        let now = Instant::now();
        let due = self.handshake.due(&mut self.connections, now);
        if !due.is_empty() {
            self.send_status(due);
        }
        let have_peers = !self.connections.is_empty();
        self.discovery
            .housekeeping(&mut self.swarm, have_peers, now);
        let swarm = &self.swarm;
        let lingering = self
            .handshake
            .lingering(now, |peer| swarm.is_connected(peer));
        for peer in lingering {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        for peer in self.connections.handshake_overdue(now) {
            if self.swarm.is_connected(&peer) && !self.handshake.is_incompatible(&peer) {
                tracing::info!(%peer, "disconnecting a peer that never completed the handshake");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    pub(super) fn redial_static_peers(&mut self) {
        if !self.active {
            return;
        }
        let (scoring, handshake) = (&self.scoring, &self.handshake);
        self.discovery.redial_static_peers(&mut self.swarm, |peer| {
            scoring.is_banned(peer) || handshake.is_incompatible(peer)
        });
    }
}
