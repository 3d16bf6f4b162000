//! The one task that owns the libp2p swarm (STYLE §4, after rust-libp2p's file-sharing
//! example). It `select!`s over swarm events, commands from [`NetworkHandle`]s, verdicts
//! of the gossip validator, answers computed by helper tasks, the node's own events (to
//! publish what was mined or submitted here) and a housekeeping tick.
//!
//! Nothing here waits on the chain owner: work that needs the chain (answering requests,
//! computing our status, validating gossip) runs on helper tasks that send their results
//! back through a channel, so a slow block import never stalls the swarm.

use super::ban_store::BanStore;
use super::behaviour::{self, Behaviour, BehaviourEvent};
use super::codec::{InboundRequest, is_protocol_violation};
use super::gossip::{self, Kind};
use super::peers::{self, BanList, Offense, Scores, StaticPeer, TokenBucket};
use super::protocol::{
    self, BLOCKS_RESPONSE_SOFT_LIMIT, Status, SyncRequest, SyncResponse, Topics,
};
use super::sync::{self, Trigger};
use super::{AddNodeMode, Command, NetworkError, NetworkHandle, PeerInfo, RequestError, Started};
use crate::chain_task::{ChainHandle, NodeEvent, unix_now};
use cairn_core::{BlockHash, ChainParams, encoding};
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns, ping};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Gossip messages a peer may send in a burst.
pub const GOSSIP_BURST: u32 = 2000;
/// Gossip messages per second a peer may sustain (a node mining on regtest announces
/// hundreds of blocks a second).
pub const GOSSIP_PER_SECOND: u32 = 1000;
/// Sync requests a peer may send in a burst.
pub const REQUEST_BURST: u32 = 200;
/// Sync requests per second a peer may sustain.
pub const REQUEST_PER_SECOND: u32 = 100;
/// Consecutive ping failures after which a silent peer is disconnected.
pub const MAX_PING_FAILURES: u32 = 3;
/// Peers we try to keep by dialling what discovery (Kademlia, mDNS) finds.
pub const TARGET_PEERS: usize = 8;
/// A discovered peer is dialled at most this often.
const DISCOVERY_REDIAL: Duration = Duration::from_secs(60);
/// How often each peer is asked for a fresh status.
const STATUS_REFRESH: Duration = Duration::from_secs(30);
/// After our tip moves, our status goes to every peer, at most this often.
const STATUS_ANNOUNCE: Duration = Duration::from_secs(1);
/// Housekeeping interval: redials, ban expiry, status refresh.
const TICK: Duration = Duration::from_millis(250);
/// A peer of another network is disconnected this long after we found out (time for both
/// statuses to cross, so that neither side redials).
const INCOMPATIBLE_GRACE: Duration = Duration::from_secs(1);
/// Gossip messages waiting for validation; beyond this, new ones are ignored.
const GOSSIP_QUEUE: usize = 4096;

/// A connected peer.
struct ConnectedPeer {
    addr: Multiaddr,
    inbound: bool,
    connected_since: u64,
    status: Option<Status>,
    best_height: Option<u32>,
    ping: Option<Duration>,
    ping_failures: u32,
    gossip_bucket: TokenBucket,
    request_bucket: TokenBucket,
    last_status_request: Instant,
}

/// What an outbound request is for.
enum Pending {
    /// Our status, sent on connect and periodically.
    Status,
    /// A request from a [`NetworkHandle`] (the sync task).
    External(oneshot::Sender<Result<SyncResponse, RequestError>>),
}

/// Results of helper tasks.
enum Internal {
    SendStatus {
        peers: Vec<PeerId>,
        status: Status,
    },
    Respond {
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
}

/// Builds the swarm, binds the listeners, spawns the loop and its helpers.
#[allow(clippy::too_many_arguments)] // until the loop's concerns get their own modules
pub(crate) async fn spawn(
    key: Keypair,
    chain: ChainHandle,
    listen: Vec<Multiaddr>,
    static_peers: Vec<Multiaddr>,
    mdns: bool,
    bans: BanList,
    ban_store: BanStore,
    listen_timeout: Duration,
) -> Result<Started, NetworkError> {
    let params = chain.params().clone();
    let local_peer_id = key.public().to_peer_id();
    let mut swarm = behaviour::build_swarm(key, &params, mdns)?;

    let mut listeners = HashSet::new();
    for addr in &listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        listeners.insert(id);
    }
    let mut listen_addrs = Vec::new();
    let deadline = tokio::time::sleep(listen_timeout);
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

