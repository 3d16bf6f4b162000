//! A small blocking JSON-RPC client for a Cairn node.
//!
//! Speaks JSON-RPC 2.0 over HTTP `POST /`, authenticated with HTTP Basic auth using the
//! node's *cookie*: the file `DATADIR/.cookie` holds `__cookie__:HEX`, user `__cookie__`,
//! password `HEX` (Bitcoin Core's scheme). The node writes a new cookie at every start, so a
//! client made from a cookie *file* re-reads it before every call and keeps working across
//! node restarts on the same port.
//!
//! Find a node from its data directory with [`RpcClient::from_datadir`] (reads
//! `DATADIR/node.json` for the RPC address and `DATADIR/.cookie`), or from a URL and a
//! cookie file with [`RpcClient::from_url`]. Errors keep apart what a caller handles
//! differently ([`RpcError`]): the node could not be reached, it refused the credential
//! (HTTP 401), or it answered with a JSON-RPC error `{code, message}` such as
//! `-26 txn-mempool-conflict`.
//!
//! ```no_run
//! use cairn_rpc::RpcClient;
//! let node = RpcClient::from_datadir("./.cairn")?;
//! let info = node.call("getblockchaininfo", serde_json::json!([]))?;
//! println!("height {}", info["blocks"]);
//! # Ok::<(), cairn_rpc::RpcError>(())
//! ```

use crate::auth::{Cookie, CookieError};
use crate::codes;
use crate::files::{FileError, NodeInfo};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long one call may take before it fails as a transport error. Generous: `generate`
/// on a slow machine mines blocks inside the call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest response body read (a verbose `getblock` of a full block fits many times).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node could not be located or its credential read (`node.json`, `.cookie`).
    #[error("{0}")]
    Config(String),
    /// The request did not get an HTTP answer: connection refused, timeout, reset.
    #[error("cannot reach the node at {url}: {reason}")]
    Transport {
        /// The node's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// HTTP 401: the cookie is wrong or stale (the node writes a new one at every start).
    #[error(
        "the node at {url} refused the credential (HTTP 401): is the cookie file that of this node's current run?"
    )]
    Unauthorized {
        /// The node's URL.
        url: String,
    },
    /// Another HTTP error without a JSON-RPC body.
    #[error("the node at {url} answered HTTP {status}: {body}")]
    Http {
        /// The node's URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer is not a JSON-RPC response, or its result has an unexpected shape.
    #[error("invalid response from the node at {url}: {reason}")]
    InvalidResponse {
        /// The node's URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node answered with a JSON-RPC error.
    #[error("{message} (code {code})")]
    Rpc {
        /// JSON-RPC error code (see [`codes`]).
        code: i64,
        /// Its message; for a rejected transaction, the reject reason.
        message: String,
    },
}

impl From<FileError> for RpcError {
    fn from(e: FileError) -> Self {
        RpcError::Config(e.to_string())
    }
}

impl From<CookieError> for RpcError {
    fn from(e: CookieError) -> Self {
        RpcError::Config(e.to_string())
    }
}

impl RpcError {
    /// The JSON-RPC error code, if the node answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the node answered at all (a JSON-RPC error is an answer; a transport
    /// failure or a missing cookie is not).
    pub fn is_answer(&self) -> bool {
        matches!(self, RpcError::Rpc { .. })
    }

    /// Whether the node does not know the method (an older node, another implementation).
    pub fn is_method_not_found(&self) -> bool {
        self.code() == Some(codes::METHOD_NOT_FOUND)
    }
}

/// Where the credential comes from.
#[derive(Debug, Clone)]
enum Credential {
    None,
    Fixed(Cookie),
    /// Re-read before every call: the node writes a new cookie at every start.
    File(PathBuf),
}

/// A JSON-RPC client for one node. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct RpcClient {
    url: String,
    credential: Credential,
    agent: ureq::Agent,
    next_id: Arc<AtomicU64>,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("url", &self.url)
            .field("credential", &self.credential)
            .finish()
    }
}

impl RpcClient {
    /// A client for `url` with a fixed credential (or none).
    pub fn new(url: &str, cookie: Option<Cookie>) -> RpcClient {
        let credential = match cookie {
            Some(c) => Credential::Fixed(c),
            None => Credential::None,
        };
        RpcClient::build(url, credential, DEFAULT_TIMEOUT)
    }

    /// The node of `datadir`: its `node.json` gives the address, `.cookie` the credential.
    pub fn from_datadir(datadir: impl AsRef<Path>) -> Result<RpcClient, RpcError> {
        let datadir = datadir.as_ref();
        let info = NodeInfo::read(datadir)?;
        RpcClient::from_url(&info.rpc_url(), datadir.join(".cookie"))
    }

