//! Mining methods: `generate`, `setmining`, `sethashrate`, `getmininginfo`.

use super::chain::{difficulty, to_json};
use super::params::{Args, FromArgs, NoParams, address};
use super::{RpcContext, RpcError, codes};
use cairn_rpc::types::MiningInfo;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most blocks one `generate` mines.
const MAX_GENERATE: u32 = 100_000;

/// Blocks `networkhashps` is estimated over.
const HASHPS_WINDOW: u32 = 120;

/// `generate nblocks [address]`.
pub(super) struct Generate {
    n: u32,
    address: Option<String>,
}

impl FromArgs for Generate {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let n: u32 = args.required(0, "nblocks")?;
        if n > MAX_GENERATE {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                format!("nblocks must be at most {MAX_GENERATE}"),
            ));
        }
        Ok(Generate {
            n,
            address: args.optional(1, "address")?,
        })
    }
}

pub(super) async fn generate(ctx: Arc<RpcContext>, p: Generate) -> Result<Value, RpcError> {
    let pay_to = match p.address {
        Some(addr) => address(ctx.chain.params(), &addr)?,
        None => ctx.mining.default_pay_to(),
    };
    let hashes = ctx
        .mining
        .generate(p.n, pay_to)
        .await
        .map_err(|e| RpcError::new(codes::MISC_ERROR, e.to_string()))?;
    Ok(json!(
        hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()
    ))
}

/// `setmining mine [threads]`.
pub(super) struct SetMining {
    on: bool,
    threads: Option<usize>,
}

impl FromArgs for SetMining {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let on: bool = args.required(0, "mine")?;
        let threads: Option<usize> = args.optional(1, "threads")?;
        if threads == Some(0) {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                "threads must be at least 1",
            ));
        }
        Ok(SetMining { on, threads })
    }
}

pub(super) async fn setmining(ctx: Arc<RpcContext>, p: SetMining) -> Result<Value, RpcError> {
    ctx.mining.set_mining(p.on, p.threads);
    Ok(Value::Null)
}

/// `sethashrate rate`: a number, a string such as `"250k"`, `0`, or `null` for no cap.
pub(super) struct SetHashRate {
    rate: Option<u64>,
}

impl FromArgs for SetHashRate {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        // `null` is a value here (no cap), so the parameter is read as sent, not via `get`.
        let value = args.list.first().ok_or_else(|| {
            RpcError::invalid_params(format!(
                "{}: missing required parameter 1 (rate: hashes per second, e.g. 250000 or \"250k\", or null for no cap)",
                args.method
            ))
        })?;
        let rate = crate::mining::hashrate_param(value).map_err(|e| {
            RpcError::invalid_params(format!("{}: parameter 1 (rate): {e}", args.method))
        })?;
        Ok(SetHashRate { rate })
    }
}

pub(super) async fn sethashrate(ctx: Arc<RpcContext>, p: SetHashRate) -> Result<Value, RpcError> {
    ctx.mining.set_hashrate(p.rate);
    Ok(Value::Null)
}

pub(super) async fn getmininginfo(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let local = ctx.mining.info();
    let rate = ctx.chain.hash_rate(HASHPS_WINDOW).await?;
    let mut info = to_json(MiningInfo {
        blocks: rate.tip.height,
        difficulty: difficulty(ctx.chain.params(), rate.tip.header.bits),
        networkhashps: rate.hashps,
        hashps: local.hashps,
        mining: local.mining,
        threads: local.threads,
        kernel: local.kernel.to_owned(),
        hashrate_limit: local.hashrate_limit,
    });
    // Extension: the miner's policy (`--strategy`), e.g. a selfish miner's state.
    info["strategy"] = ctx.chain.strategy_info().await?;
    Ok(info)
}
