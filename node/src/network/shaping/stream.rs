//! [`ShapedStream`]: the connection beneath yamux, passing reads through and releasing
//! writes on the link's schedule (see the parent module's docs).

use super::{Link, LinkShape, LinkTable, MAX_CHUNK, MAX_IN_FLIGHT};
use futures::future::poll_fn;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use libp2p::PeerId;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// A connection to one peer whose writes follow the peer's [`LinkShape`].
pub struct ShapedStream<C> {
    mode: Mode<C>,
    link: Link,
}

enum Mode<C> {
    /// Unshaped so far: straight through.
    Direct(C),
    /// Shaped: reads through the read half, writes queued for the writer task.
    Shaped {
        read: ReadHalf<C>,
        queue: Arc<Queue>,
        rng: Box<StdRng>,
    },
    /// Only while switching from `Direct` to `Shaped`.
    Switching,
}

impl<C> std::fmt::Debug for ShapedStream<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShapedStream")
            .field("peer", &self.link.peer)
            .field("shaped", &self.is_shaped())
            .finish()
    }
}

impl<C> ShapedStream<C>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    /// Wraps the connection `io` to `peer`, shaped as `links` says (now and later).
    pub fn new(io: C, peer: PeerId, links: LinkTable) -> ShapedStream<C> {
        ShapedStream {
            mode: Mode::Direct(io),
            link: Link::new(peer, links),
        }
    }

    /// Moves the write side to a writer task, if a runtime is there to run it; returns
    /// whether the stream is now shaped.
    fn start_shaping(&mut self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(peer = %self.link.peer, "link shaping needs a tokio runtime; this connection stays unshaped");
            return false;
        };
        let Mode::Direct(io) = std::mem::replace(&mut self.mode, Mode::Switching) else {
            unreachable!("start_shaping is only called on a direct stream");
        };
        let (read, write) = io.split();
        let queue = Arc::new(Queue::default());
        runtime.spawn(write_out(write, queue.clone(), self.link.clone()));
        let rng = Box::new(StdRng::seed_from_u64(self.link.table.stream_seed()));
        self.mode = Mode::Shaped { read, queue, rng };
        tracing::debug!(peer = %self.link.peer, "connection shaped");
        true
    }
}

impl<C> ShapedStream<C> {
    /// Whether writes go through the writer task (once shaped, a connection stays so, with
    /// no delay after a reset: bytes already in the link must not be overtaken).
    pub fn is_shaped(&self) -> bool {
        matches!(self.mode, Mode::Shaped { .. })
    }
}

impl<C> AsyncRead for ShapedStream<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().mode {
            Mode::Direct(io) => Pin::new(io).poll_read(cx, buf),
            Mode::Shaped { read, .. } => Pin::new(read).poll_read(cx, buf),
            Mode::Switching => Poll::Ready(Err(switching())),
        }
    }
}

fn switching() -> io::Error {
    io::Error::other("link shaping failed while switching this connection")
}

impl<C> AsyncWrite for ShapedStream<C>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let shape = this.link.current();
        if matches!(this.mode, Mode::Direct(_))
            && (!shape.is_some_and(|s| s.shapes_outbound()) || !this.start_shaping())
        {
            let Mode::Direct(io) = &mut this.mode else {
                unreachable!("still direct")
            };
            return Pin::new(io).poll_write(cx, buf);
        }
        match &mut this.mode {
            Mode::Shaped { queue, rng, .. } => {
                enqueue(queue, rng, shape.unwrap_or(LinkShape::NONE), cx, buf)
            }
            Mode::Direct(_) => unreachable!("switched above"),
            Mode::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().mode {
            Mode::Direct(io) => Pin::new(io).poll_flush(cx),
            // In the link is as far as a flush goes (see the module docs).
            Mode::Shaped { queue, .. } => match &queue.lock().failed {
                Some(failed) => Poll::Ready(Err(failure(failed))),
                None => Poll::Ready(Ok(())),
            },
            Mode::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().mode {
            Mode::Direct(io) => Pin::new(io).poll_close(cx),
            Mode::Shaped { queue, .. } => {
                let mut state = queue.lock();
                if let Some(failed) = &state.failed {
                    return Poll::Ready(Err(failure(failed)));
                }
                if state.closed {
                    return Poll::Ready(Ok(()));
                }
                state.closing = true;
                state.wakers.producer = Some(cx.waker().clone());
                state.wakers.wake_writer();
                Poll::Pending
            }
            Mode::Switching => Poll::Ready(Err(switching())),
        }
    }
}

impl<C> Drop for ShapedStream<C> {
    fn drop(&mut self) {
        if let Mode::Shaped { queue, .. } = &self.mode {
            let mut state = queue.lock();
            if !state.closed {
                state.abandoned = true;
                state.wakers.wake_writer();
            }
        }
    }
}

