//! Block and transaction decoding: the canonical encoding has exactly one encoding per value
//! (`cairn_core::encoding` rejects trailing bytes), so whatever decodes must re-encode to the
//! very same bytes; and the context-free checks must give a verdict, never a panic.

use cairn_core::encoding;
use cairn_core::validation::{check_block, check_transaction};
use cairn_core::{Block, BlockHeader, ChainParams, Transaction};
use std::sync::OnceLock;

/// The network every target checks against: regtest, whose easiest-possible target lets
/// the fuzzer's blocks meet their proof of work.
pub fn params() -> &'static ChainParams {
    static PARAMS: OnceLock<ChainParams> = OnceLock::new();
    PARAMS.get_or_init(ChainParams::regtest)
}

/// Decodes a block; a decoded one must re-encode byte for byte, its header must survive the
/// 80-byte form, and `check_block` must answer.
pub fn block_decode(data: &[u8]) {
    let Ok(block) = encoding::decode::<Block>(data) else {
        return;
    };
    assert_round_trip(&block, data, "block");
    assert_eq!(block.encoded_size(), data.len(), "encoded_size disagrees");
    let header = BlockHeader::from_bytes(&block.header.to_bytes());
    assert_eq!(header, block.header, "header changed through its 80 bytes");
    assert_eq!(header.block_hash(), block.block_hash());
    let hash = block.block_hash();
    if let Ok(checked) = check_block(block, params()) {
        assert_eq!(checked.hash(), hash);
        assert_eq!(checked.txids().len(), checked.block().txs.len());
    }
}

/// Decodes a transaction; a decoded one must re-encode byte for byte, its ids must be
/// stable, and `check_transaction` must answer.
pub fn tx_decode(data: &[u8]) {
    let Ok(tx) = encoding::decode::<Transaction>(data) else {
        return;
    };
    assert_round_trip(&tx, data, "transaction");
    assert_eq!(tx.encoded_size(), data.len(), "encoded_size disagrees");
    let (txid, wtxid) = tx.ids();
    assert_eq!(txid, tx.txid());
    assert_eq!(wtxid, tx.wtxid());
    let _ = check_transaction(&tx, params());
}

/// Panics unless `value` encodes to exactly `bytes`.
pub(crate) fn assert_round_trip<T: bincode::Encode>(value: &T, bytes: &[u8], what: &str) {
    let again = encoding::encode(value);
    assert!(
        again == bytes,
        "a decoded {what} re-encodes to different bytes:\n in  {}\n out {}",
        hex::encode(bytes),
        hex::encode(&again)
    );
}
