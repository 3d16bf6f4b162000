//! Network methods (INTERFACE.md): `getpeerinfo`, `addnode`, `disconnectnode`, `setban`,
//! `listbanned`, `setnetworkactive`, and the link shaping behind `cairn testnet link`:
//! `setlinkshaping`, `getlinkshaping`. Parameters follow Bitcoin Core where it has an
//! equivalent, with peer ids where Core has IP addresses. The network knows nothing of the
//! RPC: this module calls its [`NetworkHandle`](crate::network::NetworkHandle) and renders
//! the answers.

use super::chain::to_json;
use super::params::{Args, FromArgs, NoParams};
use super::{RpcContext, RpcError, codes};
use crate::network::peers::{self, Ban};
use crate::network::shaping::{LinkShape, LinkShaping};
use crate::network::{AddNodeMode, NetworkError, parse_multiaddr};
use cairn_rpc::types::BanEntry;
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

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

/// A ban as `listbanned` shows it.
fn ban_entry(ban: &Ban) -> BanEntry {
    BanEntry {
        peer_id: ban.peer_id.to_base58(),
        banned_until: ban.banned_until,
        ban_created: ban.ban_created,
        reason: ban.reason.clone(),
    }
}

/// A peer id, or a multiaddr ending in `/p2p/ID`.
fn peer_param(args: &Args, index: usize) -> Result<PeerId, RpcError> {
    let s = args.string(index, "peer_id")?.trim();
    if let Ok(peer) = s.parse::<PeerId>() {
        return Ok(peer);
    }
    if let Ok(addr) = s.parse::<Multiaddr>()
        && let (_, Some(peer)) = peers::split_p2p(&addr)
    {
        return Ok(peer);
    }
    Err(RpcError::invalid_params(format!(
        "{}: {s:?} is not a peer id (or a multiaddr ending in /p2p/<peer id>)",
        args.method
    )))
}

pub(super) async fn getpeerinfo(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let peers = ctx.network.peer_info().await.map_err(to_rpc)?;
    Ok(to_json(peers))
}

/// `addnode multiaddr [add|remove|onetry]`.
pub(super) struct AddNode {
    addr: Multiaddr,
    mode: AddNodeMode,
}

impl FromArgs for AddNode {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let addr = parse_multiaddr(args.string(0, "node")?)
            .map_err(|e| RpcError::invalid_params(e.to_string()))?;
        let mode = match args.list.get(1) {
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
        Ok(AddNode { addr, mode })
    }
}

pub(super) async fn addnode(ctx: Arc<RpcContext>, p: AddNode) -> Result<Value, RpcError> {
    ctx.network.add_node(p.addr, p.mode).await.map_err(to_rpc)?;
    Ok(Value::Null)
}

/// `disconnectnode peer_id`.
pub(super) struct Peer(PeerId);

impl FromArgs for Peer {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(Peer(peer_param(args, 0)?))
    }
}

pub(super) async fn disconnectnode(
    ctx: Arc<RpcContext>,
    Peer(peer): Peer,
) -> Result<Value, RpcError> {
    ctx.network.disconnect(peer).await.map_err(to_rpc)?;
    Ok(Value::Null)
}

/// How long a `setban add` lasts, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BanTime {
    /// No bantime: [`peers::DEFAULT_BAN_DURATION`].
    Default,
    /// `bantime` seconds from now.
    For(u64),
    /// Until the unix time `bantime` (Core's 4th parameter, `absolute`, true).
    Until(u64),
}

impl BanTime {
    fn parse(args: &Args) -> Result<BanTime, RpcError> {
        let absolute = match args.list.get(3) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "setban: absolute must be a boolean, not {other}"
                )));
            }
        };
        let seconds = match args.list.get(2) {
            None | Some(Value::Null) => return Ok(BanTime::Default),
            Some(v) => v.as_u64().filter(|s| *s > 0).ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "setban: bantime must be a positive integer of seconds, not {v}"
                ))
            })?,
        };
        Ok(if absolute {
            BanTime::Until(seconds)
        } else {
            BanTime::For(seconds)
        })
    }

    fn duration(self, now: u64) -> Result<Duration, RpcError> {
        match self {
            BanTime::Default => Ok(peers::DEFAULT_BAN_DURATION),
            BanTime::For(seconds) => Ok(Duration::from_secs(seconds)),
            BanTime::Until(until) if until <= now => Err(RpcError::invalid_params(
                "setban: absolute bantime is in the past",
            )),
            BanTime::Until(until) => Ok(Duration::from_secs(until - now)),
        }
    }
}

