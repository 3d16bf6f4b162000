//! Full replace-by-fee: what a transaction spending what pool transactions already spend
//! must pay to evict them, after Bitcoin Core's rules (doc/policy/mempool-replacements.md).
//!
//! - Rule 5: it may evict at most `max_replacements` transactions (direct conflicts and
//!   their descendants), checked from the pool's descendant counts before any set is built.
//! - It may not spend an output of a transaction it evicts.
//! - Rule 6: its fee rate beats every direct conflict's.
//! - Rule 3: its fee is above the sum of the fees of everything it evicts.
//! - Rule 4: the fee it adds over them pays for its own relay at the minimum relay fee
//!   rate, so a chain of replacements cannot relay ever more bytes for the same fee.

use super::{FeeRate, Mempool, MempoolError, ReplacementRule};
use cairn_core::{Amount, Txid};
use std::collections::{BTreeSet, HashSet};

/// A transaction conflicting with the pool, as the replacement rules see it.
pub(super) struct Replacement<'a> {
    /// Its txid.
    pub txid: Txid,
    /// Its fee.
    pub fee: Amount,
    /// Its encoded size.
    pub size: usize,
    /// Pool transactions spending an outpoint it spends.
    pub conflicts: &'a BTreeSet<Txid>,
    /// Pool transactions whose outputs it spends.
    pub parents: &'a BTreeSet<Txid>,
}

impl Mempool {
    /// Checks the replace-by-fee rules for `candidate` and returns what it would evict: the
    /// direct conflicts and their descendants, in arrival order.
    pub(super) fn check_replacement(
        &self,
        candidate: &Replacement<'_>,
    ) -> Result<Vec<Txid>, MempoolError> {
        let Replacement {
            txid,
            fee,
            size,
            conflicts,
            parents,
        } = *candidate;
        let first_conflict = *conflicts.first().expect("a replacement has a conflict");
        let reject = |conflict: Txid, rule: ReplacementRule| MempoolError::Conflict {
            txid,
            conflict,
            rule,
        };
        // An upper bound (shared descendants count twice), as in Bitcoin Core: cheap, and
        // it bounds the set built next.
        let count: usize = conflicts
            .iter()
            .map(|c| self.entries[c].descendants.count)
            .sum();
        if count > self.config.max_replacements {
            return Err(reject(
                first_conflict,
                ReplacementRule::TooManyReplacements {
                    count,
                    limit: self.config.max_replacements,
                },
            ));
        }
        let replaced = self.with_descendants(conflicts.iter().copied());
        let replaced_set: HashSet<Txid> = replaced.iter().copied().collect();
        if let Some(parent) = parents.iter().find(|p| replaced_set.contains(p)) {
            return Err(MempoolError::SpendsConflictingTx {
                txid,
                conflict: *parent,
            });
        }
        let rate = FeeRate::new(fee, size);
        for conflict in conflicts {
            let conflict_rate = self.entries[conflict].fee_rate();
            if rate <= conflict_rate {
                return Err(reject(
                    *conflict,
                    ReplacementRule::InsufficientFeeRate {
                        rate,
                        conflict_rate,
                    },
                ));
            }
        }
        let evicted = replaced
            .iter()
            .map(|t| self.entries[t].fee.to_base())
            .fold(0u64, u64::saturating_add);
        if fee.to_base() <= evicted {
            return Err(reject(
                first_conflict,
                ReplacementRule::InsufficientFee {
                    fee,
                    evicted: Amount::from_base(evicted),
                },
            ));
        }
        let additional = fee.to_base() - evicted;
        let required = u128::from(self.config.min_relay_fee_rate) * size as u128;
        if u128::from(additional) < required {
            return Err(reject(
                first_conflict,
                ReplacementRule::InsufficientRelayFee {
                    additional: Amount::from_base(additional),
                    required: Amount::from_base(u64::try_from(required).unwrap_or(u64::MAX)),
                },
            ));
        }
        Ok(replaced)
    }
}
