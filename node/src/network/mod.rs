//! The peer-to-peer network: libp2p over TCP + noise + yamux.
//!
//! - [`protocol`]: every protocol id, topic name and message bound (the one place).
//! - [`codec`]: bounded framing of the sync protocol.
//! - [`behaviour`]: the libp2p behaviour and swarm.
//! - [`event_loop`]: the one task that owns the swarm (STYLE §4); everyone else holds a
//!   cloneable [`NetworkHandle`] whose commands it carries out. It dispatches to:
//!   - `connections`: the peers connected now;
//!   - `handshake`: the status exchange;
//!   - `sync_server`: answers to peers' sync requests; `requests`: the ones we send;
//!   - `relay`: gossip between the swarm and the validator, and what we publish;
//!   - `scoring`: misbehaviour and bans ([`ban_store`] keeps them on disk);
//!   - `discovery`: static peers, Identify, Kademlia, mDNS.
//! - [`gossip`]: validation of gossiped blocks and transactions before they are forwarded.
//! - [`sync`]: headers-first catch-up.
//! - [`peers`]: misbehaviour scores, bans, static peers, rate limits (pure data).
//! - [`shaping`]: per-link delay, jitter, bandwidth cap and loss, in the transport.
//!
//! Start it with [`start`]; stop it with [`NetworkHandle::shutdown`] and await the task.

pub mod ban_store;
pub mod behaviour;
pub mod codec;
mod commands;
mod connections;
mod discovery;
pub mod event_loop;
pub mod gossip;
mod handshake;
pub mod identity;
pub mod peers;
pub mod protocol;
mod relay;
mod requests;
mod scoring;
pub mod shaping;
pub mod sync;
mod sync_server;

use crate::chain_task::ChainHandle;
use libp2p::{Multiaddr, PeerId};
use peers::{Ban, Offense};
use protocol::{SyncRequest, SyncResponse};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

pub use behaviour::BuildError;

/// What the node was told about the network on its command line.
#[derive(Clone, Debug, Default)]
pub struct NetworkConfig {
    /// Listen multiaddrs (`--listen`); empty means `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<String>,
    /// Static peers (`--peer`), multiaddrs with or without `/p2p/ID`.
    pub peers: Vec<String>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// The data directory: holds `p2p_key` and `banlist.json`.
    pub datadir: PathBuf,
    /// Byzantine faults to run with (none for an honest node).
    pub faults: crate::byzantine::Faults,
    /// Inbound peer limits.
    pub limits: PeerLimits,
}

/// Most inbound peers from one IP address by default: high enough for a 20-node testnet
/// whose nodes all live on 127.0.0.1, low enough that one host cannot take every slot.
pub const MAX_INBOUND_PER_IP: u32 = 32;

/// Limits on inbound peers (Sybil resistance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Most inbound peers; a newcomer beyond it makes the least useful one be evicted.
    pub max_inbound: u32,
    /// Most inbound peers from one IP address; a newcomer beyond it is disconnected.
    pub max_inbound_per_ip: u32,
}

impl PeerLimits {
    /// The limits given, defaults for the rest.
    pub fn new(max_inbound: Option<u32>, max_inbound_per_ip: Option<u32>) -> PeerLimits {
        PeerLimits {
            max_inbound: max_inbound
                .unwrap_or(behaviour::MAX_INBOUND)
                .min(behaviour::MAX_INBOUND),
            max_inbound_per_ip: max_inbound_per_ip.unwrap_or(MAX_INBOUND_PER_IP),
        }
    }
}

impl Default for PeerLimits {
    fn default() -> PeerLimits {
        PeerLimits::new(None, None)
    }
}

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// How long [`start`] waits for the listeners to come up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the network could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A `--listen`, `--peer` or `addnode` address is not a multiaddr.
    #[error("invalid multiaddr {addr:?}: {reason}")]
    InvalidAddress {
        /// As given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The identity key file is unusable.
    #[error("p2p identity key {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ban list file is unusable.
    #[error("{0}")]
    BanList(String),
    /// The swarm could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listen address could not be bound.
    #[error("listening on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The network task is gone.
    #[error("the network task has stopped")]
    Stopped,
    /// No connection to this peer.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// `setban remove` of a peer that is not banned.
    #[error("peer {0} is not banned")]
    NotBanned(PeerId),
    /// The peer is banned.
    #[error("peer {0} is banned; lift the ban with setban {0} remove")]
    Banned(PeerId),
    /// `addnode … remove` of an address that was never added.
    #[error("{0} was not added with addnode or --peer")]
    NotAdded(Multiaddr),
    /// The network is switched off.
    #[error("the network is inactive (setnetworkactive false)")]
    Inactive,
    /// This is our own peer id.
    #[error("{0} is this node")]
    SelfPeer(PeerId),
}

