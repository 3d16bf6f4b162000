//! Nonce-scanning kernels: SHA-256d of one 80-byte header for many nonces.
//!
//! The first 64 header bytes do not change while the nonce does, so they are compressed once
//! (the *midstate*); per nonce only the second block (merkle tail, time, bits, nonce and
//! padding) and the second SHA-256 over the 32-byte digest remain. A kernel does not finish
//! the second SHA-256: a block hash is compared as a little-endian 256-bit integer, so its
//! most significant bytes are the last four digest bytes, state word `H7`, and `H7` is final
//! three rounds before the end. A kernel reports the first nonce whose `H7` (byte-swapped)
//! is at most the target's top word — a *candidate* — and the caller confirms it with a
//! full hash ([`Job::check`]).
//!
//! This is the only module of the crate allowed `unsafe`: the SHA-NI and SIMD kernels call
//! `#[target_feature]` functions, which is sound only after the CPU features were detected at
//! run time. [`Kernel::scan`] is the single place that performs that check before calling
//! them. Every kernel has a safe scalar twin ([`scalar`]) running the same algorithm, and the
//! tests check that all kernels agree with it and with a plain SHA-256d.
#![allow(unsafe_code)]

mod portable;
pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
mod shani;

use crate::error::MinerError;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
#[rustfmt::skip]
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Message word 4 of the header's second block and word 8 of the digest block: the `0x80`
/// padding byte.
pub(crate) const PAD_WORD: u32 = 0x8000_0000;
/// Bit length of an 80-byte header, the last word of its padded second block.
pub(crate) const HEADER_BITS: u32 = 80 * 8;
/// Bit length of a 32-byte digest, the last word of the second hash's only block.
pub(crate) const DIGEST_BITS: u32 = 32 * 8;

/// A nonce-scanning implementation of SHA-256d.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// x86-64 SHA extensions (`sha256rnds2`), several nonces interleaved to hide latency.
    ShaNi,
    /// AVX-512 (F + BW): sixteen nonces at once, one per 32-bit lane.
    Avx512,
    /// AVX2: eight nonces at once, one per 32-bit lane.
    Avx2,
    /// The `sha2` crate's compression function, midstate reused; runs on every target.
    Portable,
}

impl Kernel {
    /// Every kernel, fastest first on the CPUs measured so far (see the crate docs).
    pub const ALL: [Kernel; 4] = [
        Kernel::Avx512,
        Kernel::ShaNi,
        Kernel::Avx2,
        Kernel::Portable,
    ];

    /// The name used on the command line (`--kernel NAME`) and in benchmark reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::ShaNi => "sha-ni",
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// Whether this CPU can run the kernel (detected at run time).
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => shani::is_supported(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::is_supported(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::is_supported(),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::ShaNi | Kernel::Avx512 | Kernel::Avx2 => false,
        }
    }

    /// The kernels this CPU can run, fastest first.
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// The fastest kernel this CPU can run.
    pub fn best() -> Kernel {
        Kernel::ALL
            .into_iter()
            .find(|k| k.is_available())
            .unwrap_or(Kernel::Portable)
    }

    /// Parses a kernel name and checks this CPU can run it.
    pub fn from_name_available(name: &str) -> Result<Kernel, MinerError> {
        let kernel: Kernel = name.parse()?;
        if kernel.is_available() {
            Ok(kernel)
        } else {
            Err(MinerError::KernelUnavailable(kernel.name()))
        }
    }

    /// How many nonces the kernel hashes per inner step (the SIMD width, or the interleave).
    pub fn lanes(self) -> u32 {
        match self {
            Kernel::ShaNi => SHANI_STREAMS as u32,
            Kernel::Avx512 => 16,
            Kernel::Avx2 => 8,
            Kernel::Portable => 1,
        }
    }

