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
//!   moves no byte either way for [`IDLE_TIMEOUT`] while none of its requests is being
//!   answered is closed (slow or silent clients cannot hold a connection slot forever; a
//!   long `generate` is not cut off);
//! - **size**: bodies above [`super::MAX_REQUEST_BYTES`] are refused (`DefaultBodyLimit`).
//!
//! Every refusal body is `{"jsonrpc": "2.0", "error": {"code": -32099, "message": ...},
//! "id": null}` with a message that says the node is busy and to retry.

use super::{RpcContext, authorized, codes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// Default: a connection that moves no byte for this long (while none of its requests is
/// being answered) is closed.
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
    /// A connection idle this long is closed.
    pub idle_timeout: Duration,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            idle_timeout: IDLE_TIMEOUT,
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

/// How many requests of one connection are being answered (the connection is not idle
/// while one is). Reaches the middleware as `ConnectInfo` (see [`serve_with_limits`]).
#[derive(Clone, Debug, Default)]
pub struct Answering(Arc<AtomicUsize>);

impl Connected<axum::serve::IncomingStream<'_, LimitedListener>> for Answering {
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Self {
        stream.io().answering.clone()
    }
}

/// Marks a connection busy for as long as it lives.
struct AnsweringGuard(Option<Answering>);

impl AnsweringGuard {
    fn enter(request: &Request) -> AnsweringGuard {
        let answering = request
            .extensions()
            .get::<ConnectInfo<Answering>>()
            .map(|ConnectInfo(a)| a.clone());
        if let Some(a) = &answering {
            a.0.fetch_add(1, Ordering::Relaxed);
        }
        AnsweringGuard(answering)
    }
}

impl Drop for AnsweringGuard {
    fn drop(&mut self) {
        if let Some(a) = &self.0 {
            a.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// `router` as a make-service for `axum::serve` over a [`LimitedListener`], so that
/// connections are not idle while they wait for an answer.
pub fn serve_with_limits(
    listener: LimitedListener,
    router: axum::Router,
) -> axum::serve::Serve<
    LimitedListener,
    axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, Answering>,
    axum::middleware::AddExtension<axum::Router, ConnectInfo<Answering>>,
> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Answering>(),
    )
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
    let _answering = AnsweringGuard::enter(&request);
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => busy_response("the request timed out"),
    }
}

/// A listener that holds at most `max_connections` open (one more is refused with a 503)
/// and closes those idle for `idle_timeout`.
pub struct LimitedListener {
    inner: TcpListener,
    idle_timeout: Duration,
    slots: Arc<Semaphore>,
    draining: Arc<Semaphore>,
}

impl LimitedListener {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener, limits: &RpcLimits) -> LimitedListener {
        LimitedListener {
            inner,
            idle_timeout: limits.idle_timeout,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
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
                Ok(permit) => {
                    return (LimitedStream::new(stream, permit, self.idle_timeout), addr);
                }
                Err(_) => refuse(stream, &self.draining),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The raw HTTP answer to a connection over the limit.
fn connection_refusal() -> String {
    let body = busy_body("too many connections");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers a connection over the limit with a 503 and closes it after the client had time
/// to read it (or at once, with the answer left in the socket's buffer, when too many
/// refusals are already draining).
fn refuse(mut stream: TcpStream, draining: &Arc<Semaphore>) {
    let answer = connection_refusal();
    let Ok(permit) = draining.clone().try_acquire_owned() else {
        let _ = stream.try_write(answer.as_bytes());
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
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
/// moved no byte for its idle timeout while no request of it was being answered.
pub struct LimitedStream {
    inner: TcpStream,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    answering: Answering,
    _slot: OwnedSemaphorePermit,
}

impl LimitedStream {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> LimitedStream {
        let _ = inner.set_nodelay(true);
        LimitedStream {
            inner,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            answering: Answering::default(),
            _slot: slot,
        }
    }

    fn touched(&mut self) {
        let at = Instant::now() + self.idle_timeout;
        self.idle.as_mut().reset(at);
    }

    /// What the socket answered, as the stream answers it: progress resets the idle timer,
    /// waiting fails once the connection has been idle too long.
    fn settle<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
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

    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.idle.is_elapsed() && self.answering.0.load(Ordering::Relaxed) > 0 {
            self.touched();
        }
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
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.settle(cx, polled)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.settle(cx, polled)
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
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
