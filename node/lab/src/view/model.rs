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

    /// Whether every node has been read once (or found down).
    pub fn ready(&self) -> bool {
        self.states.iter().all(|s| {
            let s = s.read().expect("no panics under lock");
            s.loaded || !s.up
        })
    }

    fn snapshots(&self, from: u32) -> Vec<NodeSnapshot> {
        self.sources
            .iter()
            .zip(&self.states)
            .map(|(source, s)| {
                s.read()
                    .expect("no panics under lock")
                    .snapshot(source.name(), from)
            })
            .collect()
    }

    /// The merged tree at heights ≥ `from` (default: 100 below the highest tip). Nodes whose
    /// follower holds less than that are asked directly.
    pub async fn tree(&self, from: Option<u32>) -> TreeView {
        let cached = self.snapshots(0);
        let from = from.unwrap_or_else(|| merge::default_from(&cached));
        let mut snapshots = Vec::with_capacity(cached.len());
        for ((snapshot, source), state) in cached.into_iter().zip(&self.sources).zip(&self.states) {
            let floor = state.read().expect("no panics under lock").floor;
            if from >= floor || !snapshot.up {
                snapshots.push(NodeSnapshot {
                    blocks: snapshot
                        .blocks
                        .into_iter()
                        .filter(|b| b.height >= from)
                        .collect(),
                    ..snapshot
                });
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
    fn known(&self, hash: &str) -> Vec<(usize, cairn_rpc::types::TreeBlock)> {
        self.states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.read().expect("no panics under lock");
                s.blocks.get(hash).map(|b| (i, b.clone()))
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
                .filter(|(_, b)| b.status != BlockStatus::HeadersOnly)
                .map(|(i, _)| *i)
                .collect()
        };
        let body = self.body(hash, with_body).await;
        let header = known.first().map(|(_, b)| b.clone());
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
                .map(|(i, b)| (self.sources[*i].name().to_owned(), b.status))
                .collect(),
            first_seen: known
                .iter()
                .filter_map(|(i, b)| Some((self.sources[*i].name().to_owned(), b.first_seen_ms?)))
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
