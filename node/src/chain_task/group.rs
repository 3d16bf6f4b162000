//! Group commit of blocks that arrive together (a sync batch): connected one chain step
//! at a time, each step its own atomic batch, made durable by one sync for the group
//! ([`cairn_core::chain::GroupWriter`]), and acknowledged only after that. Until the
//! commit, nothing of the group leaves the chain thread: its events (tip changes,
//! known blocks) and the tip metrics are held and sent after it; RPC calls and other jobs
//! wait in the chain thread's queue, and snapshot readers wait at the store's gate. A
//! crash before the commit loses only steps nobody was told about.

use super::{NodeEvent, NodeState};
use cairn_core::chain::{ChainError, ImportReport, pipeline};
use cairn_core::{Block, BlockHash, ImportOutcome};
use std::ops::ControlFlow;

/// Most blocks made durable by one sync.
pub const MAX_GROUP_BLOCKS: usize = 64;
/// Most block bytes made durable by one sync (what a crash could make us fetch again).
pub const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

impl NodeState {
    /// Sends `event` to subscribers now, or holds it until the open group is durable.
    pub(super) fn emit(&mut self, event: NodeEvent) {
        if let Some(held) = &mut self.held {
            held.push(event);
            return;
        }
        if let NodeEvent::TipChanged {
            height,
            reorg_depth,
            ..
        } = &event
        {
            self.metrics.tip_changed(*height, *reorg_depth);
        }
        let _ = self.events.send(event);
    }

    /// Imports peer blocks in order, in groups of at most [`MAX_GROUP_BLOCKS`] blocks and
    /// [`MAX_GROUP_BYTES`], each group made durable by one sync before any of it is
    /// acknowledged. Stops after the first block that is invalid or that the store failed
    /// on; one result per block tried. Each block's context-free checks run one block
    /// ahead on another thread, overlapping the connection of the block before
    /// ([`pipeline`]).
    pub fn submit_block_group(
        &mut self,
        blocks: Vec<Block>,
        now: u64,
    ) -> Vec<(BlockHash, Result<ImportReport, ChainError>)> {
        let mut out = Vec::with_capacity(blocks.len());
        let (mut count, mut bytes) = (0, 0);
        let params = self.params().clone();
        pipeline::import_in_order(&params, blocks, |block| {
            if count == 0 {
                self.begin_group();
            }
            let hash = block.hash();
            bytes += block.size();
            count += 1;
            let result = self.submit_prechecked(block, now);
            let stopped = match &result {
                Ok(report) => matches!(report.outcome, ImportOutcome::Invalid(_)),
                Err(_) => true,
            };
            out.push((hash, result));
            if stopped || count == MAX_GROUP_BLOCKS || bytes >= MAX_GROUP_BYTES {
                self.commit_group();
                (count, bytes) = (0, 0);
            }
            if stopped {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if count > 0 {
            self.commit_group();
        }
        out
    }

    fn begin_group(&mut self) {
        self.chain.begin_group();
        self.held = Some(Vec::new());
    }

    /// Makes the group durable, then sends what it held back. A store that cannot make it
    /// durable leaves the node with a tip it must not report and cannot undo: it stops
    /// at once, and restarts on the durable prefix.
    fn commit_group(&mut self) {
        if let Err(e) = self.chain.commit_group() {
            tracing::error!("making synced blocks durable failed, stopping the node: {e}");
            eprintln!("error: making synced blocks durable failed: {e}");
            std::process::abort();
        }
        for event in self.held.take().unwrap_or_default() {
            self.emit(event);
        }
    }
}
