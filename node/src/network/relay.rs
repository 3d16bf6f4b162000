//! Gossip between the swarm and the [`gossip::Validator`]: a message that arrives may be
//! lost to link shaping ([`super::shaping`]); else it is held until its sender completed
//! the handshake, then to the sender's rate limit and share of the queue, and queued for
//! validation; the validator's verdict goes back to gossipsub (forward, drop, or drop and
//! penalise). What this node produced itself (mined, or submitted over RPC) is published
//! here.

use super::behaviour::Behaviour;
use super::connections::Connections;
use super::gossip::{self, Kind};
use super::peers::Offense;
use super::protocol::Topics;
use super::scoring::Scoring;
use super::shaping::LinkTable;
use super::sync::Trigger;
use crate::byzantine;
use crate::chain_task::NodeEvent;
use cairn_core::encoding;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::{PeerId, Swarm};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::mpsc;

/// The topics and the validator's queue.
pub(super) struct Relay {
    topics: Topics,
    jobs: mpsc::Sender<gossip::Job>,
    links: LinkTable,
    /// The `equivocate` Byzantine mode: our blocks go to one half of the peers each.
    equivocate: bool,
    /// Blocks of ours published so far (which half the next one goes to).
    published_blocks: usize,
    /// Messages of peers whose status has not arrived yet, held (a few each) until it does:
    /// nothing of a peer that never completes the handshake is validated.
    held: HashMap<PeerId, Vec<gossip::Job>>,
    /// Our newest block, when it found no peer subscribed to the blocks topic (just after
    /// start or connect): published again as soon as a peer subscribes, since a block that
    /// only ties the peer's tip would otherwise never reach it (sync fetches only more work).
    /// Only the newest: older ones reach a peer by sync, and announcing them would be a run
    /// of blocks that do not connect. Transactions are not kept.
    unpublished: Option<Unpublished>,
}

/// Our block waiting for a subscriber.
struct Unpublished {
    topic: gossipsub::IdentTopic,
    data: Vec<u8>,
    what: String,
}

/// Messages held per peer before its handshake; beyond, they are ignored.
const MAX_HELD_PER_PEER: usize = 16;

/// Gossipsub application score that puts a peer below the publish threshold (with the
/// default weight of 10): used by `equivocate` to leave a half out of one publication.
const EXCLUDED_SCORE: f64 = -1e6;

impl Relay {
    /// Relays on `topics`, validating through `jobs`; `links` says which senders' messages
    /// are lost on the way; `equivocate` is the Byzantine mode.
    pub(super) fn new(
        topics: Topics,
        jobs: mpsc::Sender<gossip::Job>,
        links: LinkTable,
        equivocate: bool,
    ) -> Relay {
        Relay {
            topics,
            jobs,
            links,
            equivocate,
            published_blocks: 0,
            held: HashMap::new(),
            unpublished: None,
        }
    }

    /// A gossip message arrived: queue it for validation (or ignore it when it is on an
    /// unknown topic, the sender floods, or the queue is full).
    pub(super) fn on_gossip_event(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        event: gossipsub::Event,
    ) {
        let (source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            gossipsub::Event::Subscribed { .. } => return self.publish_waiting(swarm),
            _ => return,
        };
        let kind = if message.topic == self.topics.blocks.hash() {
            Kind::Block
        } else if message.topic == self.topics.txs.hash() {
            Kind::Tx
        } else {
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            return;
        };
        // Lost on the shaped link: as if it never came, so neither a verdict nor a rate token.
        if self.links.loses(&source) {
            tracing::debug!(peer = %source, ?kind, "gossip message lost to link shaping");
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            return;
        }
        let job = gossip::Job {
            message_id: message_id.clone(),
            source,
            kind,
            data: message.data,
        };
        if !connections.handshaken(&source) {
            let held = self.held.entry(source).or_default();
            if held.len() < MAX_HELD_PER_PEER {
                held.push(job);
            } else {
                report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            }
            return;
        }
        self.validate(swarm, connections, scoring, job);
    }

    /// `peer` completed the handshake: what it sent before goes to validation.
    pub(super) fn handshake_done(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        peer: &PeerId,
    ) {
        for job in self.held.remove(peer).unwrap_or_default() {
            self.validate(swarm, connections, scoring, job);
        }
    }

    /// `peer` disconnected: what it sent before its handshake is dropped.
    pub(super) fn peer_gone(&mut self, swarm: &mut Swarm<Behaviour>, peer: &PeerId) {
        for job in self.held.remove(peer).unwrap_or_default() {
            report(swarm, &job.message_id, peer, MessageAcceptance::Ignore);
        }
    }

