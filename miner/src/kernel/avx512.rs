//! AVX-512 kernel: sixteen nonces per step, one per 32-bit lane of a `zmm` register, with
//! native rotates (`vprord`) and three-input logic (`vpternlogd`) for Σ, σ, Ch and Maj.

use super::lanes::{eight_rounds, round, schedule_word, sha256d_h7};
use super::{DIGEST_BITS, HEADER_BITS, IV, Job, K, PAD_WORD};
use std::arch::x86_64::*;

type V = __m512i;

/// Whether this CPU has the features [`scan`] enables.
pub(super) fn is_supported() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u32) -> V {
    _mm512_set1_epi32(x as i32)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn add(a: V, b: V) -> V {
    _mm512_add_epi32(a, b)
}

/// `a ^ b ^ c`; written as plain xors so the compiler can fold constants before it fuses
/// them into one `vpternlogd`.
#[inline]
#[target_feature(enable = "avx512f")]
fn xor3(a: V, b: V, c: V) -> V {
    _mm512_xor_si512(_mm512_xor_si512(a, b), c)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn big_sigma0(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<2>(x),
        _mm512_ror_epi32::<13>(x),
        _mm512_ror_epi32::<22>(x),
    )
}

#[inline]
#[target_feature(enable = "avx512f")]
fn big_sigma1(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<6>(x),
        _mm512_ror_epi32::<11>(x),
        _mm512_ror_epi32::<25>(x),
    )
}

#[inline]
#[target_feature(enable = "avx512f")]
fn small_sigma0(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<7>(x),
        _mm512_ror_epi32::<18>(x),
        _mm512_srli_epi32::<3>(x),
    )
}

#[inline]
#[target_feature(enable = "avx512f")]
fn small_sigma1(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<17>(x),
        _mm512_ror_epi32::<19>(x),
        _mm512_srli_epi32::<10>(x),
    )
}

/// `(e & f) | (!e & g)`: truth table 0xCA over (e, f, g) = (0xF0, 0xCC, 0xAA).
#[inline]
#[target_feature(enable = "avx512f")]
fn ch(e: V, f: V, g: V) -> V {
    _mm512_ternarylogic_epi32::<0xCA>(e, f, g)
}

/// Majority of `a`, `b`, `c`: truth table 0xE8.
#[inline]
#[target_feature(enable = "avx512f")]
fn maj(a: V, b: V, c: V) -> V {
    _mm512_ternarylogic_epi32::<0xE8>(a, b, c)
}

/// The first candidate nonce in `start..start + count`, sixteen nonces per step.
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(unused_assignments)] // the last rounds write state words nobody reads
pub(super) fn scan(job: &Job, start: u32, count: u32) -> Option<u32> {
    const LANES: u64 = 16;
    let end = u64::from(start) + u64::from(count);
    // Steps start at multiples of 16, so lane i's nonce is `base | i` and its byte-swapped
    // form is `swap(base) | i << 24`: one `or` per step instead of a byte shuffle.
    let lane_high = _mm512_setr_epi32(
        0,
        1 << 24,
        2 << 24,
        3 << 24,
        4 << 24,
        5 << 24,
        6 << 24,
        7 << 24,
        8 << 24,
        9 << 24,
        10 << 24,
        11 << 24,
        12 << 24,
        13 << 24,
        14 << 24,
        15 << 24,
    );
    let byte_swap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
    let top = splat(job.target_top);
    let mut base = u64::from(start) & !(LANES - 1);
    while base < end {
        let w3 = _mm512_or_si512(splat((base as u32).swap_bytes()), lane_high);
        let h7 = sha256d_h7!(job.midstate, job.tail, w3);
        let mut hits = _mm512_cmple_epu32_mask(_mm512_shuffle_epi8(h7, byte_swap), top);
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
fn lane_mask(base: u64, start: u64, end: u64) -> u16 {
    let low = if start > base {
        u16::MAX << (start - base)
    } else {
        u16::MAX
    };
    let high = if end < base + 16 {
        u16::MAX >> (base + 16 - end)
    } else {
        u16::MAX
    };
    low & high
}
