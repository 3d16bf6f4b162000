//! Answers the sync requests peers send us: `Status`, `GetHeaders`, `GetBlocks`.
//!
//! A request is first held to the peer's rate limit and the protocol's bounds. The answer
//! needs the chain, so it is computed on a helper task and comes back to the event loop
//! as [`Internal::Respond`]: a slow chain owner never stalls the swarm.

use super::behaviour::Behaviour;
use super::connections::Connections;
use super::event_loop::Internal;
use super::handshake::local_status;
use super::peers::Offense;
use super::protocol::{self, BLOCKS_RESPONSE_SOFT_LIMIT, Status, SyncRequest, SyncResponse};
use super::scoring::Scoring;
use crate::chain_task::{ChainHandle, NodeState};
use cairn_core::{Block, BlockHash};
use libp2p::request_response::ResponseChannel;
use libp2p::{PeerId, Swarm};
use std::time::Instant;
use tokio::sync::mpsc;

/// Where answers are computed and where they go.
pub(super) struct SyncServer {
    chain: ChainHandle,
    answers: mpsc::Sender<Internal>,
}

impl SyncServer {
    /// Answers from `chain`, sent back through `answers`.
    pub(super) fn new(chain: ChainHandle, answers: mpsc::Sender<Internal>) -> SyncServer {
        SyncServer { chain, answers }
    }

    /// A peer asked us something. A peer over its rate limit is refused and punished; a
    /// request beyond the protocol's bounds is punished and dropped unanswered. A status
    /// request carries the peer's own status: it is returned, for the handshake.
    pub(super) fn on_request(
        &self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) -> Option<Status> {
        if !connections.take_request_token(&peer, Instant::now()) {
            scoring.punish(swarm, peer, Offense::Flood("sync requests".into()));
            let _ = swarm
                .behaviour_mut()
                .sync
                .send_response(channel, SyncResponse::Refused("rate limited".into()));
            return None;
        }
        if let Some(violation) = request.violation() {
            // Dropping the channel closes the stream without an answer.
            scoring.punish(swarm, peer, Offense::Malformed(violation));
            return None;
        }
        tracing::trace!(%peer, kind = request.kind(), "sync request");
        match request {
            SyncRequest::Status(status) => {
                self.answer_status(peer, channel);
                Some(status)
            }
            SyncRequest::GetHeaders { locator, stop } => {
                self.answer_with(peer, channel, move |s| {
                    SyncResponse::Headers(s.chain.headers_after(
                        &locator,
                        stop,
                        protocol::MAX_HEADERS_PER_RESPONSE,
                    ))
                });
                None
            }
            SyncRequest::GetBlocks(hashes) => {
                self.answer_with(peer, channel, move |s| {
                    SyncResponse::Blocks(read_blocks(s, &hashes))
                });
                None
            }
        }
    }

    fn answer_status(&self, peer: PeerId, channel: ResponseChannel<SyncResponse>) {
        let chain = self.chain.clone();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            if let Some(ours) = local_status(&chain).await {
                let response = SyncResponse::Status(ours);
                let _ = answers
                    .send(Internal::Respond {
                        peer,
                        channel,
                        response,
                    })
                    .await;
            }
        });
    }

    /// Computes the answer on the chain owner; none once the node is stopping.
    fn answer_with(
        &self,
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        answer: impl FnOnce(&mut NodeState) -> SyncResponse + Send + 'static,
    ) {
        let chain = self.chain.clone();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            if let Ok(response) = chain.call(answer).await {
                let _ = answers
                    .send(Internal::Respond {
                        peer,
                        channel,
                        response,
                    })
                    .await;
            }
        });
    }
}

/// The bodies we have among `hashes`, in order, stopping past the soft byte limit (but
/// always at least one block).
fn read_blocks(state: &NodeState, hashes: &[BlockHash]) -> Vec<Block> {
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
