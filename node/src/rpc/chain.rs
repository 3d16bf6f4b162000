//! Chain methods: the active chain, blocks, transactions by txid, the UTXO set, and the
//! commands that move the tip (`submitblock`, `invalidateblock`, `reconsiderblock`).

use super::params::{AddressArg, Args, FromArgs, NoParams, address, chain_err, internal};
use super::{RpcContext, RpcError, codes};
use crate::chain_task::{BlockView, QueryError, TxLocation};
use cairn_core::chain::{ChainError, ImportOutcome};
use cairn_core::{
    Block, BlockHash, ChainParams, CompactTarget, Target, Transaction, Txid, encoding,
};
use cairn_rpc::types::{AddressUtxo, BlockchainInfo, ChainTip, TipStatus, TxOutSetInfo};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// A typed result as JSON.
pub(super) fn to_json(value: impl Serialize) -> Value {
    serde_json::to_value(value).expect("RPC result types serialise to JSON")
}

/// Difficulty of `bits` relative to the proof-of-work limit (0 for malformed bits).
pub(super) fn difficulty(params: &ChainParams, bits: CompactTarget) -> f64 {
    Target::from_compact(bits)
        .map(|t| params.difficulty(&t))
        .unwrap_or(0.0)
}

fn store_err(e: QueryError<cairn_core::store::StoreError>) -> RpcError {
    match e {
        QueryError::Stopped(s) => s.into(),
        QueryError::Failed(e) => internal(e),
    }
}

fn block_not_found() -> RpcError {
    RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found")
}

pub(super) async fn getblockchaininfo(
    ctx: Arc<RpcContext>,
    _: NoParams,
) -> Result<Value, RpcError> {
    let s = ctx.chain.chain_summary().await?;
    let params = ctx.chain.params();
    Ok(to_json(BlockchainInfo {
        chain: params.network_id.clone(),
        blocks: s.tip.height,
        headers: s.headers,
        bestblockhash: s.tip.hash.to_string(),
        chainwork: s.tip.chainwork.to_hex(),
        difficulty: difficulty(params, s.tip.header.bits),
        mediantime: u64::from(s.median_time),
        time: u64::from(s.tip.header.time),
        hrp: params.hrp.clone(),
        coinbase_maturity: params.coinbase_maturity,
        genesis: params.genesis_hash.to_string(),
        orphans: s.orphans,
    }))
}

pub(super) async fn getblockcount(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    Ok(json!(ctx.chain.tip().await?.height))
}

pub(super) async fn getbestblockhash(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    Ok(json!(ctx.chain.tip().await?.hash.to_string()))
}

/// `getblockhash height`.
pub(super) struct Height(i64);

impl FromArgs for Height {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(Height(args.required(0, "height")?))
    }
}

pub(super) async fn getblockhash(
    ctx: Arc<RpcContext>,
    Height(height): Height,
) -> Result<Value, RpcError> {
    let found = match u32::try_from(height) {
        Ok(h) => ctx.chain.hash_at(h).await?,
        Err(_) => None,
    };
    found
        .map(|h| json!(h.to_string()))
        .ok_or_else(|| RpcError::new(codes::INVALID_PARAMETER, "Block height out of range"))
}

/// `getblock blockhash [verbosity]`.
pub(super) struct GetBlock {
    hash: BlockHash,
    verbosity: u64,
}

impl FromArgs for GetBlock {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let hash = args.hash(0, "blockhash")?;
        let verbosity = args.verbosity(1, 1)?;
        if verbosity > 2 {
            return Err(RpcError::invalid_params(
                "getblock: verbosity must be 0, 1 or 2",
            ));
        }
        Ok(GetBlock { hash, verbosity })
    }
}

pub(super) async fn getblock(ctx: Arc<RpcContext>, p: GetBlock) -> Result<Value, RpcError> {
    if p.verbosity == 0 {
        let block = ctx.chain.block(p.hash).await.map_err(store_err)?;
        let block = block.ok_or_else(block_not_found)?;
        return Ok(json!(hex::encode(encoding::encode(&block))));
    }
    let view = ctx.chain.block_view(p.hash).await.map_err(store_err)?;
    let view = view.ok_or_else(block_not_found)?;
    Ok(block_json(ctx.chain.params(), &view, p.verbosity))
}

