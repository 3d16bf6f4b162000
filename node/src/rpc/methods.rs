//! The JSON-RPC methods of `../shared/INTERFACE.md`, plus Cairn's documented extensions
//! (`getaddressmempool`, `submitblock`, `help`, extra fields in `getblockchaininfo`).

use super::{RpcError, codes};
use crate::chain_task::{ChainHandle, NodeState, NodeStopped, Origin, unix_now};
use crate::mempool::MempoolError;
use crate::mining::MiningHandle;
use cairn_core::chain::{ChainError, ImportOutcome};
use cairn_core::encoding;
use cairn_core::store::UtxoReader;
use cairn_core::{Block, BlockHash, PubkeyHash, Target, Transaction, Txid};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::watch;

/// What the methods need.
pub struct RpcContext {
    /// The chain state owner.
    pub chain: ChainHandle,
    /// The miner.
    pub mining: MiningHandle,
    /// The cookie secret (the Basic auth password).
    pub cookie_secret: String,
    /// Set to `true` by `stop`.
    pub shutdown: watch::Sender<bool>,
    /// The p2p network.
    pub network: crate::network::NetworkHandle,
}

/// Every method, for `help` and for the "method not found" check.
pub const METHODS: &[&str] = &[
    "addnode",
    "disconnectnode",
    "generate",
    "getaddressmempool",
    "getaddressutxos",
    "getbalance",
    "getbestblockhash",
    "getblock",
    "getblockchaininfo",
    "getblockcount",
    "getblockhash",
    "getchaintips",
    "getmempoolinfo",
    "getmininginfo",
    "getpeerinfo",
    "getrawmempool",
    "getrawtransaction",
    "gettxoutsetinfo",
    "help",
    "invalidateblock",
    "listbanned",
    "reconsiderblock",
    "sendrawtransaction",
    "setban",
    "setmining",
    "setnetworkactive",
    "stop",
    "submitblock",
    "testmempoolaccept",
];

impl From<NodeStopped> for RpcError {
    fn from(_: NodeStopped) -> Self {
        RpcError::new(codes::SHUTTING_DOWN, "the node is shutting down")
    }
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(codes::INTERNAL_ERROR, e.to_string())
}

fn chain_err(e: ChainError) -> RpcError {
    match e {
        ChainError::UnknownBlock(_) => {
            RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found")
        }
        ChainError::Genesis => RpcError::new(codes::INVALID_PARAMETER, e.to_string()),
        other => internal(other),
    }
}

/// Positional parameters with typed, named access.
struct Params {
    method: String,
    list: Vec<Value>,
}

impl Params {
    fn required<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, RpcError> {
        match self.list.get(index) {
            None | Some(Value::Null) => Err(RpcError::invalid_params(format!(
                "{}: missing required parameter {} ({name})",
                self.method,
                index + 1
            ))),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                RpcError::invalid_params(format!(
                    "{}: parameter {} ({name}): {e}",
                    self.method,
                    index + 1
                ))
            }),
        }
    }

    fn optional<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<Option<T>, RpcError> {
        match self.list.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.required(index, name).map(Some),
        }
    }

    fn at_most(&self, n: usize) -> Result<(), RpcError> {
        if self.list.len() > n {
            return Err(RpcError::invalid_params(format!(
                "{} takes at most {n} parameters, {} given",
                self.method,
                self.list.len()
            )));
        }
        Ok(())
    }

    fn hash(&self, index: usize, name: &str) -> Result<BlockHash, RpcError> {
        let s: String = self.required(index, name)?;
        s.parse().map_err(|_| {
            RpcError::invalid_params(format!("{}: {name} must be 64 hex characters", self.method))
        })
    }

    fn txid(&self, index: usize) -> Result<Txid, RpcError> {
        let s: String = self.required(index, "txid")?;
        s.parse().map_err(|_| {
            RpcError::invalid_params(format!("{}: txid must be 64 hex characters", self.method))
        })
    }

    /// A verbosity given as a bool or an integer.
    fn verbosity(&self, index: usize, default: u64) -> Result<u64, RpcError> {
        match self.list.get(index) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(u64::from(*b)),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(default)),
            Some(_) => Err(RpcError::invalid_params(format!(
                "{}: verbosity must be a boolean or 0/1/2",
                self.method
            ))),
        }
    }
}

