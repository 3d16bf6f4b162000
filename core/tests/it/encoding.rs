//! The canonical encoding (STYLE §8): every encoded type round-trips, every strict prefix and
//! every extension of a valid encoding is rejected, and decoding never panics — on arbitrary
//! bytes, or on valid encodings with bits flipped, words overwritten (length prefixes) and
//! bytes cut. Whatever decodes re-encodes to exactly the input: one value, one encoding.

use cairn_core::block::HEADER_SIZE;
use cairn_core::chain::{BlockEntry, Validity};
use cairn_core::encoding::{DecodeError, MAX_ENCODED_SIZE, decode, encode, encoded_size};
use cairn_core::keys::PubkeyHash;
use cairn_core::store::BlockUndo;
use cairn_core::{
    Amount, Block, BlockHash, BlockHeader, Coin, CompactTarget, MerkleRoot, OutPoint, Transaction,
    TxIn, TxOut, Txid, Work,
};
use proptest::collection::vec;
use proptest::prelude::*;
use std::fmt::Debug;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(version, prev, root, time, bits, nonce)| BlockHeader {
            version,
            prev_blockhash: BlockHash::from_byte_array(prev),
            merkle_root: MerkleRoot::from_byte_array(root),
            time,
            bits: CompactTarget(bits),
            nonce,
        })
}

fn outpoint() -> impl Strategy<Value = OutPoint> {
    (any::<[u8; 32]>(), any::<u32>()).prop_map(|(txid, vout)| OutPoint {
        txid: Txid::from_byte_array(txid),
        vout,
    })
}

fn txout() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), any::<[u8; 20]>()).prop_map(|(amount, address)| TxOut {
        amount: Amount::from_base(amount),
        address: PubkeyHash(address),
    })
}

fn txin() -> impl Strategy<Value = TxIn> {
    (outpoint(), any::<[u8; 64]>(), any::<[u8; 33]>()).prop_map(
        |(prevout, signature, public_key)| TxIn {
            prevout,
            signature,
            public_key,
        },
    )
}

fn transaction() -> impl Strategy<Value = Transaction> {
    (
        any::<u32>(),
        vec(txin(), 0..4),
        vec(txout(), 0..4),
        any::<u32>(),
        vec(any::<u8>(), 0..120),
    )
        .prop_map(
            |(version, inputs, outputs, lock_height, data)| Transaction {
                version,
                inputs,
                outputs,
                lock_height,
                data,
            },
        )
}

fn block() -> impl Strategy<Value = Block> {
    (header(), vec(transaction(), 0..4)).prop_map(|(header, txs)| Block { header, txs })
}

fn coin() -> impl Strategy<Value = Coin> {
    (txout(), any::<u32>(), any::<bool>()).prop_map(|(output, height, is_coinbase)| Coin {
        output,
        height,
        is_coinbase,
    })
}

fn block_undo() -> impl Strategy<Value = BlockUndo> {
    vec((outpoint(), coin()), 0..6).prop_map(|spent| BlockUndo { spent })
}

fn validity() -> impl Strategy<Value = Validity> {
    prop_oneof![
        Just(Validity::HeaderValid),
        Just(Validity::Valid),
        ".{0,40}".prop_map(|reason| Validity::Invalid { reason }),
        any::<[u8; 32]>().prop_map(|h| Validity::InvalidAncestor(BlockHash::from_byte_array(h))),
    ]
}

fn block_entry() -> impl Strategy<Value = BlockEntry> {
    (
        any::<[u8; 32]>(),
        header(),
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<bool>(),
        validity(),
        any::<u64>(),
    )
        .prop_map(
            |(hash, header, height, work, has_data, validity, seq)| BlockEntry {
                hash: BlockHash::from_byte_array(hash),
                header,
                height,
                chainwork: Work::from_be_bytes(work),
                has_data,
                validity,
                seq,
            },
        )
}

/// A change to a valid encoding: flip a bit, overwrite a little-endian word (hits length
/// prefixes and enum tags), or cut the tail.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Overwrite { at: usize, word: u64 },
    Truncate { at: usize },
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    vec(
        prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
            (any::<usize>(), any::<u64>()).prop_map(|(at, word)| Mutation::Overwrite { at, word }),
            any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        ],
        1..4,
    )
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match *m {
            Mutation::FlipBit { at, bit } => bytes[at % len] ^= 1 << bit,
            Mutation::Overwrite { at, word } => {
                let at = at % len;
                let end = (at + 8).min(len);
                bytes[at..end].copy_from_slice(&word.to_le_bytes()[..end - at]);
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
        }
    }
    bytes
}

/// Decodes without panicking; whatever decodes re-encodes to the same bytes.
fn decodes_canonically_or_fails<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: bincode::Encode + bincode::Decode<()> + Debug,
{
    if let Ok(value) = decode::<T>(bytes) {
        prop_assert_eq!(encode(&value), bytes, "non-canonical decode: {:?}", value);
    }
    Ok(())
}

fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: bincode::Encode + bincode::Decode<()> + PartialEq + Debug,
{
    let bytes = encode(value);
    prop_assert_eq!(bytes.len(), encoded_size(value));
    match decode::<T>(&bytes) {
        Ok(decoded) => prop_assert_eq!(&decoded, value),
        Err(e) => return Err(TestCaseError::fail(format!("valid encoding rejected: {e}"))),
    }
    for cut in 0..bytes.len() {
        prop_assert!(
            decode::<T>(&bytes[..cut]).is_err(),
            "prefix of {} of {} bytes decoded",
            cut,
            bytes.len()
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(matches!(
        decode::<T>(&longer),
        Err(DecodeError::TrailingBytes(1))
    ));
    Ok(())
}

macro_rules! encoding_properties {
    ($module:ident, $ty:ty, $strategy:expr) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn round_trips_and_rejects_prefixes_and_trailing_bytes(value in $strategy) {
                    round_trips::<$ty>(&value)?;
                }

                #[test]
                fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..600)) {
                    decodes_canonically_or_fails::<$ty>(&bytes)?;
                }

                #[test]
                fn decoding_mutated_encodings_never_panics(
                    value in $strategy,
                    mutations in mutations(),
                ) {
                    let bytes = apply(encode(&value), &mutations);
                    decodes_canonically_or_fails::<$ty>(&bytes)?;
                }
            }
        }
    };
}

encoding_properties!(block_header, BlockHeader, header());
encoding_properties!(block, Block, block());
encoding_properties!(transaction, Transaction, transaction());
encoding_properties!(tx_in, TxIn, txin());
encoding_properties!(out_point, OutPoint, outpoint());
encoding_properties!(tx_out, TxOut, txout());
encoding_properties!(block_entry, BlockEntry, block_entry());
encoding_properties!(coin, Coin, coin());
encoding_properties!(block_undo, BlockUndo, block_undo());

proptest! {
    #![proptest_config(config())]

    /// The header's bincode encoding is exactly Bitcoin's 80-byte layout, which is what
    /// its hash covers.
    #[test]
    fn header_encoding_is_the_80_hashed_bytes(header in header(), raw in any::<[u8; 32]>()) {
        let bytes = header.to_bytes();
        prop_assert_eq!(encode(&header), bytes.to_vec());
        prop_assert_eq!(BlockHeader::from_bytes(&bytes), header);
        let mut any_80 = [0u8; HEADER_SIZE];
        for (i, b) in any_80.iter_mut().enumerate() {
            *b = raw[i % 32].wrapping_add(i as u8);
        }
        prop_assert_eq!(BlockHeader::from_bytes(&any_80).to_bytes(), any_80);
    }
}

#[test]
fn length_prefixes_beyond_the_input_are_rejected_without_allocating_them() {
    let header = encode(&BlockHeader::from_bytes(&[0; HEADER_SIZE]));
    for len in [
        1u64,
        1 << 16,
        (MAX_ENCODED_SIZE as u64) / 8,
        MAX_ENCODED_SIZE as u64,
        1 << 40,
        u64::MAX,
    ] {
        let mut block = header.clone();
        block.extend_from_slice(&len.to_le_bytes());
        assert!(decode::<Block>(&block).is_err(), "block with {len} txs");
        let mut tx = 1u32.to_le_bytes().to_vec();
        tx.extend_from_slice(&len.to_le_bytes());
        assert!(decode::<Transaction>(&tx).is_err(), "tx with {len} inputs");
        assert!(
            decode::<BlockUndo>(&len.to_le_bytes()).is_err(),
            "undo of {len} coins"
        );
    }
}

#[test]
fn bytes_longer_than_the_encoding_limit_are_rejected_up_front() {
    let bytes = vec![0u8; MAX_ENCODED_SIZE + 1];
    assert!(matches!(
        decode::<Block>(&bytes),
        Err(DecodeError::TooLarge { len }) if len == MAX_ENCODED_SIZE + 1
    ));
}

#[test]
fn non_canonical_booleans_and_enum_tags_are_rejected() {
    let coin = Coin {
        output: TxOut {
            amount: Amount::from_base(5),
            address: PubkeyHash([1; 20]),
        },
        height: 7,
        is_coinbase: true,
    };
    let mut bytes = encode(&coin);
    let last = bytes.len() - 1;
    assert_eq!(bytes[last], 1);
    bytes[last] = 2;
    assert!(decode::<Coin>(&bytes).is_err(), "bool must be 0 or 1");
    let mut validity = encode(&Validity::Valid);
    validity[0] = 4;
    assert!(decode::<Validity>(&validity).is_err(), "unknown variant");
}