    /// The node at `url` (`http://127.0.0.1:PORT`; a bare `HOST:PORT` gets `http://`),
    /// authenticated with the cookie file `cookie_file`, which is checked now and re-read
    /// before every call.
    pub fn from_url(url: &str, cookie_file: impl AsRef<Path>) -> Result<RpcClient, RpcError> {
        let path = cookie_file.as_ref().to_path_buf();
        Cookie::read(&path)?;
        Ok(RpcClient::build(
            url,
            Credential::File(path),
            DEFAULT_TIMEOUT,
        ))
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(self, timeout: Duration) -> RpcClient {
        RpcClient::build(&self.url, self.credential, timeout)
    }

    fn build(url: &str, credential: Credential, timeout: Duration) -> RpcClient {
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // JSON-RPC errors come with HTTP error statuses and a JSON body we want to read.
            .http_status_as_error(false)
            // The node is local or named explicitly: never route it through a proxy from the
            // environment.
            .proxy(None)
            .max_redirects(0)
            .build();
        RpcClient {
            url,
            credential,
            agent: config.into(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The credential the next call will use (read from the cookie file if there is one).
    pub fn cookie(&self) -> Result<Option<Cookie>, RpcError> {
        match &self.credential {
            Credential::None => Ok(None),
            Credential::Fixed(c) => Ok(Some(c.clone())),
            Credential::File(path) => Ok(Some(Cookie::read(path)?)),
        }
    }

    /// Calls `method` with `params` (a JSON array of positional parameters; `null` means
    /// none) and returns the result.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": method,
            "params": if params.is_null() { json!([]) } else { params },
        });
        let response = self.post(&body)?;
        self.parse_response(response)
    }

    /// Calls `method` and deserialises the result into `T`.
    pub fn call_as<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, RpcError> {
        let value = self.call(method, params)?;
        serde_json::from_value(value).map_err(|e| RpcError::InvalidResponse {
            url: self.url.clone(),
            reason: format!("unexpected result of {method}: {e}"),
        })
    }

    /// Sends several calls in one JSON-RPC batch; one result per call, in order.
    pub fn batch(&self, calls: &[(&str, Value)]) -> Result<Vec<Result<Value, RpcError>>, RpcError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let first = self
            .next_id
            .fetch_add(calls.len() as u64, Ordering::Relaxed);
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (method, params))| {
                json!({
                    "jsonrpc": "2.0",
                    "id": first + i as u64,
                    "method": method,
                    "params": if params.is_null() { json!([]) } else { params.clone() },
                })
            })
            .collect();
        let response = self.post(&Value::Array(body))?;
        let Value::Array(items) = response else {
            // A server may answer a whole batch with one error object.
            return match self.parse_response(response) {
                Err(e) => Err(e),
                Ok(_) => Err(self.invalid("a batch was answered with a single result")),
            };
        };
        let mut out: Vec<Option<Result<Value, RpcError>>> =
            (0..calls.len()).map(|_| None).collect();
        for item in items {
            let index = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .filter(|i| (*i as usize) < calls.len())
                .ok_or_else(|| self.invalid("batch answer with an unknown id"))?;
            out[index as usize] = Some(self.parse_response(item));
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| self.invalid("batch answer misses a call")))
            .collect()
    }

    /// POSTs `body` and returns the JSON answer (of any HTTP status but 401).
    fn post(&self, body: &Value) -> Result<Value, RpcError> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(cookie) = self.cookie()? {
            request = request.header("Authorization", &cookie.header());
        }
        let mut response = request.send_json(body).map_err(|e| RpcError::Transport {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(RpcError::Unauthorized {
                url: self.url.clone(),
            });
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| RpcError::Transport {
                url: self.url.clone(),
                reason: format!("reading the answer: {e}"),
            })?;
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => Ok(value),
            Err(_) if status >= 300 => Err(RpcError::Http {
                url: self.url.clone(),
                status,
                body: snippet(&text),
            }),
            Err(e) => Err(self.invalid(&format!("not JSON ({e}): {}", snippet(&text)))),
        }
    }

    /// Splits one response object into its result or error.
    fn parse_response(&self, response: Value) -> Result<Value, RpcError> {
        let Value::Object(mut object) = response else {
            return Err(self.invalid("the answer is not a JSON object"));
        };
        match object.remove("error") {
            None | Some(Value::Null) => {}
            Some(error) => {
                let code = error.get("code").and_then(Value::as_i64);
                let message = error.get("message").and_then(Value::as_str);
                return match (code, message) {
                    (Some(code), Some(message)) => Err(RpcError::Rpc {
                        code,
                        message: message.to_owned(),
                    }),
                    _ => Err(self.invalid(&format!("malformed error object {error}"))),
                };
            }
        }
        object
            .remove("result")
            .ok_or_else(|| self.invalid("the answer has neither result nor error"))
    }

    fn invalid(&self, reason: &str) -> RpcError {
        RpcError::InvalidResponse {
            url: self.url.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// The start of a body, for error messages.
fn snippet(text: &str) -> String {
    const MAX: usize = 200;
    let trimmed = text.trim();
    match trimmed.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_gets_http() {
        let bare = RpcClient::new("127.0.0.1:1", None);
        assert_eq!(bare.url(), "http://127.0.0.1:1");
    }

    #[test]
    fn missing_node_json_is_a_config_error_naming_the_file() {
        let dir = std::env::temp_dir().join("cairn-rpc-no-such-datadir");
        let err = RpcClient::from_datadir(&dir).unwrap_err();
        assert!(matches!(err, RpcError::Config(_)));
        assert!(err.to_string().contains("node.json"), "{err}");
    }

    #[test]
    fn response_objects_split_into_result_or_error() {
        let c = RpcClient::new("http://127.0.0.1:1", None);
        assert_eq!(
            c.parse_response(json!({"jsonrpc":"2.0","id":1,"result":5}))
                .unwrap(),
            json!(5)
        );
        assert_eq!(
            c.parse_response(json!({"result":null,"error":null,"id":1}))
                .unwrap(),
            Value::Null
        );
        let err = c
            .parse_response(json!({"error":{"code":-26,"message":"txn-mempool-conflict"},"id":1}))
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::VERIFY_REJECTED));
        assert_eq!(err.to_string(), "txn-mempool-conflict (code -26)");
        assert!(matches!(
            c.parse_response(json!({"id":1})),
            Err(RpcError::InvalidResponse { .. })
        ));
    }
}
