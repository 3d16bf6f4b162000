//! Headers-first catch-up.
//!
//! Runs on its own task and talks to the swarm only through a [`NetworkHandle`]. It is
//! woken when a peer's status claims more chainwork than ours, when a peer gossips a block
//! that does not connect (its parent is unknown: we ask that peer for headers instead of
//! keeping the block — gossip alone cannot heal a partition), and on a timer. Then, with
//! one peer at a time:
//!
//! 1. send `GetHeaders` with our block locator and hand the headers to
//!    [`ChainState::accept_headers`](cairn_core::ChainState::accept_headers): proof of work
//!    and context are checked before any body is asked for, and the batch is stored (in
//!    one write) only when its branch has at least our tip's work. A full reply whose
//!    branch is still weaker is kept in memory (bounded) while the next page is fetched;
//!    a branch that ends weaker than our tip leaves nothing behind;
//! 2. download the bodies we lack from that peer and every other that has them, with a
//!    moving window of requests in flight ([`download`]), and import each run of blocks
//!    that connects as one group commit (one sync, nothing acknowledged before it:
//!    `NodeState::submit_block_group`);
//! 3. repeat while the reply was full ([`MAX_HEADERS_PER_RESPONSE`]).
//!
//! A peer that does not answer headers within [`HEADERS_TIMEOUT`] stalls us: it is scored,
//! disconnected and not asked again for [`STALL_COOLDOWN`], and the next candidate is
//! tried at once. A peer that answers uselessly is skipped for a while; one that sends
//! invalid data is reported; one that keeps announcing blocks that do not connect
//! ([`MAX_UNCONNECTING`] in a row, Bitcoin Core's rule) is scored and disconnected.

use super::peers::Offense;
use super::protocol::{MAX_HEADERS_PER_RESPONSE, MAX_LOCATOR_HASHES, SyncRequest, SyncResponse};
use super::{NetworkHandle, RequestError};
use crate::chain_task::{ChainHandle, NodeStopped};
use cairn_core::chain::HeadersReport;
use cairn_core::{Block, BlockError, BlockHash, BlockHeader, ImportOutcome, Work};
use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod download;

/// A peer that failed us is not asked again for this long.
const COOLDOWN: Duration = Duration::from_secs(20);
/// A peer that stalled us is not asked again for this long (across reconnections).
pub const STALL_COOLDOWN: Duration = Duration::from_secs(120);
/// Without triggers, candidates are re-examined this often.
const RECHECK: Duration = Duration::from_secs(5);
/// A headers reply (at most 2000 × 80 bytes) later than this is a stall.
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Announcements of blocks that do not connect, in a row, after which the peer is scored
/// and disconnected (Bitcoin Core's `MAX_NUM_UNCONNECTING_HEADERS_MSGS`).
pub const MAX_UNCONNECTING: u32 = 10;
/// Headers of a branch still weaker than our tip held in memory while its next pages are
/// fetched (10 pages); a longer weak branch is dropped.
pub const MAX_PENDING_HEADERS: usize = 10 * MAX_HEADERS_PER_RESPONSE;
/// Peers whose unconnecting count is remembered across reconnections.
const MAX_REMEMBERED: usize = 4096;

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
    Unconnecting {
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
    /// Peers that announced a block that does not connect: asked for headers first.
    unconnecting: VecDeque<PeerId>,
    /// Such announcements in a row, per peer (reset when its headers connect).
    unconnecting_count: HashMap<PeerId, u32>,
    cooldown: HashMap<PeerId, Instant>,
}

impl Candidates {
    /// Records a trigger; returns a peer that announced too many blocks that do not
    /// connect (to be scored and disconnected).
    fn apply(&mut self, trigger: Trigger) -> Option<PeerId> {
        match trigger {
            Trigger::PeerStatus {
                peer, chainwork, ..
            } => {
                self.claimed.insert(peer, chainwork);
            }
            Trigger::Unconnecting { peer } => {
                if self.unconnecting_count.len() >= MAX_REMEMBERED
                    && !self.unconnecting_count.contains_key(&peer)
                {
                    self.unconnecting_count.clear();
                }
                let count = self.unconnecting_count.entry(peer).or_insert(0);
                *count += 1;
                if *count >= MAX_UNCONNECTING {
                    self.unconnecting_count.remove(&peer);
                    self.unconnecting.retain(|p| *p != peer);
                    return Some(peer);
                }
                if !self.unconnecting.contains(&peer) {
                    self.unconnecting.push_back(peer);
                }
            }
            Trigger::PeerGone { peer } => {
                // The cooldown and the unconnecting count outlive the connection: a peer
                // does not wipe its record by reconnecting.
                self.claimed.remove(&peer);
                self.unconnecting.retain(|p| *p != peer);
            }
        }
        None
    }

