//! Link shaping: per peer, an added one-way delay, jitter, a bandwidth cap and a share of
//! block and transaction messages lost (INTERFACE "Network conditions and hash power").
//!
//! # Why in the daemon
//!
//! `tc netem` needs root and the `sch_netem` kernel module, and it shapes addresses, not
//! peers: on a testnet where every node is 127.0.0.1 it cannot tell one link from another.
//! So the shaping lives in each node's libp2p transport, where the connection already
//! knows which peer it leads to:
//!
//! ```text
//! TCP → multistream → noise (tells the PeerId) → ShapedStream → yamux → gossipsub, sync, ping…
//! ```
//!
//! [`transport`] builds that stack by hand; [`ShapedYamux`] wraps the muxer upgrade so
//! every connection's [`ShapedStream`] is made knowing its peer. The noise and
//! multistream handshakes themselves are not shaped (a connection comes up at loopback
//! speed; everything spoken over it afterwards is shaped).
//!
//! # What is shaped where
//!
//! A node's [`LinkTable`] maps a peer to a [`LinkShape`]:
//! - **delay, jitter, bandwidth** shape what this node *sends* to the peer. Each chunk the
//!   muxer writes is released to the socket at `now + latency ± jitter` (release times are
//!   kept monotonic, so bytes never reorder: jitter spreads arrivals, it does not shuffle
//!   them), and no faster than the bandwidth cap (a pacer that lets a piece go only when
//!   the link is free again). A small writer task per shaped connection does the
//!   releasing; `poll_flush` is ready once a chunk is in the link (as a socket's flush
//!   does not wait for the far end: waiting would turn the delay line into a
//!   stop-and-wait link), `poll_close` waits until the link has drained.
//! - **loss** applies to block and transaction gossip and to the blocks of sync
//!   responses this node *receives* from the peer: they are dropped before validation
//!   (gossipsub `Ignore`, never penalised: loss is not misbehaviour). So `testnet link A
//!   B` sets A's outbound delay towards B and B's inbound loss from A.
//!
//! Changes apply at once to open connections: a stream re-reads its peer's entry when the
//! table's generation counter moves. An unshaped connection costs one atomic load per
//! write: it passes through with no task and no copy; the writer task starts the first
//! time the peer's link gets a delay or a cap.
//!
//! Known limits: a gossip message lost from one peer is not taken from another, since
//! gossipsub remembers its id at first receipt; the node still gets the block by
//! headers-first sync (when the next block turns out to be an orphan, or on the next
//! status). The table is in memory: a restarted node is unshaped until told again.

use futures::io::{AsyncRead, AsyncWrite};
use libp2p::core::UpgradeInfo;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, Version};
use libp2p::identity::Keypair;
use libp2p::{PeerId, noise, tcp, yamux};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use cairn_rpc::shaping::{LinkShaping, MAX_DELAY_MS, MIN_BANDWIDTH_KBIT, ShapeError};

/// Bytes a shaped connection keeps in flight before writes wait (like a socket buffer;
/// bounds the memory of a slow link).
pub const MAX_IN_FLIGHT: usize = 4 * 1024 * 1024;
/// The largest chunk one write puts in the link.
const MAX_CHUNK: usize = 64 * 1024;

/// How one link is shaped, as seen from this node: what it sends to the peer is delayed
/// and capped; what it receives from the peer is subject to loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LinkShape(LinkShaping);

impl LinkShape {
    /// No shaping at all.
    pub const NONE: LinkShape = LinkShape(LinkShaping::NONE);

    /// A validated shape: delays in milliseconds (0 ..= [`MAX_DELAY_MS`]), loss in
    /// percent (0 ..= 100), bandwidth in kbit/s (0 for no cap, else at least
    /// [`MIN_BANDWIDTH_KBIT`]).
    pub fn new(
        latency_ms: f64,
        jitter_ms: f64,
        loss_pct: f64,
        bandwidth_kbit: f64,
    ) -> Result<LinkShape, ShapeError> {
        LinkShape::try_from(LinkShaping {
            latency_ms,
            jitter_ms,
            loss_pct,
            bandwidth_kbit,
        })
    }

