//! The dependency graph of pool transactions: parent and child links, the spender of each
//! outpoint, and each entry's ancestor and descendant package totals, kept up to date on
//! every insertion and removal so eviction and block assembly never walk whole chains
//! per candidate.

use super::{EntryInfo, FeeRate, Mempool};
use cairn_core::{Amount, Coin, OutPoint, Transaction, Txid};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashSet};

/// Count, bytes and fees of a set of transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Package {
    pub count: usize,
    pub size: u64,
    pub fee: u64,
}

impl Package {
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::from_parts(self.fee, self.size)
    }

    fn add(&mut self, other: Package) {
        self.count += other.count;
        self.size += other.size;
        self.fee = self.fee.saturating_add(other.fee);
    }

    pub fn sub(&mut self, other: Package) {
        self.count -= other.count;
        self.size -= other.size;
        self.fee -= other.fee;
    }
}

/// A pool transaction.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub tx: Transaction,
    pub txid: Txid,
    pub fee: Amount,
    pub size: usize,
    /// Arrival time, seconds.
    pub time: u64,
    /// Arrival order; parents always precede children.
    pub seq: u64,
    /// The coin each input spends, in input order.
    pub spent: Vec<Coin>,
    /// In-pool transactions whose outputs it spends.
    pub parents: BTreeSet<Txid>,
    /// In-pool transactions spending its outputs.
    pub children: BTreeSet<Txid>,
    /// Itself and all its in-pool ancestors.
    pub ancestors: Package,
    /// Itself and all its in-pool descendants.
    pub descendants: Package,
}

impl Entry {
    pub fn new(
        tx: Transaction,
        txid: Txid,
        fee: Amount,
        size: usize,
        time: u64,
        seq: u64,
        spent: Vec<Coin>,
    ) -> Entry {
        Entry {
            tx,
            txid,
            fee,
            size,
            time,
            seq,
            spent,
            parents: BTreeSet::new(),
            children: BTreeSet::new(),
            ancestors: Package::default(),
            descendants: Package::default(),
        }
    }

    /// The package of this transaction alone.
    pub fn own(&self) -> Package {
        Package {
            count: 1,
            size: self.size as u64,
            fee: self.fee.to_base(),
        }
    }

    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::new(self.fee, self.size)
    }

    pub fn info(&self) -> EntryInfo {
        EntryInfo {
            txid: self.txid,
            fee: self.fee,
            size: self.size,
            fee_rate: self.fee_rate(),
            time: self.time,
            depends: self.parents.iter().copied().collect(),
            ancestor_count: self.ancestors.count,
            descendant_count: self.descendants.count,
        }
    }
}

impl Mempool {
    /// Links a new entry into the graph. Its outputs must be unspent in the pool (true of
    /// a newcomer, and of entries put back in arrival order after a rollback).
    pub(super) fn insert_entry(&mut self, mut entry: Entry) {
        let txid = entry.txid;
        debug_assert!(
            (0..entry.tx.outputs.len() as u32)
                .all(|vout| !self.spenders.contains_key(&OutPoint { txid, vout })),
            "an entry is inserted before its children"
        );
        entry.parents = entry
            .tx
            .inputs
            .iter()
            .map(|i| i.prevout.txid)
            .filter(|t| self.entries.contains_key(t))
            .collect();
        entry.children.clear();
        let own = entry.own();
        let ancestors = self.ancestor_set(entry.parents.iter().copied());
        entry.ancestors = own;
        entry.descendants = own;
        for a in &ancestors {
            let ancestor = self.entries.get_mut(a).expect("ancestors are in the pool");
            entry.ancestors.add(ancestor.own());
            ancestor.descendants.add(own);
        }
        for p in &entry.parents {
            self.entries
                .get_mut(p)
                .expect("parents are in the pool")
                .children
                .insert(txid);
        }
        for input in &entry.tx.inputs {
            self.spenders.insert(input.prevout, txid);
        }
        self.bytes += entry.size;
        self.entries.insert(txid, entry);
    }

