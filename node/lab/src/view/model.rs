//! The view's model: one follower state per node, caches of what never changes (block
//! bodies, transactions), and the three questions the server answers — the merged tree, one
//! block in detail, and the double spends.

use super::conflicts::{self, Conflict, Holdings};
use super::follow::{Follower, Hub, NodeState};
use super::merge::{self, NodeSnapshot, TreeView};
use super::source::{BlockBody, NodeSource, SourceError, TxSpends};
use crate::theory;
use cairn_rpc::types::BlockStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// The attacker hash shares the page gives reversal odds for (INTERFACE's keys).
pub const ATTACKER_SHARES: [(&str, f64); 3] = [("0.1", 0.1), ("0.25", 0.25), ("0.45", 0.45)];

/// `GET /api/block/HASH`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDetail {
    /// Its hash.
    pub hash: String,
    /// Its parent.
    pub parent: String,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u64,
    /// Compact target (null when no node has more than the header).
    pub bits: Option<String>,
    /// Nonce (null when no node has more than the header).
    pub nonce: Option<u64>,
    /// Its transactions (empty when no node has the body).
    pub txids: Vec<String>,
    /// Per node: confirmations on its active chain, 0 when not on it.
    pub confirmations: BTreeMap<String, u32>,
    /// Per attacker share q: Nakamoto §11 odds that the block is ever reversed, with z the
    /// largest confirmation count.
    pub reversal_probability: BTreeMap<String, f64>,
    /// Per node that knows it: `active`, `side`, `headers-only` or `invalid` (extension).
    pub status: BTreeMap<String, BlockStatus>,
    /// Per node: when it first knew it, Unix ms, where known (extension).
    pub first_seen: BTreeMap<String, u64>,
    /// The nodes whose `first_seen` is when the view noticed the block, because the node
    /// does not report one (extension).
    pub first_seen_by_view: Vec<String>,
}

