//! Result shapes of the methods that the wallet, the lab and tests read back, typed once
//! here: the node serialises these, clients deserialise them. Field names and meanings are
//! INTERFACE's; fields beyond INTERFACE are Cairn's documented extensions (README, "RPC").
//! Hashes are lowercase hex in display order, amounts integers in base units.

use serde::{Deserialize, Serialize};

/// `getblockchaininfo`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockchainInfo {
    /// Network id from genesis.json.
    pub chain: String,
    /// Height of the active tip.
    pub blocks: u32,
    /// Number of headers in the block tree (extension).
    pub headers: usize,
    /// Hash of the active tip.
    pub bestblockhash: String,
    /// Cumulative work of the active chain, hex.
    pub chainwork: String,
    /// Difficulty of the tip relative to the proof-of-work limit.
    pub difficulty: f64,
    /// Median time past of the tip.
    pub mediantime: u64,
    /// The tip's header time (extension).
    pub time: u64,
    /// Address prefix (extension).
    pub hrp: String,
    /// Coinbase maturity in blocks (extension).
    pub coinbase_maturity: u32,
    /// Genesis block hash (extension).
    pub genesis: String,
    /// Blocks held as orphans (extension).
    pub orphans: usize,
}

/// The status of a chain tip, with Bitcoin Core's spelling.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum TipStatus {
    /// The tip of the active chain.
    Active,
    /// A fully validated branch that is not active.
    ValidFork,
    /// All blocks present, not all connected.
    ValidHeaders,
    /// Some bodies missing.
    HeadersOnly,
    /// The branch contains an invalid block.
    Invalid,
}

/// One entry of `getchaintips`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainTip {
    /// Height of the tip.
    pub height: u32,
    /// Hash of the tip.
    pub hash: String,
    /// Length of the branch from where it leaves the active chain (0 for the active tip).
    pub branchlen: u32,
    /// Its status.
    pub status: TipStatus,
}

/// `getmempoolinfo`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: usize,
    /// Sum of their encoded sizes.
    pub bytes: usize,
    /// Minimum relay fee rate, base units per byte.
    pub minfee: u64,
}

/// One entry of `getpeerinfo`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerInfo {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Remote address of the connection.
    pub addr: String,
    /// Whether it connected to us.
    pub inbound: bool,
    /// Unix time of the connection.
    pub connected_since: u64,
    /// Height of its best block, from its status and the blocks it announced (null before
    /// the handshake).
    pub best_height: Option<u32>,
    /// Last ping round trip in milliseconds (null before the first pong).
    pub ping_ms: Option<f64>,
    /// Misbehaviour score.
    pub misbehavior: u32,
}

/// One entry of `listbanned`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BanEntry {
    /// The banned peer id.
    pub peer_id: String,
    /// Unix time the ban ends.
    pub banned_until: u64,
    /// Unix time the ban began (extension, as Core's `ban_created`).
    pub ban_created: u64,
    /// Why: the offense, e.g. `bad-txns-inputs-missingorspent`, or `manually banned`.
    pub reason: String,
}

/// `getmininginfo`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MiningInfo {
    /// Height of the active tip.
    pub blocks: u32,
    /// Difficulty of the tip.
    pub difficulty: f64,
    /// Network hash rate estimated from the last 120 blocks.
    pub networkhashps: f64,
    /// This node's hash rate, averaged since start.
    pub hashps: f64,
    /// Whether continuous or interval mining is on.
    pub mining: bool,
    /// Miner threads.
    pub threads: usize,
    /// The SHA-256d kernel in use (extension).
    pub kernel: String,
    /// The hash-rate cap in hashes per second (`--hashrate`, `sethashrate`), `null` when
    /// uncapped (extension; absent from nodes that predate it).
    #[serde(default)]
    pub hashrate_limit: Option<u64>,
}

/// `gettxoutsetinfo`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxOutSetInfo {
    /// Height of the tip the set belongs to.
    pub height: u32,
    /// Hash of that tip.
    pub bestblock: String,
    /// Number of unspent outputs.
    pub txouts: u64,
    /// Their total value.
    pub total_amount: u64,
    /// A hash of the whole set, equal on converged nodes.
    pub hash_serialized: String,
}

/// One entry of `getaddressutxos`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddressUtxo {
    /// The transaction.
    pub txid: String,
    /// Output index.
    pub vout: u32,
    /// Value.
    pub amount: u64,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it is a coinbase output.
    pub coinbase: bool,
}

/// What one node knows of one block, as `getblocktree` reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum BlockStatus {
    /// On this node's active chain.
    Active,
    /// Body stored and not known invalid, but not on the active chain (a side branch, or
    /// waiting for a parent's body).
    Side,
    /// Only the header is known.
    HeadersOnly,
    /// Known to break a rule, or a descendant of such a block.
    Invalid,
}

/// One block of `getblocktree`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeBlock {
    /// Its hash.
    pub hash: String,
    /// Its parent's hash.
    pub parent: String,
    /// Its height.
    pub height: u32,
    /// Header time.
    pub time: u64,
    /// Number of transactions (null when only the header is known).
    pub txs: Option<usize>,
    /// What this node makes of it.
    pub status: BlockStatus,
    /// When this node first knew it (header or body), Unix milliseconds; null for blocks
    /// it already had when it started.
    pub first_seen_ms: Option<u64>,
}

/// `getblocktree [from_height]` (extension): every block the node knows, header or body, at
/// height ≥ `from` — what `getchaintips` cannot give a fork view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockTree {
    /// The active tip.
    pub tip: String,
    /// Its height.
    pub height: u32,
    /// The lowest height included.
    pub from: u32,
    /// The blocks, by height then hash.
    pub blocks: Vec<TreeBlock>,
}

/// The server-sent events of `GET /events` on the RPC port (extension; cookie auth as for
/// JSON-RPC). Event names are the variants' names in lowercase; the data is the JSON of the
/// fields.
pub mod events {
    use serde::{Deserialize, Serialize};

    /// SSE event name of [`Tip`].
    pub const TIP: &str = "tip";
    /// SSE event name of [`Block`].
    pub const BLOCK: &str = "block";
    /// The path of the event stream on the RPC server.
    pub const PATH: &str = "/events";

    /// The active tip moved.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
    pub struct Tip {
        /// New tip.
        pub hash: String,
        /// Its height.
        pub height: u32,
        /// Blocks disconnected by the move (0 when the tip only advanced).
        pub reorg_depth: usize,
    }

    /// The node knows a block (header or body) it did not know before, from anywhere.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
    pub struct Block {
        /// Its hash.
        pub hash: String,
        /// Its parent's hash.
        pub parent: String,
        /// Its height.
        pub height: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tip_status_uses_core_spelling() {
        for (status, text) in [
            (TipStatus::Active, "active"),
            (TipStatus::ValidFork, "valid-fork"),
            (TipStatus::ValidHeaders, "valid-headers"),
            (TipStatus::HeadersOnly, "headers-only"),
            (TipStatus::Invalid, "invalid"),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), json!(text));
        }
        let tip: ChainTip = serde_json::from_value(
            json!({"height": 3, "hash": "ab", "branchlen": 1, "status": "valid-fork"}),
        )
        .unwrap();
        assert_eq!(tip.status, TipStatus::ValidFork);
    }
}