/// Puts (up to [`MAX_CHUNK`] of) `buf` in the link, released after this chunk's delay and
/// never before the chunk ahead of it.
fn enqueue(
    queue: &Queue,
    rng: &mut StdRng,
    shape: LinkShape,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let mut state = queue.lock();
    if let Some(failed) = &state.failed {
        return Poll::Ready(Err(failure(failed)));
    }
    if state.closing {
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "write after close",
        )));
    }
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    if state.queued_bytes >= MAX_IN_FLIGHT {
        state.wakers.producer = Some(cx.waker().clone());
        return Poll::Pending;
    }
    let n = buf.len().min(MAX_CHUNK);
    let due = Instant::now() + shape.sample_delay(rng);
    let release = state.last_release.map_or(due, |last| last.max(due));
    state.last_release = Some(release);
    state.chunks.push_back(Chunk {
        release,
        data: buf[..n].to_vec(),
    });
    state.queued_bytes += n;
    state.wakers.wake_writer();
    Poll::Ready(Ok(n))
}

/// Whom to wake: the writer task when there is work, the producer when there is room or
/// the close completed.
#[derive(Default)]
struct Wakers {
    writer: Option<Waker>,
    producer: Option<Waker>,
}

impl Wakers {
    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn wake_producer(&mut self) {
        if let Some(w) = self.producer.take() {
            w.wake();
        }
    }
}

/// What the producer put in the link and the writer has not yet sent.
struct Chunk {
    release: Instant,
    data: Vec<u8>,
}

/// The link between a [`ShapedStream`] and its writer task.
#[derive(Default)]
struct QueueState {
    chunks: VecDeque<Chunk>,
    queued_bytes: usize,
    last_release: Option<Instant>,
    /// The producer closed: drain, then close the socket.
    closing: bool,
    /// The writer closed the socket.
    closed: bool,
    /// The producer was dropped without closing: stop at once.
    abandoned: bool,
    /// The socket failed; every later write fails the same way.
    failed: Option<(io::ErrorKind, String)>,
    wakers: Wakers,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Every critical section leaves the state consistent before anything can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fail(&self, e: &io::Error) {
        let mut state = self.lock();
        state.failed = Some((e.kind(), e.to_string()));
        state.wakers.wake_producer();
    }
}

/// What the writer does next.
enum Next {
    Send(Instant),
    Close,
    Stop,
}

fn failure(failed: &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(failed.0, failed.1.clone())
}

/// Sends what the producer queued, each chunk at its release time and no faster than the
/// cap; closes the socket once the producer closed and the queue drained.
async fn write_out<C>(mut out: WriteHalf<C>, queue: Arc<Queue>, mut link: Link)
where
    C: AsyncWrite + AsyncRead + Unpin,
{
    let mut pacer = Pacer::default();
    // Bytes written before shaping began may sit unflushed in the layer below.
    if let Err(e) = out.flush().await {
        return queue.fail(&e);
    }
    loop {
        let next = poll_fn(|cx| {
            let mut state = queue.lock();
            if state.abandoned {
                Poll::Ready(Next::Stop)
            } else if let Some(chunk) = state.chunks.front() {
                Poll::Ready(Next::Send(chunk.release))
            } else if state.closing {
                Poll::Ready(Next::Close)
            } else {
                state.wakers.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let release = match next {
            Next::Stop => return,
            Next::Close => {
                let closed = out.close().await;
                let mut state = queue.lock();
                state.closed = true;
                if let Err(e) = closed {
                    state.failed = Some((e.kind(), e.to_string()));
                }
                state.wakers.wake_producer();
                return;
            }
            Next::Send(release) => release,
        };
        tokio::time::sleep_until(release).await;
        let due: Vec<Vec<u8>> = {
            let mut state = queue.lock();
            let now = Instant::now();
            let mut due = Vec::new();
            while state.chunks.front().is_some_and(|c| c.release <= now) {
                due.extend(state.chunks.pop_front().map(|c| c.data));
            }
            due
        };
        for data in due {
            let rate = link.current().and_then(|s| s.bytes_per_sec());
            if let Err(e) = pacer.send(&mut out, &data, rate).await {
                return queue.fail(&e);
            }
            let mut state = queue.lock();
            state.queued_bytes -= data.len();
            state.wakers.wake_producer();
        }
        if let Err(e) = out.flush().await {
            return queue.fail(&e);
        }
    }
}

/// Lets bytes go no faster than the cap: a piece leaves only when the link is free again.
#[derive(Default)]
struct Pacer {
    free_at: Option<Instant>,
}

impl Pacer {
    async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        data: &[u8],
        bytes_per_sec: Option<f64>,
    ) -> io::Result<()> {
        let Some(rate) = bytes_per_sec else {
            self.free_at = None;
            return out.write_all(data).await;
        };
        // Pieces of ~20 ms of the link: smooth enough for timing, few enough writes.
        let piece = ((rate / 50.0) as usize).clamp(512, 16 * 1024);
        for part in data.chunks(piece) {
            let now = Instant::now();
            let start = self.free_at.map_or(now, |free| free.max(now));
            if start > now {
                tokio::time::sleep_until(start).await;
            }
            out.write_all(part).await?;
            out.flush().await?;
            self.free_at = Some(start + Duration::from_secs_f64(part.len() as f64 / rate));
        }
        Ok(())
    }
}
