//! Peers that speak the node's real protocols from inside a test, so a test can cheat in
//! ways no `cairn node` would: [`TestPeer`] runs the node's own [`Behaviour`] (gossipsub,
//! the sync request-response protocol, identify, kad) and answers sync requests as
//! [`Answers`] says; [`RawPeer`] writes arbitrary bytes as sync requests, to test the frame
//! codec's bounds.

use crate::harness::{Node, regtest};
use cairn_core::{Block, BlockHash, BlockHeader, Transaction, Work, encoding};
use cairn_node::network::behaviour::{self, Behaviour, BehaviourEvent};
use cairn_node::network::protocol::{
    self, MAX_HEADERS_PER_RESPONSE, Status, SyncRequest, SyncResponse, Topics,
};
use futures::prelude::*;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub};
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

/// The status an honest peer with `work` on genesis would send.
pub(crate) fn status_with(work: Work) -> Status {
    let params = regtest();
    Status {
        protocol_version: protocol::PROTOCOL_VERSION,
        network_id: params.network_id.clone(),
        genesis_hash: params.genesis_hash,
        params_hash: params.params_hash,
        best_hash: params.genesis_hash,
        best_height: 0,
        chainwork: work,
        user_agent: "cairn-test-peer".into(),
    }
}

/// How a test peer answers the node's sync requests.
#[derive(Clone)]
pub(crate) enum Answers {
    /// Status with this work; headers requests get these headers; blocks requests are
    /// dropped unanswered.
    Honest {
        work: Work,
        headers: Vec<BlockHeader>,
    },
    /// Status with this work; a headers request gets the next page of `headers` after the
    /// first locator hash found among them (the first page if none is), as an honest peer
    /// serving that branch would; blocks requests are dropped unanswered.
    Branch {
        work: Work,
        headers: Vec<BlockHeader>,
        /// Position of each header by hash (see [`Answers::branch`]).
        index: HashMap<BlockHash, usize>,
    },
    /// Status answered; every other request held until it times out.
    Silent,
    /// Nothing answered, not even the status (a peer that never completes the handshake).
    Mute,
}

impl Answers {
    /// [`Answers::Branch`] serving `headers`.
    pub(crate) fn branch(work: Work, headers: Vec<BlockHeader>) -> Answers {
        let index = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.block_hash(), i))
            .collect();
        Answers::Branch {
            work,
            headers,
            index,
        }
    }
}

/// The page of `headers` an honest server of that branch sends for `locator`.
fn page_after(
    headers: &[BlockHeader],
    index: &HashMap<BlockHash, usize>,
    locator: &[BlockHash],
) -> Vec<BlockHeader> {
    let start = locator
        .iter()
        .find_map(|hash| index.get(hash))
        .map_or(0, |i| i + 1);
    headers[start..]
        .iter()
        .take(MAX_HEADERS_PER_RESPONSE)
        .copied()
        .collect()
}

/// A test peer: its swarm, how it answers, the requests it holds.
pub(crate) struct TestPeer {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) answers: Answers,
    held: Vec<ResponseChannel<SyncResponse>>,
    /// Answers to its own requests: (blocks, refused, failed).
    pub(crate) tally: (usize, usize, usize),
    /// Headers requests it answered.
    pub(crate) headers_served: usize,
}

impl TestPeer {
    pub(crate) fn new(answers: Answers) -> TestPeer {
        TestPeer {
            swarm: behaviour::build_swarm(Keypair::generate_ed25519(), &regtest(), false)
                .expect("test swarm"),
            answers,
            held: Vec::new(),
            tally: (0, 0, 0),
            headers_served: 0,
        }
    }

