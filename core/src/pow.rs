//! Proof of work: compact `bits`, 256-bit targets and chain work.

use crate::hash::BlockHash;
use ruint::aliases::U256;
use std::fmt;

/// The compact ("nBits") encoding of a target, as in Bitcoin's header.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    bincode::Encode,
    bincode::Decode,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct CompactTarget(pub u32);

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:#010x})", self.0)
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Why a compact target is not a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The sign bit is set on a non-zero mantissa.
    #[error("compact target {0:#010x} is negative")]
    Negative(u32),
    /// The value does not fit in 256 bits.
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    /// The target is zero: no hash could meet it.
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
}

/// A 256-bit target: a header is valid proof of work if its hash, read as a little-endian
/// integer, is at most the target.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(pub U256);

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({:#066x})", self.0)
    }
}

impl Target {
    /// The largest possible target.
    pub const MAX: Target = Target(U256::MAX);

    /// Decodes compact bits exactly as Bitcoin's `arith_uint256::SetCompact`, rejecting the
    /// negative, overflowing and zero encodings instead of silently mapping them.
    pub fn from_compact(bits: CompactTarget) -> Result<Target, PowError> {
        let raw = bits.0;
        let size = raw >> 24;
        let mut word = raw & 0x007f_ffff;
        if word != 0 && raw & 0x0080_0000 != 0 {
            return Err(PowError::Negative(raw));
        }
        if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
            return Err(PowError::Overflow(raw));
        }
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from(word)
        } else {
            U256::from(word) << (8 * (size - 3) as usize)
        };
        if value.is_zero() {
            return Err(PowError::Zero(raw));
        }
        Ok(Target(value))
    }

    /// Encodes as compact bits (Bitcoin's `GetCompact`); lossy below the top 23 bits.
    pub fn to_compact(&self) -> CompactTarget {
        let bits = 256 - self.0.leading_zeros() as u32;
        let mut size = bits.div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            (self.0.as_limbs()[0] << (8 * (3 - size))) as u32
        } else {
            (self.0 >> (8 * (size - 3) as usize)).as_limbs()[0] as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | (size << 24))
    }

    /// The target as 32 little-endian bytes (comparable byte-wise from the end with a hash).
    pub fn to_le_bytes(&self) -> [u8; 32] {
        self.0.to_le_bytes::<32>()
    }

    /// Whether `hash`, read as a little-endian 256-bit integer, is at most this target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        U256::from_le_bytes(hash.to_byte_array()) <= self.0
    }

    /// Expected number of hashes to find a block: 2^256 / (target + 1).
    pub fn work(&self) -> Work {
        // 2^256 does not fit; (2^256 - t - 1) / (t + 1) + 1 is the same number (Bitcoin's trick).
        match self.0.checked_add(U256::from(1u8)) {
            None => Work(U256::from(1u8)),
            Some(denominator) => Work(((!self.0) / denominator).saturating_add(U256::from(1u8))),
        }
    }

    /// How many times harder than `easiest` this target is (`getdifficulty`).
    pub fn difficulty_relative_to(&self, easiest: &Target) -> f64 {
        u256_to_f64(easiest.0) / u256_to_f64(self.0)
    }

    /// `self * numerator / denominator`, saturating at `ceiling`; used by retargeting.
    pub fn scaled(&self, numerator: u64, denominator: u64, ceiling: &Target) -> Target {
        debug_assert!(denominator > 0);
        // Divide first when the product could overflow 256 bits: targets are far below 2^224
        // in practice, but the ceiling keeps the result honest either way.
        let value = match self.0.checked_mul(U256::from(numerator)) {
            Some(product) => product / U256::from(denominator.max(1)),
            None => (self.0 / U256::from(denominator.max(1))).saturating_mul(U256::from(numerator)),
        };
        Target(value.min(ceiling.0).max(U256::from(1u8)))
    }
}

fn u256_to_f64(v: U256) -> f64 {
    v.as_limbs().iter().rev().fold(0.0, |acc, &limb| {
        acc * 18_446_744_073_709_551_616.0 + limb as f64
    })
}

