//! Bookkeeping about peers that outlives a connection: misbehaviour scores, bans, static
//! peers with their redial backoff, and the rate limits applied per peer. Pure data
//! structures, clocks passed in, no files: every rule here is unit-tested without a
//! network or a disk ([`super::ban_store`] keeps the ban list in `DATADIR/banlist.json`).

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Misbehaviour points at which a peer is banned (Bitcoin Core's 100).
pub const BAN_THRESHOLD: u32 = 100;

/// How long an automatic or default manual ban lasts (Bitcoin Core's `-bantime`).
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// First redial delay of a static peer; doubled after each failure up to [`MAX_REDIAL_BACKOFF`].
pub const MIN_REDIAL_BACKOFF: Duration = Duration::from_secs(1);

/// Longest redial delay of a static peer.
pub const MAX_REDIAL_BACKOFF: Duration = Duration::from_secs(60);

/// A connection that lasted this long resets a static peer's backoff; one closed sooner
/// (refused by a node that banned us, say) counts as a failed attempt.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Scores remembered for peers that disconnected (so reconnecting does not wipe them).
const MAX_REMEMBERED_SCORES: usize = 4096;

/// Misbehaviour points forgiven per minute: small offenses (a stall, a burst over a rate
/// limit) fade, so only a peer that keeps misbehaving reaches the ban threshold.
pub const SCORE_DECAY_PER_MINUTE: u32 = 10;

/// Most bans kept; beyond, the one that would end soonest is dropped for the new one.
pub const MAX_BANS: usize = 10_000;

/// What a peer did wrong, and how many points it costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offense {
    /// Broke a consensus rule in a way no honest node can (bad proof of work, bad merkle
    /// root, bad signature, a context-free rule): banned at once.
    Consensus(String),
    /// Sent bytes that are not a valid message, or a message beyond the protocol's bounds.
    Malformed(String),
    /// Sent a response that does not answer the request (unrequested blocks, headers that
    /// do not connect).
    BadResponse(String),
    /// Exceeded a rate limit.
    Flood(String),
    /// Left a sync request unanswered until it timed out.
    Stalled(String),
}

impl Offense {
    /// Points this offense adds to the peer's misbehaviour score.
    pub fn points(&self) -> u32 {
        match self {
            Offense::Consensus(_) => BAN_THRESHOLD,
            Offense::Malformed(_) => 50,
            Offense::BadResponse(_) => 20,
            Offense::Flood(_) => 5,
            Offense::Stalled(_) => 20,
        }
    }

    /// The human-readable reason (shown by `listbanned`).
    pub fn reason(&self) -> String {
        match self {
            Offense::Consensus(r) => format!("consensus violation: {r}"),
            Offense::Malformed(r) => format!("malformed message: {r}"),
            Offense::BadResponse(r) => format!("bad response: {r}"),
            Offense::Flood(r) => format!("rate limit exceeded: {r}"),
            Offense::Stalled(r) => format!("stalled sync: {r}"),
        }
    }
}

/// A ban of one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned peer.
    #[serde(with = "peer_id_string")]
    pub peer_id: PeerId,
    /// Unix time the ban ends.
    pub banned_until: u64,
    /// Unix time the ban began.
    pub ban_created: u64,
    /// Why.
    pub reason: String,
}

mod peer_id_string {
    use libp2p::PeerId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(peer: &PeerId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&peer.to_base58())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The ban list: who is banned until when, and why. [`super::ban_store`] persists it as
/// JSON so bans survive a restart (like Core's `banlist.json`).
#[derive(Debug, Default)]
pub struct BanList {
    bans: HashMap<PeerId, Ban>,
}

impl BanList {
    /// A list of `bans`, dropping those that ended at `now`.
    pub fn new(bans: Vec<Ban>, now: u64) -> BanList {
        BanList {
            bans: bans
                .into_iter()
                .filter(|b| b.banned_until > now)
                .map(|b| (b.peer_id, b))
                .collect(),
        }
    }

