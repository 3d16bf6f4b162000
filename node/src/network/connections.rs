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
            },
        );
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
}
