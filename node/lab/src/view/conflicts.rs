//! Double spends as they resolve: every outpoint that two or more different transactions
//! spend, across all nodes' mempools and the blocks they hold, with where each version
//! stands on each node (`mempool`, `confirmed` on its active chain, or `absent`). Pure.

use super::source::TxSpends;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where a transaction stands on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// In its mempool.
    Mempool,
    /// In a block of its active chain.
    Confirmed,
    /// Neither (it may sit in a stale block).
    Absent,
}

/// One version of a double spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictTx {
    /// Its txid.
    pub txid: String,
    /// Where it stands, per node.
    pub on: BTreeMap<String, Presence>,
}

/// An outpoint spent by several transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// `TXID:VOUT`.
    pub outpoint: String,
    /// The versions, by txid.
    pub txs: Vec<ConflictTx>,
}

/// What one node holds: the txids in its mempool, and the blocks it has bodies of (at the
/// heights of interest) with whether each is on its active chain.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    /// Its name.
    pub node: String,
    /// Its mempool.
    pub mempool: Vec<String>,
    /// `(block hash, on its active chain)`.
    pub blocks: Vec<(String, bool)>,
}

/// Finds every conflict. `txs` maps txid → spends for every transaction named (mempool
/// entries and block contents); `block_txs` maps block hash → its txids. Transactions or
/// blocks missing from the maps are skipped (the caller could not fetch them).
pub fn find<'a>(
    nodes: &'a [Holdings],
    txs: &'a HashMap<String, TxSpends>,
    block_txs: &'a HashMap<String, Vec<String>>,
) -> Vec<Conflict> {
    let mut spenders: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut presence: HashMap<(&str, &str), Presence> = HashMap::new();
    let mut add = |tx: &'a TxSpends| {
        for outpoint in &tx.spends {
            spenders
                .entry(outpoint.as_str())
                .or_default()
                .insert(tx.txid.as_str());
        }
    };
    for holding in nodes {
        for txid in &holding.mempool {
            if let Some(tx) = txs.get(txid) {
                add(tx);
                presence
                    .entry((holding.node.as_str(), tx.txid.as_str()))
                    .or_insert(Presence::Mempool);
            }
        }
        for (hash, active) in &holding.blocks {
            for txid in block_txs.get(hash).into_iter().flatten() {
                let Some(tx) = txs.get(txid) else { continue };
                add(tx);
                if *active {
                    presence.insert(
                        (holding.node.as_str(), tx.txid.as_str()),
                        Presence::Confirmed,
                    );
                }
            }
        }
    }
    spenders
        .into_iter()
        .filter(|(_, who)| who.len() >= 2)
        .map(|(outpoint, who)| Conflict {
            outpoint: outpoint.to_owned(),
            txs: who
                .into_iter()
                .map(|txid| ConflictTx {
                    txid: txid.to_owned(),
                    on: nodes
                        .iter()
                        .map(|h| {
                            let p = presence
                                .get(&(h.node.as_str(), txid))
                                .copied()
                                .unwrap_or(Presence::Absent);
                            (h.node.clone(), p)
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(txid: &str, spends: &[&str]) -> (String, TxSpends) {
        (
            txid.into(),
            TxSpends {
                txid: txid.into(),
                spends: spends.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    /// coin c:0 paid to Bob by `pay` (mined on node0's active chain, and in a stale block of
    /// node1) and to Carol by `steal` (in node1's mempool, and mined in node2's block).
    #[test]
    fn a_double_spend_shows_each_version_per_node() {
        let txs: HashMap<String, TxSpends> = [
            tx("cb1", &[]),
            tx("pay", &["c:0"]),
            tx("steal", &["c:0", "d:1"]),
            tx("other", &["e:0"]),
        ]
        .into_iter()
        .collect();
        let block_txs: HashMap<String, Vec<String>> = [
            ("b_pay".to_string(), vec!["cb1".into(), "pay".into()]),
            ("b_steal".to_string(), vec!["steal".into()]),
        ]
        .into_iter()
        .collect();
        let nodes = vec![
            Holdings {
                node: "node0".into(),
                mempool: vec!["other".into()],
                blocks: vec![("b_pay".into(), true)],
            },
            Holdings {
                node: "node1".into(),
                mempool: vec!["steal".into()],
                blocks: vec![("b_pay".into(), false)],
            },
            Holdings {
                node: "node2".into(),
                mempool: vec![],
                blocks: vec![("b_steal".into(), true), ("missing".into(), true)],
            },
        ];
        let found = find(&nodes, &txs, &block_txs);
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(c.outpoint, "c:0");
        let versions: Vec<&str> = c.txs.iter().map(|t| t.txid.as_str()).collect();
        assert_eq!(versions, ["pay", "steal"]);
        use Presence::*;
        let on = |i: usize| -> Vec<Presence> { c.txs[i].on.values().copied().collect() };
        assert_eq!(on(0), [Confirmed, Absent, Absent]);
        assert_eq!(on(1), [Absent, Mempool, Confirmed]);
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(json[0]["txs"][1]["on"]["node1"], "mempool");
    }

    #[test]
    fn the_same_transaction_everywhere_is_no_conflict() {
        let txs: HashMap<String, TxSpends> = [tx("pay", &["c:0"])].into_iter().collect();
        let block_txs = [("b".to_string(), vec!["pay".to_string()])]
            .into_iter()
            .collect();
        let nodes = vec![
            Holdings {
                node: "node0".into(),
                mempool: vec!["pay".into()],
                blocks: vec![],
            },
            Holdings {
                node: "node1".into(),
                mempool: vec![],
                blocks: vec![("b".into(), true)],
            },
        ];
        assert!(find(&nodes, &txs, &block_txs).is_empty());
    }
}
