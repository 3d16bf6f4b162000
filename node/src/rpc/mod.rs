//! The JSON-RPC server: HTTP POST `/` on loopback, Basic auth with the cookie.
//!
//! Speaks JSON-RPC 2.0 and, like Bitcoin Core, the older 1.0 style that `bitcoin-cli` and
//! long-lived client libraries send (no `"jsonrpc"` member): such requests are answered
//! in the same style, `{"result", "error", "id"}`, with Core's HTTP statuses (500 for an
//! error, 404 for an unknown method). Batches (a JSON array of requests) are answered
//! with an array, HTTP 200. This envelope logic is here; the methods are declared once in
//! [`registry`] and handled by domain: [`chain`], [`mempool`], [`mining`], [`network`],
//! [`control`]. Parameters are parsed in [`params`]. `GET /events` streams changes as
//! server-sent events ([`events`]). What the server takes on at once (connections,
//! requests in flight, time) is bounded in [`limits`].

pub mod chain;
pub mod control;
pub mod events;
pub mod limits;
pub mod mempool;
pub mod mining;
pub mod network;
pub mod params;
pub mod registry;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use cairn_rpc::COOKIE_USER;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::watch;

use crate::chain_task::{ChainHandle, NodeStopped};
use crate::mining::MiningHandle;
use crate::network::NetworkHandle;

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
    pub network: NetworkHandle,
}

/// Largest request body accepted (a max-size block in hex, with room to spare).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

pub use cairn_rpc::codes;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// JSON-RPC error code.
    pub code: i64,
    /// Message (for -26: exactly the reject reason).
    pub message: String,
    /// Optional details.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// Wrong parameters.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(codes::INVALID_PARAMS, message)
    }
    /// Rejected transaction or block, with details in `data`.
    pub fn rejected(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        RpcError {
            code: codes::VERIFY_REJECTED,
            message: reason.into(),
            data: Some(Value::String(detail.into())),
        }
    }
    /// The JSON-RPC `error` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            v["data"] = data.clone();
        }
        v
    }
}

impl From<NodeStopped> for RpcError {
    fn from(_: NodeStopped) -> Self {
        RpcError::new(codes::SHUTTING_DOWN, "the node is shutting down")
    }
}

/// Builds the router (used by the node and by tests). [`limits::shed_load`] guards every
/// route: a missing or wrong credential gets 401 before anything else, and at most
/// `max_in_flight` requests are answered at once, the rest refused with HTTP 503.
pub fn router(ctx: Arc<RpcContext>, max_in_flight: usize) -> Router {
    let in_flight = limits::InFlight::new(ctx.clone(), max_in_flight);
    Router::new()
        .route("/", post(handle))
        .route(
            cairn_rpc::types::events::PATH,
            axum::routing::get(events::handle),
        )
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            in_flight,
            limits::shed_load,
        ))
        .with_state(ctx)
}

fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{COOKIE_USER}:{secret}");
    // Compare without an early exit so timing does not reveal the matching prefix.
    decoded.len() == expected.len()
        && decoded
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `POST /`: one request or a batch (the credential was checked by [`limits::shed_load`],
/// which guards every route).
async fn handle(State(ctx): State<Arc<RpcContext>>, body: Bytes) -> Response {
    match parse_body(&body) {
        Err(err) => {
            let answer = json!({"jsonrpc": "2.0", "error": err.to_json(), "id": null});
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
        Ok(Body::Batch(batch)) => {
            let mut answers = Vec::with_capacity(batch.len());
            for item in batch {
                let (answer, _) = answer_one(&ctx, item).await;
                if let Some(answer) = answer {
                    answers.push(answer);
                }
            }
            axum::Json(Value::Array(answers)).into_response()
        }
        Ok(Body::Single(single)) => {
            let (answer, status) = answer_one(&ctx, single).await;
            match answer {
                Some(answer) => (status, axum::Json(answer)).into_response(),
                // A 2.0 notification (no id) gets no body.
                None => StatusCode::NO_CONTENT.into_response(),
            }
        }
    }
}

/// A request body as the envelope reads it, before any method runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// One request object (or a non-object, refused per request by [`parse_request`]).
    Single(Value),
    /// A non-empty batch, answered with an array.
    Batch(Vec<Value>),
}

/// Parses a request body: invalid JSON is a parse error (-32700), an empty batch an
/// invalid request (-32600). Pure, so the fuzz target drives exactly what the server runs.
pub fn parse_body(body: &[u8]) -> Result<Body, RpcError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| RpcError::new(codes::PARSE_ERROR, format!("Parse error: {e}")))?;
    match request {
        Value::Array(batch) if batch.is_empty() => {
            Err(RpcError::new(codes::INVALID_REQUEST, "empty batch"))
        }
        Value::Array(batch) => Ok(Body::Batch(batch)),
        single => Ok(Body::Single(single)),
    }
}

/// One request object of a body, read but not run.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Whether it is JSON-RPC 2.0 (`"jsonrpc": "2.0"`) rather than the 1.0 style.
    pub v2: bool,
    /// Its `id`, absent for a 2.0 notification.
    pub id: Option<Value>,
    /// The method name and positional parameters, or why they are not usable.
    pub call: Result<(String, Vec<Value>), RpcError>,
}

/// Reads the envelope of one request object; a non-object is an invalid request answered
/// with a null id. Pure, so the fuzz target drives exactly what the server runs.
pub fn parse_request(request: Value) -> Result<Request, RpcError> {
    let Value::Object(mut obj) = request else {
        return Err(RpcError::new(
            codes::INVALID_REQUEST,
            "request must be an object",
        ));
    };
    let v2 = obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let id = obj.remove("id");
    let call = match (obj.remove("method"), obj.remove("params")) {
        (Some(Value::String(method)), params) => match params {
            None | Some(Value::Null) => Ok((method, Vec::new())),
            Some(Value::Array(list)) => Ok((method, list)),
            Some(_) => Err(RpcError::invalid_params(
                "params must be an array of positional arguments",
            )),
        },
        _ => Err(RpcError::new(
            codes::INVALID_REQUEST,
            "missing or non-string method",
        )),
    };
    Ok(Request { v2, id, call })
}

/// Answers one request object; `None` for a 2.0 notification.
async fn answer_one(ctx: &Arc<RpcContext>, request: Value) -> (Option<Value>, StatusCode) {
    let Request { v2, id, call } = match parse_request(request) {
        Ok(request) => request,
        Err(err) => {
            return (
                Some(json!({"jsonrpc": "2.0", "error": err.to_json(), "id": null})),
                StatusCode::OK,
            );
        }
    };
    let outcome = match call {
        Ok((method, list)) => registry::call(ctx, &method, list).await,
        Err(e) => Err(e),
    };
    if v2 {
        if id.is_none() {
            return (None, StatusCode::NO_CONTENT);
        }
        let answer = match outcome {
            Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
            Err(e) => json!({"jsonrpc": "2.0", "error": e.to_json(), "id": id}),
        };
        (Some(answer), StatusCode::OK)
    } else {
        let id = id.unwrap_or(Value::Null);
        match outcome {
            Ok(result) => (
                Some(json!({"result": result, "error": null, "id": id})),
                StatusCode::OK,
            ),
            Err(e) => {
                let status = match e.code {
                    codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
                    codes::INVALID_REQUEST => StatusCode::BAD_REQUEST,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (
                    Some(json!({"result": null, "error": e.to_json(), "id": id})),
                    status,
                )
            }
        }
    }
}
