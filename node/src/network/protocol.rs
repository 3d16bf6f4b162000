//! The wire protocol: every protocol id, topic name and message bound of Cairn's p2p
//! network, in this one module (STYLE §7), plus the messages of the sync protocol.
//!
//! Messages are encoded with [`cairn_core::encoding`] (bincode, bounded); the framing and the
//! size checks that run before anything is allocated are in [`super::codec`].

use cairn_core::chain::state::MAX_HEADERS_RESULTS;
use cairn_core::{Block, BlockHash, BlockHeader, ChainParams, Hash256, Work};
use libp2p::StreamProtocol;
use libp2p::gossipsub::IdentTopic;

/// Version of the sync protocol messages below; bumped with any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// The request-response protocol for status, headers and blocks.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/sync/1");

/// The identify protocol version string (identify is informational; the [`Status`]
/// handshake is what decides whether a peer is on our network).
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/cairn/id/1";

/// Agent string announced by identify and in [`Status::user_agent`].
pub const USER_AGENT: &str = concat!("cairn/", env!("CARGO_PKG_VERSION"));

/// Largest encoded sync request: a full locator is about 40 hashes, a block request
/// [`MAX_BLOCKS_PER_REQUEST`] hashes; 16 KiB leaves ample room and nothing more.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Largest encoded sync response. A blocks reply stops adding blocks once it holds
/// [`BLOCKS_RESPONSE_SOFT_LIMIT`] bytes but always carries at least one block, so the bound
/// is that soft limit plus the largest block any network may allow, plus framing.
pub const MAX_RESPONSE_BYTES: usize =
    BLOCKS_RESPONSE_SOFT_LIMIT + cairn_core::params::MAX_BLOCK_SIZE_LIMIT + 64 * 1024;

/// A blocks reply stops adding blocks beyond this many bytes.
pub const BLOCKS_RESPONSE_SOFT_LIMIT: usize = 2 * 1024 * 1024;

// Every response the protocol allows must also pass the decoder's hard limit.
const _: () = assert!(MAX_RESPONSE_BYTES <= cairn_core::encoding::MAX_ENCODED_SIZE);

/// Most headers in one reply (Bitcoin's 2000); a full reply means "ask again".
pub const MAX_HEADERS_PER_RESPONSE: usize = MAX_HEADERS_RESULTS;

/// Most block hashes in one `GetBlocks` request.
pub const MAX_BLOCKS_PER_REQUEST: usize = 32;

/// Most hashes in a block locator (10 dense + one per doubling of 2^32 heights, rounded up).
pub const MAX_LOCATOR_HASHES: usize = 64;

/// Longest network id accepted in a handshake ([`cairn_core::params`] allows 64).
pub const MAX_NETWORK_ID_LEN: usize = 64;

/// Longest user agent accepted in a handshake.
pub const MAX_USER_AGENT_LEN: usize = 256;

/// Bytes a gossip frame may carry beyond the largest block: protobuf fields, the
/// author's public key and signature, sequence number and topic.
pub const GOSSIP_OVERHEAD_BYTES: usize = 64 * 1024;

/// The Kademlia protocol of a network: separate DHTs per network, so that discovery never
/// hands us peers of another chain.
pub fn kad_protocol(network_id: &str) -> StreamProtocol {
    StreamProtocol::try_from_owned(format!("/cairn/{network_id}/kad/1"))
        .expect("protocol names start with a slash")
}

/// Name of the gossip topic carrying new blocks of a network.
pub fn blocks_topic_name(network_id: &str) -> String {
    format!("cairn/{network_id}/blocks/1")
}

/// Name of the gossip topic carrying new transactions of a network.
pub fn txs_topic_name(network_id: &str) -> String {
    format!("cairn/{network_id}/txs/1")
}

/// The gossip topics of one network.
#[derive(Clone, Debug)]
pub struct Topics {
    /// New blocks.
    pub blocks: IdentTopic,
    /// New transactions.
    pub txs: IdentTopic,
}

impl Topics {
    /// The topics of `network_id`.
    pub fn new(network_id: &str) -> Topics {
        Topics {
            blocks: IdentTopic::new(blocks_topic_name(network_id)),
            txs: IdentTopic::new(txs_topic_name(network_id)),
        }
    }
}

/// Largest gossip frame for a network: a maximum-size block plus overhead.
pub fn max_gossip_bytes(params: &ChainParams) -> usize {
    params.max_block_size + GOSSIP_OVERHEAD_BYTES
}

/// What a node says about itself in the handshake: which network it is on and how far
/// its chain goes. Sent by both sides when a connection is established, and again from
/// time to time.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Status {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol_version: u32,
    /// The network id of its `genesis.json`.
    pub network_id: String,
    /// Its genesis block.
    pub genesis_hash: BlockHash,
    /// Hash of all its consensus parameters.
    pub params_hash: Hash256,
    /// Its active tip.
    pub best_hash: BlockHash,
    /// Height of that tip.
    pub best_height: u32,
    /// Cumulative work of that tip.
    pub chainwork: Work,
    /// Software name and version.
    pub user_agent: String,
}

impl Status {
    /// Why a peer with this status cannot be on our network, if it cannot.
    pub fn incompatibility(&self, params: &ChainParams) -> Option<String> {
        if self.network_id != params.network_id {
            return Some(format!(
                "network id {:?} differs from ours {:?}",
                self.network_id, params.network_id
            ));
        }
        if self.genesis_hash != params.genesis_hash {
            return Some(format!(
                "genesis {} differs from ours {}",
                self.genesis_hash, params.genesis_hash
            ));
        }
        if self.params_hash != params.params_hash {
            return Some(format!(
                "chain parameters hash {} differs from ours {}",
                self.params_hash, params.params_hash
            ));
        }
        if self.protocol_version != PROTOCOL_VERSION {
            return Some(format!(
                "protocol version {} differs from ours {PROTOCOL_VERSION}",
                self.protocol_version
            ));
        }
        None
    }