    /// Holds a message to the sender's rate limit and share of the queue, then queues it.
    fn validate(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        job: gossip::Job,
    ) {
        let (message_id, source) = (job.message_id.clone(), job.source);
        if !connections.take_gossip_token(&source, Instant::now()) {
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            scoring.punish(swarm, source, Offense::Flood("gossip messages".into()));
            return;
        }
        if !connections.gossip_enqueued(&source) {
            tracing::debug!(peer = %source, "the peer's share of the gossip queue is full; ignoring a message");
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            return;
        }
        if self.jobs.try_send(job).is_err() {
            tracing::debug!("gossip validation queue full; ignoring a message");
            connections.gossip_validated(&source, false, Instant::now());
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
        }
    }

    /// The validator decided: tell gossipsub, note the sender's height, ask the sync task
    /// for the headers of a block that does not connect, punish an offense.
    pub(super) fn on_verdict(
        &self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        sync_triggers: &mpsc::Sender<Trigger>,
        verdict: gossip::Verdict,
    ) {
        let gossip::Verdict {
            message_id,
            source,
            acceptance,
            offense,
            unconnecting,
            block_height,
            summary,
        } = verdict;
        let accepted_block = block_height.is_some() && acceptance == MessageAcceptance::Accept;
        connections.gossip_validated(&source, accepted_block, Instant::now());
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
        report(swarm, &message_id, &source, acceptance);
        if let (Some(height), Some(peer)) = (block_height, connections.get_mut(&source)) {
            peer.saw_height(height);
        }
        if unconnecting {
            let _ = sync_triggers.try_send(Trigger::Unconnecting { peer: source });
        }
        if let Some(offense) = offense {
            scoring.punish(swarm, source, offense);
        }
    }

    /// Publishes a block or transaction this node produced itself; what came from the
    /// network is forwarded by gossipsub or is old news. Other events are not gossip.
    pub(super) fn publish(&mut self, swarm: &mut Swarm<Behaviour>, event: NodeEvent) {
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
            NodeEvent::TipChanged { .. } | NodeEvent::BlockKnown { .. } => return,
        };
        let excluded = if self.equivocate && topic.hash() == self.topics.blocks.hash() {
            self.published_blocks += 1;
            self.exclude_half(swarm, self.published_blocks % 2)
        } else {
            Vec::new()
        };
        // Only our own block is kept for a later subscriber (a copy, once per block we
        // mine); transactions are handed to gossipsub without one.
        let retained = (topic.hash() == self.topics.blocks.hash()).then(|| {
            self.unpublished = None;
            (topic.clone(), data.clone())
        });
        match (
            swarm.behaviour_mut().gossipsub.publish(topic, data),
            retained,
        ) {
            (Ok(_), _) => tracing::debug!(left_out = excluded.len(), "published {what}"),
            (Err(gossipsub::PublishError::NoPeersSubscribedToTopic), Some((topic, data))) => {
                tracing::debug!("no peer subscribed yet: {what} waits for one");
                self.unpublished = Some(Unpublished { topic, data, what });
            }
            (Err(e), _) => tracing::debug!("not published {what}: {e}"),
        }
        for peer in excluded {
            swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&peer, 0.0);
        }
    }

    /// A peer subscribed to a topic: publishes the block that waited for one (it waits on
    /// while it still finds no subscriber).
    fn publish_waiting(&mut self, swarm: &mut Swarm<Behaviour>) {
        let Some(waiting) = self.unpublished.take() else {
            return;
        };
        let gossip = &mut swarm.behaviour_mut().gossipsub;
        match gossip.publish(waiting.topic.clone(), waiting.data.clone()) {
            Ok(_) => tracing::debug!("published {} once a peer subscribed", waiting.what),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                self.unpublished = Some(waiting)
            }
            Err(e) => tracing::debug!("not published {}: {e}", waiting.what),
        }
    }

    /// `equivocate`: drops one half of the peers below gossipsub's publish threshold for
    /// the next publication; returns them, to be restored right after it.
    fn exclude_half(&self, swarm: &mut Swarm<Behaviour>, half: usize) -> Vec<PeerId> {
        let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
        let excluded: Vec<PeerId> = peers
            .iter()
            .filter(|p| byzantine::half_of(p, &peers) == Some(half))
            .copied()
            .collect();
        for peer in &excluded {
            swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(peer, EXCLUDED_SCORE);
        }
        excluded
    }
}

/// Tells gossipsub whether to forward a message.
fn report(
    swarm: &mut Swarm<Behaviour>,
    id: &MessageId,
    source: &PeerId,
    acceptance: MessageAcceptance,
) {
    swarm
        .behaviour_mut()
        .gossipsub
        .report_message_validation_result(id, source, acceptance);
}
