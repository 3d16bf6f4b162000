//! Block download from several peers at once, with a moving window (like Core's).
//!
//! The bodies a page of headers made us need are fetched in height order from every
//! download peer — the headers peer, and every handshaken peer whose best height reaches
//! the last block needed (looked up again as answers arrive, so peers that finish their
//! handshake later join in) — in requests of at most [`MAX_BLOCKS_PER_REQUEST`] blocks:
//! - only blocks within [`WINDOW`] of the lowest one not yet imported are asked for, so a
//!   slow peer holding the lowest blocks cannot make us buffer the whole chain;
//! - a peer has at most [`MAX_REQUESTS_PER_PEER`] requests in flight (the responder serves
//!   one at a time per peer and queues two behind it);
//! - blocks are imported as soon as they connect to what came before, a run of them as one
//!   group commit;
//! - a peer whose request times out ([`BLOCKS_TIMEOUT`]) stalls us: it is reported,
//!   dropped from this download and its blocks go to the others; a peer that fails,
//!   disconnects or lacks a block it was asked for is dropped the same way, silently, and
//!   one that answers what was not asked is dropped and reported;
//! - a peer that sends a body which does not match its header (a mutated block:
//!   [`cairn_core::BlockError::is_body_fault`]) is reported and dropped, and that block,
//!   the rest of its run and every block of the peer's still waiting are asked of the
//!   others: the header may be good, so the download goes on. A block the header itself condemns ends
//!   the download: the branch is invalid, whoever served it;
//! - whatever a dropped peer still answers is not used: its batch goes to the others.
//!
//! Which peer served how many blocks is logged at the end (`downloaded blocks from peer`).

use super::{SyncError, bad_response, submit_blocks};
use crate::chain_task::{ChainHandle, MAX_GROUP_BLOCKS};
use crate::network::peers::Offense;
use crate::network::protocol::{MAX_BLOCKS_PER_REQUEST, SyncRequest, SyncResponse};
use crate::network::{NetworkHandle, RequestError};
use cairn_core::{Block, BlockHash, ImportOutcome};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;

/// Blocks ahead of the lowest missing one that may be asked for.
pub const WINDOW: usize = 1024;
/// Requests in flight to one peer.
pub const MAX_REQUESTS_PER_PEER: usize = 2;
/// A block request answered later than this is a stall.
pub const BLOCKS_TIMEOUT: Duration = Duration::from_secs(20);

/// One answered (or failed) request.
type Answer = (PeerId, Vec<usize>, Result<SyncResponse, RequestError>);

/// The state of one download.
struct Download {
    /// The hashes to fetch, in height order.
    order: Vec<BlockHash>,
    /// Positions in `order` not asked for (or given back), lowest first.
    unassigned: BTreeSet<usize>,
    /// Bodies arrived and not imported yet, by position.
    arrived: HashMap<usize, Block>,
    /// The lowest position not imported yet.
    next: usize,
    /// Peers still downloading, with their requests in flight.
    peers: HashMap<PeerId, usize>,
    /// Blocks each peer delivered.
    served: HashMap<PeerId, usize>,
    /// Who delivered each arrived block, until it is imported.
    source: HashMap<usize, PeerId>,
    /// Peers dropped from this download: not asked again in it.
    dropped: HashSet<PeerId>,
    /// Height of the last block needed: peers whose best height is below it do not join.
    top_height: u32,
}

impl Download {
    /// The next request for `peer`, if it has room and the window has blocks unasked.
    fn assign(&mut self) -> Option<(PeerId, Vec<usize>)> {
        let limit = self.next + WINDOW;
        self.unassigned.first().filter(|p| **p < limit)?;
        let (peer, in_flight) = self
            .peers
            .iter_mut()
            .filter(|(_, n)| **n < MAX_REQUESTS_PER_PEER)
            .min_by_key(|(peer, n)| (**n, **peer))?;
        let batch: Vec<usize> = self
            .unassigned
            .iter()
            .copied()
            .take_while(|p| *p < limit)
            .take(MAX_BLOCKS_PER_REQUEST)
            .collect();
        for position in &batch {
            self.unassigned.remove(position);
        }
        *in_flight += 1;
        Some((*peer, batch))
    }

    /// `peer` is out of this download: what it was asked for goes back to the others.
    fn drop_peer(&mut self, peer: &PeerId, unanswered: &[usize]) {
        self.peers.remove(peer);
        self.dropped.insert(*peer);
        self.give_back(unanswered);
    }

