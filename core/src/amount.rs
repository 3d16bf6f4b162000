//! Amounts in base units, with checked arithmetic only.

use std::fmt;

/// Base units per coin (like Bitcoin's satoshi).
pub const COIN: u64 = 100_000_000;

/// An amount of base units. Arithmetic is checked: an overflow is a validation error,
/// never a wrap (CVE-2010-5139 minted 184 billion BTC through an unchecked sum).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    bincode::Encode,
    bincode::Decode,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Amount(u64);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// From base units.
    pub const fn from_base(units: u64) -> Self {
        Amount(units)
    }

    /// From whole coins; `None` on overflow.
    pub const fn from_coins(coins: u64) -> Option<Self> {
        match coins.checked_mul(COIN) {
            Some(v) => Some(Amount(v)),
            None => None,
        }
    }

    /// The value in base units.
    pub const fn to_base(self) -> u64 {
        self.0
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, or `None` if negative.
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// Sums amounts, `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(iter: I) -> Option<Amount> {
        iter.into_iter().try_fold(Amount::ZERO, Amount::checked_add)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        let max = Amount::from_base(u64::MAX);
        assert_eq!(max.checked_add(Amount::from_base(1)), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount::from_base(1)), None);
        assert_eq!(Amount::checked_sum([max, Amount::from_base(1)]), None);
        assert_eq!(
            Amount::checked_sum([Amount::from_base(2), Amount::from_base(3)]),
            Some(Amount::from_base(5))
        );
        assert_eq!(Amount::from_coins(u64::MAX / 10), None);
    }
}