    /// The first nonce in `start..start + count` whose hash is a candidate for `job`'s target
    /// (see the module docs), or `None`. `start + count` must not exceed 2^32.
    pub(crate) fn scan(self, job: &Job, start: u32, count: u32) -> Option<u32> {
        debug_assert!(u64::from(start) + u64::from(count) <= 1 << 32);
        if count == 0 {
            return None;
        }
        match self {
            Kernel::Portable => portable::scan(job, start, count),
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi if shani::is_supported() => {
                // SAFETY: `is_supported` detected every target feature `shani::scan` enables
                // (sha, sse2, ssse3, sse4.1) on this CPU, so executing its instructions is
                // defined; the function itself performs no memory access beyond its
                // arguments.
                unsafe { shani::scan::<SHANI_STREAMS>(job, start, count) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 if avx512::is_supported() => {
                // SAFETY: `is_supported` detected avx512f and avx512bw, the only target
                // features `avx512::scan` enables, on this CPU.
                unsafe { avx512::scan(job, start, count) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if avx2::is_supported() => {
                // SAFETY: `is_supported` detected avx2, the only target feature
                // `avx2::scan` enables, on this CPU.
                unsafe { avx2::scan(job, start, count) }
            }
            // Unreachable through the public API (a kernel is checked when chosen), but a
            // kernel the CPU lacks must never execute: fall back to the safe twin.
            Kernel::ShaNi | Kernel::Avx512 | Kernel::Avx2 => scalar::scan(job, start, count),
        }
    }
}

/// How many independent nonces the SHA-NI kernel interleaves: enough to cover a 3-4 cycle
/// `sha256rnds2` latency on CPUs that issue one per cycle, few enough that the state of every
/// stream stays in the sixteen registers SHA instructions can reach. (On the Intel CPU measured,
/// which issues one every third cycle, 2, 3 and 4 streams run at the same speed.)
const SHANI_STREAMS: usize = 3;

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernel {
    type Err = MinerError;

    fn from_str(name: &str) -> Result<Kernel, MinerError> {
        Kernel::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| MinerError::UnknownKernel(name.to_owned()))
    }
}

/// One header and target, prepared for a nonce sweep: the midstate and the words every kernel
/// reuses. Building one costs a single compression; it is rebuilt whenever anything but the
/// nonce changes (an extranonce roll changes the merkle root).
#[derive(Clone, Debug)]
pub(crate) struct Job {
    header: [u8; 80],
    target: [u8; 32],
    /// The target's most significant 32 bits (little-endian bytes 28..32).
    target_top: u32,
    /// State after compressing header bytes 0..64.
    midstate: [u32; 8],
    /// Message words 0..3 of the second block: merkle root tail, time, bits.
    tail: [u32; 3],
}

impl Job {
    /// Prepares `header` (its nonce field is ignored) for sweeping against `target`
    /// (little-endian bytes, as `Target::to_le_bytes`).
    pub(crate) fn new(header: &[u8; 80], target: &[u8; 32]) -> Job {
        let mut midstate = IV;
        let first: [u8; 64] = header[..64]
            .try_into()
            .expect("an 80-byte header has 64 bytes");
        sha2::block_api::compress256(&mut midstate, &[first]);
        let word = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        Job {
            header: *header,
            target: *target,
            target_top: u32::from_le_bytes(target[28..32].try_into().expect("4 bytes")),
            midstate,
            tail: [word(64), word(68), word(72)],
        }
    }

    /// The header bytes with `nonce` in place.
    pub(crate) fn header_with_nonce(&self, nonce: u32) -> [u8; 80] {
        let mut header = self.header;
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        header
    }

    /// Plain SHA-256d of the header with `nonce` (internal byte order).
    pub(crate) fn hash(&self, nonce: u32) -> [u8; 32] {
        Sha256::digest(Sha256::digest(self.header_with_nonce(nonce))).into()
    }

    /// Whether `hash`, read as a little-endian 256-bit integer, is at most the target.
    pub(crate) fn meets_target(&self, hash: &[u8; 32]) -> bool {
        hash.iter().rev().cmp(self.target.iter().rev()) != std::cmp::Ordering::Greater
    }

    /// Confirms a candidate: the full hash when it meets the target.
    pub(crate) fn check(&self, nonce: u32) -> Option<[u8; 32]> {
        let hash = self.hash(nonce);
        self.meets_target(&hash).then_some(hash)
    }

    /// Whether a final state word `H7` makes the nonce a candidate.
    #[inline(always)]
    pub(crate) fn is_candidate(&self, h7: u32) -> bool {
        h7.swap_bytes() <= self.target_top
    }
}

/// Scans with `kernel` until a candidate meets the full target: the first nonce in
/// `start..start + count` whose SHA-256d meets `job`'s target, with that hash.
pub(crate) fn find(kernel: Kernel, job: &Job, start: u32, count: u32) -> Option<(u32, [u8; 32])> {
    let end = u64::from(start) + u64::from(count);
    let mut from = u64::from(start);
    while from < end {
        let nonce = kernel.scan(job, from as u32, (end - from) as u32)?;
        if let Some(hash) = job.check(nonce) {
            return Some((nonce, hash));
        }
        from = u64::from(nonce) + 1;
    }
    None
}

#[cfg(test)]
mod tests;
