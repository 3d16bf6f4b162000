//! Misbehaviour scores and the bans they lead to: the one place that blocks and unblocks
//! peers in the swarm. The rules are the pure [`Scores`] and [`BanList`]; the list goes to
//! the [`BanStore`] so it survives a restart — at most once per housekeeping tick, not once
//! per ban, so a ban storm does not rewrite the file a thousand times.

use super::ban_store::BanStore;
use super::behaviour::Behaviour;
use super::peers::{self, Ban, BanList, Offense, Scores};
use crate::clock::SharedClock;
use libp2p::{PeerId, Swarm};
use std::time::{Duration, Instant};

/// Scores, bans and where bans are kept.
pub(super) struct Scoring {
    scores: Scores,
    bans: BanList,
    store: BanStore,
    /// The list changed since it was last handed to the store.
    dirty: bool,
    clock: SharedClock,
}

impl Scoring {
    /// Starts from the bans loaded at startup.
    pub(super) fn new(bans: BanList, store: BanStore, clock: SharedClock) -> Scoring {
        Scoring {
            scores: Scores::default(),
            bans,
            store,
            dirty: false,
            clock,
        }
    }

    /// Refuses every peer whose ban is still running (at startup).
    pub(super) fn block_banned(&self, swarm: &mut Swarm<Behaviour>) {
        let now = self.clock.now_secs();
        for ban in self.bans.list() {
            if ban.banned_until > now {
                swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
            }
        }
    }

    /// Whether `peer` is banned now.
    pub(super) fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.is_banned(peer, self.clock.now_secs())
    }

    /// The peer's misbehaviour score.
    pub(super) fn score(&self, peer: &PeerId) -> u32 {
        self.scores.get(peer, Instant::now())
    }

    /// Adds the offense to the peer's score; bans it at [`peers::BAN_THRESHOLD`].
    pub(super) fn punish(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId, offense: Offense) {
        let score = self.scores.add(peer, &offense, Instant::now());
        tracing::warn!(%peer, score, "peer misbehaved: {}", offense.reason());
        if score >= peers::BAN_THRESHOLD && !self.bans.is_banned(&peer, self.clock.now_secs()) {
            self.ban(swarm, peer, peers::DEFAULT_BAN_DURATION, offense.reason());
        }
    }

    /// Bans `peer` for `duration`: closes its connections at once and refuses new ones.
    pub(super) fn ban(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        duration: Duration,
        reason: String,
    ) {
        let ban = self
            .bans
            .ban(peer, duration, reason, self.clock.now_secs())
            .clone();
        self.dirty = true;
        tracing::warn!(%peer, until = ban.banned_until, "banned peer: {}", ban.reason);
        swarm.behaviour_mut().blocked.block_peer(peer);
        swarm.behaviour_mut().kad.remove_peer(&peer);
        let _ = swarm.disconnect_peer_id(peer);
    }

    /// Lifts the ban of `peer` and forgets its score, so it starts clean; whether it was
    /// banned.
    pub(super) fn unban(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId) -> bool {
        if !self.bans.unban(&peer) {
            return false;
        }
        self.dirty = true;
        tracing::info!(%peer, "ban lifted");
        swarm.behaviour_mut().blocked.unblock_peer(peer);
        self.scores.reset(&peer);
        true
    }

    /// Lifts the bans that ended.
    pub(super) fn expire(&mut self, swarm: &mut Swarm<Behaviour>) {
        let ended = self.bans.expire(self.clock.now_secs());
        if ended.is_empty() {
            return;
        }
        self.dirty = true;
        for peer in ended {
            tracing::info!(%peer, "ban expired");
            swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    /// Current bans, soonest to end first (those that ended are lifted first).
    pub(super) fn list(&mut self, swarm: &mut Swarm<Behaviour>) -> Vec<Ban> {
        self.expire(swarm);
        self.bans.list()
    }

    /// Hands the list to the store if it changed (called on every housekeeping tick).
    pub(super) fn flush(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.store.save(self.bans.list());
        }
    }

    /// Waits until the ban list is on disk.
    pub(super) async fn close(mut self) {
        self.flush();
        self.store.close().await;
    }
}
