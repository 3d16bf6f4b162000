//! `testnet up --hashrate ... --target-interval S`: a genesis whose initial target makes the
//! testnet's total hash rate find a block every S seconds on average.
//!
//! A hash meets target T with probability (T + 1) / 2^256, so a network doing R hashes per
//! second finds a block every 2^256 / ((T + 1) · R) seconds. Solving for an interval S gives
//! T = 2^256 / (R · S) − 1. The compact encoding keeps 23 bits of it (a relative error below
//! 2^-15). Everything else comes from the base network (the embedded dev network or
//! `--genesis`), with `block_interval_secs` set to S so retargeting keeps aiming at S as the
//! dev network's retargeting does at its interval, and with the genesis time set to when the
//! testnet is made: the first retarget window is measured from the genesis block, and a
//! genesis months old would make it look slow and ease the difficulty fourfold at block
//! `retarget_window`.

use cairn_core::params::{self, GenesisConfig};
use cairn_core::{ChainParams, CompactTarget, Target};
use ruint::aliases::U256;
use std::path::{Path, PathBuf};

/// The file `up` writes in the testnet directory.
pub const GENESIS_FILE: &str = "genesis.json";

/// Why no genesis can be made for the rates and interval asked for.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// No hash power at all: no interval can be reached.
    #[error("--target-interval needs hash power: the --hashrate rates add up to 0")]
    NoHashPower,
    /// The interval is zero.
    #[error("--target-interval must be at least 1 second")]
    ZeroInterval,
    /// The rates are so low that even the easiest target the network allows finds blocks
    /// less often than asked.
    #[error(
        "{total} H/s for {secs} s is {expected} hashes per block, fewer than the easiest \
         target of the network allows ({easiest:.0}); raise --hashrate or --target-interval"
    )]
    BelowPowLimit {
        /// Total rate.
        total: u64,
        /// Interval.
        secs: u32,
        /// Hashes per block asked for.
        expected: u128,
        /// Hashes per block at the network's easiest target.
        easiest: f64,
    },
    /// The base network does not validate with the new target (it should).
    #[error("the generated genesis is invalid: {0}")]
    Invalid(#[from] cairn_core::params::ParamsError),
    /// Writing `DIR/genesis.json`.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The target at which `total_rate` hashes per second find a block every `secs` seconds:
/// 2^256 / (total_rate · secs) − 1, exactly (before compact encoding).
pub fn target_for_interval(total_rate: u64, secs: u32) -> Result<Target, GenesisError> {
    if secs == 0 {
        return Err(GenesisError::ZeroInterval);
    }
    let expected = u128::from(total_rate) * u128::from(secs);
    if expected == 0 {
        return Err(GenesisError::NoHashPower);
    }
    let n = U256::from(expected);
    // 2^256 does not fit in 256 bits: (2^256 − 1) / n is ⌊2^256 / n⌋ unless n divides 2^256
    // (a power of two), where it is one less.
    let quotient = U256::MAX / n;
    let floor = if expected.is_power_of_two() {
        quotient.saturating_add(U256::from(1u8))
    } else {
        quotient
    };
    Ok(Target(floor.saturating_sub(U256::from(1u8))))
}

/// `base` with an initial target for `total_rate` H/s, one block every `secs` seconds, and
/// `genesis_time` (Unix seconds; the time the testnet is made, see the module docs).
pub fn interval_genesis(
    base: &GenesisConfig,
    total_rate: u64,
    secs: u32,
    genesis_time: u32,
) -> Result<GenesisConfig, GenesisError> {
    let target = target_for_interval(total_rate, secs)?;
    let bits = target.to_compact();
    let pow_limit = ChainParams::from_config(base.clone())?.pow_limit;
    let encoded = Target::from_compact(bits).unwrap_or(Target::MAX);
    if target.0 == U256::ZERO || encoded > pow_limit {
        return Err(GenesisError::BelowPowLimit {
            total: total_rate,
            secs,
            expected: u128::from(total_rate) * u128::from(secs),
            easiest: pow_limit.work().as_f64(),
        });
    }
    let mut config = base.clone();
    config.initial_bits = bits_hex(bits);
    config.block_interval_secs = secs;
    config.genesis_time = genesis_time;
    // A faster interval shortens the retarget window, and the timewarp grace and future
    // limit are bounded by it (Byzantine finding 5): shrink them with it where needed.
    let bound = u32::try_from(
        params::expected_timespan_secs(config.retarget_window, secs) / params::TIME_BOUND_DIVISOR,
    )
    .unwrap_or(u32::MAX);
    config.timewarp_grace_secs = config.timewarp_grace_secs.min(bound);
    config.max_future_block_time_secs = config.max_future_block_time_secs.min(bound);
    ChainParams::from_config(config.clone())?;
    Ok(config)
}

/// Writes `config` as `DIR/genesis.json` and returns its path.
pub fn write_genesis(dir: &Path, config: &GenesisConfig) -> Result<PathBuf, GenesisError> {
    let path = dir.join(GENESIS_FILE);
    let text = serde_json::to_string_pretty(config).expect("a genesis config always serialises");
    std::fs::write(&path, text + "\n").map_err(|source| GenesisError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Compact bits as `genesis.json` writes them: eight lowercase hex digits.
fn bits_hex(bits: CompactTarget) -> String {
    format!("{:08x}", bits.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected hashes per block at the target `bits` encode.
    fn hashes_per_block(bits: &str) -> f64 {
        let raw = u32::from_str_radix(bits, 16).unwrap();
        Target::from_compact(CompactTarget(raw))
            .unwrap()
            .work()
            .as_f64()
    }

    #[test]
    fn the_target_makes_the_total_rate_find_a_block_every_interval() {
        let base = ChainParams::devnet().config;
        for (rate, secs) in [
            (1_000, 1),
            (200_000, 5),
            (250_000 * 20, 2),
            (3_000_000, 10),
            (10_000_000, 600),
            (1 << 20, 4),
            (7, 1),
        ] {
            let config = interval_genesis(&base, rate, secs, 1_800_000_000).unwrap();
            let expected = rate as f64 * f64::from(secs);
            let got = hashes_per_block(&config.initial_bits);
            let error = (got - expected).abs() / expected;
            assert!(
                error < 0.01,
                "{rate} H/s × {secs} s: {got} hashes per block, wanted {expected}"
            );
            assert_eq!(config.block_interval_secs, secs);
            assert_eq!(config.genesis_time, 1_800_000_000);
            assert_eq!(config.retarget_window, base.retarget_window);
            assert_eq!(config.difficulty_adjustment, base.difficulty_adjustment);
            assert_eq!(config.dev_accounts, base.dev_accounts);
            ChainParams::from_config(config).expect("a valid network");
        }
    }

    #[test]
    fn the_exact_target_is_two_to_the_256_over_hashes_minus_one() {
        // A power of two: 2^256 / 2^20 − 1 = 2^236 − 1.
        let t = target_for_interval(1 << 18, 4).unwrap();
        assert_eq!(t.0, (U256::from(1u8) << 236) - U256::from(1u8));
        assert_eq!(t.work().0, U256::from(1u64 << 20));
        // Otherwise ⌊2^256 / n⌋ − 1, whose work rounds back to n.
        let t = target_for_interval(3, 1).unwrap();
        assert_eq!(t.0, U256::MAX / U256::from(3u8) - U256::from(1u8));
        assert_eq!(t.work().0, U256::from(3u8));
    }

    #[test]
    fn impossible_intervals_are_refused_with_a_reason() {
        let base = ChainParams::devnet().config;
        assert!(matches!(
            interval_genesis(&base, 0, 5, 0),
            Err(GenesisError::NoHashPower)
        ));
        assert!(matches!(
            interval_genesis(&base, 1000, 0, 0),
            Err(GenesisError::ZeroInterval)
        ));
        let err = interval_genesis(&base, 1, 1, 0).unwrap_err();
        assert!(matches!(err, GenesisError::BelowPowLimit { .. }), "{err}");
        assert!(err.to_string().contains("raise --hashrate"), "{err}");
    }

    #[test]
    fn the_file_is_a_loadable_genesis() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            interval_genesis(&ChainParams::devnet().config, 400_000, 3, 1_800_000_000).unwrap();
        let path = write_genesis(dir.path(), &config).unwrap();
        let loaded = ChainParams::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(loaded.config, config);
        assert_eq!(loaded.block_interval_secs, 3);
    }
}