    /// Bans `peer` until `now + duration` (replacing any earlier ban of it). A full list
    /// ([`MAX_BANS`]) first drops the ban that ends soonest.
    pub fn ban(&mut self, peer: PeerId, duration: Duration, reason: String, now: u64) -> &Ban {
        if self.bans.len() >= MAX_BANS
            && !self.bans.contains_key(&peer)
            && let Some(soonest) = self
                .bans
                .values()
                .min_by_key(|b| (b.banned_until, b.peer_id))
                .map(|b| b.peer_id)
        {
            self.bans.remove(&soonest);
        }
        let ban = Ban {
            peer_id: peer,
            banned_until: now.saturating_add(duration.as_secs()),
            ban_created: now,
            reason,
        };
        self.bans.insert(peer, ban);
        &self.bans[&peer]
    }

    /// Lifts the ban of `peer`; whether it was banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.bans.remove(peer).is_some()
    }

    /// Number of bans held.
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// Whether no ban is held.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: u64) -> bool {
        self.bans.get(peer).is_some_and(|b| b.banned_until > now)
    }

    /// Removes bans that ended; returns the peers to unblock.
    pub fn expire(&mut self, now: u64) -> Vec<PeerId> {
        let ended: Vec<PeerId> = self
            .bans
            .values()
            .filter(|b| b.banned_until <= now)
            .map(|b| b.peer_id)
            .collect();
        for peer in &ended {
            self.bans.remove(peer);
        }
        ended
    }

    /// Current bans, soonest to end first.
    pub fn list(&self) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self.bans.values().cloned().collect();
        bans.sort_by(|a, b| {
            a.banned_until
                .cmp(&b.banned_until)
                .then(a.peer_id.cmp(&b.peer_id))
        });
        bans
    }
}

/// Misbehaviour scores, remembered across reconnects (bounded, oldest forgotten first),
/// fading by [`SCORE_DECAY_PER_MINUTE`].
#[derive(Debug, Default)]
pub struct Scores {
    scores: HashMap<PeerId, (u32, Instant)>,
    order: VecDeque<PeerId>,
}

/// `score` as it stands `elapsed` after it was last raised.
fn decayed(score: u32, elapsed: Duration) -> u32 {
    let forgiven = elapsed.as_secs() * u64::from(SCORE_DECAY_PER_MINUTE) / 60;
    score.saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX))
}

impl Scores {
    /// Adds the offense's points at `now`; returns the new score.
    pub fn add(&mut self, peer: PeerId, offense: &Offense, now: Instant) -> u32 {
        if !self.scores.contains_key(&peer) {
            if self.order.len() >= MAX_REMEMBERED_SCORES
                && let Some(old) = self.order.pop_front()
            {
                self.scores.remove(&old);
            }
            self.order.push_back(peer);
        }
        let (score, since) = self.scores.entry(peer).or_insert((0, now));
        let current = decayed(*score, now.saturating_duration_since(*since));
        *score = current.saturating_add(offense.points());
        *since = now;
        *score
    }

    /// The score at `now` (0 for an unknown peer).
    pub fn get(&self, peer: &PeerId, now: Instant) -> u32 {
        self.scores.get(peer).map_or(0, |(score, since)| {
            decayed(*score, now.saturating_duration_since(*since))
        })
    }

    /// Forgets a peer's score (after a manual unban, so it starts clean).
    pub fn reset(&mut self, peer: &PeerId) {
        if self.scores.remove(peer).is_some() {
            self.order.retain(|p| p != peer);
        }
    }
}

/// A token bucket: `capacity` events at once, refilled at `per_second`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: u32, per_second: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity: capacity as f64,
            per_second: per_second as f64,
            tokens: capacity as f64,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A peer named on the command line (`--peer`) or by `addnode`: kept connected, redialled
/// with exponential backoff.
#[derive(Clone, Debug)]
pub struct StaticPeer {
    /// Address to dial, without its `/p2p/` suffix.
    pub addr: Multiaddr,
    /// The peer's id: given in the multiaddr, or learned on the first connection.
    pub peer_id: Option<PeerId>,
    /// Delay before the next attempt after a failure.
    pub backoff: Duration,
    /// Earliest time of the next dial.
    pub next_attempt: Instant,
    /// A dial in flight.
    pub dialing: Option<libp2p::swarm::ConnectionId>,
    /// When the current connection came up.
    pub connected_at: Option<Instant>,
}