fn decode_hex<T: bincode::Decode<()>>(hex_str: &str, what: &str) -> Result<T, RpcError> {
    let bytes = hex::decode(hex_str.trim()).map_err(|e| {
        RpcError::new(
            codes::DESERIALIZATION_ERROR,
            format!("{what} decode failed: not hex: {e}"),
        )
    })?;
    encoding::decode(&bytes).map_err(|e| {
        RpcError::new(
            codes::DESERIALIZATION_ERROR,
            format!("{what} decode failed: {e}"),
        )
    })
}

fn address_param(state: &NodeState, address: &str) -> Result<PubkeyHash, RpcError> {
    state.params().parse_address(address).map_err(|e| {
        RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            format!("Invalid address: {e}"),
        )
    })
}

/// JSON of a transaction; `block` = (hash, height, confirmations) when mined.
pub fn tx_json(state: &NodeState, tx: &Transaction, block: Option<(BlockHash, u32, i64)>) -> Value {
    let params = state.params();
    let mut v = json!({
        "txid": tx.txid().to_string(),
        "wtxid": tx.wtxid().to_string(),
        "size": tx.encoded_size(),
        "version": tx.version,
        "coinbase": tx.is_coinbase(),
        "lock_height": tx.lock_height,
        "data": hex::encode(&tx.data),
        "vin": tx.inputs.iter().map(|i| json!({
            "txid": i.prevout.txid.to_string(),
            "vout": i.prevout.vout,
            "public_key": hex::encode(i.public_key),
        })).collect::<Vec<_>>(),
        "vout": tx.outputs.iter().enumerate().map(|(n, o)| json!({
            "n": n,
            "amount": o.amount.to_base(),
            "address": params.address(&o.address),
        })).collect::<Vec<_>>(),
    });
    if let Some((hash, height, confirmations)) = block {
        v["blockhash"] = json!(hash.to_string());
        v["height"] = json!(height);
        v["confirmations"] = json!(confirmations);
    }
    v
}

fn confirmations(state: &NodeState, hash: &BlockHash) -> i64 {
    match state.chain.entry(hash) {
        Some(e) if state.chain.is_active(hash) => i64::from(state.chain.height() - e.height) + 1,
        _ => -1,
    }
}

fn difficulty(state: &NodeState, bits: cairn_core::CompactTarget) -> f64 {
    Target::from_compact(bits)
        .map(|t| state.params().difficulty(&t))
        .unwrap_or(0.0)
}

