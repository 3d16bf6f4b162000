//! Invalid blocks: marking a block and its descendants invalid (persisted), and the
//! `invalidateblock` / `reconsiderblock` operations.

use super::ChainState;
use crate::block_index::Validity;
use crate::chain::outcome::{ChainError, TipChanged};
use crate::hash::BlockHash;
use crate::store::{ChainStore, StoreBatch};
use crate::validation::BlockError;

impl<S: ChainStore> ChainState<S> {
    /// Marks `hash` invalid and every descendant invalid-by-ancestry, persisting them.
    pub(super) fn mark_invalid(
        &mut self,
        hash: &BlockHash,
        error: &BlockError,
    ) -> Result<(), ChainError> {
        let reason = format!("{}: {}", error.reject_reason(), error);
        self.set_invalid(hash, reason)
    }

    fn set_invalid(&mut self, hash: &BlockHash, reason: String) -> Result<(), ChainError> {
        let mut updated = Vec::new();
        if let Some(entry) = self.entries.get_mut(hash) {
            self.fork_choice.remove(entry);
            entry.validity = Validity::Invalid { reason };
            updated.push(entry.clone());
        }
        for desc in self.descendants(hash) {
            if let Some(entry) = self.entries.get_mut(&desc) {
                self.fork_choice.remove(entry);
                entry.validity = Validity::InvalidAncestor(*hash);
                updated.push(entry.clone());
            }
        }
        self.write(StoreBatch {
            index: updated,
            ..Default::default()
        })?;
        Ok(())
    }

    fn descendants(&self, hash: &BlockHash) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut stack: Vec<BlockHash> = self.children.get(hash).cloned().unwrap_or_default();
        while let Some(h) = stack.pop() {
            out.push(h);
            stack.extend(self.children.get(&h).into_iter().flatten().copied());
        }
        out
    }

    /// `invalidateblock`: treats `hash` as invalid, disconnecting it if active, and moves
    /// to the best remaining chain.
    pub fn invalidate_block(&mut self, hash: &BlockHash) -> Result<Option<TipChanged>, ChainError> {
        self.operation(|chain| chain.invalidate_and_activate(hash))
    }

    fn invalidate_and_activate(
        &mut self,
        hash: &BlockHash,
    ) -> Result<Option<TipChanged>, ChainError> {
        let entry = self
            .entries
            .get(hash)
            .ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.height == 0 {
            return Err(ChainError::Genesis);
        }
        let old_tip = self.tip().hash;
        while self.is_active(hash) {
            self.disconnect_tip()?;
        }
        self.set_invalid(hash, "invalidated by invalidateblock".into())?;
        self.rebuild_candidates();
        self.activate_best_chain(&mut Vec::new())?;
        self.tip_change_since(&old_tip)
    }

    /// `reconsiderblock`: clears invalidity from `hash`, its ancestors and descendants, and
    /// moves to the best chain.
    pub fn reconsider_block(&mut self, hash: &BlockHash) -> Result<Option<TipChanged>, ChainError> {
        self.operation(|chain| chain.reconsider_and_activate(hash))
    }

    fn reconsider_and_activate(
        &mut self,
        hash: &BlockHash,
    ) -> Result<Option<TipChanged>, ChainError> {
        let entry = self
            .entries
            .get(hash)
            .ok_or(ChainError::UnknownBlock(*hash))?;
        let old_tip = self.tip().hash;
        let mut affected = self.descendants(hash);
        affected.push(*hash);
        let mut cur = entry.header.prev_blockhash;
        while let Some(ancestor) = self.entries.get(&cur) {
            affected.push(cur);
            if ancestor.height == 0 {
                break;
            }
            cur = ancestor.header.prev_blockhash;
        }
        let mut updated = Vec::new();
        for h in affected {
            if let Some(entry) = self.entries.get_mut(&h)
                && entry.validity.is_invalid()
            {
                entry.validity = Validity::HeaderValid;
                updated.push(entry.clone());
            }
        }
        self.write(StoreBatch {
            index: updated,
            ..Default::default()
        })?;
        self.rebuild_candidates();
        let mut invalidated = Vec::new();
        self.activate_best_chain(&mut invalidated)?;
        self.tip_change_since(&old_tip)
    }
}
