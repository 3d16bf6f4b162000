//! What a transaction with a missing input may cost.
//!
//! A peer can send transactions spending outpoints that do not exist for free: they are not
//! invalid (the parent may be on its way), so they cost the peer nothing. Each one must cost
//! the pool little too: the input checks stop at the first missing input, the "is it
//! already confirmed?" probe reads a bounded number of the transaction's outputs, not all of
//! them, and outpoints recently found missing are remembered so a transaction spending one
//! again is turned away before any input is read from the store.

use cairn_core::OutPoint;
use std::collections::HashSet;

/// How many of a transaction's outputs are looked up to tell a confirmed transaction sent
/// again ("txn-already-known") from one with a missing input. A confirmed transaction keeps
/// its first outputs unspent for a while; a miss only changes the reject reason.
pub(super) const ALREADY_KNOWN_PROBES: usize = 4;

/// Outpoints remembered as missing at most; past it the memory starts over.
const MAX_REMEMBERED: usize = 10_000;

/// Outpoints found neither in the pool nor in the UTXO set since the tip last moved. Only a
/// new tip can create a coin outside the pool, so every tip change forgets them all; an
/// outpoint a pool transaction creates is looked up in the pool before this set.
#[derive(Debug, Default)]
pub(super) struct MissingInputs {
    outpoints: HashSet<OutPoint>,
}

impl MissingInputs {
    /// Remembers `outpoint` as missing on the current tip.
    pub fn insert(&mut self, outpoint: OutPoint) {
        if self.outpoints.len() >= MAX_REMEMBERED {
            self.outpoints.clear();
        }
        self.outpoints.insert(outpoint);
    }

    /// Whether `outpoint` was found missing on the current tip.
    pub fn contains(&self, outpoint: &OutPoint) -> bool {
        self.outpoints.contains(outpoint)
    }

    /// The tip moved: any of them may exist now.
    pub fn clear(&mut self) {
        self.outpoints.clear();
    }

    /// How many are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.outpoints.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Hash256, Txid};

    #[test]
    fn memory_is_bounded() {
        let mut missing = MissingInputs::default();
        for i in 0..MAX_REMEMBERED as u32 + 1 {
            missing.insert(OutPoint {
                txid: Txid(Hash256([0; 32])),
                vout: i,
            });
        }
        assert!(missing.len() <= MAX_REMEMBERED);
        assert!(missing.contains(&OutPoint {
            txid: Txid(Hash256([0; 32])),
            vout: MAX_REMEMBERED as u32,
        }));
    }
}