fn block_json(state: &NodeState, block: &Block, verbosity: u64) -> Result<Value, RpcError> {
    let hash = block.block_hash();
    let entry = state
        .chain
        .entry(&hash)
        .ok_or_else(|| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found"))?;
    let conf = confirmations(state, &hash);
    let txs: Vec<Value> = if verbosity >= 2 {
        block
            .txs
            .iter()
            .map(|tx| tx_json(state, tx, Some((hash, entry.height, conf))))
            .collect()
    } else {
        block
            .txs
            .iter()
            .map(|tx| json!(tx.txid().to_string()))
            .collect()
    };
    let next = state
        .chain
        .is_active(&hash)
        .then(|| state.chain.hash_at(entry.height + 1))
        .flatten();
    Ok(json!({
        "hash": hash.to_string(),
        "height": entry.height,
        "confirmations": conf,
        "version": block.header.version,
        "previousblockhash": (entry.height > 0).then(|| block.header.prev_blockhash.to_string()),
        "nextblockhash": next.map(|h| h.to_string()),
        "merkleroot": block.header.merkle_root.to_string(),
        "time": block.header.time,
        "mediantime": state.chain.median_time_past(&hash),
        "bits": block.header.bits.to_string(),
        "difficulty": difficulty(state, block.header.bits),
        "nonce": block.header.nonce,
        "chainwork": entry.chainwork.to_hex(),
        "size": block.encoded_size(),
        "nTx": block.txs.len(),
        "tx": txs,
    }))
}

/// Runs one method.
pub async fn call(
    ctx: &Arc<RpcContext>,
    method: &str,
    list: Vec<Value>,
) -> Result<Value, RpcError> {
    let p = Params {
        method: method.to_owned(),
        list,
    };
    let chain = &ctx.chain;
    match method {
        "help" => {
            p.at_most(0)?;
            Ok(json!(METHODS))
        }
        "getblockchaininfo" => {
            p.at_most(0)?;
            chain
                .call(|s| {
                    let tip = s.chain.tip();
                    json!({
                        "chain": s.params().network_id,
                        "blocks": tip.height,
                        "headers": s.chain.tree_len(),
                        "bestblockhash": tip.hash.to_string(),
                        "chainwork": tip.chainwork.to_hex(),
                        "difficulty": difficulty(s, tip.header.bits),
                        "mediantime": s.chain.median_time_past(&tip.hash),
                        "time": tip.header.time,
                        "hrp": s.params().hrp,
                        "coinbase_maturity": s.params().coinbase_maturity,
                        "genesis": s.params().genesis_hash.to_string(),
                        "orphans": s.chain.orphan_count(),
                    })
                })
                .await
                .map_err(Into::into)
        }
        "getblockcount" => {
            p.at_most(0)?;
            Ok(json!(chain.call(|s| s.chain.height()).await?))
        }
        "getbestblockhash" => {
            p.at_most(0)?;
            Ok(json!(chain.call(|s| s.chain.tip().hash.to_string()).await?))
        }
        "getblockhash" => {
            p.at_most(1)?;
            let height: i64 = p.required(0, "height")?;
            let found = chain
                .call(move |s| u32::try_from(height).ok().and_then(|h| s.chain.hash_at(h)))
                .await?;
            found
                .map(|h| json!(h.to_string()))
                .ok_or_else(|| RpcError::new(codes::INVALID_PARAMETER, "Block height out of range"))
        }
        "getblock" => {
            p.at_most(2)?;
            let hash = p.hash(0, "blockhash")?;
            let verbosity = p.verbosity(1, 1)?;
            if verbosity > 2 {
                return Err(RpcError::invalid_params(
                    "getblock: verbosity must be 0, 1 or 2",
                ));
            }
            chain
                .call(move |s| {
                    let block = s.chain.block(&hash).map_err(internal)?;
                    let block = block.ok_or_else(|| {
                        RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found")
                    })?;
                    if verbosity == 0 {
                        return Ok(json!(hex::encode(encoding::encode(&block))));
                    }
                    block_json(s, &block, verbosity)
                })
                .await?
        }
        "getchaintips" => {
            p.at_most(0)?;
            chain
                .call(|s| {
                    json!(
                        s.chain
                            .chain_tips()
                            .iter()
                            .map(|t| json!({
                                "height": t.height,
                                "hash": t.hash.to_string(),
                                "branchlen": t.branchlen,
                                "status": t.status.as_str(),
                            }))
                            .collect::<Vec<_>>()
                    )
                })
                .await
                .map_err(Into::into)
        }
        "getrawmempool" => {
            p.at_most(1)?;
            let verbose = p.verbosity(0, 0)? > 0;
            chain
                .call(move |s| {
                    if !verbose {
                        return json!(s.mempool.txids().iter().map(|t| t.to_string()).collect::<Vec<_>>());
                    }
                    let mut map = serde_json::Map::new();
                    for e in s.mempool.entries() {
                        map.insert(
                            e.txid.to_string(),
                            json!({
                                "fee": e.fee.to_base(),
                                "size": e.size,
                                "feerate": e.fee_rate,
                                "time": e.time,
                                "depends": e.depends.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                            }),
                        );
                    }
                    Value::Object(map)
                })
                .await
                .map_err(Into::into)
        }
        "getmempoolinfo" => {
            p.at_most(0)?;
            chain
                .call(|s| {
                    let info = s.mempool.info();
                    json!({"size": info.size, "bytes": info.bytes, "minfee": info.minfee})
                })
                .await
                .map_err(Into::into)
        }
        "sendrawtransaction" => {
            p.at_most(1)?;
            let hex_str: String = p.required(0, "hexstring")?;
            let tx: Transaction = decode_hex(&hex_str, "TX")?;
            chain
                .call(move |s| match s.submit_tx(tx, unix_now(), Origin::Local) {
                    Ok(accepted) => Ok(json!(accepted.txid.to_string())),
                    Err(e @ MempoolError::Store(_)) => Err(internal(e)),
                    Err(e) => Err(RpcError::rejected(e.reject_reason(), e.to_string())),
                })
                .await?
        }
        "testmempoolaccept" => {
            p.at_most(1)?;
            let (hexes, many) = match p.list.first() {
                Some(Value::Array(list)) => (
                    list.iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            RpcError::invalid_params("testmempoolaccept: expected hex strings")
                        })?,
                    true,
                ),
                _ => (vec![p.required::<String>(0, "hexstring")?], false),
            };
            let txs = hexes
                .iter()
                .map(|h| decode_hex::<Transaction>(h, "TX"))
                .collect::<Result<Vec<_>, _>>()?;
            let results = chain
                .call(move |s| {
                    txs.into_iter()
                        .map(|tx| {
                            let txid = tx.txid().to_string();
                            let next = s.chain.height() + 1;
                            match s.mempool.test_accept(&tx, s.chain.store(), next) {
                                Ok(accepted) => json!({"txid": txid, "allowed": true, "fee": accepted.fee.to_base(), "size": accepted.size}),
                                Err(e) => json!({"txid": txid, "allowed": false, "reject-reason": e.reject_reason()}),
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .await?;
            Ok(if many {
                json!(results)
            } else {
                results.into_iter().next().unwrap_or(Value::Null)
            })
        }
        "getrawtransaction" => {
            p.at_most(2)?;
            let txid = p.txid(0)?;
            let verbose = p.verbosity(1, 0)? > 0;
            chain
                .call(move |s| {
                    let not_found = || {
                        RpcError::new(
                            codes::INVALID_ADDRESS_OR_KEY,
                            "No such mempool or blockchain transaction",
                        )
                    };
                    if let Some(tx) = s.mempool.get(&txid) {
                        return Ok(if verbose {
                            tx_json(s, tx, None)
                        } else {
                            json!(hex::encode(encoding::encode(tx)))
                        });
                    }
                    let hash = *s.tx_index.get(&txid).ok_or_else(not_found)?;
                    let block = s
                        .chain
                        .block(&hash)
                        .map_err(internal)?
                        .ok_or_else(not_found)?;
                    let tx = block
                        .txs
                        .iter()
                        .find(|t| t.txid() == txid)
                        .ok_or_else(not_found)?;
                    if !verbose {
                        return Ok(json!(hex::encode(encoding::encode(tx))));
                    }
                    let height = s.chain.entry(&hash).map_or(0, |e| e.height);
                    Ok(tx_json(
                        s,
                        tx,
                        Some((hash, height, confirmations(s, &hash))),
                    ))
                })
                .await?
        }
        "getaddressutxos" => {
            p.at_most(1)?;
            let address: String = p.required(0, "address")?;
            chain
                .call(move |s| {
                    let wanted = address_param(s, &address)?;
                    let mut out = Vec::new();
                    s.chain
                        .store()
                        .for_each_coin(&mut |outpoint, coin| {
                            if coin.output.address == wanted {
                                out.push(json!({
                                    "txid": outpoint.txid.to_string(),
                                    "vout": outpoint.vout,
                                    "amount": coin.output.amount.to_base(),
                                    "height": coin.height,
                                    "coinbase": coin.is_coinbase,
                                }));
                            }
                        })
                        .map_err(internal)?;
                    Ok(json!(out))
                })
                .await?
        }
        "getaddressmempool" => {
            p.at_most(1)?;
            let address: String = p.required(0, "address")?;
            chain
                .call(move |s| {
                    let wanted = address_param(s, &address)?;
                    let (spent, received) = s.mempool.address_activity(&wanted);
                    Ok(json!({
                        "spent": spent.iter().map(|o| json!({"txid": o.txid.to_string(), "vout": o.vout})).collect::<Vec<_>>(),
                        "received": received.iter().map(|(o, amount)| json!({"txid": o.txid.to_string(), "vout": o.vout, "amount": amount.to_base()})).collect::<Vec<_>>(),
                    }))
                })
                .await?
        }
        "getbalance" => {
            p.at_most(2)?;
            let address: String = p.required(0, "address")?;
            let minconf: u32 = p.optional(1, "minconf")?.unwrap_or(1);
            chain
                .call(move |s| {
                    let wanted = address_param(s, &address)?;
                    let height = s.chain.height();
                    let mut total: u64 = 0;
                    s.chain
                        .store()
                        .for_each_coin(&mut |_, coin| {
                            let confs = height.saturating_sub(coin.height) + 1;
                            if coin.output.address == wanted && confs >= minconf {
                                total = total.saturating_add(coin.output.amount.to_base());
                            }
                        })
                        .map_err(internal)?;
                    Ok(json!(total))
                })
                .await?
        }
        "gettxoutsetinfo" => {
            p.at_most(0)?;
            chain
                .call(|s| {
                    let stats = s.chain.utxo_stats().map_err(internal)?;
                    let tip = s.chain.tip();
                    Ok(json!({
                        "height": tip.height,
                        "bestblock": tip.hash.to_string(),
                        "txouts": stats.txouts,
                        "total_amount": stats.total_amount.to_base(),
                        "hash_serialized": stats.hash_serialized.to_display_hex(),
                    }))
                })
                .await?
        }
        "submitblock" => {
            p.at_most(1)?;
            let hex_str: String = p.required(0, "hexdata")?;
            let block: Block = decode_hex(&hex_str, "Block")?;
            chain
                .call(
                    move |s| match s.submit_block(block, unix_now(), Origin::Local) {
                        Ok(report) => Ok(match report.outcome {
                            ImportOutcome::Active | ImportOutcome::SideChain => Value::Null,
                            ImportOutcome::Orphan => json!("orphan"),
                            ImportOutcome::AlreadyHave => json!("duplicate"),
                            ImportOutcome::Invalid(e) => {
                                return Err(RpcError::rejected(e.reject_reason(), e.to_string()));
                            }
                        }),
                        Err(e) => Err(internal(e)),
                    },
                )
                .await?
        }
        "invalidateblock" | "reconsiderblock" => {
            p.at_most(1)?;
            let hash = p.hash(0, "blockhash")?;
            let invalidate = method == "invalidateblock";
            chain
                .call(move |s| {
                    let result = if invalidate {
                        s.invalidate_block(&hash, unix_now())
                    } else {
                        s.reconsider_block(&hash, unix_now())
                    };
                    result.map(|_| Value::Null).map_err(chain_err)
                })
                .await?
        }
        "generate" => {
            p.at_most(2)?;
            let n: u32 = p.required(0, "nblocks")?;
            if n > 100_000 {
                return Err(RpcError::new(
                    codes::INVALID_PARAMETER,
                    "nblocks must be at most 100000",
                ));
            }
            let pay_to = match p.optional::<String>(1, "address")? {
                Some(addr) => chain.params().parse_address(&addr).map_err(|e| {
                    RpcError::new(
                        codes::INVALID_ADDRESS_OR_KEY,
                        format!("Invalid address: {e}"),
                    )
                })?,
                None => ctx.mining.default_pay_to(),
            };
            let hashes = ctx
                .mining
                .generate(n, pay_to)
                .await
                .map_err(|e| RpcError::new(codes::MISC_ERROR, e.to_string()))?;
            Ok(json!(
                hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()
            ))
        }
        "setmining" => {
            p.at_most(2)?;
            let on: bool = p.required(0, "mine")?;
            let threads: Option<usize> = p.optional(1, "threads")?;
            if threads == Some(0) {
                return Err(RpcError::new(
                    codes::INVALID_PARAMETER,
                    "threads must be at least 1",
                ));
            }
            ctx.mining.set_mining(on, threads);
            Ok(Value::Null)
        }
        "getmininginfo" => {
            p.at_most(0)?;
            let local = ctx.mining.info();
            chain
                .call(move |s| {
                    let tip = s.chain.tip();
                    json!({
                        "blocks": tip.height,
                        "difficulty": difficulty(s, tip.header.bits),
                        "networkhashps": network_hashps(s, 120),
                        "hashps": local.hashps,
                        "mining": local.mining,
                        "threads": local.threads,
                        "kernel": local.kernel,
                        "strategy": s.strategy_info(),
                    })
                })
                .await
                .map_err(Into::into)
        }
        "stop" => {
            p.at_most(0)?;
            let _ = ctx.shutdown.send(true);
            Ok(json!("cairn stopping"))
        }
        m if crate::network::rpc::METHODS.contains(&m) => {
            crate::network::rpc::call(&ctx.network, method, &p.list).await
        }
        _ => Err(RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )),
    }
}

/// Hashes per second the network did over the last `window` blocks (work / time).
fn network_hashps(state: &NodeState, window: u32) -> f64 {
    let tip = state.chain.tip();
    // The genesis timestamp is arbitrary (set in genesis.json), so windows start at block 1.
    let start_height = tip.height.saturating_sub(window).max(1);
    if tip.height <= start_height {
        return 0.0;
    }
    let Some(start) = state
        .chain
        .hash_at(start_height)
        .and_then(|h| state.chain.entry(&h))
    else {
        return 0.0;
    };
    let seconds = f64::from(tip.header.time.saturating_sub(start.header.time));
    if seconds <= 0.0 {
        return 0.0;
    }
    (tip.chainwork.as_f64() - start.chainwork.as_f64()) / seconds
}