    /// The next peer to sync from: one that announced a block that does not connect, else
    /// the one claiming the most work above ours; skipping peers in cooldown.
    fn next(&mut self, our_work: Work, now: Instant) -> Option<PeerId> {
        self.cooldown.retain(|_, until| *until > now);
        while let Some(peer) = self.unconnecting.pop_front() {
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

    fn cool_down(&mut self, peer: PeerId, now: Instant, how_long: Duration) {
        self.cooldown.insert(peer, now + how_long);
    }

    /// The peer's headers connected: its unconnecting announcements are forgiven.
    fn connected(&mut self, peer: &PeerId) {
        self.unconnecting_count.remove(peer);
    }
}

/// The sync task: runs until the trigger channel closes or the node stops.
pub async fn run(chain: ChainHandle, net: NetworkHandle, mut triggers: mpsc::Receiver<Trigger>) {
    let mut candidates = Candidates::default();
    loop {
        match tokio::time::timeout(RECHECK, triggers.recv()).await {
            Ok(Some(trigger)) => apply(&mut candidates, &net, trigger).await,
            Ok(None) => return,
            Err(_) => {}
        }
        while let Ok(trigger) = triggers.try_recv() {
            apply(&mut candidates, &net, trigger).await;
        }
        loop {
            let Ok(our_work) = chain.call(|s| s.chain.tip().chainwork).await else {
                return;
            };
            let Some(peer) = candidates.next(our_work, Instant::now()) else {
                break;
            };
            if !sync_round(&chain, &net, &mut candidates, peer).await {
                return;
            }
            while let Ok(trigger) = triggers.try_recv() {
                apply(&mut candidates, &net, trigger).await;
            }
        }
    }
}

async fn apply(candidates: &mut Candidates, net: &NetworkHandle, trigger: Trigger) {
    if let Some(peer) = candidates.apply(trigger) {
        let offense = Offense::BadResponse(format!(
            "{MAX_UNCONNECTING} announced blocks in a row that do not connect"
        ));
        net.report(peer, offense).await;
        let _ = net.disconnect(peer).await;
    }
}

/// One round of sync with `peer`; false once the node is stopping.
async fn sync_round(
    chain: &ChainHandle,
    net: &NetworkHandle,
    candidates: &mut Candidates,
    peer: PeerId,
) -> bool {
    let started = Instant::now();
    match sync_from(chain, net, peer).await {
        Ok(blocks) => {
            candidates.connected(&peer);
            if blocks > 0 {
                tracing::info!(%peer, blocks, elapsed = ?started.elapsed(), "synced from peer");
            }
            let Ok(now_work) = chain.call(|s| s.chain.tip().chainwork).await else {
                return false;
            };
            // The peer claimed more work than it delivered: do not ask it again at once.
            if candidates.claimed.get(&peer).is_some_and(|w| *w > now_work) {
                candidates.cool_down(peer, Instant::now(), COOLDOWN);
            }
        }
        Err(SyncError::Stopped) => return false,
        Err(SyncError::Request(RequestError::Timeout)) => {
            tracing::warn!(%peer, elapsed = ?started.elapsed(), "sync peer stalled; moving on to another peer");
            let offense = Offense::Stalled("no answer to a sync request in time".into());
            net.report(peer, offense).await;
            let _ = net.disconnect(peer).await;
            candidates.cool_down(peer, Instant::now(), STALL_COOLDOWN);
        }
        Err(e) => {
            tracing::info!(%peer, "sync with peer stopped: {e}");
            candidates.cool_down(peer, Instant::now(), COOLDOWN);
        }
    }
    true
}

/// Headers-first sync from one peer until it has nothing more for us; returns how many
/// blocks were imported.
pub async fn sync_from(
    chain: &ChainHandle,
    net: &NetworkHandle,
    peer: PeerId,
) -> Result<usize, SyncError> {
    let mut imported = 0;
    // Headers of a branch not yet heavier than our tip: held here, not stored.
    let mut pending: Vec<BlockHeader> = Vec::new();
    loop {
        let mut locator = chain.call(|s| s.chain.locator()).await?;
        if let Some(last) = pending.last() {
            locator.insert(0, last.block_hash());
            locator.truncate(MAX_LOCATOR_HASHES);
        }
        let headers = fetch_headers(net, peer, locator).await?;
        if headers.is_empty() {
            return Ok(imported);
        }
        let full = headers.len() == MAX_HEADERS_PER_RESPONSE;
        // The locator led with the last header the peer sent: a page that does not follow it
        // starts the branch over. Going round again would let a peer that repeats one page
        // keep sync (and the chain thread's header checks) busy forever.
        if pending
            .last()
            .is_some_and(|last| headers[0].prev_blockhash != last.block_hash())
        {
            return Err(bad_response(
                net,
                peer,
                "headers that do not continue the branch it was sending".into(),
            )
            .await);
        }
        pending.extend(headers);
        let batch = std::mem::take(&mut pending);
        let (report, (needed, top_height), batch) = chain
            .call(move |s| {
                let (report, needed) = accept_headers(s, &batch);
                (report, needed, batch)
            })
            .await?;
        let problem = report.invalid.map(|(_, e)| e);
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
        if report.too_little_work {
            if full && problem.is_none() && batch.len() < MAX_PENDING_HEADERS {
                pending = batch;
                continue;
            }
            tracing::debug!(%peer, headers = batch.len(), "the peer's branch has less work than our tip; not kept");
            return Ok(imported);
        }
        imported += download::download_blocks(chain, net, peer, needed, top_height).await?;
        if !full || problem.is_some() {
            return Ok(imported);
        }
    }
}

/// One page of headers from `peer` after `locator`, checked for shape.
async fn fetch_headers(
    net: &NetworkHandle,
    peer: PeerId,
    locator: Vec<BlockHash>,
) -> Result<Vec<BlockHeader>, SyncError> {
    let request = SyncRequest::GetHeaders {
        locator,
        stop: None,
    };
    let headers = match net.request_within(peer, request, HEADERS_TIMEOUT).await? {
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
    Ok(headers)
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

/// Accepts a batch of headers, kept only if its branch has at least our tip's work;
/// returns the report, the hashes (in order) whose bodies we lack and the height of the
/// last of them.
fn accept_headers(
    state: &mut crate::chain_task::NodeState,
    headers: &[BlockHeader],
) -> (HeadersReport, (Vec<BlockHash>, u32)) {
    let min_work = state.chain.tip().chainwork;
    let now = state.now_secs();
    let report = match state.accept_headers(headers, now, min_work) {
        Ok(report) => report,
        Err(e) => {
            tracing::error!("storing headers: {e}");
            return (HeadersReport::default(), (Vec::new(), 0));
        }
    };
    if report.too_little_work {
        return (report, (Vec::new(), 0));
    }
    let needed: Vec<BlockHash> = headers
        .iter()
        .map(BlockHeader::block_hash)
        .filter(|hash| {
            state
                .chain
                .entry(hash)
                .is_some_and(|e| !e.has_data && !e.validity.is_invalid())
        })
        .collect();
    let top_height = needed
        .last()
        .and_then(|hash| state.chain.entry(hash))
        .map_or(0, |e| e.height);
    (report, (needed, top_height))
}

/// Imports blocks in order as group commits ([`crate::chain_task::MAX_GROUP_BLOCKS`] per
/// sync); `None` for a block the store failed on.
fn submit_blocks(
    state: &mut crate::chain_task::NodeState,
    blocks: Vec<Block>,
) -> Vec<(BlockHash, Option<ImportOutcome>)> {
    let now = state.now_secs();
    state
        .submit_block_group(blocks, now)
        .into_iter()
        .map(|(hash, result)| match result {
            Ok(report) => (hash, Some(report.outcome)),
            Err(e) => {
                tracing::error!("importing synced block {hash}: {e}");
                (hash, None)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ChainParams;

    #[test]
    fn unconnecting_announcers_come_first_then_the_most_work() {
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
        c.apply(Trigger::Unconnecting { peer: o });
        c.apply(Trigger::Unconnecting { peer: o });
        assert_eq!(c.next(work(100), now), Some(o));
        assert_eq!(
            c.next(work(100), now),
            None,
            "unconnecting triggers are consumed"
        );
        c.cool_down(b, now, COOLDOWN);
        assert_eq!(c.next(work(5), now), Some(a));
        assert_eq!(
            c.next(work(5), now + COOLDOWN + Duration::from_secs(1)),
            Some(b)
        );
        c.apply(Trigger::PeerGone { peer: b });
        assert_eq!(c.next(work(15), now + COOLDOWN * 2), None);
    }

    #[test]
    fn repeated_unconnecting_announcements_are_an_offense_even_across_reconnections() {
        let mut c = Candidates::default();
        let p = PeerId::random();
        for _ in 1..MAX_UNCONNECTING / 2 {
            assert_eq!(c.apply(Trigger::Unconnecting { peer: p }), None);
        }
        c.apply(Trigger::PeerGone { peer: p });
        for _ in MAX_UNCONNECTING / 2..MAX_UNCONNECTING {
            assert_eq!(c.apply(Trigger::Unconnecting { peer: p }), None);
        }
        assert_eq!(c.apply(Trigger::Unconnecting { peer: p }), Some(p));
        // Headers that connect forgive the count.
        for _ in 1..MAX_UNCONNECTING {
            c.apply(Trigger::Unconnecting { peer: p });
        }
        c.connected(&p);
        assert_eq!(c.apply(Trigger::Unconnecting { peer: p }), None);
        // A stalled peer stays in cooldown after reconnecting.
        let now = Instant::now();
        c.cool_down(p, now, STALL_COOLDOWN);
        c.apply(Trigger::PeerGone { peer: p });
        c.apply(Trigger::Unconnecting { peer: p });
        assert_eq!(c.next(Work::ZERO, now + COOLDOWN), None);
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
