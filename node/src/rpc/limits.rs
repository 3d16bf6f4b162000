//! Bounds on what the RPC server takes on, so a flood of clients gets a clear refusal
//! instead of a hang, a crash or unbounded memory:
//!
//! - **connections**: [`LimitedListener`] accepts at most [`RpcLimits::max_connections`] at
//!   once; one more is answered `HTTP 503` with a JSON-RPC error body and closed;
//! - **requests in flight**: [`shed_load`] lets [`RpcLimits::max_in_flight`] requests run at
//!   once and sheds the rest at once with `HTTP 503` (load shedding, not queueing: a queue
//!   only turns overload into latency). Credentials are checked there, before any body is
//!   read, so unauthenticated clients cost no body buffers;
//! - **time**: a request gets [`REQUEST_TIMEOUT`] to be answered, and a connection that
//!   moves no byte either way for [`IDLE_TIMEOUT`] is closed (slow or silent clients cannot
//!   hold a connection slot forever);
//! - **size**: bodies above [`super::MAX_REQUEST_BYTES`] are refused (`DefaultBodyLimit`).
//!
//! Every refusal body is `{"jsonrpc": "2.0", "error": {"code": -32099, "message": ...},
//! "id": null}` with a message that says the node is busy and to retry.

use super::{RpcContext, authorized, codes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Default most connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default most requests being answered at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// How long one request may take to be answered (`generate` of many blocks included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// A connection that moves no byte for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a refused connection is drained before it is closed (so the client reads the
/// refusal instead of a reset).
const REFUSAL_DRAIN: Duration = Duration::from_secs(2);
/// Most refused connections being drained at once; beyond, they are closed at once.
const MAX_DRAINING: usize = 256;

/// The error message of every overload refusal.
pub const BUSY_MESSAGE: &str = "node busy: too many RPC requests or connections; retry later";

/// How much the RPC server takes on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests being answered at once.
    pub max_in_flight: usize,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The JSON-RPC body of a refusal.
fn busy_body(detail: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "error": {"code": codes::SERVER_BUSY, "message": format!("{BUSY_MESSAGE} ({detail})")},
        "id": null,
    })
    .to_string()
}

/// `HTTP 503` with a refusal body and `Retry-After`.
fn busy_response(detail: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::RETRY_AFTER, "1"),
        ],
        busy_body(detail),
    )
        .into_response()
}

/// The request slots of [`shed_load`].
#[derive(Clone)]
pub struct InFlight {
    slots: Arc<Semaphore>,
    ctx: Arc<RpcContext>,
}

impl InFlight {
    /// `max` slots for requests to `ctx`.
    pub fn new(ctx: Arc<RpcContext>, max: usize) -> InFlight {
        InFlight {
            slots: Arc::new(Semaphore::new(max.max(1))),
            ctx,
        }
    }
}

/// Middleware: refuses a wrong credential before the body is read, sheds a request when
/// every slot is taken, and bounds how long one may run.
pub async fn shed_load(State(limits): State<InFlight>, request: Request, next: Next) -> Response {
    if !authorized(request.headers(), &limits.ctx.cookie_secret) {
        tracing::warn!("RPC request with a missing or wrong credential refused");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"jsonrpc\"")],
            "",
        )
            .into_response();
    }
    let Ok(_slot) = limits.slots.clone().try_acquire_owned() else {
        return busy_response("every request slot is taken");
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => busy_response("the request timed out"),
    }
}

/// A listener that holds at most `max` connections open; one more is refused with a 503.
pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    draining: Arc<Semaphore>,
}

impl LimitedListener {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener, max: usize) -> LimitedListener {
        LimitedListener {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
            draining: Arc::new(Semaphore::new(MAX_DRAINING)),
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning, as
                    // axum's own listener does.
                    tracing::warn!(error = %e, "accepting an RPC connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => return (LimitedStream::new(stream, permit), addr),
                Err(_) => refuse(stream, &self.draining),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Answers a connection over the limit with a 503 and closes it after the client had time
/// to read it.
fn refuse(mut stream: TcpStream, draining: &Arc<Semaphore>) {
    let Ok(permit) = draining.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let body = busy_body("too many connections");
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        // Read what the client sent until it closes, so closing does not reset the
        // connection before the client read the answer.
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}

/// An accepted connection: holds its slot until dropped and fails with `TimedOut` once it
/// moved no byte for [`IDLE_TIMEOUT`].
pub struct LimitedStream {
    inner: TcpStream,
    idle: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl LimitedStream {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit) -> LimitedStream {
        let _ = inner.set_nodelay(true);
        LimitedStream {
            inner,
            idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
            _slot: slot,
        }
    }

    fn touched(&mut self) {
        self.idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
    }

    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "RPC connection idle for too long",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.touched();
                Poll::Ready(result)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(result) => {
                self.touched();
                Poll::Ready(result)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                self.touched();
                Poll::Ready(result)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