    /// Whether the fields a peer controls are within bounds.
    pub fn is_well_formed(&self) -> bool {
        self.network_id.len() <= MAX_NETWORK_ID_LEN && self.user_agent.len() <= MAX_USER_AGENT_LEN
    }
}

/// A request of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum SyncRequest {
    /// "Here is my status; what is yours?" Answered with [`SyncResponse::Status`].
    Status(Status),
    /// Headers of the responder's active chain after the first locator hash it knows, up
    /// to [`MAX_HEADERS_PER_RESPONSE`] or `stop`. Answered with [`SyncResponse::Headers`].
    GetHeaders {
        /// Block locator of the requester's active chain (newest first, genesis last).
        locator: Vec<BlockHash>,
        /// Last header wanted, if any.
        stop: Option<BlockHash>,
    },
    /// Bodies of these blocks (at most [`MAX_BLOCKS_PER_REQUEST`]). Answered with
    /// [`SyncResponse::Blocks`]: the ones the responder has, in request order, possibly cut
    /// short at [`BLOCKS_RESPONSE_SOFT_LIMIT`] bytes.
    GetBlocks(Vec<BlockHash>),
}

impl SyncRequest {
    /// Why the request breaks the protocol's bounds, if it does.
    pub fn violation(&self) -> Option<String> {
        match self {
            SyncRequest::Status(status) if !status.is_well_formed() => {
                Some("status with oversized strings".into())
            }
            SyncRequest::GetHeaders { locator, .. } if locator.len() > MAX_LOCATOR_HASHES => {
                Some(format!(
                    "locator of {} hashes exceeds {MAX_LOCATOR_HASHES}",
                    locator.len()
                ))
            }
            SyncRequest::GetBlocks(hashes) if hashes.len() > MAX_BLOCKS_PER_REQUEST => {
                Some(format!(
                    "request for {} blocks exceeds {MAX_BLOCKS_PER_REQUEST}",
                    hashes.len()
                ))
            }
            _ => None,
        }
    }

    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncRequest::Status(_) => "status",
            SyncRequest::GetHeaders { .. } => "getheaders",
            SyncRequest::GetBlocks(_) => "getblocks",
        }
    }
}

/// A response of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum SyncResponse {
    /// The responder's status.
    Status(Status),
    /// Consecutive headers, oldest first.
    Headers(Vec<BlockHeader>),
    /// Block bodies, in request order.
    Blocks(Vec<Block>),
    /// The request was not served (rate limit, node shutting down).
    Refused(String),
}

impl SyncResponse {
    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncResponse::Status(_) => "status",
            SyncResponse::Headers(_) => "headers",
            SyncResponse::Blocks(_) => "blocks",
            SyncResponse::Refused(_) => "refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_derived_from_the_network_id() {
        assert_eq!(
            blocks_topic_name("cairn-regtest"),
            "cairn/cairn-regtest/blocks/1"
        );
        assert_eq!(txs_topic_name("cairn-regtest"), "cairn/cairn-regtest/txs/1");
        let a = Topics::new("net-a");
        let b = Topics::new("net-b");
        assert_ne!(a.blocks.hash(), b.blocks.hash());
        assert_ne!(a.blocks.hash(), a.txs.hash());
        assert_eq!(a.blocks.hash(), Topics::new("net-a").blocks.hash());
        assert_eq!(kad_protocol("net-a").as_ref(), "/cairn/net-a/kad/1");
    }

    #[test]
    fn response_bound_covers_the_largest_block() {
        let params = ChainParams::regtest();
        assert!(max_gossip_bytes(&params) > params.max_block_size);
    }

    #[test]
    fn handshake_detects_another_network() {
        let params = ChainParams::regtest();
        let mut status = Status {
            protocol_version: PROTOCOL_VERSION,
            network_id: params.network_id.clone(),
            genesis_hash: params.genesis_hash,
            params_hash: params.params_hash,
            best_hash: params.genesis_hash,
            best_height: 0,
            chainwork: Work::ZERO,
            user_agent: USER_AGENT.into(),
        };
        assert_eq!(status.incompatibility(&params), None);
        let devnet = ChainParams::devnet();
        assert!(status.incompatibility(&devnet).is_some());
        status.params_hash = devnet.params_hash;
        assert!(
            status
                .incompatibility(&params)
                .unwrap()
                .contains("parameters")
        );
    }

    #[test]
    fn request_bounds_are_enforced() {
        let too_many =
            SyncRequest::GetBlocks(vec![BlockHash::default(); MAX_BLOCKS_PER_REQUEST + 1]);
        assert!(too_many.violation().is_some());
        let ok = SyncRequest::GetBlocks(vec![BlockHash::default(); MAX_BLOCKS_PER_REQUEST]);
        assert!(ok.violation().is_none());
        let locator = SyncRequest::GetHeaders {
            locator: vec![BlockHash::default(); MAX_LOCATOR_HASHES + 1],
            stop: None,
        };
        assert!(locator.violation().is_some());
        // The largest legal request fits the request size limit.
        let big = SyncRequest::GetHeaders {
            locator: vec![BlockHash::default(); MAX_LOCATOR_HASHES],
            stop: Some(BlockHash::default()),
        };
        assert!(cairn_core::encoding::encoded_size(&big) < MAX_REQUEST_BYTES);
    }
}
