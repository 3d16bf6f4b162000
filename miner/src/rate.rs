//! Hash rates as people write them: `250k`, `1.5M`, `0`.

use crate::error::MinerError;

/// The largest rate accepted: far above any CPU (10^15 hashes per second), and small enough
/// that sums over a testnet and products with seconds stay exact in `u64` and `f64`.
pub const MAX_HASHRATE: u64 = 1_000_000_000_000_000;

/// Parses a hash rate in hashes per second: a whole or decimal number with an optional
/// suffix `k` (10^3), `M` (10^6) or `G` (10^9), such as `250k`, `1.5M` or `0` (no hashing).
/// The result must be a whole number of hashes per second.
pub fn parse_hashrate(text: &str) -> Result<u64, MinerError> {
    let bad = |reason: &'static str| MinerError::BadHashRate {
        input: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    let (number, scale): (&str, u64) = match trimmed.char_indices().last() {
        None => return Err(bad("it is empty")),
        Some((i, 'k' | 'K')) => (&trimmed[..i], 1_000),
        Some((i, 'M')) => (&trimmed[..i], 1_000_000),
        Some((i, 'G')) => (&trimmed[..i], 1_000_000_000),
        Some((_, 'm')) => return Err(bad("use M for millions (m would mean milli)")),
        Some((_, c)) if c.is_ascii_digit() || c == '.' => (trimmed, 1),
        Some(_) => return Err(bad("the only suffixes are k, M and G")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad("it has no digits"));
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad("it is not a number of hashes per second"));
    }
    // Exact decimal arithmetic: 1.5M is 1,500,000, never 1,499,999.99.
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().map_err(|_| bad("it is too large"))?;
    let divisor = 10u128
        .checked_pow(u32::try_from(fraction.len()).map_err(|_| bad("it has too many decimals"))?)
        .ok_or_else(|| bad("it has too many decimals"))?;
    let scaled = mantissa
        .checked_mul(u128::from(scale))
        .ok_or_else(|| bad("it is too large"))?;
    if scaled % divisor != 0 {
        return Err(bad("it is not a whole number of hashes per second"));
    }
    let rate = scaled / divisor;
    if rate > u128::from(MAX_HASHRATE) {
        return Err(bad("it is above 1e15 hashes per second"));
    }
    Ok(rate as u64)
}

/// Formats a rate the way [`parse_hashrate`] reads it, as short as exact: `250k`, `1.5M`.
pub fn format_hashrate(rate: u64) -> String {
    for (scale, suffix) in [(1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")] {
        if rate >= scale && (u128::from(rate) * 1000) % u128::from(scale) == 0 {
            let value = rate as f64 / scale as f64;
            return format!("{value}{suffix}");
        }
    }
    rate.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_decimals_are_exact() {
        for (text, rate) in [
            ("0", 0),
            ("1", 1),
            ("250k", 250_000),
            ("250K", 250_000),
            ("1.5M", 1_500_000),
            ("0.5k", 500),
            (".5k", 500),
            ("2.", 2),
            (" 10M ", 10_000_000),
            ("1.234567M", 1_234_567),
            ("2G", 2_000_000_000),
            ("007", 7),
            ("1000000000000000", MAX_HASHRATE),
        ] {
            assert_eq!(parse_hashrate(text), Ok(rate), "{text:?}");
        }
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        for (text, reason) in [
            ("", "empty"),
            ("k", "no digits"),
            (".", "no digits"),
            ("-5", "not a number"),
            ("1e6", "not a number"),
            ("1.5", "whole number"),
            ("1.2345k", "whole number"),
            ("5m", "use M"),
            ("5 kH/s", "suffixes"),
            ("1.2.3k", "not a number"),
            ("2000000G", "above"),
            ("99999999999999999999999999999999999999999", "too large"),
        ] {
            let err = parse_hashrate(text).unwrap_err().to_string();
            assert!(
                err.contains(reason) && err.contains(text.trim()),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn formatting_round_trips() {
        for (rate, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1k"),
            (250_000, "250k"),
            (1_500_000, "1.5M"),
            (1_234_567, "1234.567k"),
            (12_345_678, "12345.678k"),
            (1_234_567_891, "1234567.891k"),
            (3_000_000_000, "3G"),
        ] {
            assert_eq!(format_hashrate(rate), text);
            assert_eq!(parse_hashrate(text), Ok(rate));
        }
    }
}