fn block_json(params: &ChainParams, view: &BlockView, verbosity: u64) -> Value {
    let (block, entry) = (&view.block, &view.entry);
    let hash = entry.hash;
    let txs: Vec<Value> = if verbosity >= 2 {
        let location = TxLocation {
            block: hash,
            height: entry.height,
            confirmations: view.confirmations,
        };
        block
            .txs
            .iter()
            .map(|tx| tx_json(params, tx, Some(location)))
            .collect()
    } else {
        block
            .txs
            .iter()
            .map(|tx| json!(tx.txid().to_string()))
            .collect()
    };
    json!({
        "hash": hash.to_string(),
        "height": entry.height,
        "confirmations": view.confirmations,
        "version": block.header.version,
        "previousblockhash": (entry.height > 0).then(|| block.header.prev_blockhash.to_string()),
        "nextblockhash": view.next.map(|h| h.to_string()),
        "merkleroot": block.header.merkle_root.to_string(),
        "time": block.header.time,
        "mediantime": view.median_time,
        "bits": block.header.bits.to_string(),
        "difficulty": difficulty(params, block.header.bits),
        "nonce": block.header.nonce,
        "chainwork": entry.chainwork.to_hex(),
        "size": block.encoded_size(),
        "nTx": block.txs.len(),
        "tx": txs,
    })
}

/// JSON of a transaction, with its block when it is confirmed.
pub fn tx_json(params: &ChainParams, tx: &Transaction, location: Option<TxLocation>) -> Value {
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
    if let Some(at) = location {
        v["blockhash"] = json!(at.block.to_string());
        v["height"] = json!(at.height);
        v["confirmations"] = json!(at.confirmations);
    }
    v
}

pub(super) async fn getchaintips(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let tips: Vec<ChainTip> = ctx
        .chain
        .chain_tips()
        .await?
        .into_iter()
        .map(|t| ChainTip {
            height: t.height,
            hash: t.hash.to_string(),
            branchlen: t.branchlen,
            status: tip_status(t.status),
        })
        .collect();
    Ok(to_json(tips))
}

fn tip_status(status: cairn_core::chain::TipStatus) -> TipStatus {
    use cairn_core::chain::TipStatus as Core;
    match status {
        Core::Active => TipStatus::Active,
        Core::ValidFork => TipStatus::ValidFork,
        Core::ValidHeaders => TipStatus::ValidHeaders,
        Core::HeadersOnly => TipStatus::HeadersOnly,
        Core::Invalid => TipStatus::Invalid,
    }
}

/// `getrawtransaction txid [verbose]`.
pub(super) struct GetRawTransaction {
    txid: Txid,
    verbose: bool,
}

impl FromArgs for GetRawTransaction {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(GetRawTransaction {
            txid: args.txid(0)?,
            verbose: args.verbosity(1, 0)? > 0,
        })
    }
}

pub(super) async fn getrawtransaction(
    ctx: Arc<RpcContext>,
    p: GetRawTransaction,
) -> Result<Value, RpcError> {
    let found = ctx.chain.transaction(p.txid).await.map_err(store_err)?;
    let found = found.ok_or_else(|| {
        RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            "No such mempool or blockchain transaction",
        )
    })?;
    Ok(if p.verbose {
        tx_json(ctx.chain.params(), &found.tx, found.location)
    } else {
        json!(hex::encode(encoding::encode(&found.tx)))
    })
}

pub(super) async fn getaddressutxos(
    ctx: Arc<RpcContext>,
    AddressArg(addr): AddressArg,
) -> Result<Value, RpcError> {
    let wanted = address(ctx.chain.params(), &addr)?;
    let found = ctx.chain.address_coins(wanted).await.map_err(store_err)?;
    let utxos: Vec<AddressUtxo> = found
        .coins
        .iter()
        .map(|(outpoint, coin)| AddressUtxo {
            txid: outpoint.txid.to_string(),
            vout: outpoint.vout,
            amount: coin.output.amount.to_base(),
            height: coin.height,
            coinbase: coin.is_coinbase,
        })
        .collect();
    Ok(to_json(utxos))
}