/// `setban peer_id add|remove [bantime] [absolute]`.
pub(super) struct SetBan {
    peer: PeerId,
    /// `None` for `remove`.
    add: Option<BanTime>,
}

impl FromArgs for SetBan {
    const MAX: usize = 4;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let peer = peer_param(args, 0)?;
        let add = match args.string(1, "command")? {
            "add" => Some(BanTime::parse(args)?),
            "remove" => None,
            other => {
                return Err(RpcError::invalid_params(format!(
                    "setban: command must be add or remove, not {other:?}"
                )));
            }
        };
        Ok(SetBan { peer, add })
    }
}

pub(super) async fn setban(ctx: Arc<RpcContext>, p: SetBan) -> Result<Value, RpcError> {
    match p.add {
        Some(time) => {
            let duration = time.duration(ctx.chain.clock().now_secs())?;
            ctx.network
                .ban(p.peer, duration, "manually banned".into())
                .await
                .map_err(to_rpc)?;
        }
        None => ctx.network.unban(p.peer).await.map_err(to_rpc)?,
    }
    Ok(Value::Null)
}

pub(super) async fn listbanned(ctx: Arc<RpcContext>, _: NoParams) -> Result<Value, RpcError> {
    let bans = ctx.network.list_banned().await.map_err(to_rpc)?;
    Ok(to_json(bans.iter().map(ban_entry).collect::<Vec<_>>()))
}

/// `setnetworkactive state`.
pub(super) struct NetworkActive(bool);

impl FromArgs for NetworkActive {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        match args.list.first() {
            Some(Value::Bool(b)) => Ok(NetworkActive(*b)),
            Some(other) => Err(RpcError::invalid_params(format!(
                "setnetworkactive: state must be true or false, not {other}"
            ))),
            None => Err(RpcError::invalid_params(
                "setnetworkactive: missing parameter state (true or false)",
            )),
        }
    }
}

pub(super) async fn setnetworkactive(
    ctx: Arc<RpcContext>,
    NetworkActive(active): NetworkActive,
) -> Result<Value, RpcError> {
    Ok(json!(ctx.network.set_active(active).await.map_err(to_rpc)?))
}

/// `setlinkshaping peer_id {latency_ms, jitter_ms, loss_pct, bandwidth_kbit}`: the whole
/// shaping of the link with one peer (replacing what was there; `null` or `{}` removes it).
pub(super) struct SetLinkShaping {
    peer: PeerId,
    shape: LinkShape,
}

impl FromArgs for SetLinkShaping {
    const MAX: usize = 2;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        let peer = peer_param(args, 0)?;
        let settings: Option<LinkShaping> = args.optional(1, "settings")?;
        let shape = LinkShape::try_from(settings.unwrap_or_default())
            .map_err(|e| RpcError::invalid_params(format!("{}: {e}", args.method)))?;
        Ok(SetLinkShaping { peer, shape })
    }
}

/// One link as `setlinkshaping` and `getlinkshaping` show it.
fn link_json(peer: &PeerId, shape: &LinkShape) -> Value {
    let s = shape.settings();
    json!({
        "peer_id": peer.to_base58(),
        "latency_ms": s.latency_ms,
        "jitter_ms": s.jitter_ms,
        "loss_pct": s.loss_pct,
        "bandwidth_kbit": s.bandwidth_kbit,
    })
}

pub(super) async fn setlinkshaping(
    ctx: Arc<RpcContext>,
    p: SetLinkShaping,
) -> Result<Value, RpcError> {
    ctx.network
        .set_link_shaping(p.peer, p.shape)
        .map_err(to_rpc)?;
    Ok(link_json(&p.peer, &p.shape))
}

/// `getlinkshaping [peer_id]`.
pub(super) struct GetLinkShaping(Option<PeerId>);

impl FromArgs for GetLinkShaping {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        match args.get(0) {
            None => Ok(GetLinkShaping(None)),
            Some(_) => Ok(GetLinkShaping(Some(peer_param(args, 0)?))),
        }
    }
}

