//! The one place that fixes Cairn's binary encoding: bincode 2, fixed-width little-endian
//! integers, with a hard size limit.
//!
//! Every wire and disk format goes through [`encode`] and [`decode`]. Decoding is bounded
//! (no length prefix can make it allocate more than [`MAX_ENCODED_SIZE`]), rejects trailing
//! bytes (so one value has exactly one encoding) and never panics on any input.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};

/// The largest byte string Cairn ever decodes: above any block the chain parameters allow.
pub const MAX_ENCODED_SIZE: usize = 8 * 1024 * 1024;

type Config = Configuration<LittleEndian, Fixint, Limit<MAX_ENCODED_SIZE>>;

const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_ENCODED_SIZE>();

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Longer than any valid encoding.
    #[error("{len} bytes exceed the {MAX_ENCODED_SIZE}-byte encoding limit")]
    TooLarge {
        /// Input length.
        len: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    /// Malformed or truncated bytes.
    #[error("{0}")]
    Malformed(String),
}

/// Encodes a value in the canonical format.
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, CONFIG).expect("encoding into a Vec cannot fail for Cairn types")
}

/// Appends the canonical encoding of `value` to `buf`.
pub fn encode_into<T: bincode::Encode>(value: &T, buf: &mut Vec<u8>) {
    bincode::encode_into_std_write(value, buf, CONFIG)
        .expect("encoding into a Vec cannot fail for Cairn types");
}

/// Size of the canonical encoding without allocating it.
pub fn encoded_size<T: bincode::Encode>(value: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::encode_into_writer(value, &mut counter, CONFIG)
        .expect("size counting cannot fail for Cairn types");
    counter.bytes_written
}

/// Decodes exactly one value from `bytes`.
pub fn decode<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_ENCODED_SIZE {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    let (value, read) = bincode::decode_from_slice(bytes, CONFIG)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&0x0102_0304u32), vec![4, 3, 2, 1]);
        assert_eq!(encode(&vec![7u8]), vec![1, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(encoded_size(&vec![7u8]), 9);
    }

    #[test]
    fn trailing_and_truncated_bytes_are_rejected() {
        assert!(matches!(
            decode::<u32>(&[1, 2, 3, 4, 5]),
            Err(DecodeError::TrailingBytes(1))
        ));
        assert!(matches!(
            decode::<u32>(&[1, 2, 3]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.push(0);
        assert!(decode::<Vec<u64>>(&bytes).is_err());
        let too_long = vec![0u8; MAX_ENCODED_SIZE + 1];
        assert!(matches!(
            decode::<Vec<u8>>(&too_long),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
