//! Gossip between the swarm and the [`gossip::Validator`]: a message that arrives is held
//! to the sender's rate limit and queued for validation; the validator's verdict goes back
//! to gossipsub (forward, drop, or drop and penalise). What this node produced itself
//! (mined, or submitted over RPC) is published here.

use super::behaviour::Behaviour;
use super::connections::Connections;
use super::gossip::{self, Kind};
use super::peers::Offense;
use super::protocol::Topics;
use super::scoring::Scoring;
use super::sync::Trigger;
use crate::chain_task::NodeEvent;
use cairn_core::encoding;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::{PeerId, Swarm};
use std::time::Instant;
use tokio::sync::mpsc;

/// The topics and the validator's queue.
pub(super) struct Relay {
    topics: Topics,
    jobs: mpsc::Sender<gossip::Job>,
}

impl Relay {
    /// Relays on `topics`, validating through `jobs`.
    pub(super) fn new(topics: Topics, jobs: mpsc::Sender<gossip::Job>) -> Relay {
        Relay { topics, jobs }
    }

    /// A gossip message arrived: queue it for validation (or ignore it when it is on an
    /// unknown topic, the sender floods, or the queue is full).
    pub(super) fn on_gossip_event(
        &self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        event: gossipsub::Event,
    ) {
        let gossipsub::Event::Message {
            propagation_source: source,
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
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            return;
        };
        if !connections.take_gossip_token(&source, Instant::now()) {
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
            scoring.punish(swarm, source, Offense::Flood("gossip messages".into()));
            return;
        }
        let job = gossip::Job {
            message_id: message_id.clone(),
            source,
            kind,
            data: message.data,
        };
        if self.jobs.try_send(job).is_err() {
            tracing::debug!("gossip validation queue full; ignoring a message");
            report(swarm, &message_id, &source, MessageAcceptance::Ignore);
        }
    }

    /// The validator decided: tell gossipsub, note the sender's height, ask the sync task
    /// to fill in an orphan's parents, punish an offense.
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
        report(swarm, &message_id, &source, acceptance);
        if let (Some(height), Some(peer)) = (block_height, connections.get_mut(&source)) {
            peer.saw_height(height);
        }
        if orphan {
            let _ = sync_triggers.try_send(Trigger::Orphan { peer: source });
        }
        if let Some(offense) = offense {
            scoring.punish(swarm, source, offense);
        }
    }

    /// Publishes a block or transaction this node produced itself; what came from the
    /// network is forwarded by gossipsub or is old news. Other events are not gossip.
    pub(super) fn publish(&self, swarm: &mut Swarm<Behaviour>, event: NodeEvent) {
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
            NodeEvent::TipChanged { .. } => return,
        };
        match swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) => tracing::debug!("published {what}"),
            Err(e) => tracing::debug!("not published {what}: {e}"),
        }
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
