//! Answers the sync requests peers send us: `Status`, `GetHeaders`, `GetBlocks`.
//!
//! A request is first held to the peer's rate limit and the protocol's bounds; a peer that
//! has not sent its status gets nothing but the handshake. The answer needs the chain, so
//! it is computed on a helper task and comes back to the event loop as
//! [`Internal::Respond`]: a slow chain owner never stalls the swarm. Block requests, which
//! read megabytes on the chain owner, are served one at a time per peer (like Core's
//! `getdata`) and at most [`MAX_BLOCK_READS`] at a time in all; a peer that piles up more
//! than [`MAX_QUEUED_BLOCK_REQUESTS`] behind its own is refused.

use super::behaviour::Behaviour;
use super::connections::Connections;
use super::event_loop::Internal;
use super::handshake::local_status;
use super::peers::Offense;
use super::protocol::{self, BLOCKS_RESPONSE_SOFT_LIMIT, Status, SyncRequest, SyncResponse};
use super::scoring::Scoring;
use crate::byzantine::{self, Faults};
use crate::chain_task::{ChainHandle, NodeState};
use cairn_core::{Block, BlockHash};
use libp2p::request_response::ResponseChannel;
use libp2p::{PeerId, Swarm};
use std::collections::{HashSet, VecDeque};
use std::time::Instant;
use tokio::sync::mpsc;

/// Block requests of one peer waiting behind the one being read (Core serves `getdata`
/// one at a time per peer); beyond, a request is refused and costs the peer.
pub const MAX_QUEUED_BLOCK_REQUESTS: usize = 2;
/// Block reads in flight for all peers together (each may read megabytes on the chain
/// owner); others wait their turn.
pub const MAX_BLOCK_READS: usize = 4;

/// A block request waiting for a read slot.
struct Waiting {
    peer: PeerId,
    hashes: Vec<BlockHash>,
    channel: ResponseChannel<SyncResponse>,
}

/// Where answers are computed and where they go.
pub(super) struct SyncServer {
    chain: ChainHandle,
    answers: mpsc::Sender<Internal>,
    faults: Faults,
    /// Peers whose block request is being read.
    reading: HashSet<PeerId>,
    /// Block requests waiting for a slot, oldest first.
    waiting: VecDeque<Waiting>,
}

impl SyncServer {
    /// Answers from `chain`, sent back through `answers`.
    pub(super) fn new(
        chain: ChainHandle,
        answers: mpsc::Sender<Internal>,
        faults: Faults,
    ) -> SyncServer {
        SyncServer {
            chain,
            answers,
            faults,
            reading: HashSet::new(),
            waiting: VecDeque::new(),
        }
    }

    /// A peer asked us something. A peer over its rate limit is refused and punished; a
    /// request beyond the protocol's bounds is punished and dropped unanswered; a peer
    /// that has not sent its status is served nothing but the handshake. A status request
    /// carries the peer's own status: it is returned, for the handshake.
    pub(super) fn on_request(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        connections: &mut Connections,
        scoring: &mut Scoring,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) -> Option<Status> {
        if !connections.take_request_token(&peer, Instant::now()) {
            scoring.punish(swarm, peer, Offense::Flood("sync requests".into()));
            refuse(swarm, channel, "rate limited");
            return None;
        }
        if let Some(violation) = request.violation() {
            // Dropping the channel closes the stream without an answer.
            scoring.punish(swarm, peer, Offense::Malformed(violation));
            return None;
        }
        tracing::trace!(%peer, kind = request.kind(), "sync request");
        if let SyncRequest::Status(status) = request {
            self.answer_status(peer, channel);
            return Some(status);
        }
        if !connections.handshaken(&peer) {
            refuse(swarm, channel, "send your status first");
            return None;
        }
        if self.faults.lie_work {
            byzantine::hold_unanswered(channel);
            return None;
        }
        match request {
            SyncRequest::Status(_) => unreachable!("answered above"),
            SyncRequest::GetHeaders { locator, stop } => {
                self.answer_with(peer, channel, move |s| {
                    let mut headers =
                        s.chain
                            .headers_after(&locator, stop, protocol::MAX_HEADERS_PER_RESPONSE);
                    // Withheld blocks are the top of the active chain: cut them off.
                    if s.strategy.public_height_limit().is_some()
                        && let Some(cut) = headers
                            .iter()
                            .position(|h| s.strategy.is_withheld(&h.block_hash()))
                    {
                        headers.truncate(cut);
                    }
                    SyncResponse::Headers(headers)
                });
            }
            SyncRequest::GetBlocks(_) if self.faults.withhold_blocks => {
                byzantine::hold_unanswered(channel);
            }
            SyncRequest::GetBlocks(hashes) => {
                let queued = self.waiting.iter().filter(|w| w.peer == peer).count();
                if queued >= MAX_QUEUED_BLOCK_REQUESTS {
                    scoring.punish(
                        swarm,
                        peer,
                        Offense::Flood("block requests while others are served".into()),
                    );
                    refuse(swarm, channel, "busy: one block request at a time");
                    return None;
                }
                self.waiting.push_back(Waiting {
                    peer,
                    hashes,
                    channel,
                });
                self.start_reads();
            }
        }
        None
    }

    /// An answer is about to go to `peer`: a finished block read frees its slot.
    pub(super) fn answered(&mut self, peer: PeerId, response: &SyncResponse) {
        if matches!(response, SyncResponse::Blocks(_)) && self.reading.remove(&peer) {
            self.start_reads();
        }
    }

    /// `peer` disconnected: its waiting requests go, its slot (if the read is done) too.
    pub(super) fn peer_gone(&mut self, peer: &PeerId) {
        self.waiting.retain(|w| w.peer != *peer);
    }

    /// Starts waiting block reads while there are slots, one per peer at a time.
    fn start_reads(&mut self) {
        while self.reading.len() < MAX_BLOCK_READS {
            let Some(i) = self
                .waiting
                .iter()
                .position(|w| !self.reading.contains(&w.peer))
            else {
                return;
            };
            let Waiting {
                peer,
                hashes,
                channel,
            } = self.waiting.remove(i).expect("position is in range");
            self.reading.insert(peer);
            let empty_bodies = self.faults.empty_bodies;
            self.answer_with(peer, channel, move |s| {
                let blocks = read_blocks(s, &hashes);
                SyncResponse::Blocks(if empty_bodies {
                    byzantine::strip_bodies(blocks)
                } else {
                    blocks
                })
            });
        }
    }

    fn answer_status(&self, peer: PeerId, channel: ResponseChannel<SyncResponse>) {
        let chain = self.chain.clone();
        let answers = self.answers.clone();
        let lie_work = self.faults.lie_work;
        tokio::spawn(async move {
            if let Some(ours) = local_status(&chain, lie_work).await {
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

fn refuse(swarm: &mut Swarm<Behaviour>, channel: ResponseChannel<SyncResponse>, why: &str) {
    let _ = swarm
        .behaviour_mut()
        .sync
        .send_response(channel, SyncResponse::Refused(why.into()));
}

/// The bodies we have among `hashes`, in order, stopping past the soft byte limit (but
/// always at least one block).
fn read_blocks(state: &NodeState, hashes: &[BlockHash]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for hash in hashes.iter().filter(|h| !state.strategy.is_withheld(h)) {
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
