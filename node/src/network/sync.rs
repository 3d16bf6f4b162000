//! Headers-first catch-up.
//!
//! Runs on its own task and talks to the swarm only through a [`NetworkHandle`]. It is
//! woken when a peer's status claims more chainwork than ours, when a gossiped block turns
//! out to be an orphan (its parent is unknown: gossip alone cannot heal a partition), and
//! on a timer. Then, with one peer at a time:
//!
//! 1. send `GetHeaders` with our block locator; `accept_header` each header (proof of work
//!    and context are checked before any body is asked for);
//! 2. ask for the bodies we lack, in height order, in batches of
//!    [`MAX_BLOCKS_PER_REQUEST`], and `submit_block` them;
//! 3. repeat while the reply was full ([`MAX_HEADERS_PER_RESPONSE`]).
//!
//! A peer that does not answer in time, or answers uselessly, is skipped for a while and
//! the next candidate is tried; a peer that sends invalid data is reported.

use super::peers::Offense;
use super::protocol::{
    MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_PER_RESPONSE, SyncRequest, SyncResponse,
};
use super::{NetworkHandle, RequestError};
use crate::chain_task::{ChainHandle, NodeStopped, Origin};
use cairn_core::chain::HeaderOutcome;
use cairn_core::{Block, BlockError, BlockHash, BlockHeader, ImportOutcome, Work};
use libp2p::PeerId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A peer that failed us is not asked again for this long.
const COOLDOWN: Duration = Duration::from_secs(20);
/// Without triggers, candidates are re-examined this often.
const RECHECK: Duration = Duration::from_secs(5);

/// Why the sync task should look at a peer.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// The peer's status (handshake or refresh).
    PeerStatus {
        /// The peer.
        peer: PeerId,
        /// Its claimed chainwork.
        chainwork: Work,
        /// Its claimed height.
        height: u32,
    },
    /// The peer gossiped a block whose parent we do not have.
    Orphan {
        /// The peer.
        peer: PeerId,
    },
    /// The peer disconnected.
    PeerGone {
        /// The peer.
        peer: PeerId,
    },
}

/// Why a round of sync with one peer ended early.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request failed or timed out.
    #[error("request failed: {0}")]
    Request(#[from] RequestError),
    /// The peer sent something useless or wrong (already reported if it was misbehaviour).
    #[error("{0}")]
    Peer(String),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopped,
}

impl From<NodeStopped> for SyncError {
    fn from(_: NodeStopped) -> Self {
        SyncError::Stopped
    }
}

/// The candidates the sync task knows about.
#[derive(Debug, Default)]
struct Candidates {
    claimed: HashMap<PeerId, Work>,
    orphans: VecDeque<PeerId>,
    cooldown: HashMap<PeerId, Instant>,
}

impl Candidates {
    fn apply(&mut self, trigger: Trigger) {
        match trigger {
            Trigger::PeerStatus {
                peer, chainwork, ..
            } => {
                let entry = self.claimed.entry(peer).or_insert(chainwork);
                *entry = chainwork;
            }
            Trigger::Orphan { peer } => {
                if !self.orphans.contains(&peer) {
                    self.orphans.push_back(peer);
                }
            }
            Trigger::PeerGone { peer } => {
                self.claimed.remove(&peer);
                self.orphans.retain(|p| *p != peer);
                self.cooldown.remove(&peer);
            }
        }
    }

    /// The next peer to sync from: one that sent an orphan, else the one claiming the most
    /// work above ours; skipping peers in cooldown.
    fn next(&mut self, our_work: Work, now: Instant) -> Option<PeerId> {
        self.cooldown.retain(|_, until| *until > now);
        while let Some(peer) = self.orphans.pop_front() {
            if !self.cooldown.contains_key(&peer) {
                return Some(peer);
            }
        }
        self.claimed
            .iter()
            .filter(|(peer, work)| **work > our_work && !self.cooldown.contains_key(peer))
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(peer, _)| *peer)
    }

    fn cool_down(&mut self, peer: PeerId, now: Instant) {
        self.cooldown.insert(peer, now + COOLDOWN);
    }
}

