//! Block headers and blocks.

use crate::encoding;
use crate::hash::{BlockHash, MerkleRoot, sha256d};
use crate::merkle;
use crate::pow::CompactTarget;
use crate::tx::Transaction;

/// Size of an encoded header.
pub const HEADER_SIZE: usize = 80;

/// An 80-byte block header, laid out exactly as Bitcoin's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
pub struct BlockHeader {
    /// Header version.
    pub version: u32,
    /// Hash of the parent block's header.
    pub prev_blockhash: BlockHash,
    /// Merkle root of the block's transactions (see [`merkle`]).
    pub merkle_root: MerkleRoot,
    /// Seconds since the Unix epoch, as claimed by the miner.
    pub time: u32,
    /// The target this block's hash must meet, in compact form.
    pub bits: CompactTarget,
    /// Varied by the miner.
    pub nonce: u32,
}

impl BlockHeader {
    /// The 80 header bytes: little-endian integers, hashes in internal order.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(self.prev_blockhash.as_bytes());
        out[36..68].copy_from_slice(self.merkle_root.as_bytes());
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.0.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses 80 header bytes (every byte string of that length is a header).
    pub fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Self {
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let hash_at = |i: usize| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&bytes[i..i + 32]);
            h
        };
        BlockHeader {
            version: u32_at(0),
            prev_blockhash: BlockHash::from_byte_array(hash_at(4)),
            merkle_root: MerkleRoot::from_byte_array(hash_at(36)),
            time: u32_at(68),
            bits: CompactTarget(u32_at(72)),
            nonce: u32_at(76),
        }
    }

    /// SHA-256d of the 80 bytes.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.to_bytes()))
    }
}

/// A block: a header and its transactions, the coinbase first.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions; `txs[0]` is the coinbase.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// The header hash.
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The merkle root the transactions actually hash to.
    pub fn compute_merkle_root(&self) -> MerkleRoot {
        let wtxids: Vec<_> = self.txs.iter().map(Transaction::wtxid).collect();
        merkle::merkle_root(&wtxids)
    }

    /// Encoded size in bytes (what `max_block_size` limits).
    pub fn encoded_size(&self) -> usize {
        encoding::encoded_size(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash256;

    /// Bitcoin's genesis header, to pin the layout and hash to a well-known vector.
    pub(crate) fn bitcoin_genesis_header() -> BlockHeader {
        BlockHeader {
            version: 1,
            prev_blockhash: BlockHash::ZERO,
            merkle_root: MerkleRoot(
                Hash256::from_display_hex(
                    "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
                )
                .unwrap(),
            ),
            time: 1231006505,
            bits: CompactTarget(0x1d00ffff),
            nonce: 2083236893,
        }
    }

    #[test]
    fn bitcoin_genesis_header_hashes_to_the_known_vector() {
        let header = bitcoin_genesis_header();
        assert_eq!(
            header.block_hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        let target = crate::pow::Target::from_compact(header.bits).unwrap();
        assert!(target.is_met_by(&header.block_hash()));
    }

    #[test]
    fn header_bytes_round_trip_and_match_bincode() {
        let header = bitcoin_genesis_header();
        let bytes = header.to_bytes();
        assert_eq!(BlockHeader::from_bytes(&bytes), header);
        assert_eq!(encoding::encode(&header), bytes.to_vec());
    }
}
