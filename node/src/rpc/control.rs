//! Control methods: `help` and `stop`.

use super::params::{Args, FromArgs, NoParams};
use super::{RpcContext, RpcError, codes, registry};
use serde_json::{Value, json};
use std::sync::Arc;

/// `help [method]`.
pub(super) struct Help(Option<String>);

impl FromArgs for Help {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(Help(args.optional(0, "method")?))
    }
}

/// Without a method: every method name, sorted. With one: `name params` and its help line.
pub(super) async fn help(_: Arc<RpcContext>, Help(method): Help) -> Result<Value, RpcError> {
    let Some(name) = method else {
        return Ok(json!(registry::names()));
    };
    let entry = registry::lookup(&name).ok_or_else(|| {
        RpcError::new(
            codes::INVALID_PARAMETER,
            format!("help: unknown method {name:?}"),
        )
    })?;
    Ok(json!(format!("{}\n{}", registry::usage(entry), entry.help)))
}

pub(super) async fn stop(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let _ = ctx.shutdown.send(true);
    Ok(json!("cairn stopping"))
}
