//! Finding peers and keeping them: static peers (`--peer`, `addnode`) are redialled with
//! backoff; peers that Identify, Kademlia or mDNS tell us about are dialled while we have
//! fewer than [`TARGET_PEERS`]; Kademlia is bootstrapped now and then.
//!
//! Whether a peer may be dialled at all (the network is active, it is not banned, it is
//! not of another network) is the event loop's to say: it passes that in as `refused`.

use super::behaviour::{self, Behaviour};
use super::peers::{self, StaticPeer};
use super::{NetworkError, protocol};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Peers we try to keep by dialling what discovery (Kademlia, mDNS) finds.
pub const TARGET_PEERS: usize = 8;
/// A discovered peer is dialled at most this often.
const DISCOVERY_REDIAL: Duration = Duration::from_secs(60);

/// Static peers and what discovery dialled lately.
pub(super) struct Discovery {
    local_peer_id: PeerId,
    kad_protocol: StreamProtocol,
    static_peers: Vec<StaticPeer>,
    /// Discovered peers dialled within [`DISCOVERY_REDIAL`].
    recent_dials: HashMap<PeerId, Instant>,
    last_bootstrap: Instant,
}

impl Discovery {
    /// Starts with the `--peer` addresses, to be dialled at once.
    pub(super) fn new(
        local_peer_id: PeerId,
        network_id: &str,
        static_peers: &[Multiaddr],
        now: Instant,
    ) -> Discovery {
        Discovery {
            local_peer_id,
            kad_protocol: protocol::kad_protocol(network_id),
            static_peers: static_peers
                .iter()
                .map(|a| StaticPeer::new(a, now))
                .collect(),
            recent_dials: HashMap::new(),
            last_bootstrap: now,
        }
    }

    /// Identify told us a peer's listen addresses: Kademlia learns them if the peer
    /// speaks our network's Kademlia protocol.
    pub(super) fn on_identify(
        &self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        info: identify::Info,
    ) {
        if info.protocols.contains(&self.kad_protocol) {
            for addr in info.listen_addrs {
                swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
        }
    }

    /// Dials a peer found by Kademlia or mDNS if we want more peers (`connected` now).
    pub(super) fn dial_discovered(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        connected: usize,
        refused: bool,
    ) {
        let now = Instant::now();
        if refused
            || peer == self.local_peer_id
            || swarm.is_connected(&peer)
            || connected >= TARGET_PEERS
            || self
                .recent_dials
                .get(&peer)
                .is_some_and(|t| now.duration_since(*t) < DISCOVERY_REDIAL)
        {
            return;
        }
        self.recent_dials.insert(peer, now);
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = swarm.dial(opts) {
            tracing::debug!(%peer, "dialling a discovered peer: {e}");
        } else {
            tracing::debug!(%peer, "dialling a discovered peer");
        }
    }

    /// Bootstraps Kademlia when due (once we have peers to ask) and forgets old dials.
    pub(super) fn housekeeping(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        have_peers: bool,
        now: Instant,
    ) {
        if have_peers
            && now.duration_since(self.last_bootstrap) >= behaviour::KAD_BOOTSTRAP_INTERVAL
        {
            self.last_bootstrap = now;
            if let Err(e) = swarm.behaviour_mut().kad.bootstrap() {
                tracing::debug!("Kademlia bootstrap: {e}");
            }
        }
        self.recent_dials
            .retain(|_, t| now.duration_since(*t) < DISCOVERY_REDIAL);
    }

    // ----- static peers -----------------------------------------------------------------

    /// A connection to `peer` is up (`connection_id` may be a static peer's dial).
    pub(super) fn connected(&mut self, peer: PeerId, connection_id: ConnectionId, now: Instant) {
        for sp in &mut self.static_peers {
            if sp.dialing == Some(connection_id) || sp.peer_id == Some(peer) {
                sp.connected(peer, now);
            }
        }
    }

    /// The last connection to `peer` closed.
    pub(super) fn disconnected(&mut self, peer: PeerId, now: Instant) {
        for sp in &mut self.static_peers {
            if sp.peer_id == Some(peer) && sp.dialing.is_none() {
                sp.disconnected(now);
            }
        }
    }

    /// A dial failed; whether it was a static peer's (then it is retried after a backoff).
    pub(super) fn dial_failed(&mut self, connection_id: ConnectionId, error: &DialError) -> bool {
        let now = Instant::now();
        let mut static_peer = false;
        for sp in &mut self.static_peers {
            if sp.dialing == Some(connection_id) {
                sp.failed(now);
                static_peer = true;
                tracing::debug!(addr = %sp.addr, retry_in = ?sp.next_attempt.saturating_duration_since(now), "dialling static peer failed: {error}");
            }
        }
        static_peer
    }

    /// Dials the static peers that are due, unless connected or `refused`.
    pub(super) fn redial_static_peers(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        refused: impl Fn(&PeerId) -> bool,
    ) {
        let now = Instant::now();
        for sp in &mut self.static_peers {
            if sp.dialing.is_some() || sp.next_attempt > now {
                continue;
            }
            if let Some(peer) = sp.peer_id
                && (swarm.is_connected(&peer) || refused(&peer))
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
            let connection_id = opts.connection_id();
            match swarm.dial(opts) {
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

    /// `addnode … add`: keep `addr` connected (dial it as soon as possible).
    pub(super) fn add(&mut self, addr: &Multiaddr, now: Instant) {
        let (_, peer_id) = peers::split_p2p(addr);
        match self.static_peers.iter_mut().find(|sp| sp.matches(addr)) {
            Some(sp) => {
                sp.retry_now(now);
                if peer_id.is_some() {
                    sp.peer_id = peer_id;
                }
            }
            None => self.static_peers.push(StaticPeer::new(addr, now)),
        }
    }

    /// `addnode … onetry`: dials `addr` once.
    pub(super) fn dial_once(
        &self,
        swarm: &mut Swarm<Behaviour>,
        addr: Multiaddr,
    ) -> Result<(), NetworkError> {
        let opts = match peers::split_p2p(&addr).1 {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        swarm.dial(opts).map_err(|e| NetworkError::InvalidAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
    }

    /// `addnode … remove`: stop redialling `addr`; whether it was a static peer.
    pub(super) fn remove(&mut self, addr: &Multiaddr) -> bool {
        let before = self.static_peers.len();
        self.static_peers.retain(|sp| !sp.matches(addr));
        self.static_peers.len() != before
    }

    /// Redial `peer` at once if it is a static peer (its ban was lifted).
    pub(super) fn retry(&mut self, peer: PeerId, now: Instant) {
        for sp in self
            .static_peers
            .iter_mut()
            .filter(|sp| sp.peer_id == Some(peer))
        {
            sp.retry_now(now);
        }
    }

    /// The network was switched back on: redial every static peer at once.
    pub(super) fn reactivated(&mut self, now: Instant) {
        for sp in &mut self.static_peers {
            sp.retry_now(now);
            sp.dialing = None;
        }
    }
}