    fn give_back(&mut self, positions: &[usize]) {
        self.unassigned.extend(positions.iter().copied());
    }

    /// `bad` sent a body that does not match its header, at the start of `unimported` (the
    /// part of a run that was not imported): `bad` leaves this download, and those
    /// positions and every block `bad` delivered that still waits go back to the others.
    fn refetch_without(&mut self, bad: &PeerId, unimported: Range<usize>) {
        self.next = unimported.start;
        let mut again: Vec<usize> = unimported.collect();
        again.extend(
            self.source
                .iter()
                .filter(|(position, peer)| *peer == bad && self.arrived.contains_key(position))
                .map(|(position, _)| *position),
        );
        for position in &again {
            self.arrived.remove(position);
            self.source.remove(position);
        }
        self.drop_peer(bad, &again);
    }

    /// The run of arrived blocks from `next` on, at most one group's worth.
    fn ready_run(&mut self) -> Vec<Block> {
        let mut run = Vec::new();
        while run.len() < MAX_GROUP_BLOCKS {
            let Some(block) = self.arrived.remove(&(self.next + run.len())) else {
                break;
            };
            run.push(block);
        }
        run
    }
}

/// Downloads and imports the bodies of `needed` (in height order, the last at
/// `top_height`) from `headers_peer` and the other peers that have them; returns how many
/// blocks were imported.
pub async fn download_blocks(
    chain: &ChainHandle,
    net: &NetworkHandle,
    headers_peer: PeerId,
    needed: Vec<BlockHash>,
    top_height: u32,
) -> Result<usize, SyncError> {
    let mut download = Download {
        unassigned: (0..needed.len()).collect(),
        order: needed,
        arrived: HashMap::new(),
        next: 0,
        peers: HashMap::from([(headers_peer, 0)]),
        served: HashMap::new(),
        source: HashMap::new(),
        dropped: HashSet::new(),
        top_height,
    };
    let mut in_flight = FuturesUnordered::new();
    let mut imported = 0;
    let result = loop {
        if download.next == download.order.len() {
            break Ok(imported);
        }
        add_peers(net, &mut download).await;
        while let Some((peer, batch)) = download.assign() {
            let hashes = batch.iter().map(|p| download.order[*p]).collect();
            let net = net.clone();
            in_flight.push(async move {
                let request = SyncRequest::GetBlocks(hashes);
                let answer = net.request_within(peer, request, BLOCKS_TIMEOUT).await;
                (peer, batch, answer)
            });
        }
        let Some(answer) = in_flight.next().await else {
            break Err(SyncError::Peer(format!(
                "no download peer left with {} blocks still missing",
                download.order.len() - download.next
            )));
        };
        take_answer(net, &mut download, answer).await;
        loop {
            let run = download.ready_run();
            if run.is_empty() {
                break;
            }
            let positions = download.next..download.next + run.len();
            download.next = positions.end;
            let outcomes = chain.call(move |s| submit_blocks(s, run)).await?;
            imported += count_imported(net, &mut download, positions, outcomes).await?;
        }
    };
    for (peer, blocks) in &download.served {
        tracing::info!(%peer, blocks, "downloaded blocks from peer");
    }
    result
}

/// Adds the handshaken peers that have every block needed (by their best height) and were
/// not dropped.
async fn add_peers(net: &NetworkHandle, download: &mut Download) {
    let Ok(peers) = net.peer_info().await else {
        return;
    };
    for info in peers {
        let Ok(peer) = info.peer_id.parse::<PeerId>() else {
            continue;
        };
        let has_all = info.best_height.is_some_and(|h| h >= download.top_height);
        if has_all && !download.dropped.contains(&peer) {
            download.peers.entry(peer).or_insert(0);
        }
    }
}