    /// The settings, as `getlinkshaping` shows them.
    pub fn settings(&self) -> LinkShaping {
        self.0
    }

    /// Added one-way delay of what this node sends.
    pub fn latency(&self) -> Duration {
        Duration::from_secs_f64(self.0.latency_ms / 1000.0)
    }

    /// Jitter: each chunk's delay is the latency plus a uniform draw in ±this.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.0.jitter_ms / 1000.0)
    }

    /// Share of received block and transaction messages dropped, in percent.
    pub fn loss_pct(&self) -> f64 {
        self.0.loss_pct
    }

    /// The bandwidth cap in kbit/s (1000 bits per second), if any.
    pub fn bandwidth_kbit(&self) -> Option<f64> {
        (self.0.bandwidth_kbit > 0.0).then_some(self.0.bandwidth_kbit)
    }

    /// The cap in bytes per second, if any.
    fn bytes_per_sec(&self) -> Option<f64> {
        self.bandwidth_kbit().map(|k| k * 1000.0 / 8.0)
    }

    /// Whether what this node sends is delayed or capped.
    pub fn shapes_outbound(&self) -> bool {
        self.0.latency_ms > 0.0 || self.0.jitter_ms > 0.0 || self.0.bandwidth_kbit > 0.0
    }

    /// Whether nothing is shaped.
    pub fn is_none(&self) -> bool {
        !self.shapes_outbound() && self.0.loss_pct == 0.0
    }

    /// This chunk's delay: the latency plus a uniform draw in ±jitter, never below zero.
    fn sample_delay(&self, rng: &mut StdRng) -> Duration {
        let mut ms = self.0.latency_ms;
        if self.0.jitter_ms > 0.0 {
            ms += rng.random_range(-self.0.jitter_ms..=self.0.jitter_ms);
        }
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

impl TryFrom<LinkShaping> for LinkShape {
    type Error = ShapeError;

    /// `setlinkshaping`'s settings, checked against the contract's bounds.
    fn try_from(settings: LinkShaping) -> Result<LinkShape, ShapeError> {
        settings.validated().map(LinkShape)
    }
}

#[derive(Debug)]
struct Table {
    shapes: RwLock<HashMap<PeerId, LinkShape>>,
    /// Moves on every change, so streams re-read their entry only then.
    generation: AtomicU64,
    /// Loss draws and the seeds of the streams' jitter.
    rng: Mutex<StdRng>,
}

/// The shaping of every link of this node, shared by its connections, its gossip relay,
/// its sync requests and the RPC. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkTable {
    inner: Arc<Table>,
}

impl Default for LinkTable {
    fn default() -> Self {
        LinkTable::with_rng(StdRng::from_os_rng())
    }
}

impl LinkTable {
    /// A table whose loss draws and jitter follow `seed` (for reproducible tests).
    pub fn with_seed(seed: u64) -> LinkTable {
        LinkTable::with_rng(StdRng::seed_from_u64(seed))
    }

    fn with_rng(rng: StdRng) -> LinkTable {
        LinkTable {
            inner: Arc::new(Table {
                shapes: RwLock::new(HashMap::new()),
                generation: AtomicU64::new(0),
                rng: Mutex::new(rng),
            }),
        }
    }

