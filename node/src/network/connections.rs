//! The peers we are connected to right now: where they are, what they told us, how fast
//! they answer pings and how much of their rate limits is left. Plain data; the event
//! loop adds and removes entries as connections open and close.

use super::PeerInfo;
use super::peers::TokenBucket;
use super::protocol::Status;
use libp2p::{Multiaddr, PeerId, ping};
use std::collections::HashMap;
use std::time::{Duration, Instant};

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
/// A peer that has not completed the status handshake this long after connecting is
/// disconnected (until then it is served nothing but the handshake).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Gossip messages of one peer waiting for validation at once; beyond, its messages are
/// ignored, so one flooder cannot fill the queue that honest peers share.
pub const MAX_QUEUED_GOSSIP_PER_PEER: usize = 256;
/// Inbound peers protected from eviction for having relayed us valid blocks recently.
const PROTECT_BLOCK_RELAYERS: usize = 4;
/// Inbound peers protected from eviction for their fast pings.
const PROTECT_FASTEST: usize = 4;

/// A connected peer.
pub(super) struct ConnectedPeer {
    addr: Multiaddr,
    inbound: bool,
    connected_since: u64,
    /// Its last status; `None` until the handshake completes.
    pub(super) status: Option<Status>,
    best_height: Option<u32>,
    ping: Option<Duration>,
    ping_failures: u32,
    gossip_bucket: TokenBucket,
    request_bucket: TokenBucket,
    /// When we last sent it our status.
    last_status_request: Instant,
    /// When the connection came up.
    since: Instant,
    /// Its gossip messages waiting for validation.
    gossip_queued: usize,
    /// When it last relayed a block we accepted.
    last_block: Option<Instant>,
}

impl ConnectedPeer {
    /// Its chain goes at least to `height` (from its status or a block it relayed).
    pub(super) fn saw_height(&mut self, height: u32) {
        self.best_height = Some(self.best_height.map_or(height, |h| h.max(height)));
    }
}

/// Every connected peer.
#[derive(Default)]
pub(super) struct Connections {
    peers: HashMap<PeerId, ConnectedPeer>,
}

impl Connections {
    /// The first connection to `peer` is up (`connected_since` in unix seconds).
    pub(super) fn opened(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        inbound: bool,
        connected_since: u64,
        now: Instant,
    ) {
        self.peers.insert(
            peer,
            ConnectedPeer {
                addr,
                inbound,
                connected_since,
                status: None,
                best_height: None,
                ping: None,
                ping_failures: 0,
                gossip_bucket: TokenBucket::new(GOSSIP_BURST, GOSSIP_PER_SECOND, now),
                request_bucket: TokenBucket::new(REQUEST_BURST, REQUEST_PER_SECOND, now),
                last_status_request: now,
                since: now,
                gossip_queued: 0,
                last_block: None,
            },
        );
    }

