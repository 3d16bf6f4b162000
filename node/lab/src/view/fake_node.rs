//! Test double of a node's HTTP side: JSON-RPC (`getblockchaininfo`, `getblocktree` or
//! -32601, `getchaintips`, `getblock`, `getrawmempool`, `getrawtransaction`, `listbanned`) and `GET
//! /events`, both behind a cookie, answered from a [`MemorySource`]. It lets the real
//! [`super::source::RpcSource`], the SSE client and followers run against the node side's
//! contract before that side exists.

use super::fake::MemorySource;
use super::source::NodeSource;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_rpc::types::BlockStatus;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast;

/// The cookie the fake node accepts.
pub const COOKIE: &str = "__cookie__:f00d";

/// A running fake node.
pub struct FakeNode {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Sends `(event, data)` to every `/events` subscriber.
    pub events: broadcast::Sender<(String, String)>,
}

#[derive(Clone)]
struct Fake {
    chain: Arc<MemorySource>,
    tree_method: bool,
    events: broadcast::Sender<(String, String)>,
}

/// Serves `chain` on a free loopback port (on the current runtime); `tree_method` says
/// whether it knows `getblocktree`.
pub async fn serve(chain: Arc<MemorySource>, tree_method: bool) -> FakeNode {
    let events = broadcast::channel(64).0;
    let fake = Fake {
        chain,
        tree_method,
        events: events.clone(),
    };
    let app = Router::new()
        .route("/", post(rpc))
        .route("/events", get(stream))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeNode { addr, events }
}

fn authorised(headers: &HeaderMap) -> bool {
    let expected = cairn_rpc::Cookie::parse(COOKIE).unwrap().header();
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

async fn stream(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let rx = fake.events.subscribe();
    let s = futures::stream::unfold(rx, |mut rx| async move {
        let (name, data) = rx.recv().await.ok()?;
        Some((
            Ok::<_, Infallible>(Event::default().event(name).data(data)),
            rx,
        ))
    });
    Sse::new(s).into_response()
}

fn answer(id: &Value, result: Result<Value, (i64, String)>) -> Response {
    let body = match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    };
    axum::Json(body).into_response()
}

async fn rpc(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let request: Value = serde_json::from_str(&body).unwrap();
    let id = request["id"].clone();
    let params = request["params"].as_array().cloned().unwrap_or_default();
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let result = tokio::task::spawn_blocking(move || call(&fake, &method, &params))
        .await
        .unwrap();
    answer(&id, result)
}

fn not_found() -> (i64, String) {
    (
        cairn_rpc::codes::INVALID_ADDRESS_OR_KEY,
        "Block not found".into(),
    )
}

