//! Where the view learns what a node knows: the [`NodeSource`] trait, and [`RpcSource`], its
//! implementation over the node's JSON-RPC (blocking: followers call it from
//! `spawn_blocking`). Tests use an in-memory source.
//!
//! A node that does not know `getblocktree` (JSON-RPC -32601) still gets a tree: the source
//! walks back from every `getchaintips` entry with `getblock`, caching what it read (a
//! block's parent, height, time and size never change). That walk cannot see blocks of which
//! the node has only the header (`getblock` needs the body), and it marks a whole `invalid`
//! branch invalid, as `getchaintips` does.

use cairn_rpc::types::{BlockStatus, BlockTree, ChainTip, TipStatus, TreeBlock};
use cairn_rpc::{RpcClient, RpcError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one RPC call of the view may take: short, so that a stuck node shows as down
/// within seconds instead of freezing its column.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Most `getblock` calls one fallback tree walk makes.
const MAX_FALLBACK_WALK: usize = 20_000;

/// Why a node could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The node did not answer at all (down, restarting, stuck).
    #[error("{node} is unreachable: {reason}")]
    Unreachable {
        /// The node's name.
        node: String,
        /// What failed.
        reason: String,
    },
    /// The node answered, but not as the contract says.
    #[error("{node}: {reason}")]
    Failed {
        /// The node's name.
        node: String,
        /// What went wrong.
        reason: String,
    },
}

/// A cheap summary of a node's chain that changes whenever it learns a block or moves its
/// tip: what followers poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The active tip.
    pub tip: String,
    /// Its height.
    pub height: u32,
    /// Number of blocks in its tree (`getblockchaininfo.headers`).
    pub headers: usize,
}

/// One transaction as far as double spends are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSpends {
    /// Its txid.
    pub txid: String,
    /// The outpoints it spends, `TXID:VOUT` (empty for a coinbase).
    pub spends: Vec<String>,
}

/// A block with its body, as `getblock HASH 2` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockBody {
    /// Its hash.
    pub hash: String,
    /// Parent hash (empty for genesis).
    pub parent: String,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u64,
    /// Compact target, as the node prints it.
    pub bits: String,
    /// Header nonce.
    pub nonce: u64,
    /// Its transactions, in block order.
    pub txs: Vec<TxSpends>,
}

/// What the view needs from one node. Blocking; every method may fail with
/// [`SourceError::Unreachable`] when the node is down.
pub trait NodeSource: Send + Sync + 'static {
    /// The node's name in the testnet (`node0`).
    fn name(&self) -> &str;
    /// Its tip and tree size.
    fn summary(&self) -> Result<Summary, SourceError>;
    /// Every block it knows at height ≥ `from`.
    fn tree(&self, from: u32) -> Result<BlockTree, SourceError>;
    /// A block with its body; `None` when the node has no body for it.
    fn block(&self, hash: &str) -> Result<Option<BlockBody>, SourceError>;
    /// Confirmations of a block on this node: 0 unless it is on the active chain.
    fn confirmations(&self, hash: &str) -> Result<u32, SourceError>;
    /// The txids in its mempool.
    fn mempool(&self) -> Result<Vec<String>, SourceError>;
    /// The peer ids in its ban list (`listbanned`), sorted.
    fn banned(&self) -> Result<Vec<String>, SourceError>;
    /// Its own peer id, when the source knows it (`devnet.json`).
    fn peer_id(&self) -> Option<&str> {
        None
    }
    /// Its Byzantine modes, when it runs with `--byzantine` and the source knows it.
    fn byzantine(&self) -> Option<&str> {
        None
    }
    /// A transaction it holds (mempool or chain); `None` when unknown.
    fn tx(&self, txid: &str) -> Result<Option<TxSpends>, SourceError>;
    /// Where its server-sent events are: `(HOST:PORT, Authorization header)`; `None` when
    /// the source has no event stream.
    fn events(&self) -> Option<(String, String)>;
}

/// A node reached over JSON-RPC.
#[derive(Debug)]
pub struct RpcSource {
    name: String,
    client: RpcClient,
    /// Where the credential is, when it was not readable yet (a node that is down).
    pending: Option<(String, std::path::PathBuf)>,
    /// The client made once the cookie could be read.
    late: Mutex<Option<RpcClient>>,
    /// Set once the node answered -32601 to `getblocktree`.
    no_tree_method: AtomicBool,
    /// Immutable facts read by the fallback walk: hash → (parent, height, time, txs).
    headers: Mutex<HashMap<String, (String, u32, u64, usize)>>,
    /// Its peer id and Byzantine modes, as `devnet.json` lists them.
    peer_id: Option<String>,
    byzantine: Option<String>,
}

/// The JSON-RPC code of "block / tx not found" (Bitcoin Core's RPC_INVALID_ADDRESS_OR_KEY).
const NOT_FOUND: i64 = cairn_rpc::codes::INVALID_ADDRESS_OR_KEY;

