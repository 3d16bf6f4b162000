//! Block assembly: which pool transactions a block template carries.

use super::FeeRate;
use super::Mempool;
use super::graph::Package;
use cairn_core::{Amount, Transaction, Txid};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};

/// A transaction offered with its not-yet-selected ancestors, as scored when pushed.
#[derive(PartialEq, Eq)]
struct Offer {
    rate: FeeRate,
    seq: Reverse<u64>,
    txid: Txid,
    package: Package,
}

impl Ord for Offer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.rate, self.seq, self.txid).cmp(&(other.rate, other.seq, other.txid))
    }
}
impl PartialOrd for Offer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Mempool {
    /// The transactions for a block template, at most `max_bytes` of them in encoded size
    /// (the block limit minus header, coinbase and framing), with their total fee.
    ///
    /// Bitcoin Core's ancestor-package selection: repeatedly take the transaction whose
    /// package of not-yet-selected ancestors (itself included) has the highest fee rate, if
    /// that package fits, together with the package. A child paying a high fee thereby
    /// pulls in its cheap parent (CPFP). Parents always come before their children; ties go
    /// to the earlier arrival. Everything in the pool is valid at the next height, so the
    /// result is too.
    pub fn select_for_block(&self, max_bytes: usize) -> (Vec<Transaction>, Amount) {
        let mut modified: HashMap<Txid, Package> = self
            .entries
            .values()
            .map(|e| (e.txid, e.ancestors))
            .collect();
        let offer = |txid: Txid, package: Package| Offer {
            rate: package.fee_rate(),
            seq: Reverse(self.entries[&txid].seq),
            txid,
            package,
        };
        let mut heap: BinaryHeap<Offer> = modified.iter().map(|(t, p)| offer(*t, *p)).collect();
        let mut selected: HashSet<Txid> = HashSet::new();
        let mut txs = Vec::new();
        let mut fees = 0u64;
        let mut remaining = max_bytes as u64;

        while let Some(top) = heap.pop() {
            if selected.contains(&top.txid) || modified[&top.txid] != top.package {
                continue; // selected already, or superseded by a later offer
            }
            if top.package.size > remaining {
                continue; // offered again if an ancestor gets selected
            }
            let parents = self.entries[&top.txid].parents.iter().copied();
            let mut package: Vec<Txid> = self
                .ancestor_set(parents)
                .into_iter()
                .filter(|t| !selected.contains(t))
                .collect();
            package.push(top.txid);
            package.sort_by_key(|t| self.entries[t].seq);
            debug_assert_eq!(
                package
                    .iter()
                    .map(|t| self.entries[t].size as u64)
                    .sum::<u64>(),
                top.package.size
            );
            for t in package {
                selected.insert(t);
                let entry = &self.entries[&t];
                txs.push(entry.tx.clone());
                fees = fees.saturating_add(entry.fee.to_base());
                remaining = remaining.saturating_sub(entry.size as u64);
                for d in self.descendant_set(&t) {
                    if selected.contains(&d) {
                        continue;
                    }
                    let package = modified
                        .get_mut(&d)
                        .expect("every pool transaction has a package");
                    package.sub(entry.own());
                    heap.push(offer(d, *package));
                }
            }
        }
        (txs, Amount::from_base(fees))
    }
}