impl StaticPeer {
    /// A static peer to dial at once.
    pub fn new(addr: &Multiaddr, now: Instant) -> StaticPeer {
        let (addr, peer_id) = split_p2p(addr);
        StaticPeer {
            addr,
            peer_id,
            backoff: MIN_REDIAL_BACKOFF,
            next_attempt: now,
            dialing: None,
            connected_at: None,
        }
    }

    /// The dial failed: try again after the backoff, which doubles.
    pub fn failed(&mut self, now: Instant) {
        self.dialing = None;
        self.connected_at = None;
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_REDIAL_BACKOFF);
    }

    /// A connection is up.
    pub fn connected(&mut self, peer: PeerId, now: Instant) {
        self.dialing = None;
        self.peer_id = Some(peer);
        self.connected_at.get_or_insert(now);
    }

    /// The last connection closed: redial after the shortest backoff if it had been stable,
    /// else back off further.
    pub fn disconnected(&mut self, now: Instant) {
        if self
            .connected_at
            .is_some_and(|t| now.saturating_duration_since(t) >= STABLE_CONNECTION)
        {
            self.backoff = MIN_REDIAL_BACKOFF;
        }
        self.failed(now);
    }

    /// Dial again as soon as possible (after `addnode`, an unban, reactivation).
    pub fn retry_now(&mut self, now: Instant) {
        self.next_attempt = now;
        self.backoff = MIN_REDIAL_BACKOFF;
    }

    /// Whether the address (with or without `/p2p/`) names this static peer.
    pub fn matches(&self, addr: &Multiaddr) -> bool {
        let (bare, peer) = split_p2p(addr);
        bare == self.addr && (peer.is_none() || self.peer_id.is_none() || peer == self.peer_id)
    }
}