impl RpcSource {
    /// A source for node `name` reached by `client` (its timeout is cut to
    /// [`CALL_TIMEOUT`]).
    pub fn new(name: &str, client: RpcClient) -> RpcSource {
        RpcSource {
            name: name.to_owned(),
            client: client.with_timeout(CALL_TIMEOUT),
            pending: None,
            late: Mutex::new(None),
            no_tree_method: AtomicBool::new(false),
            headers: Mutex::new(HashMap::new()),
            peer_id: None,
            byzantine: None,
        }
    }

    /// A source for a node of `devnet.json`, knowing its peer id and Byzantine modes.
    pub fn for_devnet_node(node: &cairn_rpc::DevnetNode) -> RpcSource {
        RpcSource {
            peer_id: Some(node.peer_id.clone()),
            byzantine: node.byzantine.clone(),
            ..RpcSource::for_node(&node.name, &node.rpc_url, &node.cookie_file)
        }
    }

    /// A source for a testnet node at `url` with cookie file `cookie_file`. A node that is
    /// down may have no cookie yet: then every call fails as unreachable until the file can
    /// be read.
    pub fn for_node(name: &str, url: &str, cookie_file: &std::path::Path) -> RpcSource {
        match RpcClient::from_url(url, cookie_file) {
            Ok(client) => RpcSource::new(name, client),
            Err(_) => RpcSource {
                pending: Some((url.to_owned(), cookie_file.to_path_buf())),
                ..RpcSource::new(name, RpcClient::new(url, None))
            },
        }
    }

    /// The client to call with: the late one once its cookie exists.
    fn client(&self) -> Result<RpcClient, SourceError> {
        let Some((url, cookie_file)) = &self.pending else {
            return Ok(self.client.clone());
        };
        let mut late = self.late.lock().expect("no panics under lock");
        if let Some(c) = late.as_ref() {
            return Ok(c.clone());
        }
        let client = RpcClient::from_url(url, cookie_file)
            .map_err(|e| self.err(e))?
            .with_timeout(CALL_TIMEOUT);
        *late = Some(client.clone());
        Ok(client)
    }

    fn err(&self, e: RpcError) -> SourceError {
        match e {
            RpcError::Transport { reason, .. } => SourceError::Unreachable {
                node: self.name.clone(),
                reason,
            },
            RpcError::Config(reason) => SourceError::Unreachable {
                node: self.name.clone(),
                reason,
            },
            other => SourceError::Failed {
                node: self.name.clone(),
                reason: other.to_string(),
            },
        }
    }

    fn bad(&self, what: &str) -> SourceError {
        SourceError::Failed {
            node: self.name.clone(),
            reason: format!("unexpected answer: {what}"),
        }
    }

    fn call(&self, method: &str, params: Value) -> Result<Value, SourceError> {
        self.client()?.call(method, params).map_err(|e| self.err(e))
    }

