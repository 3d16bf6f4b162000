//! The portable kernel: the `sha2` crate's compression function with the midstate reused.
//! It runs on every target (the `sha2` crate picks its own fastest backend), with no early
//! reject, since `compress256` finishes every round.

use super::{DIGEST_BITS, HEADER_BITS, IV, Job, PAD_WORD};
use sha2::block_api::compress256;

/// The first candidate nonce in `start..start + count`.
pub(super) fn scan(job: &Job, start: u32, count: u32) -> Option<u32> {
    let mut block2 = [0u8; 64];
    for (i, word) in job.tail.iter().enumerate() {
        block2[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    block2[16..20].copy_from_slice(&PAD_WORD.to_be_bytes());
    block2[60..64].copy_from_slice(&HEADER_BITS.to_be_bytes());
    let mut digest_block = [0u8; 64];
    digest_block[32..36].copy_from_slice(&PAD_WORD.to_be_bytes());
    digest_block[60..64].copy_from_slice(&DIGEST_BITS.to_be_bytes());

    let end = u64::from(start) + u64::from(count);
    (u64::from(start)..end).map(|n| n as u32).find(|&nonce| {
        block2[12..16].copy_from_slice(&nonce.to_le_bytes());
        let mut state = job.midstate;
        compress256(&mut state, &[block2]);
        for (i, word) in state.iter().enumerate() {
            digest_block[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
        }
        let mut state = IV;
        compress256(&mut state, &[digest_block]);
        job.is_candidate(state[7])
    })
}