    /// Unlinks one entry, leaving its descendants in the pool (they remain valid only if
    /// it was confirmed; otherwise remove them first).
    pub(super) fn remove_entry(&mut self, txid: &Txid) -> Entry {
        let parents = self.entries[txid].parents.iter().copied();
        let ancestors = self.ancestor_set(parents);
        let descendants = self.descendant_set(txid);
        let entry = self
            .entries
            .remove(txid)
            .expect("only pool transactions are removed");
        let own = entry.own();
        for a in &ancestors {
            let ancestor = self.entries.get_mut(a).expect("ancestors are in the pool");
            ancestor.descendants.sub(own);
        }
        for d in &descendants {
            self.entries
                .get_mut(d)
                .expect("descendants are in the pool")
                .ancestors
                .sub(own);
        }
        for p in &entry.parents {
            if let Some(parent) = self.entries.get_mut(p) {
                parent.children.remove(txid);
            }
        }
        for c in &entry.children {
            if let Some(child) = self.entries.get_mut(c) {
                child.parents.remove(txid);
            }
        }
        for input in &entry.tx.inputs {
            if self.spenders.get(&input.prevout) == Some(txid) {
                self.spenders.remove(&input.prevout);
            }
        }
        self.bytes -= entry.size;
        entry
    }

    /// Removes `roots` and all their descendants; returns them in arrival order.
    pub(super) fn remove_with_descendants(
        &mut self,
        roots: impl IntoIterator<Item = Txid>,
    ) -> Vec<Txid> {
        let all = self.with_descendants(roots);
        for t in all.iter().rev() {
            self.remove_entry(t);
        }
        all
    }

    /// Every in-pool ancestor reachable from `parents` (themselves included).
    pub(super) fn ancestor_set(&self, parents: impl IntoIterator<Item = Txid>) -> HashSet<Txid> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Txid> = parents.into_iter().collect();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                stack.extend(self.entries[&t].parents.iter().copied());
            }
        }
        seen
    }

    /// Every in-pool descendant of `txid` (itself excluded).
    pub(super) fn descendant_set(&self, txid: &Txid) -> HashSet<Txid> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Txid> = self.entries[txid].children.iter().copied().collect();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                stack.extend(self.entries[&t].children.iter().copied());
            }
        }
        seen
    }

    /// `roots` (those in the pool) and all their descendants, in arrival order (so parents
    /// first; reversed, children first).
    pub(super) fn with_descendants(&self, roots: impl IntoIterator<Item = Txid>) -> Vec<Txid> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Txid> = roots
            .into_iter()
            .filter(|t| self.entries.contains_key(t))
            .collect();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                stack.extend(self.entries[&t].children.iter().copied());
            }
        }
        let mut all: Vec<Txid> = seen.into_iter().collect();
        all.sort_by_key(|t| self.entries[t].seq);
        all
    }

    /// The next eviction victim: the lowest "descendant score", the higher of a
    /// transaction's own fee rate and that of its descendant package (Bitcoin Core's
    /// rule: a high-fee child protects its parent, and a cheap child is evicted on its
    /// own score). Ties go to the newest.
    ///
    /// A linear scan, only run while the pool is over its cap.
    pub(super) fn lowest_descendant_score(&self) -> Option<Txid> {
        self.entries
            .values()
            .min_by_key(|e| {
                let score = e.fee_rate().max(e.descendants.fee_rate());
                (score, Reverse(e.seq))
            })
            .map(|e| e.txid)
    }

    /// Recomputes every derived structure from the transactions and compares (tests).
    #[cfg(test)]
    pub(super) fn assert_consistent(&self) {
        use std::collections::HashMap;
        let mut spenders = HashMap::new();
        let mut bytes = 0;
        for e in self.entries.values() {
            bytes += e.size;
            for input in &e.tx.inputs {
                assert!(
                    spenders.insert(input.prevout, e.txid).is_none(),
                    "two pool transactions spend {}",
                    input.prevout
                );
            }
            let parents: BTreeSet<Txid> =
                e.tx.inputs
                    .iter()
                    .map(|i| i.prevout.txid)
                    .filter(|t| self.entries.contains_key(t))
                    .collect();
            assert_eq!(parents, e.parents, "parents of {}", e.txid);
            for p in &parents {
                assert!(self.entries[p].children.contains(&e.txid));
                assert!(self.entries[p].seq < e.seq, "parent arrived before child");
            }
            for c in &e.children {
                assert!(self.entries[c].parents.contains(&e.txid));
            }
            let mut anc = e.own();
            for a in self.ancestor_set(parents.iter().copied()) {
                anc.add(self.entries[&a].own());
            }
            assert_eq!(anc, e.ancestors, "ancestor package of {}", e.txid);
            let mut desc = e.own();
            for d in self.descendant_set(&e.txid) {
                desc.add(self.entries[&d].own());
            }
            assert_eq!(desc, e.descendants, "descendant package of {}", e.txid);
        }
        assert_eq!(spenders, self.spenders);
        assert_eq!(bytes, self.bytes);
    }
}