/// Expected hashes behind a block or chain; the fork choice compares cumulative `Work`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Work(pub U256);

impl Work {
    /// No work.
    pub const ZERO: Work = Work(U256::ZERO);

    /// Cumulative addition; saturates (2^256 hashes will never be done).
    pub fn saturating_add(self, rhs: Work) -> Work {
        Work(self.0.saturating_add(rhs.0))
    }

    /// 64 hex digits, as `chainwork` in RPC.
    pub fn to_hex(&self) -> String {
        format!("{:064x}", self.0)
    }

    /// Parses 64 (or fewer) hex digits.
    pub fn from_hex(s: &str) -> Option<Work> {
        U256::from_str_radix(s, 16).ok().map(Work)
    }

    /// Big-endian bytes, for storage.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes::<32>()
    }

    /// From big-endian bytes.
    pub fn from_be_bytes(bytes: [u8; 32]) -> Work {
        Work(U256::from_be_bytes(bytes))
    }

    /// Approximate value as a float (for hash-rate estimates).
    pub fn as_f64(&self) -> f64 {
        u256_to_f64(self.0)
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({:#x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_round_trips_bitcoin_values() {
        for bits in [
            0x1d00ffffu32,
            0x207fffff,
            0x1b0404cb,
            0x1e010000,
            0x03123456,
            0x04123456,
        ] {
            let t = Target::from_compact(CompactTarget(bits)).unwrap();
            assert_eq!(t.to_compact(), CompactTarget(bits), "{bits:#x}");
        }
        let genesis = Target::from_compact(CompactTarget(0x1d00ffff)).unwrap();
        assert_eq!(genesis.0, U256::from(0xffffu64) << 208);
    }

    #[test]
    fn compact_rejects_negative_overflow_and_zero() {
        assert_eq!(
            Target::from_compact(CompactTarget(0x04923456)),
            Err(PowError::Negative(0x04923456))
        );
        assert_eq!(
            Target::from_compact(CompactTarget(0xff123456)),
            Err(PowError::Overflow(0xff123456))
        );
        assert_eq!(
            Target::from_compact(CompactTarget(0x22000100)),
            Err(PowError::Overflow(0x22000100))
        );
        assert_eq!(
            Target::from_compact(CompactTarget(0x21010000)),
            Err(PowError::Overflow(0x21010000))
        );
        assert_eq!(
            Target::from_compact(CompactTarget(0)),
            Err(PowError::Zero(0))
        );
        assert_eq!(
            Target::from_compact(CompactTarget(0x01003456)),
            Err(PowError::Zero(0x01003456))
        );
        // 0x20 bytes with a 3-byte mantissa is the largest non-overflowing size.
        assert!(Target::from_compact(CompactTarget(0x207fffff)).is_ok());
    }

    #[test]
    fn work_is_two_to_256_over_target_plus_one() {
        let t = Target::from_compact(CompactTarget(0x1d00ffff)).unwrap();
        // Bitcoin's genesis block has work 0x100010001.
        assert_eq!(t.work().0, U256::from(0x1_0001_0001u64));
        assert_eq!(Target(U256::from(0u8)).work().0, U256::MAX); // 2^256 - 1 ~ 2^256
        assert_eq!(Target::MAX.work().0, U256::from(1u8));
        let half = Target(U256::MAX >> 1);
        assert_eq!(half.work().0, U256::from(2u8));
    }

    #[test]
    fn scaled_is_clamped_to_ceiling() {
        let limit = Target::from_compact(CompactTarget(0x207fffff)).unwrap();
        let t = Target::from_compact(CompactTarget(0x1e010000)).unwrap();
        assert_eq!(t.scaled(4, 1, &limit).0, t.0 * U256::from(4u8));
        assert_eq!(limit.scaled(4, 1, &limit), limit);
        assert!(t.difficulty_relative_to(&limit) > 1.0);
    }
}