/// The sync task: runs until the trigger channel closes or the node stops.
pub async fn run(chain: ChainHandle, net: NetworkHandle, mut triggers: mpsc::Receiver<Trigger>) {
    let mut candidates = Candidates::default();
    loop {
        match tokio::time::timeout(RECHECK, triggers.recv()).await {
            Ok(Some(trigger)) => candidates.apply(trigger),
            Ok(None) => return,
            Err(_) => {}
        }
        while let Ok(trigger) = triggers.try_recv() {
            candidates.apply(trigger);
        }
        loop {
            let Ok(our_work) = chain.call(|s| s.chain.tip().chainwork).await else {
                return;
            };
            let Some(peer) = candidates.next(our_work, Instant::now()) else {
                break;
            };
            let started = Instant::now();
            match sync_from(&chain, &net, peer).await {
                Ok(blocks) => {
                    if blocks > 0 {
                        tracing::info!(%peer, blocks, elapsed = ?started.elapsed(), "synced from peer");
                    }
                    let Ok(now_work) = chain.call(|s| s.chain.tip().chainwork).await else {
                        return;
                    };
                    // The peer claimed more work than it delivered: do not ask it again at once.
                    if candidates.claimed.get(&peer).is_some_and(|w| *w > now_work) {
                        candidates.cool_down(peer, Instant::now());
                    }
                }
                Err(SyncError::Stopped) => return,
                Err(e) => {
                    tracing::info!(%peer, "sync with peer stopped: {e}");
                    candidates.cool_down(peer, Instant::now());
                }
            }
            while let Ok(trigger) = triggers.try_recv() {
                candidates.apply(trigger);
            }
        }
    }
}

/// Headers-first sync from one peer until it has nothing more for us; returns how many
/// blocks were imported.
pub async fn sync_from(
    chain: &ChainHandle,
    net: &NetworkHandle,
    peer: PeerId,
) -> Result<usize, SyncError> {
    let mut imported = 0;
    loop {
        let locator = chain.call(|s| s.chain.locator()).await?;
        let headers = match net
            .request(
                peer,
                SyncRequest::GetHeaders {
                    locator,
                    stop: None,
                },
            )
            .await?
        {
            SyncResponse::Headers(headers) => headers,
            SyncResponse::Refused(reason) => {
                return Err(SyncError::Peer(format!("refused headers: {reason}")));
            }
            other => {
                return Err(bad_response(
                    net,
                    peer,
                    format!("{} in answer to getheaders", other.kind()),
                )
                .await);
            }
        };
        if headers.len() > MAX_HEADERS_PER_RESPONSE {
            return Err(
                bad_response(net, peer, format!("{} headers in one reply", headers.len())).await,
            );
        }
        if let Some(i) = first_disconnected(&headers) {
            return Err(bad_response(
                net,
                peer,
                format!("header {i} does not follow the one before"),
            )
            .await);
        }
        let full = headers.len() == MAX_HEADERS_PER_RESPONSE;
        if headers.is_empty() {
            return Ok(imported);
        }
        let (needed, problem) = chain.call(move |s| accept_headers(s, &headers)).await?;
        if let Some(error) = &problem {
            if error.is_misbehavior() {
                let offense = match error {
                    BlockError::UnknownParent(_)
                    | BlockError::KnownInvalid(_)
                    | BlockError::InvalidAncestor(_) => {
                        Offense::BadResponse(format!("header: {error}"))
                    }
                    _ => Offense::Consensus(format!("header: {} ({error})", error.reject_reason())),
                };
                net.report(peer, offense).await;
                return Err(SyncError::Peer(format!("invalid header: {error}")));
            }
            // Not a verdict on the peer (a header too far in the future): take what we have.
            tracing::debug!(%peer, "header not accepted yet: {error}");
        }
        imported += download_blocks(chain, net, peer, needed).await?;
        if !full || problem.is_some() {
            return Ok(imported);
        }
    }
}

async fn bad_response(net: &NetworkHandle, peer: PeerId, reason: String) -> SyncError {
    net.report(peer, Offense::BadResponse(reason.clone())).await;
    SyncError::Peer(reason)
}

/// Index of the first header that does not build on the one before it.
fn first_disconnected(headers: &[BlockHeader]) -> Option<usize> {
    headers
        .windows(2)
        .position(|pair| pair[1].prev_blockhash != pair[0].block_hash())
        .map(|i| i + 1)
}

/// Accepts headers in order; returns the hashes (in order) whose bodies we lack, and the
/// first error, after which nothing more is accepted.
fn accept_headers(
    state: &mut crate::chain_task::NodeState,
    headers: &[BlockHeader],
) -> (Vec<BlockHash>, Option<BlockError>) {
    let now = state.now_secs();
    let mut needed = Vec::new();
    for header in headers {
        let hash = header.block_hash();
        match state.accept_header(header, now) {
            Ok(HeaderOutcome::New | HeaderOutcome::AlreadyHave) => {
                if state
                    .chain
                    .entry(&hash)
                    .is_some_and(|e| !e.has_data && !e.validity.is_invalid())
                {
                    needed.push(hash);
                }
            }
            Ok(HeaderOutcome::Invalid(e)) => return (needed, Some(e)),
            Err(e) => {
                tracing::error!("storing header {hash}: {e}");
                return (needed, None);
            }
        }
    }
    (needed, None)
}