    let now_unix = unix_now();
    for ban in bans.list() {
        if ban.banned_until > now_unix {
            swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
        }
    }

    let (commands_tx, commands) = mpsc::channel(256);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let handle = NetworkHandle {
        commands: commands_tx,
        shutdown: Arc::new(shutdown_tx),
        local_peer_id,
    };

    let (jobs_tx, jobs_rx) = mpsc::channel(GOSSIP_QUEUE);
    let (verdicts_tx, verdicts) = mpsc::channel(GOSSIP_QUEUE);
    let (triggers_tx, triggers_rx) = mpsc::channel(1024);
    let (internal_tx, internal) = mpsc::channel(1024);
    let validator = gossip::Validator::new(chain.clone(), jobs_rx, verdicts_tx);
    let helpers = vec![
        tokio::spawn(validator.run()),
        tokio::spawn(sync::run(chain.clone(), handle.clone(), triggers_rx)),
    ];

    let now = Instant::now();
    let event_loop = EventLoop {
        node_events: chain.subscribe(),
        topics: Topics::new(&params.network_id),
        params,
        chain,
        swarm,
        local_peer_id,
        commands,
        shutdown,
        verdicts,
        gossip_jobs: jobs_tx,
        internal,
        internal_tx,
        sync_triggers: triggers_tx,
        peers: HashMap::new(),
        scores: Scores::default(),
        bans,
        ban_store,
        static_peers: static_peers
            .iter()
            .map(|a| StaticPeer::new(a, now))
            .collect(),
        incompatible: HashMap::new(),
        discovery_dials: HashMap::new(),
        pending: HashMap::new(),
        active: true,
        listen_addrs: listen_addrs.clone(),
        helpers,
        tip_moved: false,
        last_announce: now,
        last_bootstrap: now,
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
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    chain: ChainHandle,
    params: ChainParams,
    topics: Topics,
    local_peer_id: PeerId,
    commands: mpsc::Receiver<Command>,
    shutdown: watch::Receiver<bool>,
    verdicts: mpsc::Receiver<gossip::Verdict>,
    gossip_jobs: mpsc::Sender<gossip::Job>,
    internal: mpsc::Receiver<Internal>,
    internal_tx: mpsc::Sender<Internal>,
    node_events: broadcast::Receiver<NodeEvent>,
    sync_triggers: mpsc::Sender<Trigger>,
    peers: HashMap<PeerId, ConnectedPeer>,
    scores: Scores,
    bans: BanList,
    /// Writes every new version of `bans` to disk, off this task.
    ban_store: BanStore,
    static_peers: Vec<StaticPeer>,
    /// Peers of another network (and when we found out): disconnected, never redialled.
    incompatible: HashMap<PeerId, Instant>,
    discovery_dials: HashMap<PeerId, Instant>,
    pending: HashMap<OutboundRequestId, Pending>,
    active: bool,
    listen_addrs: Vec<Multiaddr>,
    helpers: Vec<JoinHandle<()>>,
    /// Our tip moved since the last status announcement.
    tip_moved: bool,
    last_announce: Instant,
    last_bootstrap: Instant,
}

impl EventLoop {
    async fn run(mut self) {
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
                Some(verdict) = self.verdicts.recv() => self.on_verdict(verdict),
                Some(internal) = self.internal.recv() => self.on_internal(internal),
                event = self.node_events.recv(), if node_events_open => match event {
                    Ok(event) => self.on_node_event(event),
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
        self.ban_store.close().await;
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
                for sp in &mut self.static_peers {
                    if sp.dialing == Some(connection_id) || sp.peer_id == Some(peer_id) {
                        sp.connected(peer_id, now);
                    }
                }
                if !self.active {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 {
                    let addr = peers::split_p2p(endpoint.get_remote_address()).0;
                    let inbound = endpoint.is_listener();
                    tracing::info!(peer = %peer_id, %addr, inbound, "peer connected");
                    self.peers.insert(
                        peer_id,
                        ConnectedPeer {
                            addr,
                            inbound,
                            connected_since: unix_now(),
                            status: None,
                            best_height: None,
                            ping: None,
                            ping_failures: 0,
                            gossip_bucket: TokenBucket::new(GOSSIP_BURST, GOSSIP_PER_SECOND, now),
                            request_bucket: TokenBucket::new(
                                REQUEST_BURST,
                                REQUEST_PER_SECOND,
                                now,
                            ),
                            last_status_request: now,
                        },
                    );
                    self.send_status(vec![peer_id]);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                if self.peers.remove(&peer_id).is_some() {
                    match &cause {
                        Some(e) => tracing::info!(peer = %peer_id, "peer disconnected: {e}"),
                        None => tracing::info!(peer = %peer_id, "peer disconnected"),
                    }
                }
                let _ = self
                    .sync_triggers
                    .try_send(Trigger::PeerGone { peer: peer_id });
                let now = Instant::now();
                for sp in &mut self.static_peers {
                    if sp.peer_id == Some(peer_id) && sp.dialing.is_none() {
                        sp.disconnected(now);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let now = Instant::now();
                let mut static_peer = false;
                for sp in &mut self.static_peers {
                    if sp.dialing == Some(connection_id) {
                        sp.failed(now);
                        static_peer = true;
                        tracing::debug!(addr = %sp.addr, retry_in = ?sp.next_attempt.saturating_duration_since(now), "dialling static peer failed: {error}");
                    }
                }
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
            BehaviourEvent::Gossipsub(event) => self.on_gossip_event(event),
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let kad_protocol = protocol::kad_protocol(&self.params.network_id);
                if info.protocols.contains(&kad_protocol) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Ping(ping::Event { peer, result, .. }) => self.on_ping(peer, result),
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                self.dial_discovered(peer, addresses.into_vec());
            }
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

    fn on_ping(&mut self, peer: PeerId, result: Result<Duration, ping::Failure>) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        match result {
            Ok(rtt) => {
                state.ping = Some(rtt);
                state.ping_failures = 0;
            }
            Err(ping::Failure::Unsupported) => {}
            Err(e) => {
                state.ping_failures += 1;
                if state.ping_failures >= MAX_PING_FAILURES {
                    tracing::warn!(%peer, failures = state.ping_failures, "disconnecting silent peer: {e}");
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
        }
    }

    /// Dials a peer found by Kademlia or mDNS if we want more peers.
    fn dial_discovered(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let now = Instant::now();
        if !self.active
            || peer == self.local_peer_id
            || self.swarm.is_connected(&peer)
            || self.peers.len() >= TARGET_PEERS
            || self.incompatible.contains_key(&peer)
            || self.bans.is_banned(&peer, unix_now())
            || self
                .discovery_dials
                .get(&peer)
                .is_some_and(|t| now.duration_since(*t) < DISCOVERY_REDIAL)
        {
            return;
        }
        self.discovery_dials.insert(peer, now);
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "dialling a discovered peer: {e}");
        } else {
            tracing::debug!(%peer, "dialling a discovered peer");
        }
    }

    // ----- gossip ---------------------------------------------------------------------

    fn on_gossip_event(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let kind = if message.topic == self.topics.blocks.hash() {
            Kind::Block
        } else if message.topic == self.topics.txs.hash() {
            Kind::Tx
        } else {
            self.report_validation(&message_id, &propagation_source, MessageAcceptance::Ignore);
            return;
        };
        let now = Instant::now();
        let within_rate = self
            .peers
            .get_mut(&propagation_source)
            .is_none_or(|p| p.gossip_bucket.try_take(now));
        if !within_rate {
            self.report_validation(&message_id, &propagation_source, MessageAcceptance::Ignore);
            self.punish(propagation_source, Offense::Flood("gossip messages".into()));
            return;
        }
        let job = gossip::Job {
            message_id: message_id.clone(),
            source: propagation_source,
            kind,
            data: message.data,
        };
        if self.gossip_jobs.try_send(job).is_err() {
            tracing::debug!("gossip validation queue full; ignoring a message");
            self.report_validation(&message_id, &propagation_source, MessageAcceptance::Ignore);
        }
    }

    fn report_validation(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance);
    }

    fn on_verdict(&mut self, verdict: gossip::Verdict) {
        let gossip::Verdict {
            message_id,
            source,
            acceptance,
            offense,
            orphan,
            block_height,
            summary,
        } = verdict;
        match acceptance {
            MessageAcceptance::Accept => {
                tracing::debug!(peer = %source, "gossip accepted: {summary}")
            }
            MessageAcceptance::Ignore => {
                tracing::debug!(peer = %source, "gossip ignored: {summary}")
            }
            MessageAcceptance::Reject => {
                tracing::info!(peer = %source, "gossip rejected: {summary}")
            }
        }
        self.report_validation(&message_id, &source, acceptance);
        if let (Some(height), Some(peer)) = (block_height, self.peers.get_mut(&source)) {
            peer.best_height = Some(peer.best_height.map_or(height, |h| h.max(height)));
        }
        if orphan {
            let _ = self
                .sync_triggers
                .try_send(Trigger::Orphan { peer: source });
        }
        if let Some(offense) = offense {
            self.punish(source, offense);
        }
    }

    /// Publishes what this node produced itself (mined, or submitted over RPC); what came
    /// from the network is forwarded by gossipsub or is old news.
    fn on_node_event(&mut self, event: NodeEvent) {
        let (topic, data, what) = match event {
            NodeEvent::BlockAccepted(block) => {
                let hash = block.block_hash();
                (
                    self.topics.blocks.clone(),
                    encoding::encode(&*block),
                    format!("block {hash}"),
                )
            }
            NodeEvent::TxAccepted { txid, relay } => {
                let Some(tx) = relay else { return };
                (
                    self.topics.txs.clone(),
                    encoding::encode(&*tx),
                    format!("tx {txid}"),
                )
            }
            NodeEvent::TipChanged { .. } => {
                self.tip_moved = true;
                return;
            }
        };
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) => tracing::debug!("published {what}"),
            Err(e) => tracing::debug!("not published {what}: {e}"),
        }
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
                Ok(request) => self.on_request(peer, request, channel),
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
            } => match self.pending.remove(&request_id) {
                Some(Pending::Status) => match response {
                    SyncResponse::Status(status) => self.on_status(peer, status),
                    other => self.punish(
                        peer,
                        Offense::BadResponse(format!("{} in answer to status", other.kind())),
                    ),
                },
                Some(Pending::External(reply)) => {
                    let _ = reply.send(Ok(response));
                }
                None => {}
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let violation = matches!(&error, request_response::OutboundFailure::Io(e) if is_protocol_violation(e));
                let message = error.to_string();
                match self.pending.remove(&request_id) {
                    Some(Pending::External(reply)) => {
                        let error = match error {
                            request_response::OutboundFailure::Timeout => RequestError::Timeout,
                            other => RequestError::Failed(other.to_string()),
                        };
                        let _ = reply.send(Err(error));
                    }
                    Some(Pending::Status) => {
                        tracing::debug!(%peer, "status request failed: {message}")
                    }
                    None => {}
                }
                if violation {
                    self.punish(peer, Offense::Malformed(message));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "inbound sync request failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let now = Instant::now();
        let within_rate = self
            .peers
            .get_mut(&peer)
            .is_none_or(|p| p.request_bucket.try_take(now));
        if !within_rate {
            self.punish(peer, Offense::Flood("sync requests".into()));
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, SyncResponse::Refused("rate limited".into()));
            return;
        }
        if let Some(violation) = request.violation() {
            // Dropping the channel closes the stream without an answer.
            self.punish(peer, Offense::Malformed(violation));
            return;
        }
        tracing::trace!(%peer, kind = request.kind(), "sync request");
        let chain = self.chain.clone();
        let internal = self.internal_tx.clone();
        match request {
            SyncRequest::Status(status) => {
                self.on_status(peer, status);
                tokio::spawn(async move {
                    if let Some(ours) = local_status(&chain).await {
                        let _ = internal
                            .send(Internal::Respond {
                                peer,
                                channel,
                                response: SyncResponse::Status(ours),
                            })
                            .await;
                    }
                });
            }
            SyncRequest::GetHeaders { locator, stop } => {
                tokio::spawn(async move {
                    let headers = chain
                        .call(move |s| {
                            s.chain.headers_after(
                                &locator,
                                stop,
                                protocol::MAX_HEADERS_PER_RESPONSE,
                            )
                        })
                        .await;
                    if let Ok(headers) = headers {
                        let _ = internal
                            .send(Internal::Respond {
                                peer,
                                channel,
                                response: SyncResponse::Headers(headers),
                            })
                            .await;
                    }
                });
            }
            SyncRequest::GetBlocks(hashes) => {
                tokio::spawn(async move {
                    if let Ok(blocks) = chain.call(move |s| read_blocks(s, &hashes)).await {
                        let _ = internal
                            .send(Internal::Respond {
                                peer,
                                channel,
                                response: SyncResponse::Blocks(blocks),
                            })
                            .await;
                    }
                });
            }
        }
    }

    /// A peer told us its status (in a request or a response).
    fn on_status(&mut self, peer: PeerId, status: Status) {
        if !status.is_well_formed() {
            self.punish(
                peer,
                Offense::Malformed("status with oversized strings".into()),
            );
            return;
        }
        if let Some(reason) = status.incompatibility(&self.params) {
            if self.incompatible.insert(peer, Instant::now()).is_none() {
                tracing::warn!(%peer, "disconnecting a peer of another network: {reason}");
            }
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
            // The connection is closed by housekeeping after a grace period, not now: the
            // peer must first receive our status too, or it would not know why we hung up
            // and would redial.
            return;
        }
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.status.is_none() {
            tracing::debug!(%peer, height = status.best_height, agent = %status.user_agent, "handshake complete");
        }
        state.best_height = Some(
            state
                .best_height
                .map_or(status.best_height, |h| h.max(status.best_height)),
        );
        let trigger = Trigger::PeerStatus {
            peer,
            chainwork: status.chainwork,
            height: status.best_height,
        };
        state.status = Some(status);
        let _ = self.sync_triggers.try_send(trigger);
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::SendStatus { peers, status } => {
                for peer in peers {
                    if self.swarm.is_connected(&peer) {
                        let request = Ok(SyncRequest::Status(status.clone()));
                        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                        self.pending.insert(id, Pending::Status);
                    }
                }
            }
            Internal::Respond {
                peer,
                channel,
                response,
            } => {
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

    /// Computes our status on a helper task, then sends it to `peers`.
    fn send_status(&mut self, peers: Vec<PeerId>) {
        let now = Instant::now();
        for peer in &peers {
            if let Some(state) = self.peers.get_mut(peer) {
                state.last_status_request = now;
            }
        }
        let chain = self.chain.clone();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            if let Some(status) = local_status(&chain).await {
                let _ = internal.send(Internal::SendStatus { peers, status }).await;
            }
        });
    }

    // ----- misbehaviour and bans --------------------------------------------------------

    fn punish(&mut self, peer: PeerId, offense: Offense) {
        let score = self.scores.add(peer, &offense);
        tracing::warn!(%peer, score, "peer misbehaved: {}", offense.reason());
        if score >= peers::BAN_THRESHOLD && !self.bans.is_banned(&peer, unix_now()) {
            self.ban(peer, peers::DEFAULT_BAN_DURATION, offense.reason());
        }
    }

    fn ban(&mut self, peer: PeerId, duration: Duration, reason: String) {
        let ban = self.bans.ban(peer, duration, reason, unix_now()).clone();
        self.ban_store.save(self.bans.list());
        tracing::warn!(%peer, until = ban.banned_until, "banned peer: {}", ban.reason);
        // Closes its connections at once and refuses new ones.
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    // ----- commands ---------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PeerInfo(reply) => {
                let _ = reply.send(self.peer_info());
            }
            Command::AddNode { addr, mode, reply } => {
                let _ = reply.send(self.add_node(addr, mode));
            }
            Command::Disconnect { peer, reply } => {
                let result = if self.swarm.is_connected(&peer) {
                    let _ = self.swarm.disconnect_peer_id(peer);
                    tracing::info!(%peer, "disconnecting peer on request");
                    Ok(())
                } else {
                    Err(NetworkError::NotConnected(peer))
                };
                let _ = reply.send(result);
            }
            Command::Ban {
                peer,
                duration,
                reason,
                reply,
            } => {
                let result = if peer == self.local_peer_id {
                    Err(NetworkError::SelfPeer(peer))
                } else {
                    self.ban(peer, duration, reason);
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Command::Unban { peer, reply } => {
                let result = if self.bans.unban(&peer) {
                    self.ban_store.save(self.bans.list());
                    tracing::info!(%peer, "ban lifted");
                    self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                    self.scores.reset(&peer);
                    let now = Instant::now();
                    for sp in self
                        .static_peers
                        .iter_mut()
                        .filter(|sp| sp.peer_id == Some(peer))
                    {
                        sp.retry_now(now);
                    }
                    Ok(())
                } else {
                    Err(NetworkError::NotBanned(peer))
                };
                let _ = reply.send(result);
            }
            Command::ListBanned(reply) => {
                self.expire_bans();
                let _ = reply.send(self.bans.list());
            }
            Command::SetActive { active, reply } => {
                self.set_active(active);
                let _ = reply.send(self.active);
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(RequestError::Failed(format!(
                        "peer {peer} is not connected"
                    ))));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Ok(request));
                self.pending.insert(id, Pending::External(reply));
            }
            Command::Report { peer, offense } => self.punish(peer, offense),
        }
    }

