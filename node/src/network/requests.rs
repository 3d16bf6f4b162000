//! The sync requests we send: our status (the handshake) and those the sync task makes
//! through [`super::NetworkHandle::request`]. Each is remembered until its answer or its
//! failure arrives, which then goes where the request came from.

use super::RequestError;
use super::behaviour::Behaviour;
use super::codec::is_protocol_violation;
use super::peers::Offense;
use super::protocol::{Status, SyncRequest, SyncResponse};
use super::shaping::LinkTable;
use libp2p::request_response::{OutboundFailure, OutboundRequestId};
use libp2p::{PeerId, Swarm};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Where an answer goes.
type Reply = oneshot::Sender<Result<SyncResponse, RequestError>>;

/// What an outbound request is for.
enum Pending {
    /// Our status, sent on connect and periodically.
    Status,
    /// A request from a [`super::NetworkHandle`] (the sync task).
    External(Reply),
}

/// Requests in flight.
pub(super) struct Requests {
    pending: HashMap<OutboundRequestId, Pending>,
    links: LinkTable,
}

impl Requests {
    /// No requests yet; `links` says which peers' blocks are lost on the way.
    pub(super) fn new(links: LinkTable) -> Requests {
        Requests {
            pending: HashMap::new(),
            links,
        }
    }

    /// Sends our status to `peer`; its answer is its status.
    pub(super) fn send_status(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        status: Status,
    ) {
        let request = Ok(SyncRequest::Status(status));
        let id = swarm.behaviour_mut().sync.send_request(&peer, request);
        self.pending.insert(id, Pending::Status);
    }

    /// Sends a request of the sync task; the answer goes to `reply`.
    pub(super) fn send(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        request: SyncRequest,
        reply: Reply,
    ) {
        if !swarm.is_connected(&peer) {
            let _ = reply.send(Err(RequestError::Failed(format!(
                "peer {peer} is not connected"
            ))));
            return;
        }
        let id = swarm.behaviour_mut().sync.send_request(&peer, Ok(request));
        self.pending.insert(id, Pending::External(reply));
    }

    /// An answer arrived. The answer to our status is returned (the peer's status, or the
    /// offense of answering something else); others go to whoever asked.
    pub(super) fn on_response(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        response: SyncResponse,
    ) -> Option<Result<Status, Offense>> {
        match self.pending.remove(&id)? {
            Pending::Status => match response {
                SyncResponse::Status(status) => Some(Ok(status)),
                other => Some(Err(Offense::BadResponse(format!(
                    "{} in answer to status",
                    other.kind()
                )))),
            },
            Pending::External(reply) => {
                let _ = reply.send(self.after_loss(peer, response));
                None
            }
        }
    }

    /// The answer as it survives link shaping: each block of a `Blocks` answer is lost
    /// with the peer's loss probability, and the answer ends before the first lost block
    /// (the sync task asks again for the rest); when the first is lost, the request failed.
    fn after_loss(
        &self,
        peer: PeerId,
        response: SyncResponse,
    ) -> Result<SyncResponse, RequestError> {
        let SyncResponse::Blocks(blocks) = response else {
            return Ok(response);
        };
        if blocks.is_empty() || self.links.get(&peer).is_none_or(|s| s.loss_pct() == 0.0) {
            return Ok(SyncResponse::Blocks(blocks));
        }
        let sent = blocks.len();
        let kept: Vec<_> = blocks
            .into_iter()
            .take_while(|_| !self.links.loses(&peer))
            .collect();
        if kept.len() < sent {
            tracing::debug!(%peer, lost = sent - kept.len(), sent, "sync blocks lost to link shaping");
        }
        if kept.is_empty() {
            return Err(RequestError::Failed(
                "the answer's blocks were lost to link shaping".into(),
            ));
        }
        Ok(SyncResponse::Blocks(kept))
    }

    /// A request failed; the offense, if the peer broke the protocol.
    pub(super) fn on_failure(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        error: OutboundFailure,
    ) -> Option<Offense> {
        let violation = matches!(&error, OutboundFailure::Io(e) if is_protocol_violation(e));
        let message = error.to_string();
        match self.pending.remove(&id) {
            Some(Pending::External(reply)) => {
                let error = match error {
                    OutboundFailure::Timeout => RequestError::Timeout,
                    other => RequestError::Failed(other.to_string()),
                };
                let _ = reply.send(Err(error));
            }
            Some(Pending::Status) => {
                tracing::debug!(%peer, "status request failed: {message}")
            }
            None => {}
        }
        violation.then_some(Offense::Malformed(message))
    }
}