/// Downloads and imports the bodies of `needed` (in order) from `peer`.
async fn download_blocks(
    chain: &ChainHandle,
    net: &NetworkHandle,
    peer: PeerId,
    needed: Vec<BlockHash>,
) -> Result<usize, SyncError> {
    let mut queue: VecDeque<BlockHash> = needed.into();
    let mut imported = 0;
    while !queue.is_empty() {
        let batch: Vec<BlockHash> = queue.iter().take(MAX_BLOCKS_PER_REQUEST).copied().collect();
        let blocks = match net
            .request(peer, SyncRequest::GetBlocks(batch.clone()))
            .await?
        {
            SyncResponse::Blocks(blocks) => blocks,
            SyncResponse::Refused(reason) => {
                return Err(SyncError::Peer(format!("refused blocks: {reason}")));
            }
            other => {
                return Err(bad_response(
                    net,
                    peer,
                    format!("{} in answer to getblocks", other.kind()),
                )
                .await);
            }
        };
        if blocks.is_empty() {
            return Err(SyncError::Peer(
                "the peer has none of the blocks it announced".into(),
            ));
        }
        let wanted: HashSet<BlockHash> = batch.iter().copied().collect();
        let mut arrived = HashSet::new();
        for block in &blocks {
            let hash = block.block_hash();
            if !wanted.contains(&hash) {
                return Err(bad_response(net, peer, format!("unrequested block {hash}")).await);
            }
            arrived.insert(hash);
        }
        let outcomes = chain.call(move |s| submit_blocks(s, blocks)).await?;
        for (hash, outcome) in outcomes {
            match outcome {
                Some(ImportOutcome::Invalid(error)) => {
                    if error.is_misbehavior() {
                        let offense = Offense::Consensus(format!(
                            "block {hash}: {} ({error})",
                            error.reject_reason()
                        ));
                        net.report(peer, offense).await;
                    }
                    return Err(SyncError::Peer(format!("invalid block {hash}: {error}")));
                }
                Some(ImportOutcome::Active | ImportOutcome::SideChain) => imported += 1,
                Some(_) => {}
                None => return Err(SyncError::Stopped),
            }
        }
        // The responder answers in request order, leaving out what it lacks and cutting
        // off at a byte limit: a missing first block means it does not have it.
        if !arrived.contains(&batch[0]) {
            return Err(SyncError::Peer(format!(
                "the peer does not have block {}",
                batch[0]
            )));
        }
        queue.retain(|h| !arrived.contains(h));
    }
    Ok(imported)
}

/// Imports blocks in order; `None` for a block the store failed on.
fn submit_blocks(
    state: &mut crate::chain_task::NodeState,
    blocks: Vec<Block>,
) -> Vec<(BlockHash, Option<ImportOutcome>)> {
    let now = state.now_secs();
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        let hash = block.block_hash();
        match state.submit_block(block, now, Origin::Peer) {
            Ok(report) => {
                let invalid = matches!(report.outcome, ImportOutcome::Invalid(_));
                out.push((hash, Some(report.outcome)));
                if invalid {
                    break;
                }
            }
            Err(e) => {
                tracing::error!("importing synced block {hash}: {e}");
                out.push((hash, None));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ChainParams;

    #[test]
    fn orphan_senders_come_first_then_the_most_work() {
        let mut c = Candidates::default();
        let (a, b, o) = (PeerId::random(), PeerId::random(), PeerId::random());
        let work = |n: u8| {
            let mut bytes = [0u8; 32];
            bytes[31] = n;
            Work::from_be_bytes(bytes)
        };
        c.apply(Trigger::PeerStatus {
            peer: a,
            chainwork: work(10),
            height: 10,
        });
        c.apply(Trigger::PeerStatus {
            peer: b,
            chainwork: work(20),
            height: 20,
        });
        let now = Instant::now();
        assert_eq!(c.next(work(5), now), Some(b));
        assert_eq!(c.next(work(20), now), None, "nobody has more work than us");
        c.apply(Trigger::Orphan { peer: o });
        c.apply(Trigger::Orphan { peer: o });
        assert_eq!(c.next(work(100), now), Some(o));
        assert_eq!(c.next(work(100), now), None, "orphan triggers are consumed");
        c.cool_down(b, now);
        assert_eq!(c.next(work(5), now), Some(a));
        assert_eq!(
            c.next(work(5), now + COOLDOWN + Duration::from_secs(1)),
            Some(b)
        );
        c.apply(Trigger::PeerGone { peer: b });
        assert_eq!(c.next(work(15), now + COOLDOWN * 2), None);
    }

    #[test]
    fn disconnected_headers_are_found() {
        let params = ChainParams::regtest();
        let genesis = params.genesis_block.header;
        let mut second = genesis;
        second.prev_blockhash = genesis.block_hash();
        let mut third = second;
        third.prev_blockhash = second.block_hash();
        assert_eq!(first_disconnected(&[genesis, second, third]), None);
        assert_eq!(first_disconnected(&[genesis, third]), Some(1));
        assert_eq!(first_disconnected(&[]), None);
    }
}