/// Files an answer: its blocks arrive, what it lacked goes back; the peer is dropped
/// when it failed, stalled, lacked a block or answered what was not asked (then it is
/// reported too), and its blocks go to the others. An answer from a peer already dropped
/// is not used: its batch goes back to the others.
async fn take_answer(net: &NetworkHandle, download: &mut Download, (peer, batch, answer): Answer) {
    if download.dropped.contains(&peer) {
        download.give_back(&batch);
        return;
    }
    if let Some(n) = download.peers.get_mut(&peer) {
        *n -= 1;
    }
    let blocks = match answer {
        Ok(SyncResponse::Blocks(blocks)) => blocks,
        Ok(SyncResponse::Refused(reason)) => {
            tracing::debug!(%peer, "block request refused: {reason}");
            download.drop_peer(&peer, &batch);
            return;
        }
        Ok(other) => {
            download.drop_peer(&peer, &batch);
            let reason = format!("{} in answer to getblocks", other.kind());
            bad_response(net, peer, reason).await;
            return;
        }
        Err(RequestError::Timeout) => {
            tracing::warn!(%peer, "block download peer stalled; its blocks go to the others");
            let offense = Offense::Stalled("no answer to a block request in time".into());
            net.report(peer, offense).await;
            let _ = net.disconnect(peer).await;
            download.drop_peer(&peer, &batch);
            return;
        }
        Err(e) => {
            tracing::debug!(%peer, "block request failed: {e}");
            download.drop_peer(&peer, &batch);
            return;
        }
    };
    let wanted: HashMap<BlockHash, usize> =
        batch.iter().map(|p| (download.order[*p], *p)).collect();
    let mut got = HashSet::new();
    for block in blocks {
        let hash = block.block_hash();
        let Some(position) = wanted.get(&hash) else {
            // Nothing of a broken answer is kept: its whole batch goes to the others.
            for position in &got {
                download.arrived.remove(position);
                download.source.remove(position);
            }
            download.drop_peer(&peer, &batch);
            bad_response(net, peer, format!("unrequested block {hash}")).await;
            return;
        };
        got.insert(*position);
        download.arrived.insert(*position, block);
        download.source.insert(*position, peer);
    }
    *download.served.entry(peer).or_default() += got.len();
    let missing: Vec<usize> = batch.into_iter().filter(|p| !got.contains(p)).collect();
    // The responder answers in request order and cuts off at a byte limit: missing blocks
    // after every delivered one are a cut and asked for again; any other gap means the
    // peer lacks blocks, and it leaves this download.
    let cut = match (got.iter().max(), missing.first()) {
        (Some(last), Some(first_missing)) => first_missing > last,
        (None, Some(_)) => false,
        (_, None) => true,
    };
    if cut {
        download.give_back(&missing);
    } else {
        tracing::debug!(%peer, missing = missing.len(), "the peer lacks blocks; dropped from this download");
        download.drop_peer(&peer, &missing);
    }
}

