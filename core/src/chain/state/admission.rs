//! Anti-DoS admission (after Bitcoin Core's `AcceptBlockHeader` work checks and
//! `fHasMoreOrSameWork`): what the chain keeps of what peers send.
//!
//! - A block nobody asked for (gossip) is looked at only when its parent is known, its
//!   header passes every context check and its branch has at least the active tip's work
//!   (a tie is kept: the first seen of equal-work tips stays active, the other is a fork
//!   users can see). The one exception is a recent fork: a branch that leaves the active
//!   chain within [`STALE_WINDOW`] of the tip, what honest miners that lost a race send
//!   and what fork views, stale-rate measurements and a selfish miner's race must see; its
//!   blocks cost proof of work at about the current difficulty (Bitcoin Core keeps the
//!   header of such a block and drops its body; here the body is kept too, as the lab
//!   reads it, and it is never connected unless its branch wins). Nothing else is stored:
//!   no orphan pool, no bodies of deep weaker branches kept without their inputs or
//!   signatures ever being checked.
//! - Headers come in batches, one store write per batch, and only when the batch's branch
//!   reaches the work asked for; a weaker branch leaves nothing behind.

use super::ChainState;
use crate::block::BlockHeader;
use crate::block_index::BlockEntry;
use crate::chain::outcome::ChainError;
use crate::hash::BlockHash;
use crate::pow::Work;
use crate::store::{ChainStore, StoreBatch};
use crate::validation::BlockError;

/// How far below the tip a branch may leave the active chain for its blocks to be kept
/// although they have less work than the tip (a recent fork). Deep enough for a selfish
/// miner's lead (it and the honest nodes must see every block of the race, Eyal–Sirer),
/// shallow enough that every block of such a branch costs proof of work at about the
/// current difficulty: no cheap headers from deep in the past.
pub const STALE_WINDOW: u32 = 16;

/// Whether a block that arrived unrequested is worth importing, judged on its header alone
/// (nothing is decoded further, hashed or stored to decide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Import it: parent known, header valid in context, branch work at least the tip's.
    Admit,
    /// Already in the tree: [`ChainState::accept_block`] tells a duplicate, a known-invalid
    /// block, or the body of a header stored earlier apart.
    Known,
    /// Its parent is unknown: nothing is stored (ask the sender for headers instead).
    UnknownParent(BlockHash),
    /// Its branch has less work than the active tip: not stored.
    LessWork {
        /// The branch's work with this block.
        work: Work,
        /// The active tip's.
        tip: Work,
    },
    /// The header broke a rule.
    Invalid(BlockError),
}

/// What [`ChainState::accept_headers`] did with a batch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HeadersReport {
    /// Headers added to the tree, in order (all in one store write).
    pub stored: Vec<BlockHash>,
    /// Work of the branch at the last header that passed, if any did.
    pub last_work: Option<Work>,
    /// The headers that passed end a branch with less work than asked for: none of them
    /// was kept.
    pub too_little_work: bool,
    /// The first header that broke a rule, by index in the batch; nothing after it was
    /// looked at.
    pub invalid: Option<(usize, BlockError)>,
}

impl<S: ChainStore> ChainState<S> {
    /// Whether to import a block that arrived without being asked for; see [`Admission`].
    pub fn admit_unrequested(&self, header: &BlockHeader, now: u64) -> Admission {
        let hash = header.block_hash();
        if self.entries.contains_key(&hash) {
            return Admission::Known;
        }
        if !self.entries.contains_key(&header.prev_blockhash) {
            return Admission::UnknownParent(header.prev_blockhash);
        }
        match self.check_new_header(&hash, header, now) {
            Err(e) => Admission::Invalid(e),
            Ok(entry)
                if entry.chainwork < self.tip().chainwork
                    && !self.is_recent_stale(&header.prev_blockhash) =>
            {
                Admission::LessWork {
                    work: entry.chainwork,
                    tip: self.tip().chainwork,
                }
            }
            Ok(_) => Admission::Admit,
        }
    }

    /// Whether a child of `parent` would be on a recent fork: its branch leaves the active
    /// chain at most [`STALE_WINDOW`] below the tip.
    fn is_recent_stale(&self, parent: &BlockHash) -> bool {
        let fork = self.find_fork(parent);
        self.entries
            .get(&fork)
            .is_some_and(|f| self.height() - f.height <= STALE_WINDOW)
    }

