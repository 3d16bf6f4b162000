//! The shaping of one link (`setlinkshaping`'s settings, a `devnet.json` link): its
//! fields, their bounds and the one check every side applies — the node before it shapes
//! a link, the lab before it changes any node.

use serde::{Deserialize, Serialize};

/// The largest added delay or jitter, in milliseconds (a minute: beyond that a link is cut,
/// and timeouts of the protocols above fire anyway).
pub const MAX_DELAY_MS: f64 = 60_000.0;
/// The smallest non-zero bandwidth cap, in kbit/s.
pub const MIN_BANDWIDTH_KBIT: f64 = 1.0;

/// Why a shaping setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    /// NaN or infinite.
    #[error("{field} must be a finite number, not {value}")]
    NotFinite {
        /// The setting.
        field: &'static str,
        /// As given.
        value: f64,
    },
    /// Below zero.
    #[error("{field} must not be negative, got {value}")]
    Negative {
        /// The setting.
        field: &'static str,
        /// As given.
        value: f64,
    },
    /// Above its bound.
    #[error("{field} must be at most {max}, got {value}")]
    TooLarge {
        /// The setting.
        field: &'static str,
        /// As given.
        value: f64,
        /// The bound.
        max: f64,
    },
    /// A cap so low it is a cut link.
    #[error("bandwidth_kbit must be 0 (no cap) or at least {MIN_BANDWIDTH_KBIT}, got {0}")]
    BandwidthTooLow(f64),
}

/// How one link is shaped: the delay, jitter and bandwidth cap of what one end sends, and
/// the loss of what it receives. Every field is optional (0: unshaped); unknown fields are
/// refused so a typo is an error rather than an unshaped link.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkShaping {
    /// Added one-way delay, ms (0 ..= [`MAX_DELAY_MS`]).
    #[serde(default)]
    pub latency_ms: f64,
    /// ± jitter on that delay, ms (0 ..= [`MAX_DELAY_MS`]).
    #[serde(default)]
    pub jitter_ms: f64,
    /// Share of block and transaction messages lost, % (0 ..= 100).
    #[serde(default)]
    pub loss_pct: f64,
    /// Bandwidth cap, kbit/s (0: none, else at least [`MIN_BANDWIDTH_KBIT`]).
    #[serde(default)]
    pub bandwidth_kbit: f64,
}

impl ShapeError {
    /// The setting refused (`latency_ms`, `jitter_ms`, `loss_pct` or `bandwidth_kbit`).
    pub fn field(&self) -> &'static str {
        match self {
            ShapeError::NotFinite { field, .. }
            | ShapeError::Negative { field, .. }
            | ShapeError::TooLarge { field, .. } => field,
            ShapeError::BandwidthTooLow(_) => "bandwidth_kbit",
        }
    }
}

fn checked(field: &'static str, value: f64, max: f64) -> Result<f64, ShapeError> {
    if !value.is_finite() {
        return Err(ShapeError::NotFinite { field, value });
    }
    if value < 0.0 {
        return Err(ShapeError::Negative { field, value });
    }
    if value > max {
        return Err(ShapeError::TooLarge { field, value, max });
    }
    Ok(value)
}

impl LinkShaping {
    /// No shaping at all.
    pub const NONE: LinkShaping = LinkShaping {
        latency_ms: 0.0,
        jitter_ms: 0.0,
        loss_pct: 0.0,
        bandwidth_kbit: 0.0,
    };

    /// The setting if every field is inside its bounds, else the first field that is not.
    pub fn validated(self) -> Result<LinkShaping, ShapeError> {
        checked("latency_ms", self.latency_ms, MAX_DELAY_MS)?;
        checked("jitter_ms", self.jitter_ms, MAX_DELAY_MS)?;
        checked("loss_pct", self.loss_pct, 100.0)?;
        checked("bandwidth_kbit", self.bandwidth_kbit, f64::MAX)?;
        if self.bandwidth_kbit > 0.0 && self.bandwidth_kbit < MIN_BANDWIDTH_KBIT {
            return Err(ShapeError::BandwidthTooLow(self.bandwidth_kbit));
        }
        Ok(self)
    }

    /// Whether nothing is shaped.
    pub fn is_none(&self) -> bool {
        *self == LinkShaping::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_is_checked_and_names_its_field() {
        let ok = LinkShaping {
            latency_ms: 200.0,
            jitter_ms: 10.0,
            loss_pct: 100.0,
            bandwidth_kbit: 800.0,
        };
        assert_eq!(ok.validated(), Ok(ok));
        let with = |f: fn(&mut LinkShaping)| {
            let mut s = LinkShaping::NONE;
            f(&mut s);
            s.validated().unwrap_err().to_string()
        };
        assert!(with(|s| s.latency_ms = -1.0).starts_with("latency_ms"));
        assert!(with(|s| s.latency_ms = f64::NAN).starts_with("latency_ms"));
        assert!(with(|s| s.jitter_ms = MAX_DELAY_MS + 1.0).starts_with("jitter_ms"));
        assert!(with(|s| s.loss_pct = 100.5).starts_with("loss_pct"));
        assert!(with(|s| s.bandwidth_kbit = 0.5).starts_with("bandwidth_kbit"));
        let low = LinkShaping {
            bandwidth_kbit: 0.5,
            ..LinkShaping::NONE
        };
        assert_eq!(low.validated().unwrap_err().field(), "bandwidth_kbit");
    }

    #[test]
    fn fields_default_to_zero_and_a_typo_is_refused() {
        let parse = |v: serde_json::Value| serde_json::from_value::<LinkShaping>(v);
        assert!(parse(serde_json::json!({})).unwrap().is_none());
        assert_eq!(
            parse(serde_json::json!({"loss_pct": 2.5}))
                .unwrap()
                .loss_pct,
            2.5
        );
        assert!(parse(serde_json::json!({"latency": 5})).is_err());
    }
}
