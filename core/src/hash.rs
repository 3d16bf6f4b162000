//! SHA-256 and the typed 32-byte hashes of Cairn.
//!
//! All hashes are kept in *internal* byte order (as SHA-256d outputs them) and displayed
//! reversed, as Bitcoin does, so a block hash with leading zeros reads as leading zeros.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The hasher of the maps and sets that live for one block's checks (its created coins, its
/// txids, its spent outpoints) and of the in-memory store: foldhash, seeded afresh for
/// every map. Hashing a 36-byte outpoint with std's SipHash was about half of what a full
/// block's coin lookups and writes cost (`cairn bench validate`).
///
/// foldhash resists only attackers who cannot observe a map's timing over many queries
/// (its README, "HashDoS resistance"). A per-block map is seeded when the block's checks
/// start and dropped when they end, so nobody can probe it; the in-memory store serves
/// tests and benchmarks. Maps that live long and take outpoints from the network, the
/// node's UTXO cache ([`crate::store::CoinCache`]) and the mempool, keep std's keyed
/// SipHash.
pub type ShortLivedHasher = foldhash::quality::RandomState;

/// A 32-byte hash in internal byte order.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, bincode::Encode, bincode::Decode,
)]
pub struct Hash256(pub [u8; 32]);

/// Error parsing a hash from display hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hash hex {0:?}: expected 64 hex characters")]
pub struct HashParseError(pub String);

impl Hash256 {
    /// The all-zero hash (the `prev` of the genesis block).
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// Hex in display order (reversed bytes).
    pub fn to_display_hex(&self) -> String {
        let mut rev = self.0;
        rev.reverse();
        hex::encode(rev)
    }

    /// Parses display-order hex.
    pub fn from_display_hex(s: &str) -> Result<Self, HashParseError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| HashParseError(s.to_owned()))?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_display_hex())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_display_hex())
    }
}

/// Single SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of SHA-256: the hash of headers, transactions and merkle nodes.
pub fn sha256d(data: &[u8]) -> Hash256 {
    Hash256(Sha256::digest(Sha256::digest(data)).into())
}

/// SHA-256d over the concatenation of several byte strings, without copying them together.
pub fn sha256d_parts(parts: &[&[u8]]) -> Hash256 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash256(Sha256::digest(h.finalize()).into())
}

/// Declares a newtype over [`Hash256`] so different kinds of hash cannot be mixed up.
macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, bincode::Encode, bincode::Decode)]
        pub struct $name(pub Hash256);

        impl $name {
            /// The all-zero value.
            pub const ZERO: $name = $name(Hash256::ZERO);
            /// The raw bytes in internal order.
            pub fn to_byte_array(&self) -> [u8; 32] {
                self.0 .0
            }
            /// Builds from raw bytes in internal order.
            pub fn from_byte_array(bytes: [u8; 32]) -> Self {
                $name(Hash256(bytes))
            }
            /// The raw bytes in internal order.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0 .0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Hash256::from_display_hex(s).map($name)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0.to_display_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_newtype!(
    /// SHA-256d of an 80-byte block header.
    BlockHash
);
hash_newtype!(
    /// Transaction id: SHA-256d of the transaction *without* its signatures and public keys,
    /// so a third party cannot change a txid by re-encoding a signature (no malleability).
    Txid
);
hash_newtype!(
    /// Hash of the whole transaction including signatures; the merkle tree commits to these,
    /// so a header commits to every byte of its block.
    Wtxid
);
hash_newtype!(
    /// Root of a block's merkle tree of [`Wtxid`]s.
    MerkleRoot
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hex_is_reversed_and_round_trips() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x01;
        let h = Hash256(bytes);
        let s = h.to_display_hex();
        assert!(s.starts_with("01"));
        assert!(s.ends_with("ab"));
        assert_eq!(Hash256::from_display_hex(&s).unwrap(), h);
        assert!(Hash256::from_display_hex("zz").is_err());
        assert!(Hash256::from_display_hex(&s[..62]).is_err());
    }

    #[test]
    fn sha256d_parts_equals_concatenation() {
        assert_eq!(sha256d_parts(&[b"ab", b"cd"]), sha256d(b"abcd"));
    }
}