fn call(fake: &Fake, method: &str, params: &[Value]) -> Result<Value, (i64, String)> {
    let source = &fake.chain;
    let down = |e: super::source::SourceError| (-1, e.to_string());
    match method {
        "getblockchaininfo" => {
            let s = source.summary().map_err(down)?;
            Ok(json!({"bestblockhash": s.tip, "blocks": s.height, "headers": s.headers}))
        }
        "getblocktree" if fake.tree_method => {
            let from = params.first().and_then(Value::as_u64).unwrap_or(0) as u32;
            Ok(serde_json::to_value(source.tree(from).map_err(down)?).unwrap())
        }
        "getchaintips" => Ok(chain_tips(source)),
        "getblock" => {
            let hash = params[0].as_str().unwrap_or_default();
            let verbosity = params.get(1).and_then(Value::as_u64).unwrap_or(1);
            let body = source.block(hash).map_err(down)?.ok_or_else(not_found)?;
            let confirmations = match source.confirmations(hash).map_err(down)? {
                0 => -1,
                n => i64::from(n),
            };
            let tx: Vec<Value> = body
                .txs
                .iter()
                .map(|t| {
                    if verbosity < 2 {
                        return json!(t.txid);
                    }
                    json!({"txid": t.txid, "coinbase": t.spends.is_empty(),
                        "vin": t.spends.iter().map(|o| {
                            let (txid, vout) = o.split_once(':').unwrap();
                            json!({"txid": txid, "vout": vout.parse::<u32>().unwrap()})
                        }).collect::<Vec<_>>()})
                })
                .collect();
            Ok(
                json!({"hash": body.hash, "height": body.height, "confirmations": confirmations,
                "previousblockhash": (body.height > 0).then_some(body.parent),
                "time": body.time, "bits": body.bits, "nonce": body.nonce, "tx": tx}),
            )
        }
        "getrawmempool" => Ok(json!(source.mempool().map_err(down)?)),
        "listbanned" => {
            Ok(json!(source.banned().map_err(down)?.iter().map(|id| {
            json!({"peer_id": id, "banned_until": 0, "ban_created": 0, "reason": "test"})
        }).collect::<Vec<_>>()))
        }
        "getrawtransaction" => {
            let txid = params[0].as_str().unwrap_or_default();
            let tx = source.tx(txid).map_err(down)?.ok_or_else(not_found)?;
            Ok(json!({"txid": tx.txid, "coinbase": tx.spends.is_empty(),
                "vin": tx.spends.iter().map(|o| {
                    let (txid, vout) = o.split_once(':').unwrap();
                    json!({"txid": txid, "vout": vout.parse::<u32>().unwrap()})
                }).collect::<Vec<_>>()}))
        }
        _ => Err((
            cairn_rpc::codes::METHOD_NOT_FOUND,
            "Method not found".into(),
        )),
    }
}