    /// A test peer whose gossipsub sends frames of up to `max_transmit` bytes, above what
    /// the node's gossipsub accepts.
    pub(crate) fn with_transmit_limit(answers: Answers, max_transmit: usize) -> TestPeer {
        let key = Keypair::generate_ed25519();
        let params = regtest();
        let mut behaviour = Behaviour::new(&key, &params, false).expect("test behaviour");
        let config = behaviour::gossipsub_config(&params).expect("gossipsub config");
        let config = gossipsub::ConfigBuilder::from(config)
            .max_transmit_size(max_transmit)
            .build()
            .expect("gossipsub config");
        let mut gossip =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
                .expect("gossipsub");
        let topics = Topics::new(&params.network_id);
        for topic in [&topics.blocks, &topics.txs] {
            gossip.subscribe(topic).expect("subscribed");
        }
        behaviour.gossipsub = gossip;
        let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| behaviour)
            .expect("test behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build();
        TestPeer {
            swarm,
            answers,
            held: Vec::new(),
            tally: (0, 0, 0),
            headers_served: 0,
        }
    }

    pub(crate) fn id(&self) -> String {
        self.swarm.local_peer_id().to_base58()
    }

    fn answer(&mut self, request: SyncRequest) -> Option<SyncResponse> {
        Some(match (&self.answers, request) {
            (Answers::Mute, _) => return None,
            (
                Answers::Honest { work, .. } | Answers::Branch { work, .. },
                SyncRequest::Status(_),
            ) => SyncResponse::Status(status_with(*work)),
            (Answers::Silent, SyncRequest::Status(_)) => {
                SyncResponse::Status(status_with(Work::ZERO))
            }
            (Answers::Honest { headers, .. }, SyncRequest::GetHeaders { .. }) => {
                self.headers_served += 1;
                SyncResponse::Headers(headers.clone())
            }
            (Answers::Branch { headers, index, .. }, SyncRequest::GetHeaders { locator, .. }) => {
                let page = page_after(headers, index, &locator);
                self.headers_served += 1;
                SyncResponse::Headers(page)
            }
            _ => return None,
        })
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use request_response::{Event, Message};
        let SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) = event else {
            return;
        };
        match event {
            Event::Message {
                message:
                    Message::Request {
                        request: Ok(request),
                        channel,
                        ..
                    },
                ..
            } => match self.answer(request) {
                Some(response) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
                None => self.held.push(channel),
            },
            Event::Message {
                message: Message::Response { response, .. },
                ..
            } => match response {
                SyncResponse::Blocks(_) => self.tally.0 += 1,
                SyncResponse::Refused(_) => self.tally.1 += 1,
                _ => {}
            },
            Event::OutboundFailure { .. } => self.tally.2 += 1,
            _ => {}
        }
    }

    /// Runs the swarm for `duration`.
    pub(crate) async fn pump(&mut self, duration: Duration) {
        let deadline = tokio::time::sleep(duration);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = &mut deadline => return,
            }
        }
    }

    /// Dials `node` and runs until it subscribed us to the blocks topic and the handshake
    /// had time to complete.
    pub(crate) async fn connect(&mut self, node: &Node) {
        self.swarm.dial(multiaddr(node)).expect("dial");
        let node_id: PeerId = node.peer_id.parse().expect("peer id");
        let blocks = Topics::new(&regtest().network_id).blocks.hash();
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the node did not subscribe the test peer\n{}",
                node.log()
            );
            let event =
                tokio::time::timeout(Duration::from_millis(100), self.swarm.select_next_some())
                    .await;
            let Ok(event) = event else { continue };
            let subscribed = matches!(&event, SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }))
                if *peer_id == node_id && *topic == blocks);
            self.on_event(event);
            if subscribed {
                break;
            }
        }
        self.pump(Duration::from_millis(500)).await;
    }

    pub(crate) fn publish_block(&mut self, block: &Block) {
        self.publish_block_bytes(encoding::encode(block))
            .expect("published");
    }

    /// Publishes `bytes` on the blocks topic as they are (gossipsub still refuses what
    /// exceeds its own transmit limit).
    pub(crate) fn publish_block_bytes(
        &mut self,
        bytes: Vec<u8>,
    ) -> Result<gossipsub::MessageId, gossipsub::PublishError> {
        let topic = Topics::new(&regtest().network_id).blocks;
        self.swarm.behaviour_mut().gossipsub.publish(topic, bytes)
    }

    pub(crate) fn publish_tx(&mut self, tx: &Transaction) -> bool {
        let topic = Topics::new(&regtest().network_id).txs;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, encoding::encode(tx))
            .is_ok()
    }
}