/// `getbalance address [minconf]`.
pub(super) struct GetBalance {
    address: String,
    minconf: u32,
}

impl FromArgs for GetBalance {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(GetBalance {
            address: args.required(0, "address")?,
            minconf: args.optional(1, "minconf")?.unwrap_or(1),
        })
    }
}

pub(super) async fn getbalance(ctx: Arc<RpcContext>, p: GetBalance) -> Result<Value, RpcError> {
    let wanted = address(ctx.chain.params(), &p.address)?;
    let found = ctx.chain.address_coins(wanted).await.map_err(store_err)?;
    let total = found
        .coins
        .iter()
        .filter(|(_, coin)| found.height.saturating_sub(coin.height) + 1 >= p.minconf)
        .fold(0u64, |sum, (_, coin)| {
            sum.saturating_add(coin.output.amount.to_base())
        });
    Ok(json!(total))
}

pub(super) async fn gettxoutsetinfo(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let at = ctx.chain.utxo_stats().await.map_err(store_err)?;
    Ok(to_json(TxOutSetInfo {
        height: at.height,
        bestblock: at.tip.to_string(),
        txouts: at.stats.txouts,
        total_amount: at.stats.total_amount.to_base(),
        hash_serialized: at.stats.hash_serialized.to_display_hex(),
    }))
}

/// `submitblock hexdata`.
pub(super) struct SubmitBlock(Block);

impl FromArgs for SubmitBlock {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(SubmitBlock(args.decoded(0, "hexdata", "Block")?))
    }
}

pub(super) async fn submitblock(
    ctx: Arc<RpcContext>,
    SubmitBlock(block): SubmitBlock,
) -> Result<Value, RpcError> {
    let report = ctx.chain.submit_block(block).await.map_err(|e| match e {
        QueryError::Stopped(s) => s.into(),
        QueryError::Failed(e) => internal(e),
    })?;
    match report.outcome {
        ImportOutcome::Active | ImportOutcome::SideChain => Ok(Value::Null),
        ImportOutcome::Orphan => Ok(json!("orphan")),
        ImportOutcome::AlreadyHave => Ok(json!("duplicate")),
        ImportOutcome::Invalid(e) => Err(RpcError::rejected(e.reject_reason(), e.to_string())),
    }
}

/// `invalidateblock blockhash` / `reconsiderblock blockhash`.
pub(super) struct BlockHashParam(BlockHash);

impl FromArgs for BlockHashParam {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(BlockHashParam(args.hash(0, "blockhash")?))
    }
}

fn moved(result: Result<(), QueryError<ChainError>>) -> Result<Value, RpcError> {
    match result {
        Ok(()) => Ok(Value::Null),
        Err(QueryError::Stopped(s)) => Err(s.into()),
        Err(QueryError::Failed(e)) => Err(chain_err(e)),
    }
}

pub(super) async fn invalidateblock(
    ctx: Arc<RpcContext>,
    BlockHashParam(hash): BlockHashParam,
) -> Result<Value, RpcError> {
    moved(ctx.chain.invalidate(hash).await)
}

pub(super) async fn reconsiderblock(
    ctx: Arc<RpcContext>,
    BlockHashParam(hash): BlockHashParam,
) -> Result<Value, RpcError> {
    moved(ctx.chain.reconsider(hash).await)
}

/// `getblocktree [from_height]`.
pub(super) struct FromHeight(Option<u32>);

impl FromArgs for FromHeight {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(FromHeight(args.optional(0, "from_height")?))
    }
}

/// Every known block (header or body) at `from_height` or above, with its status here and
/// when this node first knew it: the input of a fork view.
pub(super) async fn getblocktree(
    ctx: Arc<RpcContext>,
    FromHeight(from): FromHeight,
) -> Result<Value, RpcError> {
    let tree = ctx.chain.block_tree(from).await?.map_err(chain_err)?;
    Ok(to_json(tree))
}
