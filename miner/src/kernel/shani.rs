//! SHA-NI kernel: the x86 SHA extensions, `N` nonces interleaved.
//!
//! One `sha256rnds2` does two rounds but its result feeds the next one, so a single hash is
//! bound by the instruction's latency while the unit could start a new one every cycle or
//! two. Hashing `N` independent nonces step by step fills those gaps. The state lives in the
//! instruction's `ABEF`/`CDGH` register layout throughout; message words for rounds whose
//! words are padding constants are precomputed with their round constants. A nonce costs 62
//! `sha256rnds2` (rounds 0-1 of the second block are precomputed, the second hash stops after
//! round 61), so a CPU that issues one every third cycle caps this kernel near 186 cycles a
//! nonce.

// Loops over `0..N` index several arrays by stream, which is the point: N independent hashes
// advance side by side.
#![allow(clippy::needless_range_loop)]

use super::{DIGEST_BITS, HEADER_BITS, IV, Job, K, PAD_WORD, scalar};
use std::arch::x86_64::*;

/// Whether this CPU has the features [`scan`] enables.
pub(super) fn is_supported() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

/// A state `[a, b, c, d, e, f, g, h]` in the `sha256rnds2` layout: `(ABEF, CDGH)`, most
/// significant lane first.
#[inline]
#[target_feature(enable = "sse2")]
fn abef_cdgh(s: [u32; 8]) -> (__m128i, __m128i) {
    let [a, b, c, d, e, f, g, h] = s.map(|x| x as i32);
    (_mm_set_epi32(a, b, e, f), _mm_set_epi32(c, d, g, h))
}

/// Round constants `K[t..t + 4]`, lane 0 first.
#[inline]
#[target_feature(enable = "sse2")]
fn k4(t: usize) -> __m128i {
    _mm_set_epi32(
        K[t + 3] as i32,
        K[t + 2] as i32,
        K[t + 1] as i32,
        K[t] as i32,
    )
}

/// `K[t] + w[0]` and `K[t + 1] + w[1]` in lanes 0 and 1: the input of two rounds whose message
/// words are constants.
#[inline]
#[target_feature(enable = "sse2")]
fn k2_plus(t: usize, w: [u32; 2]) -> __m128i {
    let lo = K[t].wrapping_add(w[0]) as i32;
    let hi = K[t + 1].wrapping_add(w[1]) as i32;
    _mm_set_epi32(0, 0, hi, lo)
}

/// Two rounds on every stream; lanes 0 and 1 of `wk[i]` are `W + K` for stream `i`.
#[inline]
#[target_feature(enable = "sha,sse2")]
fn two_rounds<const N: usize>(abef: &mut [__m128i; N], cdgh: &mut [__m128i; N], wk: [__m128i; N]) {
    for i in 0..N {
        let next = _mm_sha256rnds2_epu32(cdgh[i], abef[i], wk[i]);
        cdgh[i] = abef[i];
        abef[i] = next;
    }
    interleave(abef);
}

/// Makes each stream's next rounds depend, for the compiler only, on every stream's current
/// rounds. Left alone, the instruction scheduler (short of registers, as SHA instructions only
/// reach xmm0..xmm15) regroups each stream's rounds, and the latency the interleave should
/// hide comes back. The dependency costs nothing at run time: no instruction is emitted.
#[inline]
#[target_feature(enable = "sse2")]
fn interleave<const N: usize>(x: &mut [__m128i; N]) {
    let tie = |a: &mut __m128i, b: &mut __m128i| {
        // SAFETY: the assembly is empty: it reads and writes nothing but the two registers it
        // is given, which it leaves unchanged.
        unsafe {
            std::arch::asm!(
                "/* {0} {1} */",
                inout(xmm_reg) * a,
                inout(xmm_reg) * b,
                options(pure, nomem, nostack, preserves_flags)
            )
        }
    };
    for i in 1..N {
        let (head, tail) = x.split_at_mut(i);
        tie(&mut head[i - 1], &mut tail[0]);
    }
    for i in (1..N.saturating_sub(1)).rev() {
        let (head, tail) = x.split_at_mut(i);
        tie(&mut head[i - 1], &mut tail[0]);
    }
}

/// Four rounds on every stream with message words `w[i]` (lanes 0..4) from round `t`.
#[inline]
#[target_feature(enable = "sha,sse2")]
fn four_rounds<const N: usize>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    w: &[__m128i; N],
    t: usize,
) {
    let k = k4(t);
    let mut wk = [_mm_setzero_si128(); N];
    for i in 0..N {
        wk[i] = _mm_add_epi32(w[i], k);
    }
    two_rounds(abef, cdgh, wk);
    for wk in wk.iter_mut() {
        *wk = _mm_shuffle_epi32::<0x0E>(*wk);
    }
    two_rounds(abef, cdgh, wk);
}

/// The next four message words from the previous sixteen (`m[0]` oldest), for every stream.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn schedule<const N: usize>(m: &[[__m128i; N]; 4]) -> [__m128i; N] {
    let mut next = [_mm_setzero_si128(); N];
    for i in 0..N {
        let x = _mm_add_epi32(
            _mm_sha256msg1_epu32(m[0][i], m[1][i]),
            _mm_alignr_epi8::<4>(m[3][i], m[2][i]),
        );
        next[i] = _mm_sha256msg2_epu32(x, m[3][i]);
    }
    next
}