    fn shapes(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PeerId, LinkShape>> {
        // A panic while holding the lock cannot leave the map half-written: every write is
        // one insert or remove.
        self.inner
            .shapes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Shapes the link with `peer` (replacing what was there; [`LinkShape::NONE`] removes
    /// it). Returns the previous shape.
    pub fn set(&self, peer: PeerId, shape: LinkShape) -> Option<LinkShape> {
        let previous = {
            let mut shapes = self
                .inner
                .shapes
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if shape.is_none() {
                shapes.remove(&peer)
            } else {
                shapes.insert(peer, shape)
            }
        };
        self.inner.generation.fetch_add(1, Ordering::Release);
        previous
    }

    /// The shape of the link with `peer`, if it is shaped.
    pub fn get(&self, peer: &PeerId) -> Option<LinkShape> {
        self.shapes().get(peer).copied()
    }

    /// Every shaped link, ordered by peer id.
    pub fn list(&self) -> Vec<(PeerId, LinkShape)> {
        let mut all: Vec<(PeerId, LinkShape)> =
            self.shapes().iter().map(|(p, s)| (*p, *s)).collect();
        all.sort_by_key(|(peer, _)| peer.to_base58());
        all
    }

    /// Whether a block or transaction message just received from `peer` is lost.
    pub fn loses(&self, peer: &PeerId) -> bool {
        let pct = match self.get(peer) {
            Some(shape) => shape.loss_pct(),
            None => return false,
        };
        if pct <= 0.0 {
            return false;
        }
        if pct >= 100.0 {
            return true;
        }
        self.draw() * 100.0 < pct
    }

    fn draw(&self) -> f64 {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .random::<f64>()
    }

    fn stream_seed(&self) -> u64 {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .random()
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
}

/// One connection's view of its peer's entry, re-read only when the table changes.
#[derive(Debug, Clone)]
struct Link {
    peer: PeerId,
    table: LinkTable,
    seen: u64,
    shape: Option<LinkShape>,
}

impl Link {
    fn new(peer: PeerId, table: LinkTable) -> Link {
        let seen = table.generation();
        let shape = table.get(&peer);
        Link {
            peer,
            table,
            seen,
            shape,
        }
    }

    fn current(&mut self) -> Option<LinkShape> {
        let generation = self.table.generation();
        if generation != self.seen {
            self.seen = generation;
            self.shape = self.table.get(&self.peer);
        }
        self.shape
    }
}

mod stream;
pub use stream::ShapedStream;

/// The yamux upgrade with a [`ShapedStream`] beneath it, for a connection to `peer`.
#[derive(Debug, Clone)]
pub struct ShapedYamux {
    yamux: yamux::Config,
    peer: PeerId,
    links: LinkTable,
}

impl ShapedYamux {
    /// Yamux over a stream shaped as `links` says for `peer`.
    pub fn new(yamux: yamux::Config, peer: PeerId, links: LinkTable) -> ShapedYamux {
        ShapedYamux { yamux, peer, links }
    }
}

impl UpgradeInfo for ShapedYamux {
    type Info = <yamux::Config as UpgradeInfo>::Info;
    type InfoIter = <yamux::Config as UpgradeInfo>::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.yamux.protocol_info()
    }
}

impl<C> InboundConnectionUpgrade<C> for ShapedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = <yamux::Config as InboundConnectionUpgrade<ShapedStream<C>>>::Output;
    type Error = <yamux::Config as InboundConnectionUpgrade<ShapedStream<C>>>::Error;
    type Future = <yamux::Config as InboundConnectionUpgrade<ShapedStream<C>>>::Future;

    fn upgrade_inbound(self, io: C, info: Self::Info) -> Self::Future {
        let shaped = ShapedStream::new(io, self.peer, self.links);
        self.yamux.upgrade_inbound(shaped, info)
    }
}

impl<C> OutboundConnectionUpgrade<C> for ShapedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = <yamux::Config as OutboundConnectionUpgrade<ShapedStream<C>>>::Output;
    type Error = <yamux::Config as OutboundConnectionUpgrade<ShapedStream<C>>>::Error;
    type Future = <yamux::Config as OutboundConnectionUpgrade<ShapedStream<C>>>::Future;

    fn upgrade_outbound(self, io: C, info: Self::Info) -> Self::Future {
        let shaped = ShapedStream::new(io, self.peer, self.links);
        self.yamux.upgrade_outbound(shaped, info)
    }
}

/// TCP (no Nagle) + noise + [`ShapedYamux`]: the node's transport, shaped by `links`.
pub fn transport(
    key: &Keypair,
    links: LinkTable,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let noise = noise::Config::new(key)?;
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex_ext(move |peer, _| {
                ShapedYamux::new(yamux::Config::default(), *peer, links.clone())
            })
            .boxed(),
    )
}

#[cfg(test)]
mod tests;