pub(super) async fn getlinkshaping(
    ctx: Arc<RpcContext>,
    GetLinkShaping(peer): GetLinkShaping,
) -> Result<Value, RpcError> {
    let links = ctx.network.links().list();
    Ok(Value::Array(
        links
            .iter()
            .filter(|(p, _)| peer.is_none_or(|wanted| wanted == *p))
            .map(|(p, shape)| link_json(p, shape))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: Value) -> Args {
        Args {
            method: "setban",
            list: list.as_array().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn ban_durations() {
        let now = 1_700_000_000;
        let time = |list: Value| BanTime::parse(&args(list)).and_then(|t| t.duration(now));
        assert_eq!(
            time(json!(["p", "add"])).unwrap(),
            peers::DEFAULT_BAN_DURATION
        );
        assert_eq!(
            time(json!(["p", "add", 60])).unwrap(),
            Duration::from_secs(60)
        );
        for bad in [json!(0), json!(-5), json!("60"), json!(1.5)] {
            let e = time(json!(["p", "add", bad])).unwrap_err();
            assert_eq!(e.code, codes::INVALID_PARAMS);
        }
        assert_eq!(
            time(json!(["p", "add", now + 100, true])).unwrap(),
            Duration::from_secs(100)
        );
        assert!(time(json!(["p", "add", 5, true])).is_err());
        assert!(time(json!(["p", "add", 5, "yes"])).is_err());
    }

    #[test]
    fn remove_ignores_a_bantime() {
        let id = PeerId::random();
        let p = SetBan::from_args(&args(json!([id.to_base58(), "remove", "junk"]))).unwrap();
        assert_eq!((p.peer, p.add), (id, None));
        let e = SetBan::from_args(&args(json!([id.to_base58(), "ban"])))
            .err()
            .unwrap();
        assert_eq!(e.code, codes::INVALID_PARAMS);
    }

    #[test]
    fn peer_ids_are_parsed_from_ids_and_multiaddrs() {
        let id = PeerId::random();
        assert_eq!(peer_param(&args(json!([id.to_base58()])), 0).unwrap(), id);
        assert_eq!(
            peer_param(&args(json!([format!("/ip4/127.0.0.1/tcp/1/p2p/{id}")])), 0).unwrap(),
            id
        );
        for bad in [json!("nope"), json!("/ip4/127.0.0.1/tcp/1"), json!(5)] {
            assert_eq!(
                peer_param(&args(json!([bad])), 0).unwrap_err().code,
                codes::INVALID_PARAMS
            );
        }
        assert_eq!(
            peer_param(&args(json!([])), 0).unwrap_err().code,
            codes::INVALID_PARAMS
        );
    }

    #[test]
    fn bans_render_as_interface_says() {
        let id = PeerId::random();
        let ban = Ban {
            peer_id: id,
            banned_until: 200,
            ban_created: 100,
            reason: "manually banned".into(),
        };
        assert_eq!(
            to_json(ban_entry(&ban)),
            json!({"peer_id": id.to_base58(), "banned_until": 200, "ban_created": 100, "reason": "manually banned"})
        );
    }

    #[test]
    fn link_shaping_settings_are_typed_and_validated() {
        let id = PeerId::random();
        let parse = |list: Value| {
            SetLinkShaping::from_args(&Args {
                method: "setlinkshaping",
                list: list.as_array().cloned().unwrap_or_default(),
            })
        };
        let p = parse(json!([id.to_base58(), {"latency_ms": 200, "bandwidth_kbit": 800}])).unwrap();
        assert_eq!(
            (p.peer, p.shape),
            (id, LinkShape::new(200.0, 0.0, 0.0, 800.0).unwrap())
        );
        assert!(parse(json!([id.to_base58()])).unwrap().shape.is_none());
        assert!(
            parse(json!([id.to_base58(), null]))
                .unwrap()
                .shape
                .is_none()
        );
        assert!(parse(json!([id.to_base58(), {}])).unwrap().shape.is_none());
        for bad in [
            json!({"latency_ms": -1}),
            json!({"loss_pct": 100.1}),
            json!({"loss_pct": "5"}),
            json!({"jitter": 5}),
            json!({"bandwidth_kbit": 0.1}),
            json!(5),
        ] {
            let e = parse(json!([id.to_base58(), bad])).err().unwrap();
            assert_eq!(e.code, codes::INVALID_PARAMS, "{bad}: {}", e.message);
        }
        assert_eq!(
            link_json(&id, &LinkShape::new(50.0, 5.0, 1.5, 0.0).unwrap()),
            json!({"peer_id": id.to_base58(), "latency_ms": 50.0, "jitter_ms": 5.0, "loss_pct": 1.5, "bandwidth_kbit": 0.0})
        );
    }
}