/// The node's p2p address.
fn multiaddr(node: &Node) -> Multiaddr {
    node.p2p
        .as_deref()
        .expect("the node listens for peers")
        .parse()
        .expect("multiaddr")
}

/// Writes its request bytes verbatim on a sync stream and reads whatever comes back.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.take(1 << 20).read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_request(&protocol::SYNC_PROTOCOL, io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_request(&protocol::SYNC_PROTOCOL, io, bytes)
            .await
    }
}

/// A peer that only opens sync streams and writes raw frames on them: what a hostile
/// implementation of the wire format could send.
pub(crate) struct RawPeer {
    swarm: Swarm<request_response::Behaviour<RawCodec>>,
    /// Written verbatim as the answer to every request the node sends us.
    answer: Option<Vec<u8>>,
}

impl RawPeer {
    /// A peer that sends frames and answers nothing.
    pub(crate) fn new() -> RawPeer {
        RawPeer::build(None)
    }

    /// A peer that answers every request of the node (its status request first) with
    /// `answer`, written verbatim.
    pub(crate) fn answering(answer: Vec<u8>) -> RawPeer {
        RawPeer::build(Some(answer))
    }

    fn build(answer: Option<Vec<u8>>) -> RawPeer {
        let support = if answer.is_some() {
            ProtocolSupport::Full
        } else {
            ProtocolSupport::Outbound
        };
        let behaviour = request_response::Behaviour::with_codec(
            RawCodec,
            [(protocol::SYNC_PROTOCOL, support)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
        );
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| behaviour)
            .expect("raw behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build();
        RawPeer { swarm, answer }
    }

    pub(crate) fn id(&self) -> String {
        self.swarm.local_peer_id().to_base58()
    }

    /// Connects to `node`, then writes each of `frames` on its own sync stream, 300 ms
    /// apart; returns when the last is queued (pump the swarm to get it out).
    pub(crate) async fn send_frames(&mut self, node: &Node, frames: Vec<Vec<u8>>) {
        let node_id: PeerId = node.peer_id.parse().expect("peer id");
        self.swarm.dial(multiaddr(node)).expect("dial");
        let started = Instant::now();
        while !self.swarm.is_connected(&node_id) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the raw peer did not connect\n{}",
                node.log()
            );
            let event =
                tokio::time::timeout(Duration::from_millis(100), self.swarm.select_next_some())
                    .await;
            if let Ok(event) = event {
                self.on_event(event);
            }
        }
        for (i, frame) in frames.into_iter().enumerate() {
            if i > 0 {
                self.pump(Duration::from_millis(300)).await;
            }
            self.swarm.behaviour_mut().send_request(&node_id, frame);
        }
    }

    fn on_event(&mut self, event: SwarmEvent<request_response::Event<Vec<u8>, Vec<u8>>>) {
        let (Some(answer), SwarmEvent::Behaviour(request_response::Event::Message { message, .. })) =
            (&self.answer, event)
        else {
            return;
        };
        if let request_response::Message::Request { channel, .. } = message {
            let _ = self
                .swarm
                .behaviour_mut()
                .send_response(channel, answer.clone());
        }
    }

    /// Runs the swarm for `duration`.
    pub(crate) async fn pump(&mut self, duration: Duration) {
        let deadline = tokio::time::sleep(duration);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = &mut deadline => return,
            }
        }
    }
}