/// Message words `W[16t'..]` onwards: shifts the window and returns the newest words.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn advance<const N: usize>(m: &mut [[__m128i; N]; 4]) -> [__m128i; N] {
    let next = schedule(m);
    *m = [m[1], m[2], m[3], next];
    next
}

/// Four rounds per listed start round, each computing its message words first; written out
/// rather than looped so that the compiler unrolls it whatever its cost model thinks.
macro_rules! scheduled_rounds {
    ($abef:ident, $cdgh:ident, $m:ident, [$($t:literal),*]) => {
        $(
            let w = advance(&mut $m);
            four_rounds(&mut $abef, &mut $cdgh, &w, $t);
        )*
    };
}

/// The first candidate nonce in `start..start + count`, `N` nonces per step.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) fn scan<const N: usize>(job: &Job, start: u32, count: u32) -> Option<u32> {
    // Rounds 0 and 1 of the second block see only the template (merkle tail, time).
    let mut after_two = job.midstate;
    scalar::round(&mut after_two, 0, job.tail[0]);
    scalar::round(&mut after_two, 1, job.tail[1]);
    let (abef2, cdgh2) = abef_cdgh(after_two);
    let (mid_abef, mid_cdgh) = abef_cdgh(job.midstate);
    let (iv_abef, iv_cdgh) = abef_cdgh(IV);
    let zero = _mm_setzero_si128();
    let m0_template = _mm_set_epi32(
        0,
        job.tail[2] as i32,
        job.tail[1] as i32,
        job.tail[0] as i32,
    );
    let header_pad = [
        _mm_set_epi32(0, 0, 0, PAD_WORD as i32),
        zero,
        _mm_set_epi32(HEADER_BITS as i32, 0, 0, 0),
    ];
    let header_wk = [
        k2_plus(4, [PAD_WORD, 0]),
        k2_plus(6, [0, 0]),
        k2_plus(8, [0, 0]),
        k2_plus(10, [0, 0]),
        k2_plus(12, [0, 0]),
        k2_plus(14, [0, HEADER_BITS]),
    ];
    let digest_pad = [
        _mm_set_epi32(0, 0, 0, PAD_WORD as i32),
        _mm_set_epi32(DIGEST_BITS as i32, 0, 0, 0),
    ];
    let digest_wk = [
        k2_plus(8, [PAD_WORD, 0]),
        k2_plus(10, [0, 0]),
        k2_plus(12, [0, 0]),
        k2_plus(14, [0, DIGEST_BITS]),
    ];

    let end = u64::from(start) + u64::from(count);
    let mut first = u64::from(start);
    while first < end {
        // Hash 1, second block. Stream i hashes nonce first + i (past `end`: ignored below).
        let mut m = [[zero; N]; 4];
        for i in 0..N {
            let w3 = (first as u32).wrapping_add(i as u32).swap_bytes();
            m[0][i] = _mm_insert_epi32::<3>(m0_template, w3 as i32);
            m[1][i] = header_pad[0];
            m[2][i] = header_pad[1];
            m[3][i] = header_pad[2];
        }
        let mut abef = [abef2; N];
        let mut cdgh = [cdgh2; N];
        let k0 = k4(0);
        let mut wk = [zero; N];
        for i in 0..N {
            wk[i] = _mm_shuffle_epi32::<0x0E>(_mm_add_epi32(m[0][i], k0));
        }
        two_rounds(&mut abef, &mut cdgh, wk);
        for pair in header_wk {
            two_rounds(&mut abef, &mut cdgh, [pair; N]);
        }
        scheduled_rounds!(
            abef,
            cdgh,
            m,
            [16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60]
        );

        // Hash 2 over the 32-byte digest, stopped once H7 is known.
        let mut m = [[zero; N]; 4];
        for i in 0..N {
            let a = _mm_add_epi32(abef[i], mid_abef);
            let c = _mm_add_epi32(cdgh[i], mid_cdgh);
            m[0][i] = _mm_shuffle_epi32::<0x1B>(_mm_unpackhi_epi64(c, a));
            m[1][i] = _mm_shuffle_epi32::<0x1B>(_mm_unpacklo_epi64(c, a));
            m[2][i] = digest_pad[0];
            m[3][i] = digest_pad[1];
        }
        let mut abef = [iv_abef; N];
        let mut cdgh = [iv_cdgh; N];
        let (w0, w1) = (m[0], m[1]);
        four_rounds(&mut abef, &mut cdgh, &w0, 0);
        four_rounds(&mut abef, &mut cdgh, &w1, 4);
        for pair in digest_wk {
            two_rounds(&mut abef, &mut cdgh, [pair; N]);
        }
        scheduled_rounds!(abef, cdgh, m, [16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56]);
        // Rounds 60 and 61 leave e-after-60 in lane F of ABEF: that is the final h.
        let w = schedule(&m);
        let k60 = k4(60);
        // Every stream's result feeds one branch-free mask: a branch per stream would let the
        // compiler sink the later streams' work behind the earlier streams' checks, which
        // undoes the interleave.
        let mut hits = 0u32;
        for i in 0..N {
            let abef61 = _mm_sha256rnds2_epu32(cdgh[i], abef[i], _mm_add_epi32(w[i], k60));
            let h7 = (_mm_cvtsi128_si32(abef61) as u32).wrapping_add(IV[7]);
            hits |= u32::from(job.is_candidate(h7)) << i;
        }
        if hits != 0 {
            let nonce = first + u64::from(hits.trailing_zeros());
            // A hit past the end belongs to no one; later streams are further past it.
            return (nonce < end).then_some(nonce as u32);
        }
        first += N as u64;
    }
    None
}
