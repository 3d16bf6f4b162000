//! The p2p frames: the first byte picks the channel, the rest is what a peer sent on it.
//!
//! - [`GOSSIP_BLOCK`] / [`GOSSIP_TX`]: a gossipsub message's data, which the node's gossip
//!   validator decodes as one block or one transaction.
//! - [`SYNC_REQUEST`] / [`SYNC_RESPONSE`]: a sync-protocol stream, read by the node's own
//!   codec ([`cairn_node::network::codec::read_frame`]) with the limit of each direction.
//!
//! Whatever decodes must re-encode (re-frame) to the very bytes that were read, and the
//! checks the node runs on a decoded message must answer without panicking.

use super::decode::{assert_round_trip, params};
use cairn_core::{Block, Transaction, encoding};
use cairn_node::network::codec::{read_frame, write_frame};
use cairn_node::network::protocol::{
    MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Status, SyncRequest, SyncResponse,
};
use futures::executor::block_on;
use futures::io::Cursor;

/// Channel byte: a gossiped block.
pub const GOSSIP_BLOCK: u8 = 0;
/// Channel byte: a gossiped transaction.
pub const GOSSIP_TX: u8 = 1;
/// Channel byte: an inbound sync request stream.
pub const SYNC_REQUEST: u8 = 2;
/// Channel byte: a sync response stream.
pub const SYNC_RESPONSE: u8 = 3;

/// Feeds `data[1..]` to the channel `data[0] % 4` picks.
pub fn p2p_frame(data: &[u8]) {
    let Some((&channel, payload)) = data.split_first() else {
        return;
    };
    match channel % 4 {
        GOSSIP_BLOCK => {
            if let Ok(block) = encoding::decode::<Block>(payload) {
                assert_round_trip(&block, payload, "gossiped block");
            }
        }
        GOSSIP_TX => {
            if let Ok(tx) = encoding::decode::<Transaction>(payload) {
                assert_round_trip(&tx, payload, "gossiped transaction");
            }
        }
        SYNC_REQUEST => {
            if let Some(request) = read_and_reframe::<SyncRequest>(payload, MAX_REQUEST_BYTES) {
                let _ = request.violation();
                let _ = request.kind();
                if let SyncRequest::Status(status) = &request {
                    check_status(status);
                }
            }
        }
        _ => {
            if let Some(response) = read_and_reframe::<SyncResponse>(payload, MAX_RESPONSE_BYTES) {
                let _ = response.kind();
                match &response {
                    SyncResponse::Status(status) => check_status(status),
                    SyncResponse::Headers(headers) => {
                        for header in headers {
                            let _ = header.block_hash();
                        }
                    }
                    SyncResponse::Blocks(blocks) => {
                        for block in blocks {
                            let _ = block.compute_merkle_root();
                        }
                    }
                    SyncResponse::Refused(_) => {}
                }
            }
        }
    }
}

/// Reads one frame with the node's codec; when it decodes, writing it back with the node's
/// codec must give exactly the bytes consumed.
fn read_and_reframe<T>(stream: &[u8], limit: usize) -> Option<T>
where
    T: bincode::Encode + bincode::Decode<()>,
{
    let mut reader = Cursor::new(stream);
    let value: T = block_on(read_frame(&mut reader, limit)).ok()?.ok()?;
    let consumed = usize::try_from(reader.position()).expect("a cursor stays within its slice");
    let mut out = Vec::new();
    block_on(write_frame(&mut Cursor::new(&mut out), &value, limit))
        .expect("a frame that was read within the limit can be written back");
    assert!(
        out == stream[..consumed],
        "a decoded frame re-frames to different bytes:\n in  {}\n out {}",
        hex::encode(&stream[..consumed]),
        hex::encode(&out)
    );
    Some(value)
}

/// The handshake checks the node runs on a peer's status.
fn check_status(status: &Status) {
    let _ = status.is_well_formed();
    let _ = status.incompatibility(params());
}