    /// Whether `peer` completed the status handshake.
    pub(super) fn handshaken(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.status.is_some())
    }

    /// Peers connected for longer than [`HANDSHAKE_TIMEOUT`] without a status.
    pub(super) fn handshake_overdue(&self, now: Instant) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| {
                p.status.is_none() && now.saturating_duration_since(p.since) >= HANDSHAKE_TIMEOUT
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Counts a gossip message of `peer` into the validation queue; false when it already
    /// has [`MAX_QUEUED_GOSSIP_PER_PEER`] there.
    pub(super) fn gossip_enqueued(&mut self, peer: &PeerId) -> bool {
        match self.peers.get_mut(peer) {
            Some(p) if p.gossip_queued >= MAX_QUEUED_GOSSIP_PER_PEER => false,
            Some(p) => {
                p.gossip_queued += 1;
                true
            }
            None => true,
        }
    }

    /// A gossip message of `peer` left the validation queue; `relayed_block` when it was a
    /// block we accepted.
    pub(super) fn gossip_validated(&mut self, peer: &PeerId, relayed_block: bool, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.gossip_queued = p.gossip_queued.saturating_sub(1);
            if relayed_block {
                p.last_block = Some(now);
            }
        }
    }

    /// Inbound peers connected from `addr`'s IP address.
    pub(super) fn inbound_from_ip(&self, addr: &Multiaddr) -> usize {
        let ip = ip_of(addr);
        self.peers
            .values()
            .filter(|p| p.inbound && ip.is_some() && ip_of(&p.addr) == ip)
            .count()
    }

    /// Inbound peers.
    pub(super) fn inbound_count(&self) -> usize {
        self.peers.values().filter(|p| p.inbound).count()
    }

    /// The inbound peer to evict to make room for `newcomer` (after Bitcoin Core's
    /// `SelectNodeToEvict`): never the newcomer; protected are the peers that relayed a
    /// block most recently and those with the fastest pings; of the rest, one that never
    /// finished the handshake, else the youngest from the IP address with the most
    /// connections. `None` when there is no other inbound peer.
    pub(super) fn eviction_candidate(&self, newcomer: &PeerId) -> Option<PeerId> {
        let mut candidates: Vec<(&PeerId, &ConnectedPeer)> = self
            .peers
            .iter()
            .filter(|(id, p)| p.inbound && *id != newcomer)
            .collect();
        if let Some((id, _)) = candidates
            .iter()
            .filter(|(_, p)| p.status.is_none())
            .max_by_key(|(_, p)| p.since)
        {
            return Some(**id);
        }
        candidates.sort_by_key(|(_, p)| std::cmp::Reverse(p.last_block));
        // Each protection spares at most a quarter of the candidates, so that a small
        // node still has someone to evict.
        let share = candidates.len() / 4;
        let relayers = candidates
            .iter()
            .take_while(|(_, p)| p.last_block.is_some())
            .count()
            .min(PROTECT_BLOCK_RELAYERS)
            .min(share);
        candidates.drain(..relayers);
        candidates.sort_by_key(|(_, p)| p.ping.unwrap_or(Duration::MAX));
        let fastest = candidates
            .iter()
            .take_while(|(_, p)| p.ping.is_some())
            .count()
            .min(PROTECT_FASTEST)
            .min(share);
        candidates.drain(..fastest);
        let mut per_ip: HashMap<Option<std::net::IpAddr>, usize> = HashMap::new();
        for (_, p) in &candidates {
            *per_ip.entry(ip_of(&p.addr)).or_default() += 1;
        }
        candidates
            .iter()
            .max_by_key(|(_, p)| (per_ip[&ip_of(&p.addr)], p.since))
            .map(|(id, _)| **id)
    }

    /// The last connection to `peer` closed; whether it was known.
    pub(super) fn closed(&mut self, peer: &PeerId) -> bool {
        self.peers.remove(peer).is_some()
    }

    /// How many peers are connected.
    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is connected.
    pub(super) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The peer's entry, if it is connected.
    pub(super) fn get_mut(&mut self, peer: &PeerId) -> Option<&mut ConnectedPeer> {
        self.peers.get_mut(peer)
    }

    /// Takes a token from the peer's gossip bucket; false when it sends too fast.
    pub(super) fn take_gossip_token(&mut self, peer: &PeerId, now: Instant) -> bool {
        self.peers
            .get_mut(peer)
            .is_none_or(|p| p.gossip_bucket.try_take(now))
    }

    /// Takes a token from the peer's request bucket; false when it asks too fast.
    pub(super) fn take_request_token(&mut self, peer: &PeerId, now: Instant) -> bool {
        self.peers
            .get_mut(peer)
            .is_none_or(|p| p.request_bucket.try_take(now))
    }

    /// Records a ping; whether the peer has now been silent too often and must go.
    pub(super) fn on_ping(
        &mut self,
        peer: &PeerId,
        result: Result<Duration, ping::Failure>,
    ) -> bool {
        let Some(state) = self.peers.get_mut(peer) else {
            return false;
        };
        match result {
            Ok(rtt) => {
                state.ping = Some(rtt);
                state.ping_failures = 0;
                false
            }
            Err(ping::Failure::Unsupported) => false,
            Err(e) => {
                state.ping_failures += 1;
                let silent = state.ping_failures >= MAX_PING_FAILURES;
                if silent {
                    tracing::warn!(%peer, failures = state.ping_failures, "disconnecting silent peer: {e}");
                }
                silent
            }
        }
    }

    /// Peers that get our status now: all of them if `everyone`, else those not sent it
    /// for `refresh`.
    pub(super) fn status_due(
        &mut self,
        everyone: bool,
        refresh: Duration,
        now: Instant,
    ) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| everyone || now.duration_since(p.last_status_request) >= refresh)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Our status is on its way to `peers`.
    pub(super) fn status_sent(&mut self, peers: &[PeerId], now: Instant) {
        for peer in peers {
            if let Some(state) = self.peers.get_mut(peer) {
                state.last_status_request = now;
            }
        }
    }

    /// `getpeerinfo`: the oldest connection first, with each peer's misbehaviour `score`.
    pub(super) fn peer_info(&self, score: impl Fn(&PeerId) -> u32) -> Vec<PeerInfo> {
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
                misbehavior: score(id),
            })
            .collect();
        out.sort_by(|a, b| {
            a.connected_since
                .cmp(&b.connected_since)
                .then_with(|| a.peer_id.cmp(&b.peer_id))
        });
        out
    }
}

