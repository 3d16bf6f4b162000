//! The block tree as a fork view sees it: every known block above a height with its status
//! on this node and when this node first knew it (`getblocktree`), and the
//! [`NodeEvent::BlockKnown`] announcement of each block the node learns about.

use super::{NodeEvent, NodeState};
use cairn_core::BlockHash;
use cairn_core::BlockHeader;
use cairn_core::block_index::BlockEntry;
use cairn_core::chain::{ChainError, HeaderOutcome};
use cairn_rpc::types::{BlockStatus, BlockTree, TreeBlock};

/// How far below the tip `getblocktree` starts when not told.
pub const DEFAULT_TREE_DEPTH: u32 = 100;

impl NodeState {
    /// Records that this node now knows `hash` (first time in this run) and announces it.
    pub(super) fn note_known(&mut self, hash: BlockHash, parent: BlockHash) {
        let Some(height) = self.chain.entry(&hash).map(|e| e.height) else {
            return;
        };
        let now = self.clock.now_millis();
        if self.first_seen.insert(hash, now).is_none() {
            self.emit(NodeEvent::BlockKnown {
                hash,
                parent,
                height,
            });
        }
    }

    /// Accepts a header from headers-first sync (see [`cairn_core::ChainState::accept_header`]),
    /// noting and announcing it when it is new.
    pub fn accept_header(
        &mut self,
        header: &BlockHeader,
        now: u64,
    ) -> Result<HeaderOutcome, ChainError> {
        let outcome = self.chain.accept_header(header, now)?;
        if outcome == HeaderOutcome::New {
            self.note_known(header.block_hash(), header.prev_blockhash);
        }
        Ok(outcome)
    }

    /// Accepts a batch of headers, kept only if their branch reaches `min_work` (see
    /// [`cairn_core::ChainState::accept_headers`]), noting and announcing those stored.
    pub fn accept_headers(
        &mut self,
        headers: &[BlockHeader],
        now: u64,
        min_work: cairn_core::Work,
    ) -> Result<cairn_core::chain::HeadersReport, ChainError> {
        let report = self.chain.accept_headers(headers, now, min_work)?;
        for header in headers {
            let hash = header.block_hash();
            if report.stored.contains(&hash) {
                self.note_known(hash, header.prev_blockhash);
            }
        }
        Ok(report)
    }

    /// Every block this node knows at height `from` or above (default: the tip's height
    /// minus [`DEFAULT_TREE_DEPTH`]), by height then hash.
    pub fn block_tree(&mut self, from: Option<u32>) -> Result<BlockTree, ChainError> {
        let tip = self.chain.tip().clone();
        let from = from.unwrap_or(tip.height.saturating_sub(DEFAULT_TREE_DEPTH));
        let mut entries: Vec<BlockEntry> = self.chain.entries_from(from).cloned().collect();
        entries.sort_by_key(|e| (e.height, e.hash));
        let mut blocks = Vec::with_capacity(entries.len());
        for entry in entries {
            let txs = if entry.has_data {
                Some(self.tx_count(&entry.hash)?)
            } else {
                None
            };
            blocks.push(TreeBlock {
                hash: entry.hash.to_string(),
                parent: entry.header.prev_blockhash.to_string(),
                height: entry.height,
                time: u64::from(entry.header.time),
                txs,
                status: self.status_of(&entry),
                first_seen_ms: self.first_seen.get(&entry.hash).copied(),
            });
        }
        Ok(BlockTree {
            tip: tip.hash.to_string(),
            height: tip.height,
            from,
            blocks,
        })
    }

    /// Blocks with a body that are on no active chain of this node: its stale blocks.
    pub fn stale_block_count(&self) -> usize {
        self.chain
            .entries_from(0)
            .filter(|e| e.has_data && !e.validity.is_invalid() && !self.chain.is_active(&e.hash))
            .count()
    }

    fn status_of(&self, entry: &BlockEntry) -> BlockStatus {
        if entry.validity.is_invalid() {
            BlockStatus::Invalid
        } else if self.chain.is_active(&entry.hash) {
            BlockStatus::Active
        } else if entry.has_data {
            BlockStatus::Side
        } else {
            BlockStatus::HeadersOnly
        }
    }

    fn tx_count(&mut self, hash: &BlockHash) -> Result<usize, ChainError> {
        if let Some(n) = self.tx_counts.get(hash) {
            return Ok(*n);
        }
        let n = self.read_block(hash)?.txs.len();
        self.tx_counts.insert(*hash, n);
        Ok(n)
    }
}