/// `getchaintips` of the fake chain: every leaf, with its branch length off the active chain.
fn chain_tips(source: &MemorySource) -> Value {
    let chain = source.chain.lock().unwrap();
    let parents: std::collections::HashSet<&str> = chain
        .blocks
        .values()
        .map(|(b, _)| b.parent.as_str())
        .collect();
    let tips: Vec<Value> = chain
        .blocks
        .values()
        .filter(|(b, _)| !parents.contains(b.hash.as_str()))
        .map(|(b, _)| {
            let mut branchlen = 0;
            let mut at = b;
            while at.status != BlockStatus::Active {
                branchlen += 1;
                match chain.blocks.get(&at.parent) {
                    Some((p, _)) => at = p,
                    None => break,
                }
            }
            let status = match b.status {
                BlockStatus::Active => "active",
                BlockStatus::Invalid => "invalid",
                BlockStatus::HeadersOnly => "headers-only",
                BlockStatus::Side => "valid-fork",
            };
            json!({"height": b.height, "hash": b.hash, "branchlen": branchlen, "status": status})
        })
        .collect();
    json!(tips)
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeChain;
    use super::super::follow::ViewEvent;
    use super::super::model::Model;
    use super::super::source::{RpcSource, SourceError};
    use super::super::sse;
    use super::*;
    use cairn_rpc::RpcClient;
    use cairn_rpc::types::events;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    fn chain() -> Arc<MemorySource> {
        let mut c = FakeChain {
            up: true,
            ..FakeChain::default()
        };
        c.add("g", "", &[]);
        c.add("a", "g", &[]);
        c.add("b1", "a", &[]);
        c.add("c1", "a", &[]);
        c.add("c2", "c1", &[]);
        c.activate("c2");
        Arc::new(MemorySource::new("node0", c))
    }

    fn rpc_source(node: &FakeNode) -> Arc<RpcSource> {
        let client = RpcClient::new(&node.addr, cairn_rpc::Cookie::parse(COOKIE));
        Arc::new(RpcSource::new("node0", client))
    }

    async fn tree_of(source: &Arc<RpcSource>, from: u32) -> Vec<(String, BlockStatus)> {
        let s = source.clone();
        let tree = tokio::task::spawn_blocking(move || s.tree(from))
            .await
            .unwrap()
            .unwrap();
        tree.blocks
            .into_iter()
            .map(|b| (b.hash, b.status))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn getblocktree_is_used_and_a_node_without_it_gets_the_same_tree_walked() {
        let with = serve(chain(), true).await;
        let without = serve(chain(), false).await;
        let direct = tree_of(&rpc_source(&with), 0).await;
        let walked = tree_of(&rpc_source(&without), 0).await;
        assert_eq!(direct.len(), 5);
        assert_eq!(walked, direct);
        assert_eq!(tree_of(&rpc_source(&without), 2).await.len(), 3);
        let source = rpc_source(&without);
        let s = source.clone();
        let (body, confirmations, missing) = tokio::task::spawn_blocking(move || {
            (
                s.block("c1").unwrap().unwrap(),
                s.confirmations("c1").unwrap(),
                s.block("nope").unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            (body.parent.as_str(), body.height, confirmations),
            ("a", 2, 2)
        );
        assert_eq!(body.txs[0].txid, "cb-c1");
        assert!(missing.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_down_node_is_unreachable_not_a_failure() {
        let node = serve(chain(), true).await;
        let source = Arc::new(RpcSource::new(
            "node0",
            RpcClient::new("127.0.0.1:1", cairn_rpc::Cookie::parse(COOKIE)),
        ));
        let err = tokio::task::spawn_blocking(move || source.summary())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
        let wrong = Arc::new(RpcSource::new(
            "node0",
            RpcClient::new(&node.addr, cairn_rpc::Cookie::parse("__cookie__:bad")),
        ));
        let err = tokio::task::spawn_blocking(move || wrong.summary())
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_event_stream_needs_the_cookie_and_delivers_events() {
        let node = serve(chain(), true).await;
        let (tx, mut rx) = mpsc::channel(8);
        let err = sse::subscribe(&node.addr, events::PATH, "Basic bm9wZQ==", &tx, || {})
            .await
            .unwrap_err();
        assert!(matches!(err, sse::SseError::Status(401)), "{err}");

        let auth = cairn_rpc::Cookie::parse(COOKIE).unwrap().header();
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        let addr = node.addr.clone();
        tokio::spawn(async move {
            let _ = sse::subscribe(&addr, events::PATH, &auth, &tx, move || {
                let _ = opened_tx.send(());
            })
            .await;
        });
        opened_rx.await.unwrap();
        node.events
            .send((
                "tip".into(),
                r#"{"hash":"c2","height":3,"reorg_depth":0}"#.into(),
            ))
            .unwrap();
        let got = timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.event, "tip");
        let tip: events::Tip = serde_json::from_str(&got.data).unwrap();
        assert_eq!(tip.height, 3);
    }

    /// With an event stream, the view knows of a block as soon as the node announces it,
    /// not at the next poll.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_on_a_live_stream_refreshes_on_the_nodes_events() {
        let memory = chain();
        let node = serve(memory.clone(), true).await;
        let model = Model::new(vec![rpc_source(&node)]);
        model.spawn_followers();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let t = model.tree(None).await;
            if t.nodes[0].live && t.nodes[0].tip.as_deref() == Some("c2") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never live: {:?}",
                t.nodes
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut events = model.hub.events.subscribe();
        // Five blocks in a row, each seen well within the 1 s safety-net poll: by chance
        // alone (the poll's phase) that would happen once in hundreds of runs.
        for h in 4..9u32 {
            let (hash, parent) = (format!("c{}", h - 1), format!("c{}", h - 2));
            memory.edit(|c| {
                c.add(&hash, &parent, &[]);
                c.activate(&hash);
            });
            let started = tokio::time::Instant::now();
            let data = format!(r#"{{"hash":"{hash}","parent":"{parent}","height":{h}}}"#);
            node.events.send(("block".into(), data)).unwrap();
            loop {
                let e = timeout(Duration::from_secs(1), events.recv())
                    .await
                    .expect("the tip within a second")
                    .unwrap();
                if let ViewEvent::Tip { hash: tip, .. } = e {
                    assert_eq!(tip, hash);
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "{:?}",
                started.elapsed()
            );
        }
    }
}
