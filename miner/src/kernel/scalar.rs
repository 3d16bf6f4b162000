//! The safe scalar twin of the SIMD and SHA-NI kernels: the same midstate and early-reject
//! algorithm, one nonce at a time, in plain Rust. The tests compare every kernel with it.

use super::{DIGEST_BITS, HEADER_BITS, IV, Job, K, PAD_WORD};

#[inline(always)]
fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

#[inline(always)]
fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

#[inline(always)]
fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

#[inline(always)]
fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// The message schedule `W[16..len]` from `W[0..16]`.
#[inline(always)]
fn expand(w: &mut [u32; 64], len: usize) {
    for t in 16..len {
        w[t] = small_sigma1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(small_sigma0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
}

/// The `T1` of round `t` on state `s` (FIPS 180-4 §6.2.2 step 3).
#[inline(always)]
fn t1(s: &[u32; 8], t: usize, w: u32) -> u32 {
    let [_, _, _, _, e, f, g, h] = *s;
    let ch = (e & f) ^ (!e & g);
    h.wrapping_add(big_sigma1(e))
        .wrapping_add(ch)
        .wrapping_add(K[t])
        .wrapping_add(w)
}

/// One round of the SHA-256 compression function.
#[inline(always)]
pub(super) fn round(s: &mut [u32; 8], t: usize, w: u32) {
    let [a, b, c, d, e, f, g, _] = *s;
    let t1 = t1(s, t, w);
    let maj = (a & b) ^ (a & c) ^ (b & c);
    let t2 = big_sigma0(a).wrapping_add(maj);
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// The final state word `H7` of SHA-256d(header with `nonce`), computed from the midstate and
/// stopped as soon as `H7` is known (after the `e` half of round 60 of the second hash).
pub(crate) fn final_h7(job: &Job, nonce: u32) -> u32 {
    let mut w = [0u32; 64];
    w[..3].copy_from_slice(&job.tail);
    w[3] = nonce.swap_bytes();
    w[4] = PAD_WORD;
    w[15] = HEADER_BITS;
    expand(&mut w, 64);
    let mut s = job.midstate;
    for (t, &word) in w.iter().enumerate() {
        round(&mut s, t, word);
    }
    let mut digest = [0u32; 8];
    for (i, d) in digest.iter_mut().enumerate() {
        *d = s[i].wrapping_add(job.midstate[i]);
    }

    let mut w = [0u32; 64];
    w[..8].copy_from_slice(&digest);
    w[8] = PAD_WORD;
    w[15] = DIGEST_BITS;
    expand(&mut w, 61);
    let mut s = IV;
    for (t, &word) in w.iter().enumerate().take(60) {
        round(&mut s, t, word);
    }
    // H7 = h after round 63 + IV[7], and that h is the `e` computed in round 60: d + T1.
    let e60 = s[3].wrapping_add(t1(&s, 60, w[60]));
    e60.wrapping_add(IV[7])
}

/// The first candidate nonce in `start..start + count`, one nonce at a time.
pub(crate) fn scan(job: &Job, start: u32, count: u32) -> Option<u32> {
    let end = u64::from(start) + u64::from(count);
    (u64::from(start)..end)
        .map(|n| n as u32)
        .find(|&nonce| job.is_candidate(final_h7(job, nonce)))
}
