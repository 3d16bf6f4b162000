//! AVX2 kernel: eight nonces per step, one per 32-bit lane of a `ymm` register. AVX2 has no
//! rotate and no three-input logic, so Σ and σ cost two shifts and an `or` per rotation.

use super::lanes::{eight_rounds, round, schedule_word, sha256d_h7};
use super::{DIGEST_BITS, HEADER_BITS, IV, Job, K, PAD_WORD};
use std::arch::x86_64::*;

type V = __m256i;

/// Whether this CPU has the features [`scan`] enables.
pub(super) fn is_supported() -> bool {
    is_x86_feature_detected!("avx2")
}

#[inline]
#[target_feature(enable = "avx2")]
fn splat(x: u32) -> V {
    _mm256_set1_epi32(x as i32)
}

#[inline]
#[target_feature(enable = "avx2")]
fn add(a: V, b: V) -> V {
    _mm256_add_epi32(a, b)
}

#[inline]
#[target_feature(enable = "avx2")]
fn xor(a: V, b: V) -> V {
    _mm256_xor_si256(a, b)
}

/// Rotate right by `R` (`L` must be `32 - R`: const generics cannot compute it).
#[inline]
#[target_feature(enable = "avx2")]
fn ror<const R: i32, const L: i32>(x: V) -> V {
    _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn big_sigma0(x: V) -> V {
    xor(xor(ror::<2, 30>(x), ror::<13, 19>(x)), ror::<22, 10>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn big_sigma1(x: V) -> V {
    xor(xor(ror::<6, 26>(x), ror::<11, 21>(x)), ror::<25, 7>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn small_sigma0(x: V) -> V {
    xor(
        xor(ror::<7, 25>(x), ror::<18, 14>(x)),
        _mm256_srli_epi32::<3>(x),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
fn small_sigma1(x: V) -> V {
    xor(
        xor(ror::<17, 15>(x), ror::<19, 13>(x)),
        _mm256_srli_epi32::<10>(x),
    )
}

/// `g ^ (e & (f ^ g))`, the same function as `(e & f) | (!e & g)` in three operations.
#[inline]
#[target_feature(enable = "avx2")]
fn ch(e: V, f: V, g: V) -> V {
    xor(g, _mm256_and_si256(e, xor(f, g)))
}

/// `b ^ ((a ^ b) & (b ^ c))`: the majority function; `b ^ c` is the previous round's `a ^ b`,
/// which the compiler reuses, so it costs three operations per round.
#[inline]
#[target_feature(enable = "avx2")]
fn maj(a: V, b: V, c: V) -> V {
    xor(b, _mm256_and_si256(xor(a, b), xor(b, c)))
}

/// The first candidate nonce in `start..start + count`, eight nonces per step.
#[target_feature(enable = "avx2")]
#[allow(unused_assignments)] // the last rounds write state words nobody reads
pub(super) fn scan(job: &Job, start: u32, count: u32) -> Option<u32> {
    const LANES: u64 = 8;
    let end = u64::from(start) + u64::from(count);
    // Steps start at multiples of 8, so lane i's byte-swapped nonce is `swap(base) | i << 24`.
    let lane_high = _mm256_setr_epi32(
        0,
        1 << 24,
        2 << 24,
        3 << 24,
        4 << 24,
        5 << 24,
        6 << 24,
        7 << 24,
    );
    let byte_swap = _mm256_setr_epi8(
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8,
        15, 14, 13, 12,
    );
    let top = splat(job.target_top);
    let mut base = u64::from(start) & !(LANES - 1);
    while base < end {
        let w3 = _mm256_or_si256(splat((base as u32).swap_bytes()), lane_high);
        let h7 = sha256d_h7!(job.midstate, job.tail, w3);
        let swapped = _mm256_shuffle_epi8(h7, byte_swap);
        // Unsigned x <= top  <=>  min(x, top) == x.
        let le = _mm256_cmpeq_epi32(_mm256_min_epu32(swapped, top), swapped);
        let mut hits = _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32;
        if hits != 0 {
            hits &= lane_mask(base, u64::from(start), end);
            if hits != 0 {
                return Some(base as u32 + hits.trailing_zeros());
            }
        }
        base += LANES;
    }
    None
}

/// Bit i set when nonce `base + i` lies in `start..end`.
#[inline]
fn lane_mask(base: u64, start: u64, end: u64) -> u32 {
    let low = if start > base {
        0xff << (start - base)
    } else {
        0xff
    };
    let high = if end < base + 8 {
        0xff >> (base + 8 - end)
    } else {
        0xff
    };
    low & high & 0xff
}