    /// `getblock HASH verbosity`, `None` when the node has no body for it.
    fn getblock(&self, hash: &str, verbosity: u8) -> Result<Option<Value>, SourceError> {
        match self.client()?.call("getblock", json!([hash, verbosity])) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some(NOT_FOUND) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Parent, height, time and tx count of a block, from the cache or `getblock`.
    fn header(&self, hash: &str) -> Result<Option<(String, u32, u64, usize)>, SourceError> {
        if let Some(h) = self.headers.lock().expect("no panics under lock").get(hash) {
            return Ok(Some(h.clone()));
        }
        let Some(v) = self.getblock(hash, 1)? else {
            return Ok(None);
        };
        let height = v["height"]
            .as_u64()
            .ok_or_else(|| self.bad("getblock height"))? as u32;
        let facts = (
            v["previousblockhash"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            height,
            v["time"].as_u64().unwrap_or(0),
            v["tx"].as_array().map_or(0, Vec::len),
        );
        self.headers
            .lock()
            .expect("no panics under lock")
            .insert(hash.to_owned(), facts.clone());
        Ok(Some(facts))
    }

    /// The tree from `getchaintips` and `getblock` walks, for nodes without `getblocktree`.
    fn walked_tree(&self, from: u32) -> Result<BlockTree, SourceError> {
        let mut tips: Vec<ChainTip> = self
            .client()?
            .call_as("getchaintips", json!([]))
            .map_err(|e| self.err(e))?;
        tips.sort_by_key(|t| t.status != TipStatus::Active);
        let active = tips
            .first()
            .filter(|t| t.status == TipStatus::Active)
            .cloned()
            .ok_or_else(|| self.bad("getchaintips has no active tip"))?;
        let mut blocks: HashMap<String, TreeBlock> = HashMap::new();
        let mut budget = MAX_FALLBACK_WALK;
        for tip in &tips {
            let status = match tip.status {
                TipStatus::Active => BlockStatus::Active,
                TipStatus::Invalid => BlockStatus::Invalid,
                TipStatus::HeadersOnly => BlockStatus::HeadersOnly,
                TipStatus::ValidFork | TipStatus::ValidHeaders => BlockStatus::Side,
            };
            let mut hash = tip.hash.clone();
            let mut steps = 0u32;
            while budget > 0 && !blocks.contains_key(&hash) {
                if tip.status != TipStatus::Active && steps >= tip.branchlen {
                    break;
                }
                budget -= 1;
                let Some((parent, height, time, txs)) = self.header(&hash)? else {
                    break;
                };
                if height < from {
                    break;
                }
                blocks.insert(
                    hash.clone(),
                    TreeBlock {
                        hash: hash.clone(),
                        parent: parent.clone(),
                        height,
                        time,
                        txs: Some(txs),
                        status,
                        first_seen_ms: None,
                    },
                );
                if height == 0 || parent.is_empty() {
                    break;
                }
                hash = parent;
                steps += 1;
            }
        }
        let mut blocks: Vec<TreeBlock> = blocks.into_values().collect();
        blocks.sort_by(|a, b| (a.height, &a.hash).cmp(&(b.height, &b.hash)));
        Ok(BlockTree {
            tip: active.hash,
            height: active.height,
            from,
            blocks,
        })
    }
}

/// The `TXID:VOUT` outpoints of a transaction object's `vin`.
fn spends_of(tx: &Value) -> Option<TxSpends> {
    let txid = tx["txid"].as_str()?.to_owned();
    let spends = if tx["coinbase"].as_bool() == Some(true) {
        Vec::new()
    } else {
        tx["vin"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| Some(format!("{}:{}", i["txid"].as_str()?, i["vout"].as_u64()?)))
            .collect()
    };
    Some(TxSpends { txid, spends })
}

impl NodeSource for RpcSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn summary(&self) -> Result<Summary, SourceError> {
        let v = self.call("getblockchaininfo", json!([]))?;
        Ok(Summary {
            tip: v["bestblockhash"]
                .as_str()
                .ok_or_else(|| self.bad("getblockchaininfo bestblockhash"))?
                .to_owned(),
            height: v["blocks"]
                .as_u64()
                .ok_or_else(|| self.bad("getblockchaininfo blocks"))? as u32,
            headers: v["headers"].as_u64().unwrap_or(0) as usize,
        })
    }

    fn tree(&self, from: u32) -> Result<BlockTree, SourceError> {
        if !self.no_tree_method.load(Ordering::Relaxed) {
            match self
                .client()?
                .call_as::<BlockTree>("getblocktree", json!([from]))
            {
                Ok(tree) => return Ok(tree),
                Err(e) if e.is_method_not_found() => {
                    self.no_tree_method.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        self.walked_tree(from)
    }

    fn block(&self, hash: &str) -> Result<Option<BlockBody>, SourceError> {
        let Some(v) = self.getblock(hash, 2)? else {
            return Ok(None);
        };
        let bits = match &v["bits"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(Some(BlockBody {
            hash: hash.to_owned(),
            parent: v["previousblockhash"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            height: v["height"]
                .as_u64()
                .ok_or_else(|| self.bad("getblock height"))? as u32,
            time: v["time"].as_u64().unwrap_or(0),
            bits,
            nonce: v["nonce"].as_u64().unwrap_or(0),
            txs: v["tx"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(spends_of)
                .collect(),
        }))
    }

    fn confirmations(&self, hash: &str) -> Result<u32, SourceError> {
        Ok(self
            .getblock(hash, 1)?
            .and_then(|v| v["confirmations"].as_i64())
            .map_or(0, |c| c.max(0) as u32))
    }

    fn mempool(&self) -> Result<Vec<String>, SourceError> {
        self.client()?
            .call_as("getrawmempool", json!([false]))
            .map_err(|e| self.err(e))
    }

    fn banned(&self) -> Result<Vec<String>, SourceError> {
        let bans: Vec<cairn_rpc::types::BanEntry> = self
            .client()?
            .call_as("listbanned", json!([]))
            .map_err(|e| self.err(e))?;
        let mut ids: Vec<String> = bans.into_iter().map(|b| b.peer_id).collect();
        ids.sort();
        Ok(ids)
    }

    fn peer_id(&self) -> Option<&str> {
        self.peer_id.as_deref()
    }

    fn byzantine(&self) -> Option<&str> {
        self.byzantine.as_deref()
    }

    fn tx(&self, txid: &str) -> Result<Option<TxSpends>, SourceError> {
        match self
            .client()?
            .call("getrawtransaction", json!([txid, true]))
        {
            Ok(v) => Ok(spends_of(&v)),
            Err(e) if e.code() == Some(NOT_FOUND) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn events(&self) -> Option<(String, String)> {
        let client = self.client().ok()?;
        let url = client.url();
        let address = url
            .split("://")
            .nth(1)
            .unwrap_or(url)
            .trim_end_matches('/')
            .to_owned();
        let cookie = client.cookie().ok()??;
        Some((address, cookie.header()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_skip_coinbases_and_name_outpoints() {
        let tx = json!({"txid": "aa", "coinbase": false,
            "vin": [{"txid": "bb", "vout": 1}, {"txid": "cc", "vout": 0}]});
        assert_eq!(
            spends_of(&tx),
            Some(TxSpends {
                txid: "aa".into(),
                spends: vec!["bb:1".into(), "cc:0".into()]
            })
        );
        let coinbase = json!({"txid": "dd", "coinbase": true, "vin": []});
        assert_eq!(spends_of(&coinbase).unwrap().spends, Vec::<String>::new());
    }
}
