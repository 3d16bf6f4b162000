//! JSON-RPC error codes: JSON-RPC 2.0's, then Bitcoin Core's application codes, which Cairn
//! uses with the same meaning so that clients written for `bitcoind` understand them.

/// The request is not valid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Wrong parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Generic application error (Core's RPC_MISC_ERROR).
pub const MISC_ERROR: i64 = -1;
/// Unknown address, key, block or transaction (Core's RPC_INVALID_ADDRESS_OR_KEY).
pub const INVALID_ADDRESS_OR_KEY: i64 = -5;
/// Parameter out of range (Core's RPC_INVALID_PARAMETER).
pub const INVALID_PARAMETER: i64 = -8;
/// Raw transaction or block hex that does not decode (`TX decode failed: …`; Core's
/// RPC_DESERIALIZATION_ERROR).
pub const DESERIALIZATION_ERROR: i64 = -22;
/// `addnode … remove` of a node never added (Core's RPC_CLIENT_NODE_NOT_ADDED).
pub const NODE_NOT_ADDED: i64 = -24;
/// A transaction or block was rejected; the message is the reject reason (Core's
/// RPC_VERIFY_REJECTED).
pub const VERIFY_REJECTED: i64 = -26;
/// The transaction is already in the chain (Core's RPC_VERIFY_ALREADY_IN_CHAIN).
pub const VERIFY_ALREADY_IN_CHAIN: i64 = -27;
/// The node is shutting down (Core's RPC_IN_WARMUP, reused for the other end of life).
pub const SHUTTING_DOWN: i64 = -28;
/// Peer-to-peer functionality unavailable or the peer is unknown (Core's
/// RPC_CLIENT_P2P_DISABLED / RPC_CLIENT_NODE_NOT_CONNECTED).
pub const P2P_ERROR: i64 = -29;
/// `setban … remove` of a peer that is not banned (Core's RPC_CLIENT_INVALID_IP_OR_SUBNET).
pub const NOT_BANNED: i64 = -30;
/// The node refused the request because it is overloaded (too many requests in flight or
/// connections open): retry later. Sent with HTTP 503 (JSON-RPC's server-error range).
pub const SERVER_BUSY: i64 = -32099;