/// The IP address of a multiaddr, if it has one.
pub(super) fn ip_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    addr.iter().find_map(|c| match c {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(ip.into()),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_peers_are_dropped_after_repeated_ping_failures() {
        let mut table = Connections::default();
        let peer = PeerId::random();
        let now = Instant::now();
        table.opened(peer, Multiaddr::empty(), false, 7, now);
        for _ in 1..MAX_PING_FAILURES {
            assert!(!table.on_ping(&peer, Err(ping::Failure::Timeout)));
        }
        assert!(
            !table.on_ping(&peer, Ok(Duration::from_millis(3))),
            "a pong resets the count"
        );
        for _ in 1..MAX_PING_FAILURES {
            assert!(!table.on_ping(&peer, Err(ping::Failure::Timeout)));
        }
        assert!(table.on_ping(&peer, Err(ping::Failure::Timeout)));
        assert!(!table.on_ping(&PeerId::random(), Err(ping::Failure::Timeout)));
    }

    #[test]
    fn peer_info_lists_the_oldest_connection_first() {
        let mut table = Connections::default();
        let (old, new) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        table.opened(new, Multiaddr::empty(), true, 20, now);
        table.opened(old, Multiaddr::empty(), false, 10, now);
        table.get_mut(&new).unwrap().saw_height(5);
        table.get_mut(&new).unwrap().saw_height(3);
        let info = table.peer_info(|p| if *p == old { 40 } else { 0 });
        assert_eq!(info[0].peer_id, old.to_base58());
        assert_eq!(info[0].misbehavior, 40);
        assert_eq!(info[1].best_height, Some(5), "heights only go up");
        assert!(table.closed(&old));
        assert!(!table.closed(&old));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn eviction_spares_useful_peers_and_takes_from_the_crowded_ip() {
        let mut table = Connections::default();
        let now = Instant::now();
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let other: Multiaddr = "/ip4/127.0.0.2/tcp/1".parse().unwrap();
        let relayer = PeerId::random();
        table.opened(relayer, local.clone(), true, 1, now);
        table.gossip_validated(&relayer, true, now);
        let lone = PeerId::random();
        table.opened(lone, other, true, 2, now);
        let crowd: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (i, p) in crowd.iter().enumerate() {
            table.opened(
                *p,
                local.clone(),
                true,
                3,
                now + Duration::from_secs(i as u64),
            );
        }
        let newcomer = PeerId::random();
        table.opened(
            newcomer,
            local.clone(),
            true,
            9,
            now + Duration::from_secs(9),
        );
        // Everyone without a status yet: the youngest of those (not the newcomer) goes.
        assert_eq!(table.eviction_candidate(&newcomer), Some(crowd[2]));
        for p in [relayer, lone, crowd[0], crowd[1], crowd[2], newcomer] {
            table.get_mut(&p).unwrap().status = Some(test_status());
        }
        // Handshaken: the relayer is protected; the youngest of the crowded IP goes.
        assert_eq!(table.eviction_candidate(&newcomer), Some(crowd[2]));
        assert_eq!(table.inbound_from_ip(&local), 5);
        assert_eq!(table.inbound_count(), 6);
        assert!(
            table
                .handshake_overdue(now + HANDSHAKE_TIMEOUT * 2)
                .is_empty()
        );
    }

    #[test]
    fn one_peer_cannot_fill_the_gossip_queue() {
        let mut table = Connections::default();
        let peer = PeerId::random();
        let now = Instant::now();
        table.opened(peer, Multiaddr::empty(), true, 1, now);
        for _ in 0..MAX_QUEUED_GOSSIP_PER_PEER {
            assert!(table.gossip_enqueued(&peer));
        }
        assert!(!table.gossip_enqueued(&peer));
        table.gossip_validated(&peer, false, now);
        assert!(table.gossip_enqueued(&peer));
        assert_eq!(table.handshake_overdue(now + HANDSHAKE_TIMEOUT), vec![peer]);
        assert!(!table.handshaken(&peer));
    }

    fn test_status() -> Status {
        let params = cairn_core::ChainParams::regtest();
        Status {
            protocol_version: super::super::protocol::PROTOCOL_VERSION,
            network_id: params.network_id.clone(),
            genesis_hash: params.genesis_hash,
            params_hash: params.params_hash,
            best_hash: params.genesis_hash,
            best_height: 0,
            chainwork: cairn_core::Work::ZERO,
            user_agent: "test".into(),
        }
    }
}
