//! Difficulty retargeting and the time rules that protect it.
//!
//! Every `retarget_window` blocks the target is scaled by how long the previous window took
//! compared with how long it should have taken, clamped to ×4 / ÷4 as in Bitcoin. Bitcoin
//! measures the window from its first to its last block, i.e. `window - 1` intervals; here
//! the expected timespan is also `window - 1` intervals, so the off-by-one does not bias the
//! difficulty.
//!
//! **Timewarp (BIP54).** Because the measured window starts at its own first block, a miner
//! majority could set the last block of each window far in the future and the first block of
//! the next far in the past, lowering the difficulty without bound. BIP54 forbids that: the
//! first block of a window may not be more than `timewarp_grace_secs` before its parent,
//! and the last block of a window may not be before the window's first block. The grace, and
//! the future limit that caps how far ahead a window may end, are bounded by a fraction of
//! the window's expected timespan ([`crate::params::TIME_BOUND_DIVISOR`]), or they would
//! leave a majority all the room it needs anyway.

use crate::block::BlockHeader;
use crate::params::{ChainParams, MEDIAN_TIME_SPAN};
use crate::pow::{CompactTarget, Target};
use crate::validation::BlockError;

/// The `bits` a block at `height` must carry. `header_at(h)` returns the header at height
/// `h < height` on the chain the block extends.
pub fn next_bits(
    params: &ChainParams,
    height: u32,
    parent_bits: CompactTarget,
    header_at: impl Fn(u32) -> BlockHeader,
) -> CompactTarget {
    let window = params.retarget_window;
    if height == 0 {
        return params.initial_bits;
    }
    if !params.difficulty_adjustment || !height.is_multiple_of(window) {
        return parent_bits;
    }
    let last = header_at(height - 1);
    let first = header_at(height - window);
    let expected = params.expected_timespan_secs();
    let actual = (i64::from(last.time) - i64::from(first.time))
        .clamp((expected / 4) as i64, (expected * 4) as i64) as u64;
    let current = Target::from_compact(parent_bits).unwrap_or(params.pow_limit);
    current
        .scaled(actual, expected, &params.pow_limit)
        .to_compact()
}

/// The BIP54 timewarp rules for a header at `height` with timestamp `time`.
pub fn check_timewarp(
    params: &ChainParams,
    height: u32,
    time: u32,
    header_at: impl Fn(u32) -> BlockHeader,
) -> Result<(), BlockError> {
    let window = params.retarget_window;
    if height == 0 {
        return Ok(());
    }
    if height.is_multiple_of(window) {
        let min = header_at(height - 1)
            .time
            .saturating_sub(params.timewarp_grace_secs);
        if time < min {
            return Err(BlockError::Timewarp { time, min });
        }
    }
    if height % window == window - 1 && height >= window - 1 {
        let min = header_at(height - (window - 1)).time;
        if time < min {
            return Err(BlockError::Timewarp { time, min });
        }
    }
    Ok(())
}

/// Median of the timestamps of up to the last [`MEDIAN_TIME_SPAN`] blocks.
pub fn median_time(times: impl IntoIterator<Item = u32>) -> u32 {
    let mut times: Vec<u32> = times.into_iter().take(MEDIAN_TIME_SPAN).collect();
    if times.is_empty() {
        return 0;
    }
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{BlockHash, MerkleRoot};

    fn header(time: u32, bits: CompactTarget) -> BlockHeader {
        BlockHeader {
            version: 1,
            prev_blockhash: BlockHash::ZERO,
            merkle_root: MerkleRoot::ZERO,
            time,
            bits,
            nonce: 0,
        }
    }

    /// The dev network with another window, its time bounds scaled to fit it.
    fn devnet_with(window: u32) -> ChainParams {
        let mut c = ChainParams::devnet().config;
        c.retarget_window = window;
        let bound = crate::params::expected_timespan_secs(window, c.block_interval_secs)
            / crate::params::TIME_BOUND_DIVISOR;
        c.timewarp_grace_secs = bound as u32;
        c.max_future_block_time_secs = bound as u32;
        ChainParams::from_config(c).unwrap()
    }

    #[test]
    fn on_schedule_keeps_difficulty() {
        let p = devnet_with(10);
        let iv = p.block_interval_secs;
        let bits = p.initial_bits;
        let at = |h: u32| header(1000 + h * iv, bits);
        assert_eq!(next_bits(&p, 10, bits, at), bits);
        assert_eq!(
            next_bits(&p, 7, bits, at),
            bits,
            "no retarget inside a window"
        );
    }

    #[test]
    fn twice_as_fast_doubles_difficulty_and_clamps_at_four() {
        let p = devnet_with(9); // 8 intervals of 5 s: halves and quarters are exact
        let iv = p.block_interval_secs;
        let bits = p.initial_bits;
        let t0 = Target::from_compact(bits).unwrap();
        let fast = |h: u32| header(1000 + h * iv / 2, bits);
        let halved = Target::from_compact(next_bits(&p, 9, bits, fast)).unwrap();
        assert_eq!(halved.0, t0.0 / ruint::aliases::U256::from(2u8));
        let instant = |_h: u32| header(1000, bits);
        let quartered = Target::from_compact(next_bits(&p, 9, bits, instant)).unwrap();
        assert_eq!(quartered.0, t0.0 / ruint::aliases::U256::from(4u8));
        let slow = |h: u32| header(1000 + h * iv * 100, bits);
        let eased = Target::from_compact(next_bits(&p, 9, bits, slow)).unwrap();
        assert_eq!(
            eased.0,
            t0.0 * ruint::aliases::U256::from(4u8),
            "clamped at x4"
        );
    }

    #[test]
    fn never_easier_than_pow_limit() {
        let p = devnet_with(10);
        let limit_bits = p.pow_limit.to_compact();
        let slow = |h: u32| header(1000 + h * 10_000, limit_bits);
        assert_eq!(next_bits(&p, 10, limit_bits, slow), limit_bits);
    }

    #[test]
    fn timewarp_boundaries_are_enforced() {
        let p = devnet_with(10);
        let bits = p.initial_bits;
        let at = |h: u32| header(100_000 + h * 5, bits);
        // First block of a window: at most `grace` before its parent.
        let parent_time = at(9).time;
        assert!(check_timewarp(&p, 10, parent_time - p.timewarp_grace_secs, at).is_ok());
        assert!(matches!(
            check_timewarp(&p, 10, parent_time - p.timewarp_grace_secs - 1, at),
            Err(BlockError::Timewarp { .. })
        ));
        // Last block of a window: not before the window's first block.
        let first = at(10).time;
        assert!(check_timewarp(&p, 19, first, at).is_ok());
        assert!(check_timewarp(&p, 19, first - 1, at).is_err());
        // Elsewhere only median-time-past applies.
        assert!(check_timewarp(&p, 15, 0, at).is_ok());
    }

    #[test]
    fn median_of_eleven() {
        assert_eq!(median_time([5, 1, 3]), 3);
        assert_eq!(median_time((0..20).rev()), 14);
        assert_eq!(median_time([]), 0);
    }
}