/// Counts the imported blocks of the run at `positions` (imported in order, up to the
/// first invalid one); an invalid block is reported against the peer that served it, when
/// that is misbehaviour. A mutated body is asked of the others
/// ([`Download::refetch_without`]); any other invalid block, or a store failure, ends the
/// download.
async fn count_imported(
    net: &NetworkHandle,
    download: &mut Download,
    positions: Range<usize>,
    outcomes: Vec<(BlockHash, Option<ImportOutcome>)>,
) -> Result<usize, SyncError> {
    let mut imported = 0;
    for (position, (hash, outcome)) in positions.clone().zip(outcomes) {
        let server = download.source.remove(&position);
        match outcome {
            Some(ImportOutcome::Invalid(error)) => {
                let sender = server.filter(|_| error.is_misbehavior());
                if let Some(peer) = sender {
                    let offense = Offense::Consensus(format!(
                        "block {hash}: {} ({error})",
                        error.reject_reason()
                    ));
                    net.report(peer, offense).await;
                }
                match sender {
                    Some(peer) if error.is_body_fault() => {
                        tracing::warn!(%peer, %hash, "a download peer sent a mutated block; it is dropped and the block asked of the others");
                        download.refetch_without(&peer, position..positions.end);
                        return Ok(imported);
                    }
                    _ => return Err(SyncError::Peer(format!("invalid block {hash}: {error}"))),
                }
            }
            Some(ImportOutcome::Active | ImportOutcome::SideChain) => imported += 1,
            Some(_) => {}
            None => return Err(SyncError::Stopped),
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn download(blocks: usize, peers: &[PeerId]) -> Download {
        Download {
            order: (0..blocks)
                .map(|i| {
                    let mut bytes = [0u8; 32];
                    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    BlockHash::from_byte_array(bytes)
                })
                .collect(),
            unassigned: (0..blocks).collect(),
            arrived: HashMap::new(),
            next: 0,
            peers: peers.iter().map(|p| (*p, 0)).collect(),
            served: HashMap::new(),
            source: HashMap::new(),
            dropped: HashSet::new(),
            top_height: blocks as u32,
        }
    }

    #[test]
    fn requests_spread_over_peers_within_the_cap_and_the_window() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut d = download(WINDOW * 2, &[a, b]);
        let mut asked: HashMap<PeerId, Vec<Vec<usize>>> = HashMap::new();
        while let Some((peer, batch)) = d.assign() {
            asked.entry(peer).or_default().push(batch);
        }
        assert_eq!(asked.len(), 2, "both peers are asked");
        for batches in asked.values() {
            assert_eq!(batches.len(), MAX_REQUESTS_PER_PEER);
            assert!(batches.iter().all(|b| b.len() == MAX_BLOCKS_PER_REQUEST));
        }
        let mut all: Vec<usize> = asked.values().flatten().flatten().copied().collect();
        all.sort_unstable();
        let expected: Vec<usize> =
            (0..2 * MAX_REQUESTS_PER_PEER * MAX_BLOCKS_PER_REQUEST).collect();
        assert_eq!(all, expected, "the lowest blocks first, each once");
        assert!(all.iter().all(|p| *p < d.next + WINDOW));
    }

    #[test]
    fn nothing_beyond_the_window_is_asked_for() {
        let peers: Vec<PeerId> = (0..WINDOW).map(|_| PeerId::random()).collect();
        let mut d = download(WINDOW * 3, &peers);
        let mut highest = 0;
        while let Some((_, batch)) = d.assign() {
            highest = highest.max(*batch.iter().max().expect("a batch is never empty"));
        }
        assert_eq!(highest, WINDOW - 1);
    }

    #[test]
    fn after_a_mutated_block_its_run_and_the_senders_waiting_blocks_are_asked_again() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let n = MAX_BLOCKS_PER_REQUEST;
        let mut d = download(4 * n, &[a, b]);
        let block = cairn_core::ChainParams::regtest().genesis_block;
        while d.assign().is_some() {}
        // Every request answered: b served the first and third batches, a the others.
        for position in 0..4 * n {
            let server = if (position / n).is_multiple_of(2) {
                b
            } else {
                a
            };
            d.arrived.insert(position, block.clone());
            d.source.insert(position, server);
        }
        d.peers.values_mut().for_each(|in_flight| *in_flight = 0);
        // The first two batches were one run; the block at n + 3, from a, was mutated.
        let run = d.ready_run();
        assert_eq!(run.len(), 2 * n);
        d.next = 2 * n;
        for position in 0..n + 3 {
            d.source.remove(&position);
        }
        d.refetch_without(&a, n + 3..2 * n);

        assert_eq!(
            d.next,
            n + 3,
            "the download waits for the mutated block again"
        );
        assert!(d.dropped.contains(&a) && !d.peers.contains_key(&a));
        let again: Vec<usize> = (n + 3..2 * n).chain(3 * n..4 * n).collect();
        assert_eq!(d.unassigned.iter().copied().collect::<Vec<_>>(), again);
        assert!(
            (2 * n..3 * n).all(|p| d.arrived.contains_key(&p) && d.source[&p] == b),
            "b's waiting blocks are kept"
        );
        assert!(
            again
                .iter()
                .all(|p| !d.arrived.contains_key(p) && !d.source.contains_key(p))
        );
        let mut asked = Vec::new();
        while let Some((peer, batch)) = d.assign() {
            assert_eq!(
                peer, b,
                "the peer that sent the mutated block is not asked again"
            );
            asked.extend(batch);
        }
        assert_eq!(asked, again);
    }

    #[test]
    fn a_dropped_peers_blocks_go_to_the_others() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut d = download(4 * MAX_BLOCKS_PER_REQUEST, &[a, b]);
        let mut batches = Vec::new();
        while let Some(assigned) = d.assign() {
            batches.push(assigned);
        }
        assert!(d.unassigned.is_empty());
        let stalled: Vec<usize> = batches
            .iter()
            .filter(|(p, _)| *p == a)
            .flat_map(|(_, b)| b.clone())
            .collect();
        d.drop_peer(&a, &stalled);
        for (peer, _) in batches.iter().filter(|(p, _)| *p == b) {
            *d.peers.get_mut(peer).expect("b downloads") -= 1;
        }
        let mut again = Vec::new();
        while let Some((peer, batch)) = d.assign() {
            assert_eq!(peer, b, "the dropped peer is not asked again");
            again.extend(batch);
        }
        again.sort_unstable();
        assert_eq!(again, stalled);
    }
}