/// Why a sync request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The peer did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The request failed (connection closed, dial failed, protocol unsupported).
    #[error("{0}")]
    Failed(String),
    /// The network task is gone.
    #[error("the network task has stopped")]
    Stopped,
}

/// One connected peer, as `getpeerinfo` shows it: the RPC contract's shape, built here.
pub use cairn_rpc::types::PeerInfo;

/// `addnode`'s command (Bitcoin Core's `add`, `remove`, `onetry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddNodeMode {
    /// Keep connected, redial with backoff.
    Add,
    /// Forget an added node (the connection stays).
    Remove,
    /// Dial once.
    OneTry,
}

/// Requests to the event loop; each carries its reply channel.
#[derive(Debug)]
pub(crate) enum Command {
    PeerInfo(oneshot::Sender<Vec<PeerInfo>>),
    AddNode {
        addr: Multiaddr,
        mode: AddNodeMode,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Ban {
        peer: PeerId,
        duration: Duration,
        reason: String,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Unban {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    ListBanned(oneshot::Sender<Vec<Ban>>),
    SetActive {
        active: bool,
        reply: oneshot::Sender<bool>,
    },
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Request {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, RequestError>>,
    },
    Report {
        peer: PeerId,
        offense: Offense,
    },
}

/// A cheap, cloneable handle to the network task.
#[derive(Clone, Debug)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    shutdown: Arc<watch::Sender<bool>>,
    local_peer_id: PeerId,
    links: shaping::LinkTable,
}

impl NetworkHandle {
    async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The shaping of this node's links (`setlinkshaping`, `getlinkshaping`): shared with
    /// every connection, which follows a change at once.
    pub fn links(&self) -> &shaping::LinkTable {
        &self.links
    }

    /// Shapes the link with `peer` (connected or not: the shape waits for it), replacing
    /// what was there; [`shaping::LinkShape::NONE`] removes it.
    pub fn set_link_shaping(
        &self,
        peer: PeerId,
        shape: shaping::LinkShape,
    ) -> Result<(), NetworkError> {
        if peer == self.local_peer_id {
            return Err(NetworkError::SelfPeer(peer));
        }
        let previous = self.links.set(peer, shape);
        tracing::info!(%peer, ?shape, ?previous, "link shaping set");
        Ok(())
    }

    /// Connected peers.
    pub async fn peer_info(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        self.ask(Command::PeerInfo).await
    }

    /// Adds, removes or tries a node (`addnode`).
    pub async fn add_node(&self, addr: Multiaddr, mode: AddNodeMode) -> Result<(), NetworkError> {
        self.ask(|reply| Command::AddNode { addr, mode, reply })
            .await?
    }

    /// Closes every connection to `peer` (`disconnectnode`).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Disconnect { peer, reply })
            .await?
    }

    /// Bans `peer` for `duration` (`setban add`): disconnects it and refuses it.
    pub async fn ban(
        &self,
        peer: PeerId,
        duration: Duration,
        reason: String,
    ) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Ban {
            peer,
            duration,
            reason,
            reply,
        })
        .await?
    }

    /// Lifts a ban (`setban remove`).
    pub async fn unban(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Unban { peer, reply }).await?
    }

    /// Current bans (`listbanned`).
    pub async fn list_banned(&self) -> Result<Vec<Ban>, NetworkError> {
        self.ask(Command::ListBanned).await
    }

    /// Switches the network on or off (`setnetworkactive`); returns the new state.
    pub async fn set_active(&self, active: bool) -> Result<bool, NetworkError> {
        self.ask(|reply| Command::SetActive { active, reply }).await
    }

    /// The addresses the node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Sends a sync request to `peer` and waits for the answer (bounded by the protocol's
    /// request timeout).
    pub async fn request(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Result<SyncResponse, RequestError> {
        self.request_within(
            peer,
            request,
            behaviour::SYNC_REQUEST_TIMEOUT + Duration::from_secs(5),
        )
        .await
    }

    /// [`request`](Self::request), giving up after `deadline` (a peer that stalls a
    /// small request must not hold sync for the protocol's whole timeout).
    pub async fn request_within(
        &self,
        peer: PeerId,
        request: SyncRequest,
        deadline: Duration,
    ) -> Result<SyncResponse, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request {
                peer,
                request,
                reply,
            })
            .await
            .map_err(|_| RequestError::Stopped)?;
        match tokio::time::timeout(deadline, answer).await {
            Err(_) => Err(RequestError::Timeout),
            Ok(Err(_)) => Err(RequestError::Stopped),
            Ok(Ok(result)) => result,
        }
    }

    /// Reports a misbehaving peer (its score rises; at the threshold it is banned).
    pub async fn report(&self, peer: PeerId, offense: Offense) {
        let _ = self.commands.send(Command::Report { peer, offense }).await;
    }

    /// Asks the network task to stop: every connection is closed and the task ends.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Everything [`start`] returns.