/// Splits `/ip4/…/tcp/…/p2p/ID` into the address and the peer id.
pub fn split_p2p(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut bare = Multiaddr::empty();
    let mut peer = None;
    for component in addr.iter() {
        match component {
            Protocol::P2p(id) => peer = Some(id),
            other => bare.push(other),
        }
    }
    (bare, peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn consensus_offense_reaches_the_ban_threshold_at_once() {
        let mut scores = Scores::default();
        let now = Instant::now();
        let p = peer();
        assert_eq!(
            scores.add(p, &Offense::Consensus("high-hash".into()), now),
            BAN_THRESHOLD
        );
        let q = peer();
        assert!(scores.add(q, &Offense::Malformed("garbage".into()), now) < BAN_THRESHOLD);
        assert!(scores.add(q, &Offense::Malformed("oversized".into()), now) >= BAN_THRESHOLD);
        let r = peer();
        for _ in 0..19 {
            assert!(scores.add(r, &Offense::Flood("requests".into()), now) < BAN_THRESHOLD);
        }
        assert_eq!(
            scores.add(r, &Offense::Flood("requests".into()), now),
            BAN_THRESHOLD
        );
        scores.reset(&r);
        assert_eq!(scores.get(&r, now), 0);
    }

    #[test]
    fn scores_are_bounded() {
        let mut scores = Scores::default();
        let now = Instant::now();
        let first = peer();
        scores.add(first, &Offense::Flood("x".into()), now);
        for _ in 0..MAX_REMEMBERED_SCORES {
            scores.add(peer(), &Offense::Flood("x".into()), now);
        }
        assert_eq!(scores.get(&first, now), 0);
        assert_eq!(scores.scores.len(), MAX_REMEMBERED_SCORES);
    }

    #[test]
    fn small_offenses_fade_and_only_a_persistent_offender_is_banned() {
        let mut scores = Scores::default();
        let start = Instant::now();
        let p = peer();
        let stalled = Offense::Stalled("getheaders".into());
        assert_eq!(scores.add(p, &stalled, start), 20);
        assert_eq!(scores.get(&p, start + Duration::from_secs(60)), 10);
        assert_eq!(scores.get(&p, start + Duration::from_secs(120)), 0);
        // One stall every two minutes never adds up to a ban …
        let mut at = start;
        for _ in 0..20 {
            at += Duration::from_secs(120);
            assert!(scores.add(p, &stalled, at) < BAN_THRESHOLD);
        }
        // … five in a row do.
        for _ in 0..4 {
            scores.add(p, &stalled, at);
        }
        assert!(scores.add(p, &stalled, at) >= BAN_THRESHOLD);
    }

    #[test]
    fn the_ban_list_is_bounded_and_drops_the_soonest_to_end() {
        let mut list = BanList::default();
        let first = peer();
        list.ban(first, Duration::from_secs(5), "soonest".into(), 1000);
        for i in 1..MAX_BANS {
            list.ban(
                peer(),
                Duration::from_secs(100 + i as u64),
                "x".into(),
                1000,
            );
        }
        assert_eq!(list.len(), MAX_BANS);
        let newest = peer();
        list.ban(newest, DEFAULT_BAN_DURATION, "newest".into(), 1000);
        assert_eq!(list.len(), MAX_BANS);
        assert!(!list.is_banned(&first, 1001));
        assert!(list.is_banned(&newest, 1001));
    }

    #[test]
    fn bans_expire_and_are_lifted() {
        let mut list = BanList::default();
        let (a, b) = (peer(), peer());
        list.ban(a, Duration::from_secs(10), "short".into(), 1000);
        list.ban(b, DEFAULT_BAN_DURATION, "manually banned".into(), 1000);
        assert!(list.is_banned(&a, 1009));
        assert!(!list.is_banned(&a, 1010));
        assert_eq!(list.list()[0].peer_id, a);

        assert_eq!(BanList::new(list.list(), 1005).list().len(), 2);
        assert_eq!(
            BanList::new(list.list(), 1011).list().len(),
            1,
            "bans that ended are dropped when a list is rebuilt"
        );

        assert_eq!(list.expire(1010), vec![a]);
        assert!(list.unban(&b));
        assert!(!list.unban(&b));
        assert!(list.list().is_empty());
    }

    #[test]
    fn token_bucket_limits_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 5, start);
        for _ in 0..10 {
            assert!(bucket.try_take(start));
        }
        assert!(!bucket.try_take(start), "burst capacity exhausted");
        assert!(
            !bucket.try_take(start + Duration::from_millis(100)),
            "half a token"
        );
        assert!(
            bucket.try_take(start + Duration::from_millis(200)),
            "one token after 1/5 s"
        );
        assert!(!bucket.try_take(start + Duration::from_millis(200)));
        // A long pause refills only up to the capacity.
        let later = start + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
        // A clock that goes backwards does not mint tokens.
        assert!(!bucket.try_take(start));
    }

    #[test]
    fn static_peer_backoff_doubles_up_to_a_minute_and_resets() {
        let now = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().unwrap();
        let mut sp = StaticPeer::new(&addr, now);
        assert_eq!(sp.next_attempt, now);
        let mut delays = Vec::new();
        for _ in 0..9 {
            sp.failed(now);
            delays.push((sp.next_attempt - now).as_secs());
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let id = peer();
        // A connection closed at once (the remote refuses us) keeps backing off.
        sp.connected(id, now);
        sp.disconnected(now + Duration::from_secs(1));
        assert_eq!(sp.next_attempt - now, Duration::from_secs(61));
        // A stable connection resets the backoff.
        sp.connected(id, now);
        sp.disconnected(now + STABLE_CONNECTION);
        assert_eq!(
            sp.next_attempt - now,
            STABLE_CONNECTION + MIN_REDIAL_BACKOFF
        );
        sp.failed(now);
        assert_eq!(sp.next_attempt - now, Duration::from_secs(2));
        sp.retry_now(now);
        assert_eq!(sp.next_attempt, now);
        sp.failed(now);
        assert_eq!(sp.next_attempt - now, Duration::from_secs(1));
        assert!(sp.matches(&addr));
        assert!(sp.matches(&addr.clone().with(Protocol::P2p(id))));
        assert!(!sp.matches(&addr.clone().with(Protocol::P2p(peer()))));
    }

    #[test]
    fn p2p_suffix_is_split_off() {
        let id = peer();
        let full: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{id}").parse().unwrap();
        let (bare, got) = split_p2p(&full);
        assert_eq!(bare.to_string(), "/ip4/127.0.0.1/tcp/1");
        assert_eq!(got, Some(id));
        assert_eq!(StaticPeer::new(&full, Instant::now()).peer_id, Some(id));
    }
}
