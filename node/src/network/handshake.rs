//! The status exchange. Each side sends its [`Status`] (network, genesis, parameters, best
//! tip, chainwork) when a connection opens, every [`STATUS_REFRESH`] after that, and to
//! everyone soon after its tip moves. A peer's status tells the sync task whether it has
//! more work than we do; a peer of another network is disconnected and never redialled.

use super::connections::Connections;
use super::event_loop::Internal;
use super::protocol::{self, Status};
use super::sync::Trigger;
use crate::chain_task::ChainHandle;
use cairn_core::ChainParams;
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often each peer is asked for a fresh status.
const STATUS_REFRESH: Duration = Duration::from_secs(30);
/// After our tip moves, our status goes to every peer, at most this often.
const STATUS_ANNOUNCE: Duration = Duration::from_secs(1);
/// A peer of another network is disconnected this long after we found out (time for both
/// statuses to cross, so that neither side redials).
const INCOMPATIBLE_GRACE: Duration = Duration::from_secs(1);

/// What a peer's status means for it.
#[derive(Debug)]
pub(super) enum StatusOutcome {
    /// Oversized strings: the peer broke the protocol.
    Malformed,
    /// Another network: forget its addresses; [`Handshake::lingering`] says when to hang up.
    OtherNetwork,
    /// Recorded; the sync task should look at the peer.
    Sync(Trigger),
    /// The peer is no longer connected.
    Gone,
}

/// What the handshake remembers between statuses.
pub(super) struct Handshake {
    params: ChainParams,
    /// Peers of another network (and when we found out): disconnected, never redialled.
    incompatible: HashMap<PeerId, Instant>,
    /// Our tip moved since the last status announcement.
    tip_moved: bool,
    last_announce: Instant,
}

impl Handshake {
    /// Peers must match `params`.
    pub(super) fn new(params: ChainParams, now: Instant) -> Handshake {
        Handshake {
            params,
            incompatible: HashMap::new(),
            tip_moved: false,
            last_announce: now,
        }
    }

    /// Whether `peer` is of another network.
    pub(super) fn is_incompatible(&self, peer: &PeerId) -> bool {
        self.incompatible.contains_key(peer)
    }

    /// Forgets that `peer` was of another network (it was named by `addnode`: try again).
    pub(super) fn forgive(&mut self, peer: &PeerId) {
        self.incompatible.remove(peer);
    }

    /// Our tip moved: announce our status soon.
    pub(super) fn tip_moved(&mut self) {
        self.tip_moved = true;
    }

    /// Peers that get our status now. After our tip moved, everyone (at most once per
    /// [`STATUS_ANNOUNCE`]): peers learn our height, and one that missed our blocks
    /// notices it is behind and syncs. Otherwise those due for a refresh.
    pub(super) fn due(&mut self, connections: &mut Connections, now: Instant) -> Vec<PeerId> {
        let announce = self.tip_moved && now.duration_since(self.last_announce) >= STATUS_ANNOUNCE;
        let due = connections.status_due(announce, STATUS_REFRESH, now);
        if announce {
            self.tip_moved = false;
            self.last_announce = now;
        }
        due
    }

    /// Peers of another network whose grace period is over and that are still connected.
    pub(super) fn lingering(
        &self,
        now: Instant,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<PeerId> {
        self.incompatible
            .iter()
            .filter(|(peer, since)| {
                now.duration_since(**since) >= INCOMPATIBLE_GRACE && connected(peer)
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// A peer told us its status (in a request or a response).
    pub(super) fn on_status(
        &mut self,
        connections: &mut Connections,
        peer: PeerId,
        status: Status,
    ) -> StatusOutcome {
        if !status.is_well_formed() {
            return StatusOutcome::Malformed;
        }
        if let Some(reason) = status.incompatibility(&self.params) {
            if self.incompatible.insert(peer, Instant::now()).is_none() {
                tracing::warn!(%peer, "disconnecting a peer of another network: {reason}");
            }
            // The connection is closed after a grace period, not now: the peer must first
            // receive our status too, or it would not know why we hung up and would redial.
            return StatusOutcome::OtherNetwork;
        }
        let Some(state) = connections.get_mut(&peer) else {
            return StatusOutcome::Gone;
        };
        if state.status.is_none() {
            tracing::debug!(%peer, height = status.best_height, agent = %status.user_agent, "handshake complete");
        }
        state.saw_height(status.best_height);
        let trigger = Trigger::PeerStatus {
            peer,
            chainwork: status.chainwork,
            height: status.best_height,
        };
        state.status = Some(status);
        StatusOutcome::Sync(trigger)
    }
}

/// Computes our status on a helper task, then has the event loop send it to `peers`.
pub(super) fn send_status(
    chain: &ChainHandle,
    internal: &mpsc::Sender<Internal>,
    connections: &mut Connections,
    peers: Vec<PeerId>,
    lie_work: bool,
) {
    connections.status_sent(&peers, Instant::now());
    let chain = chain.clone();
    let internal = internal.clone();
    tokio::spawn(async move {
        if let Some(status) = local_status(&chain, lie_work).await {
            let _ = internal.send(Internal::SendStatus { peers, status }).await;
        }
    });
}

/// Our status, computed on the chain owner; `None` once the node is stopping. With
/// `lie_work` (the `lie-work` Byzantine mode) it claims far more chainwork than we have.
pub(super) async fn local_status(chain: &ChainHandle, lie_work: bool) -> Option<Status> {
    chain
        .call(move |s| {
            let params = s.params();
            // A selfish miner's withheld blocks stay out of its status.
            let tip = s.public_tip();
            Status {
                protocol_version: protocol::PROTOCOL_VERSION,
                network_id: params.network_id.clone(),
                genesis_hash: params.genesis_hash,
                params_hash: params.params_hash,
                best_hash: tip.hash,
                best_height: tip.height,
                chainwork: if lie_work {
                    crate::byzantine::inflated_work(tip.chainwork)
                } else {
                    tip.chainwork
                },
                user_agent: protocol::USER_AGENT.into(),
            }
        })
        .await
        .ok()
}