pub struct Started {
    /// The handle.
    pub handle: NetworkHandle,
    /// The event loop task; ends after [`NetworkHandle::shutdown`].
    pub task: tokio::task::JoinHandle<()>,
    /// Addresses actually listened on (ports resolved), each with `/p2p/ID` appended.
    pub listen_addrs: Vec<Multiaddr>,
    /// This node's peer id.
    pub peer_id: PeerId,
}

/// Parses a multiaddr, also accepting `IP:PORT` as `/ip4|ip6/IP/tcp/PORT`.
pub fn parse_multiaddr(s: &str) -> Result<Multiaddr, NetworkError> {
    let s = s.trim();
    match s.parse::<Multiaddr>() {
        Ok(addr) if !addr.is_empty() => Ok(addr),
        Ok(_) => Err(NetworkError::InvalidAddress {
            addr: s.into(),
            reason: "empty".into(),
        }),
        Err(e) => match s.parse::<std::net::SocketAddr>() {
            Ok(socket) => {
                let ip = match socket.ip() {
                    std::net::IpAddr::V4(ip) => libp2p::multiaddr::Protocol::Ip4(ip),
                    std::net::IpAddr::V6(ip) => libp2p::multiaddr::Protocol::Ip6(ip),
                };
                Ok(Multiaddr::empty()
                    .with(ip)
                    .with(libp2p::multiaddr::Protocol::Tcp(socket.port())))
            }
            Err(_) => Err(NetworkError::InvalidAddress {
                addr: s.into(),
                reason: e.to_string(),
            }),
        },
    }
}

/// Starts the network: loads (or creates) the identity in `DATADIR/p2p_key`, binds the
/// listen addresses, and spawns the event loop, the gossip validator and the sync task.
/// Returns once the listeners are up, with their actual addresses.
pub async fn start(config: NetworkConfig, chain: ChainHandle) -> Result<Started, NetworkError> {
    let listen: Vec<Multiaddr> = if config.listen.is_empty() {
        vec![
            DEFAULT_LISTEN
                .parse()
                .expect("the default listen address is a valid multiaddr"),
        ]
    } else {
        config
            .listen
            .iter()
            .map(|s| parse_multiaddr(s))
            .collect::<Result<_, _>>()?
    };
    let static_peers: Vec<Multiaddr> = config
        .peers
        .iter()
        .map(|s| parse_multiaddr(s))
        .collect::<Result<_, _>>()?;
    let key = identity::load_or_create(&identity::key_path(&config.datadir))?;
    let ban_path = config.datadir.join("banlist.json");
    let clock = chain.clock().clone();
    let bans = ban_store::load(&ban_path, clock.now_secs()).map_err(NetworkError::BanList)?;
    let scoring = scoring::Scoring::new(bans, ban_store::BanStore::spawn(ban_path), clock);
    event_loop::spawn(
        key,
        shaping::LinkTable::default(),
        chain,
        listen,
        static_peers,
        config.mdns,
        scoring,
        event_loop::Settings {
            listen_timeout: LISTEN_TIMEOUT,
            faults: config.faults,
            limits: config.limits,
        },
    )
    .await
}
