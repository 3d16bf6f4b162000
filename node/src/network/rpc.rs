//! The network's JSON-RPC methods (INTERFACE.md): `getpeerinfo`, `addnode`,
//! `disconnectnode`, `setban`, `listbanned`, `setnetworkactive`. Parameters follow
//! Bitcoin Core where it has an equivalent, with peer ids where Core has IP addresses.

use super::{AddNodeMode, NetworkError, NetworkHandle, parse_multiaddr, peers};
use crate::rpc::{RpcError, codes};
use libp2p::PeerId;
use serde_json::{Value, json};
use std::time::Duration;

/// The methods this module answers.
pub const METHODS: &[&str] = &[
    "addnode",
    "disconnectnode",
    "getpeerinfo",
    "listbanned",
    "setban",
    "setnetworkactive",
];

/// Answers one of [`METHODS`].
pub async fn call(net: &NetworkHandle, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    match method {
        "getpeerinfo" => {
            at_most(method, params, 0)?;
            let peers = net.peer_info().await.map_err(to_rpc)?;
            Ok(serde_json::to_value(peers).expect("peer info always serialises"))
        }
        "addnode" => {
            at_most(method, params, 2)?;
            let addr = parse_multiaddr(string_param(method, params, 0, "node")?)
                .map_err(|e| RpcError::invalid_params(e.to_string()))?;
            let mode = match params.get(1) {
                None | Some(Value::Null) => AddNodeMode::Add,
                Some(Value::String(s)) => match s.as_str() {
                    "add" => AddNodeMode::Add,
                    "remove" => AddNodeMode::Remove,
                    "onetry" => AddNodeMode::OneTry,
                    other => {
                        return Err(RpcError::invalid_params(format!(
                            "addnode: command must be add, remove or onetry, not {other:?}"
                        )));
                    }
                },
                Some(other) => {
                    return Err(RpcError::invalid_params(format!(
                        "addnode: command must be a string, not {other}"
                    )));
                }
            };
            net.add_node(addr, mode).await.map_err(to_rpc)?;
            Ok(Value::Null)
        }
        "disconnectnode" => {
            at_most(method, params, 1)?;
            let peer = peer_param(method, params, 0)?;
            net.disconnect(peer).await.map_err(to_rpc)?;
            Ok(Value::Null)
        }
        "setban" => {
            at_most(method, params, 4)?;
            let peer = peer_param(method, params, 0)?;
            let command = string_param(method, params, 1, "command")?;
            match command {
                "add" => {
                    let duration = ban_duration(params)?;
                    net.ban(peer, duration, "manually banned".into())
                        .await
                        .map_err(to_rpc)?;
                }
                "remove" => net.unban(peer).await.map_err(to_rpc)?,
                other => {
                    return Err(RpcError::invalid_params(format!(
                        "setban: command must be add or remove, not {other:?}"
                    )));
                }
            }
            Ok(Value::Null)
        }
        "listbanned" => {
            at_most(method, params, 0)?;
            let bans = net.list_banned().await.map_err(to_rpc)?;
            Ok(Value::Array(bans.iter().map(ban_json).collect()))
        }
        "setnetworkactive" => {
            at_most(method, params, 1)?;
            let active = match params.first() {
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(RpcError::invalid_params(format!(
                        "setnetworkactive: state must be true or false, not {other}"
                    )));
                }
                None => {
                    return Err(RpcError::invalid_params(
                        "setnetworkactive: missing parameter state (true or false)",
                    ));
                }
            };
            Ok(json!(net.set_active(active).await.map_err(to_rpc)?))
        }
        _ => Err(RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )),
    }
}

/// A ban as `listbanned` shows it.
fn ban_json(ban: &peers::Ban) -> Value {
    json!({
        "peer_id": ban.peer_id.to_base58(),
        "banned_until": ban.banned_until,
        "ban_created": ban.ban_created,
        "reason": ban.reason,
    })
}