    /// Accepts a batch of consecutive headers (headers-first sync): each is checked in the
    /// context of the ones before it, and the new ones are kept, in one store write, only
    /// when the branch they end reaches `min_work` (the active tip's work, to refuse
    /// branches that cannot win). Consensus verdicts are in the report; `Err` only for
    /// store failures (then nothing of the batch is kept).
    pub fn accept_headers(
        &mut self,
        headers: &[BlockHeader],
        now: u64,
        min_work: Work,
    ) -> Result<HeadersReport, ChainError> {
        let mut report = HeadersReport::default();
        let mut new: Vec<BlockEntry> = Vec::new();
        for (i, header) in headers.iter().enumerate() {
            let hash = header.block_hash();
            if let Some(entry) = self.entries.get(&hash) {
                if entry.validity.is_invalid() {
                    report.invalid = Some((i, BlockError::KnownInvalid(hash)));
                    break;
                }
                report.last_work = Some(entry.chainwork);
                continue;
            }
            match self.check_new_header(&hash, header, now) {
                Ok(entry) => {
                    report.last_work = Some(entry.chainwork);
                    // In the tree for now, so the next header is checked against it.
                    self.insert_entry(entry.clone());
                    new.push(entry);
                }
                Err(e) => {
                    report.invalid = Some((i, e));
                    break;
                }
            }
        }
        let enough = report.last_work.is_some_and(|w| w >= min_work);
        if !enough {
            report.too_little_work = report.last_work.is_some();
            self.forget_headers(&new);
            return Ok(report);
        }
        if !new.is_empty() {
            let written = self.store.write(StoreBatch {
                index: new.clone(),
                ..Default::default()
            });
            if let Err(e) = written {
                self.forget_headers(&new);
                return Err(e.into());
            }
        }
        report.stored = new.iter().map(|e| e.hash).collect();
        Ok(report)
    }

    /// Takes headers that were only tried out (leaves, newest last) out of the tree again.
    fn forget_headers(&mut self, entries: &[BlockEntry]) {
        for entry in entries.iter().rev() {
            self.entries.remove(&entry.hash);
            let parent = entry.header.prev_blockhash;
            if let Some(children) = self.children.get_mut(&parent) {
                children.retain(|h| *h != entry.hash);
                if children.is_empty() {
                    self.children.remove(&parent);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ChainParams;
    use crate::store::MemoryStore;
    use crate::testkit::TestChain;

    fn fresh() -> ChainState<MemoryStore> {
        ChainState::open(ChainParams::regtest(), MemoryStore::new()).unwrap()
    }

    #[test]
    fn a_weaker_branch_of_headers_leaves_nothing_and_a_stronger_one_is_kept() {
        let mut kit = TestChain::new(ChainParams::regtest());
        let blocks = kit.build_chain(4);
        let headers: Vec<BlockHeader> = blocks.iter().map(|b| b.header).collect();
        let now = kit.now();
        let mut chain = fresh();
        let before = chain.tree_len();
        let three = headers[2..3].to_vec();
        let short = chain
            .accept_headers(&headers[..2], now, Work::ZERO)
            .unwrap();
        assert_eq!(short.stored.len(), 2);
        // Asking for more work than four headers carry: nothing kept, nothing left behind.
        let much = kit.chain.entry(&blocks[3].block_hash()).unwrap().chainwork;
        let more = much.saturating_add(much);
        let weak = chain.accept_headers(&headers[2..], now, more).unwrap();
        assert!(weak.too_little_work && weak.stored.is_empty());
        assert_eq!(chain.tree_len(), before + 2);
        assert!(chain.entry(&blocks[2].block_hash()).is_none());
        // Enough work: kept, in order; already-known headers are skipped.
        let strong = chain.accept_headers(&headers, now, much).unwrap();
        assert_eq!(
            strong.stored,
            vec![blocks[2].block_hash(), blocks[3].block_hash()]
        );
        assert_eq!(strong.last_work, Some(much));
        // A header whose parent is unknown stops the batch and is reported.
        let mut other = TestChain::new(ChainParams::regtest());
        other.clock += 7;
        other.build_chain(2);
        let stray = other.build_chain(1)[0].header;
        let report = chain.accept_headers(&[stray], now, Work::ZERO).unwrap();
        assert!(matches!(
            report.invalid,
            Some((0, BlockError::UnknownParent(_)))
        ));
        assert_eq!(
            chain
                .accept_headers(&three, now, Work::ZERO)
                .unwrap()
                .stored,
            vec![]
        );
    }

    #[test]
    fn unrequested_blocks_are_admitted_only_on_a_known_parent_with_enough_work() {
        let mut kit = TestChain::new(ChainParams::regtest());
        let genesis = kit.chain.tip().hash;
        let main = kit.build_chain(STALE_WINDOW as usize + 2);
        let side = kit.build_on(&genesis, 2);
        let recent = kit.build_on(&main[STALE_WINDOW as usize].block_hash(), 1);
        let now = kit.now();
        let mut chain = fresh();
        for block in &main {
            chain.accept_block(block.clone(), now).unwrap();
        }
        assert_eq!(
            chain.admit_unrequested(&main[1].header, now),
            Admission::Known
        );
        assert!(matches!(
            chain.admit_unrequested(&side[0].header, now),
            Admission::LessWork { .. }
        ));
        assert_eq!(
            chain.admit_unrequested(&side[1].header, now),
            Admission::UnknownParent(side[0].block_hash())
        );
        assert_eq!(
            chain.admit_unrequested(&recent[0].header, now),
            Admission::Admit,
            "a recent stale block is kept"
        );
        let next = kit.build_on(&main.last().unwrap().block_hash(), 1);
        assert_eq!(
            chain.admit_unrequested(&next[0].header, now),
            Admission::Admit
        );
    }
}