    fn peer_info(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(id, p)| PeerInfo {
                peer_id: id.to_base58(),
                addr: p.addr.to_string(),
                inbound: p.inbound,
                connected_since: p.connected_since,
                best_height: p.best_height,
                ping_ms: p.ping.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
                misbehavior: self.scores.get(id),
            })
            .collect();
        out.sort_by(|a, b| {
            a.connected_since
                .cmp(&b.connected_since)
                .then_with(|| a.peer_id.cmp(&b.peer_id))
        });
        out
    }

    fn add_node(&mut self, addr: Multiaddr, mode: AddNodeMode) -> Result<(), NetworkError> {
        let (_, peer_id) = peers::split_p2p(&addr);
        if let Some(peer) = peer_id {
            if peer == self.local_peer_id {
                return Err(NetworkError::SelfPeer(peer));
            }
            if mode != AddNodeMode::Remove && self.bans.is_banned(&peer, unix_now()) {
                return Err(NetworkError::Banned(peer));
            }
        }
        let now = Instant::now();
        match mode {
            AddNodeMode::Add => {
                match self.static_peers.iter_mut().find(|sp| sp.matches(&addr)) {
                    Some(sp) => {
                        sp.retry_now(now);
                        if peer_id.is_some() {
                            sp.peer_id = peer_id;
                        }
                    }
                    None => self.static_peers.push(StaticPeer::new(&addr, now)),
                }
                if let Some(peer) = peer_id {
                    self.incompatible.remove(&peer);
                }
                self.redial_static_peers();
                Ok(())
            }
            AddNodeMode::OneTry => {
                if !self.active {
                    return Err(NetworkError::Inactive);
                }
                if let Some(peer) = peer_id {
                    self.incompatible.remove(&peer);
                }
                let opts = match peer_id {
                    Some(peer) => DialOpts::peer_id(peer)
                        .addresses(vec![addr.clone()])
                        .build(),
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                self.swarm
                    .dial(opts)
                    .map_err(|e| NetworkError::InvalidAddress {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })
            }
            AddNodeMode::Remove => {
                let before = self.static_peers.len();
                self.static_peers.retain(|sp| !sp.matches(&addr));
                if self.static_peers.len() == before {
                    Err(NetworkError::NotAdded(addr))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn set_active(&mut self, active: bool) {
        if active == self.active {
            return;
        }
        self.active = active;
        if active {
            tracing::info!("network activated");
            *self.swarm.behaviour_mut().limits.limits_mut() = behaviour::active_limits();
            let now = Instant::now();
            for sp in &mut self.static_peers {
                sp.retry_now(now);
                sp.dialing = None;
            }
        } else {
            tracing::info!("network deactivated: disconnecting every peer");
            *self.swarm.behaviour_mut().limits.limits_mut() = behaviour::inactive_limits();
            let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
            for peer in connected {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    // ----- housekeeping -----------------------------------------------------------------

    fn housekeeping(&mut self) {
        self.expire_bans();
        self.redial_static_peers();
        let now = Instant::now();
        // After our tip moved, tell everyone (at most once per STATUS_ANNOUNCE): peers learn
        // our height, and one that missed our blocks notices it is behind and syncs.
        let announce = self.tip_moved && now.duration_since(self.last_announce) >= STATUS_ANNOUNCE;
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                announce || now.duration_since(p.last_status_request) >= STATUS_REFRESH
            })
            .map(|(id, _)| *id)
            .collect();
        if announce {
            self.tip_moved = false;
            self.last_announce = now;
        }
        if !due.is_empty() {
            self.send_status(due);
        }
        if !self.peers.is_empty()
            && now.duration_since(self.last_bootstrap) >= behaviour::KAD_BOOTSTRAP_INTERVAL
        {
            self.last_bootstrap = now;
            if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
                tracing::debug!("Kademlia bootstrap: {e}");
            }
        }
        self.discovery_dials
            .retain(|_, t| now.duration_since(*t) < DISCOVERY_REDIAL);
        let lingering: Vec<PeerId> = self
            .incompatible
            .iter()
            .filter(|(peer, since)| {
                now.duration_since(**since) >= INCOMPATIBLE_GRACE && self.swarm.is_connected(peer)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in lingering {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn expire_bans(&mut self) {
        let ended = self.bans.expire(unix_now());
        if !ended.is_empty() {
            self.ban_store.save(self.bans.list());
        }
        for peer in ended {
            tracing::info!(%peer, "ban expired");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    fn redial_static_peers(&mut self) {
        if !self.active {
            return;
        }
        let now = Instant::now();
        let now_unix = unix_now();
        for sp in &mut self.static_peers {
            if sp.dialing.is_some() || sp.next_attempt > now {
                continue;
            }
            if let Some(peer) = sp.peer_id
                && (self.swarm.is_connected(&peer)
                    || self.bans.is_banned(&peer, now_unix)
                    || self.incompatible.contains_key(&peer))
            {
                continue;
            }
            let opts = match sp.peer_id {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![sp.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(sp.addr.clone()).build(),
            };
            let connection_id: ConnectionId = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(addr = %sp.addr, "dialling static peer");
                    sp.dialing = Some(connection_id);
                }
                Err(e) => {
                    tracing::debug!(addr = %sp.addr, "cannot dial static peer: {e}");
                    sp.failed(now);
                }
            }
        }
    }
}

/// Our status, computed on the chain owner; `None` once the node is stopping.
async fn local_status(chain: &ChainHandle) -> Option<Status> {
    chain
        .call(|s| {
            let params = s.params();
            let tip = s.chain.tip();
            Status {
                protocol_version: protocol::PROTOCOL_VERSION,
                network_id: params.network_id.clone(),
                genesis_hash: params.genesis_hash,
                params_hash: params.params_hash,
                best_hash: tip.hash,
                best_height: tip.height,
                chainwork: tip.chainwork,
                user_agent: protocol::USER_AGENT.into(),
            }
        })
        .await
        .ok()
}

/// The bodies we have among `hashes`, in order, stopping past the soft byte limit (but
/// always at least one block).
fn read_blocks(
    state: &crate::chain_task::NodeState,
    hashes: &[BlockHash],
) -> Vec<cairn_core::Block> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for hash in hashes {
        match state.chain.block(hash) {
            Ok(Some(block)) => {
                let size = block.encoded_size();
                if !out.is_empty() && bytes + size > BLOCKS_RESPONSE_SOFT_LIMIT {
                    break;
                }
                bytes += size;
                out.push(block);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("reading block {hash} for a peer: {e}");
                break;
            }
        }
    }
    out
}