/// Everything the view knows and caches.
pub struct Model {
    sources: Vec<Arc<dyn NodeSource>>,
    states: Vec<Arc<RwLock<NodeState>>>,
    /// Events and reorgs.
    pub hub: Arc<Hub>,
    bodies: Mutex<HashMap<String, Arc<BlockBody>>>,
    txs: Mutex<HashMap<String, TxSpends>>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl Model {
    /// A model of these nodes, nothing read yet.
    pub fn new(sources: Vec<Arc<dyn NodeSource>>) -> Arc<Model> {
        Arc::new(Model {
            states: sources
                .iter()
                .map(|_| Arc::new(RwLock::new(NodeState::default())))
                .collect(),
            sources,
            hub: Arc::new(Hub::default()),
            bodies: Mutex::new(HashMap::new()),
            txs: Mutex::new(HashMap::new()),
        })
    }

    /// Starts one follower task per node (on the current tokio runtime).
    pub fn spawn_followers(&self) {
        for (source, state) in self.sources.iter().zip(&self.states) {
            let follower = Follower::new(source.clone(), state.clone(), self.hub.clone());
            tokio::spawn(follower.run());
        }
    }

    /// Whether every node has been read once, or found down.
    pub fn ready(&self) -> bool {
        self.states.iter().all(|s| {
            let s = s.read().expect("no panics under lock");
            s.loaded || (s.polled && !s.up)
        })
    }

    fn snapshots(&self, from: u32) -> Vec<NodeSnapshot> {
        self.sources
            .iter()
            .zip(&self.states)
            .map(|(source, s)| {
                s.read()
                    .expect("no panics under lock")
                    .snapshot(source.as_ref(), from)
            })
            .collect()
    }

    /// The merged tree at heights ≥ `from` (default: 100 below the highest tip). Nodes whose
    /// follower holds less than that are asked directly.
    pub async fn tree(&self, from: Option<u32>) -> TreeView {
        let from = from.unwrap_or_else(|| merge::default_from(&self.snapshots(u32::MAX)));
        let cached = self.snapshots(from);
        let mut snapshots = Vec::with_capacity(cached.len());
        for ((snapshot, source), state) in cached.into_iter().zip(&self.sources).zip(&self.states) {
            let floor = state.read().expect("no panics under lock").floor;
            if from >= floor || !snapshot.up {
                snapshots.push(snapshot);
                continue;
            }
            let source = source.clone();
            match blocking(move || source.tree(from)).await {
                Some(Ok(tree)) => snapshots.push(NodeSnapshot {
                    blocks: tree.blocks,
                    ..snapshot
                }),
                _ => snapshots.push(snapshot),
            }
        }
        let mut view = merge::merge(&snapshots, from);
        view.reorgs = self
            .hub
            .reorgs
            .lock()
            .expect("no panics under lock")
            .iter()
            .cloned()
            .collect();
        view
    }

    /// What every node says of block `hash` (tree status, first seen).
    fn known(&self, hash: &str) -> Vec<(usize, cairn_rpc::types::TreeBlock, bool)> {
        self.states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.read().expect("no panics under lock");
                let observed = s.observed.contains(hash);
                s.blocks.get(hash).map(|b| (i, b.clone(), observed))
            })
            .collect()
    }

    /// The body of `hash` from the cache or the first of `holders` that has it.
    async fn body(&self, hash: &str, holders: Vec<usize>) -> Option<Arc<BlockBody>> {
        if let Some(b) = self.bodies.lock().expect("no panics under lock").get(hash) {
            return Some(b.clone());
        }
        for i in holders {
            let source = self.sources[i].clone();
            let h = hash.to_owned();
            if let Some(Ok(Some(body))) = blocking(move || source.block(&h)).await {
                let body = Arc::new(body);
                self.remember(&body);
                return Some(body);
            }
        }
        None
    }

    fn remember(&self, body: &Arc<BlockBody>) {
        let mut txs = self.txs.lock().expect("no panics under lock");
        for tx in &body.txs {
            txs.entry(tx.txid.clone()).or_insert_with(|| tx.clone());
        }
        drop(txs);
        self.bodies
            .lock()
            .expect("no panics under lock")
            .insert(body.hash.clone(), body.clone());
    }

    /// Block `hash` in detail; `None` when no node knows it.
    pub async fn block(&self, hash: &str) -> Option<BlockDetail> {
        let known = self.known(hash);
        let with_body: Vec<usize> = if known.is_empty() {
            (0..self.sources.len()).collect()
        } else {
            known
                .iter()
                .filter(|(_, b, _)| b.status != BlockStatus::HeadersOnly)
                .map(|(i, _, _)| *i)
                .collect()
        };
        let body = self.body(hash, with_body).await;
        let header = known.first().map(|(_, b, _)| b.clone());
        let (parent, height, time) = match (&header, &body) {
            (Some(h), _) => (h.parent.clone(), h.height, h.time),
            (None, Some(b)) => (b.parent.clone(), b.height, b.time),
            (None, None) => return None,
        };
        let lookups = self.sources.iter().map(|source| {
            let source = source.clone();
            let h = hash.to_owned();
            async move {
                let n = blocking(move || source.confirmations(&h)).await;
                n.and_then(Result::ok).unwrap_or(0)
            }
        });
        let counts = futures::future::join_all(lookups).await;
        let confirmations: BTreeMap<String, u32> = self
            .sources
            .iter()
            .zip(counts)
            .map(|(s, n)| (s.name().to_owned(), n))
            .collect();
        let z = confirmations.values().copied().max().unwrap_or(0);
        Some(BlockDetail {
            hash: hash.to_owned(),
            parent,
            height,
            time,
            bits: body.as_ref().map(|b| b.bits.clone()),
            nonce: body.as_ref().map(|b| b.nonce),
            txids: body
                .as_ref()
                .map(|b| b.txs.iter().map(|t| t.txid.clone()).collect())
                .unwrap_or_default(),
            confirmations,
            reversal_probability: ATTACKER_SHARES
                .iter()
                .map(|(key, q)| {
                    (
                        (*key).to_owned(),
                        theory::attacker_success(*q, u64::from(z)),
                    )
                })
                .collect(),
            status: known
                .iter()
                .map(|(i, b, _)| (self.sources[*i].name().to_owned(), b.status))
                .collect(),
            first_seen: known
                .iter()
                .filter_map(|(i, b, _)| {
                    Some((self.sources[*i].name().to_owned(), b.first_seen_ms?))
                })
                .collect(),
            first_seen_by_view: known
                .iter()
                .filter(|(_, _, observed)| *observed)
                .map(|(i, _, _)| self.sources[*i].name().to_owned())
                .collect(),
        })
    }

    /// Every outpoint spent by two or more transactions that some node holds in its mempool
    /// or in a block at height ≥ `from` (default: 100 below the highest tip).
    pub async fn conflicts(&self, from: Option<u32>) -> Vec<Conflict> {
        let from = from.unwrap_or_else(|| merge::default_from(&self.snapshots(u32::MAX)));
        let holdings: Vec<Holdings> = self
            .sources
            .iter()
            .zip(&self.states)
            .map(|(source, s)| {
                let s = s.read().expect("no panics under lock");
                Holdings {
                    node: source.name().to_owned(),
                    mempool: s.mempool.clone(),
                    blocks: s
                        .blocks
                        .values()
                        .filter(|b| b.height >= from && b.status != BlockStatus::HeadersOnly)
                        .map(|b| (b.hash.clone(), b.status == BlockStatus::Active))
                        .collect(),
                }
            })
            .collect();
        let mut block_txs: HashMap<String, Vec<String>> = HashMap::new();
        for (i, holding) in holdings.iter().enumerate() {
            for (hash, _) in &holding.blocks {
                if block_txs.contains_key(hash) {
                    continue;
                }
                if let Some(body) = self.body(hash, vec![i]).await {
                    block_txs.insert(
                        hash.clone(),
                        body.txs.iter().map(|t| t.txid.clone()).collect(),
                    );
                }
            }
            self.fetch_txs(i, &holding.mempool).await;
        }
        let txs = self.txs.lock().expect("no panics under lock");
        conflicts::find(&holdings, &txs, &block_txs)
    }

    /// Reads the transactions of `txids` that are not cached from node `i`.
    async fn fetch_txs(&self, i: usize, txids: &[String]) {
        let missing: Vec<String> = {
            let cache = self.txs.lock().expect("no panics under lock");
            txids
                .iter()
                .filter(|t| !cache.contains_key(*t))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        let source = self.sources[i].clone();
        let fetched = blocking(move || -> Result<Vec<TxSpends>, SourceError> {
            let mut out = Vec::new();
            for txid in missing {
                if let Some(tx) = source.tx(&txid)? {
                    out.push(tx);
                }
            }
            Ok(out)
        })
        .await;
        if let Some(Ok(list)) = fetched {
            let mut cache = self.txs.lock().expect("no panics under lock");
            for tx in list {
                cache.insert(tx.txid.clone(), tx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeChain, MemorySource};
    use super::super::follow::ViewEvent;
    use super::super::merge::ViewStatus;
    use super::*;
    use std::time::Duration;
    use tokio::time::{Instant, timeout};

    /// g ← a common; node0 on a ← b1 (b1 mines `pay` of coin c:0); node1 on a ← c1 ← c2,
    /// with `steal` (also c:0) in its mempool.
    fn forked() -> (Arc<MemorySource>, Arc<MemorySource>) {
        let mut common = FakeChain {
            up: true,
            ..FakeChain::default()
        };
        common.add("g", "", &[]);
        common.add("a", "g", &[]);
        common.tx("pay", &["c:0"]);
        common.tx("steal", &["c:0", "d:1"]);
        let mut zero = common.clone();
        zero.add("b1", "a", &["pay"]);
        zero.activate("b1");
        let mut one = common;
        one.add("c1", "a", &[]);
        one.add("c2", "c1", &[]);
        one.activate("c2");
        one.mempool = vec!["steal".into()];
        (
            Arc::new(MemorySource::new("node0", zero)),
            Arc::new(MemorySource::new("node1", one)),
        )
    }

    async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_merge_a_fork_see_it_resolve_and_notice_a_node_go_down() {
        let (zero, one) = forked();
        let model = Model::new(vec![zero.clone(), one.clone()]);
        model.spawn_followers();
        until("both tips", async || {
            let t = model.tree(None).await;
            t.nodes[0].tip.as_deref() == Some("b1") && t.nodes[1].tip.as_deref() == Some("c2")
        })
        .await;
        let tree = model.tree(None).await;
        assert_eq!(tree.block("b1").unwrap().active_on, ["node0"]);
        assert_eq!(tree.block("a").unwrap().active_on, ["node0", "node1"]);

        until("the double spend", async || {
            !model.conflicts(None).await.is_empty()
        })
        .await;
        let conflicts = model.conflicts(None).await;
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].outpoint, "c:0");
        let on: Vec<String> = conflicts[0]
            .txs
            .iter()
            .map(|t| format!("{}={:?}", t.txid, t.on.values().collect::<Vec<_>>()))
            .collect();
        assert_eq!(on, ["pay=[Confirmed, Absent]", "steal=[Absent, Mempool]"]);

        // node0 hears of node1's heavier branch and reorganises onto it.
        let mut events = model.hub.events.subscribe();
        zero.edit(|c| {
            c.add("c1", "a", &[]);
            c.add("c2", "c1", &[]);
            c.activate("c2");
        });
        let started = Instant::now();
        let tip = loop {
            let e = timeout(Duration::from_secs(1), events.recv())
                .await
                .expect("an event within a second")
                .unwrap();
            if let ViewEvent::Tip { .. } = e {
                break e;
            }
        };
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            tip,
            ViewEvent::Tip {
                node: "node0".into(),
                hash: "c2".into(),
                height: 3,
                reorg_depth: 1
            }
        );
        let tree = model.tree(None).await;
        assert_eq!(tree.block("b1").unwrap().status, ViewStatus::Stale);
        assert_eq!(tree.reorgs.len(), 1);
        assert_eq!(
            (tree.reorgs[0].node.as_str(), tree.reorgs[0].depth),
            ("node0", 1)
        );

        let c1 = model.block("c1").await.unwrap();
        assert_eq!(c1.confirmations.values().collect::<Vec<_>>(), [&2, &2]);
        assert_eq!(
            c1.reversal_probability["0.1"],
            theory::attacker_success(0.1, 2)
        );
        assert_eq!(c1.bits.as_deref(), Some("207fffff"));
        assert_eq!(c1.txids, ["cb-c1"]);
        assert!(c1.first_seen.contains_key("node1"));
        let b1 = model.block("b1").await.unwrap();
        assert_eq!(b1.confirmations.values().collect::<Vec<_>>(), [&0, &0]);
        assert_eq!(b1.reversal_probability["0.45"], 1.0);
        assert!(model.block("nowhere").await.is_none());

        one.edit(|c| c.up = false);
        let down = loop {
            let e = timeout(Duration::from_secs(2), events.recv())
                .await
                .expect("the node event")
                .unwrap();
            if let ViewEvent::Node { .. } = e {
                break e;
            }
        };
        assert_eq!(
            down,
            ViewEvent::Node {
                node: "node1".into(),
                up: false
            }
        );
        let tree = model.tree(None).await;
        assert!(!tree.nodes[1].up);
        assert_eq!(
            tree.nodes[1].tip.as_deref(),
            Some("c2"),
            "the last tip seen stays"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tree_from_below_what_followers_hold_is_read_from_the_nodes() {
        let mut chain = FakeChain {
            up: true,
            ..FakeChain::default()
        };
        chain.add("h0", "", &[]);
        for h in 1..1200 {
            chain.add(&format!("h{h}"), &format!("h{}", h - 1), &[]);
        }
        chain.activate("h1199");
        let model = Model::new(vec![Arc::new(MemorySource::new("node0", chain))]);
        model.spawn_followers();
        until("the first load", async || {
            model.ready() && model.tree(None).await.nodes[0].up
        })
        .await;
        let recent = model.tree(None).await;
        assert_eq!(recent.from, 1099);
        assert_eq!(recent.blocks.len(), 101);
        let all = model.tree(Some(0)).await;
        assert_eq!(all.blocks.len(), 1200);
        assert_eq!(all.folds.len(), 1, "the common run folds");
        assert_eq!(all.folds[0].count, 1198);
    }
}