/// How long a `setban add` lasts: `seconds` (default 24 h), or until the unix time
/// `seconds` when `absolute` is true (Core's 4th parameter).
fn ban_duration(params: &[Value]) -> Result<Duration, RpcError> {
    let absolute = match params.get(3) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "setban: absolute must be a boolean, not {other}"
            )));
        }
    };
    let seconds = match params.get(2) {
        None | Some(Value::Null) => return Ok(peers::DEFAULT_BAN_DURATION),
        Some(v) => v.as_u64().filter(|s| *s > 0).ok_or_else(|| {
            RpcError::invalid_params(format!(
                "setban: bantime must be a positive integer of seconds, not {v}"
            ))
        })?,
    };
    if absolute {
        let now = crate::chain_task::unix_now();
        if seconds <= now {
            return Err(RpcError::invalid_params(
                "setban: absolute bantime is in the past",
            ));
        }
        Ok(Duration::from_secs(seconds - now))
    } else {
        Ok(Duration::from_secs(seconds))
    }
}

fn at_most(method: &str, params: &[Value], n: usize) -> Result<(), RpcError> {
    if params.len() > n {
        return Err(RpcError::invalid_params(format!(
            "{method} takes at most {n} parameters, got {}",
            params.len()
        )));
    }
    Ok(())
}

fn string_param<'a>(
    method: &str,
    params: &'a [Value],
    index: usize,
    name: &str,
) -> Result<&'a str, RpcError> {
    match params.get(index) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(RpcError::invalid_params(format!(
            "{method}: {name} must be a string, not {other}"
        ))),
        None => Err(RpcError::invalid_params(format!(
            "{method}: missing parameter {name}"
        ))),
    }
}

/// A peer id, or a multiaddr ending in `/p2p/ID`.
fn peer_param(method: &str, params: &[Value], index: usize) -> Result<PeerId, RpcError> {
    let s = string_param(method, params, index, "peer_id")?.trim();
    if let Ok(peer) = s.parse::<PeerId>() {
        return Ok(peer);
    }
    if let Ok(addr) = s.parse::<libp2p::Multiaddr>()
        && let (_, Some(peer)) = peers::split_p2p(&addr)
    {
        return Ok(peer);
    }
    Err(RpcError::invalid_params(format!(
        "{method}: {s:?} is not a peer id (or a multiaddr ending in /p2p/<peer id>)"
    )))
}

fn to_rpc(e: NetworkError) -> RpcError {
    let code = match &e {
        NetworkError::InvalidAddress { .. } => codes::INVALID_PARAMS,
        NetworkError::NotBanned(_) => codes::NOT_BANNED,
        NetworkError::NotAdded(_) => codes::NODE_NOT_ADDED,
        NetworkError::SelfPeer(_) => codes::INVALID_PARAMETER,
        _ => codes::P2P_ERROR,
    };
    RpcError::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_durations() {
        assert_eq!(
            ban_duration(&[json!("p"), json!("add")]).unwrap(),
            peers::DEFAULT_BAN_DURATION
        );
        assert_eq!(
            ban_duration(&[json!("p"), json!("add"), json!(60)]).unwrap(),
            Duration::from_secs(60)
        );
        for bad in [json!(0), json!(-5), json!("60"), json!(1.5)] {
            let e = ban_duration(&[json!("p"), json!("add"), bad]).unwrap_err();
            assert_eq!(e.code, codes::INVALID_PARAMS);
        }
        let future = crate::chain_task::unix_now() + 100;
        let d = ban_duration(&[json!("p"), json!("add"), json!(future), json!(true)]).unwrap();
        assert!(d <= Duration::from_secs(100) && d >= Duration::from_secs(98));
        assert!(ban_duration(&[json!("p"), json!("add"), json!(5), json!(true)]).is_err());
    }

    #[test]
    fn peer_ids_are_parsed_from_ids_and_multiaddrs() {
        let id = PeerId::random();
        assert_eq!(peer_param("m", &[json!(id.to_base58())], 0).unwrap(), id);
        assert_eq!(
            peer_param("m", &[json!(format!("/ip4/127.0.0.1/tcp/1/p2p/{id}"))], 0).unwrap(),
            id
        );
        for bad in [json!("nope"), json!("/ip4/127.0.0.1/tcp/1"), json!(5)] {
            assert_eq!(
                peer_param("m", &[bad], 0).unwrap_err().code,
                codes::INVALID_PARAMS
            );
        }
        assert_eq!(
            peer_param("m", &[], 0).unwrap_err().code,
            codes::INVALID_PARAMS
        );
    }
}
