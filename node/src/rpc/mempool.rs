//! Mempool methods: submitting and test-accepting transactions, and reading the pool.

use super::chain::to_json;
use super::params::{AddressArg, Args, FromArgs, NoParams, address, decode_hex, internal};
use super::{RpcContext, RpcError};
use crate::chain_task::QueryError;
use crate::mempool::MempoolError;
use cairn_core::Transaction;
use cairn_rpc::types::MempoolInfo;
use serde_json::{Value, json};
use std::sync::Arc;

/// `getrawmempool [verbose]`.
pub(super) struct GetRawMempool {
    verbose: bool,
}

impl FromArgs for GetRawMempool {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(GetRawMempool {
            verbose: args.verbosity(0, 0)? > 0,
        })
    }
}

pub(super) async fn getrawmempool(
    ctx: Arc<RpcContext>,
    p: GetRawMempool,
) -> Result<Value, RpcError> {
    if !p.verbose {
        let txids = ctx.chain.mempool_txids().await?;
        return Ok(json!(
            txids.iter().map(|t| t.to_string()).collect::<Vec<_>>()
        ));
    }
    let mut map = serde_json::Map::new();
    for e in ctx.chain.mempool_entries().await? {
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
    Ok(Value::Object(map))
}

pub(super) async fn getmempoolinfo(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let info = ctx.chain.mempool_info().await?;
    Ok(to_json(MempoolInfo {
        size: info.size,
        bytes: info.bytes,
        minfee: info.minfee,
    }))
}

/// `sendrawtransaction hexstring`.
pub(super) struct RawTx(Transaction);

impl FromArgs for RawTx {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(RawTx(args.decoded(0, "hexstring", "TX")?))
    }
}

pub(super) async fn sendrawtransaction(
    ctx: Arc<RpcContext>,
    RawTx(tx): RawTx,
) -> Result<Value, RpcError> {
    match ctx.chain.submit_tx(tx).await {
        Ok(accepted) => Ok(json!(accepted.txid.to_string())),
        Err(QueryError::Stopped(s)) => Err(s.into()),
        Err(QueryError::Failed(e @ MempoolError::Store(_))) => Err(internal(e)),
        Err(QueryError::Failed(e)) => Err(RpcError::rejected(e.reject_reason(), e.to_string())),
    }
}

/// `testmempoolaccept hexstring` or `testmempoolaccept [hexstring, ...]`.
pub(super) struct TestAccept {
    txs: Vec<Transaction>,
    /// Given as an array, so answered with one.
    many: bool,
}

impl FromArgs for TestAccept {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let (hexes, many) = match args.list.first() {
            Some(Value::Array(list)) => (
                list.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        RpcError::invalid_params("testmempoolaccept: expected hex strings")
                    })?,
                true,
            ),
            _ => (vec![args.required::<String>(0, "hexstring")?], false),
        };
        let txs = hexes
            .iter()
            .map(|h| decode_hex::<Transaction>(h, "TX"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TestAccept { txs, many })
    }
}

pub(super) async fn testmempoolaccept(
    ctx: Arc<RpcContext>,
    p: TestAccept,
) -> Result<Value, RpcError> {
    let results: Vec<Value> = ctx
        .chain
        .test_accept(p.txs)
        .await?
        .into_iter()
        .map(|(txid, verdict)| {
            let txid = txid.to_string();
            match verdict {
                Ok(accepted) => json!({"txid": txid, "allowed": true, "fee": accepted.fee.to_base(), "size": accepted.size}),
                Err(e) => json!({"txid": txid, "allowed": false, "reject-reason": e.reject_reason()}),
            }
        })
        .collect();
    Ok(if p.many {
        json!(results)
    } else {
        results.into_iter().next().unwrap_or(Value::Null)
    })
}

pub(super) async fn getaddressmempool(
    ctx: Arc<RpcContext>,
    AddressArg(addr): AddressArg,
) -> Result<Value, RpcError> {
    let wanted = address(ctx.chain.params(), &addr)?;
    let activity = ctx.chain.address_mempool(wanted).await?;
    Ok(json!({
        "spent": activity.spent.iter().map(|o| json!({"txid": o.txid.to_string(), "vout": o.vout})).collect::<Vec<_>>(),
        "received": activity.received.iter().map(|(o, amount)| json!({"txid": o.txid.to_string(), "vout": o.vout, "amount": amount.to_base()})).collect::<Vec<_>>(),
    }))
}
