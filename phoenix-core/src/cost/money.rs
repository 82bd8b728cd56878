//! Money as integer micro-units of a currency. Never a float: every price, cost and saving
//! is an exact count of millionths, rounded once, half away from zero, where a division
//! happens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-units in one unit of currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// An amount of money in micro-units (millionths) of the catalogue entry's currency.
///
/// On the wire it is a decimal string with exactly six fractional digits (`"6.500000"`),
/// so JSON clients never see a float; it parses from any decimal with at most six.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a decimal string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyParseError {
    /// Not a decimal number (`12`, `-0.5`, `6.50`).
    #[error("not a decimal amount")]
    NotDecimal,
    /// More than six fractional digits: finer than a micro-unit.
    #[error("more than six fractional digits")]
    TooPrecise,
    /// Larger than about 9.2 trillion.
    #[error("amount out of range")]
    OutOfRange,
}

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// An amount of `micros` millionths.
    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The amount in millionths.
    #[must_use]
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// `units` whole units.
    #[must_use]
    pub const fn from_units(units: i64) -> Self {
        Self(units.saturating_mul(MICROS_PER_UNIT))
    }

    /// `self + other`, saturating at the bounds.
    #[must_use]
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// `self - other`, saturating at the bounds.
    #[must_use]
    pub const fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    /// `self * factor`, saturating at the bounds.
    #[must_use]
    pub const fn saturating_mul(self, factor: i64) -> Money {
        Money(self.0.saturating_mul(factor))
    }

    /// `self * numerator / denominator`, computed exactly and rounded once (half away
    /// from zero). `None` when `denominator` is zero or the result does not fit.
    #[must_use]
    pub fn mul_div(self, numerator: u128, denominator: u128) -> Option<Money> {
        let magnitude = mul_div_round(self.0.unsigned_abs().into(), numerator, denominator)?;
        let magnitude = i64::try_from(magnitude).ok()?;
        Some(Money(if self.0 < 0 { -magnitude } else { magnitude }))
    }

    /// True when negative.
    #[must_use]
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The amount as a float, for percentages and display only (never stored).
    #[must_use]
    pub fn as_f64_units(self) -> f64 {
        #[allow(
            clippy::cast_precision_loss,
            reason = "used for ratios and display only, never stored"
        )]
        {
            self.0 as f64 / 1e6
        }
    }
}

/// `value * numerator / denominator` rounded half up, in u128; `None` on overflow or a
/// zero denominator.
pub(crate) fn mul_div_round(value: u128, numerator: u128, denominator: u128) -> Option<u128> {
    if denominator == 0 {
        return None;
    }
    let product = value.checked_mul(numerator)?;
    let quotient = product / denominator;
    let remainder = product % denominator;
    // Round half up: remainder * 2 >= denominator, without overflowing.
    if remainder >= denominator - remainder {
        quotient.checked_add(1)
    } else {
        Some(quotient)
    }
}

/// `ceil(numerator / denominator)`; zero when the denominator is zero.
pub(crate) fn div_ceil(numerator: u128, denominator: u128) -> u128 {
    if denominator == 0 {
        0
    } else {
        numerator.div_ceil(denominator)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per = MICROS_PER_UNIT.unsigned_abs();
        write!(f, "{sign}{}.{:06}", magnitude / per, magnitude % per)
    }
}

impl FromStr for Money {
    type Err = MoneyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(MoneyParseError::NotDecimal);
        }
        if digits.ends_with('.') {
            return Err(MoneyParseError::NotDecimal);
        }
        if fraction.len() > 6 {
            return Err(MoneyParseError::TooPrecise);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyParseError::OutOfRange)?;
        let mut frac: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| MoneyParseError::NotDecimal)?
        };
        for _ in fraction.len()..6 {
            frac *= 10;
        }
        let micros = whole
            .checked_mul(MICROS_PER_UNIT)
            .and_then(|w| w.checked_add(frac))
            .ok_or(MoneyParseError::OutOfRange)?;
        Ok(Money(if negative { -micros } else { micros }))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        let m: Money = "6.50".parse().unwrap();
        assert_eq!(m.micros(), 6_500_000);
        assert_eq!(m.to_string(), "6.500000");
        assert_eq!("0.000001".parse::<Money>().unwrap().micros(), 1);
        assert_eq!("-1.25".parse::<Money>().unwrap().micros(), -1_250_000);
        assert_eq!("12".parse::<Money>().unwrap().micros(), 12_000_000);
        assert_eq!(Money::from_micros(-5).to_string(), "-0.000005");
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(
            "0.0000001".parse::<Money>(),
            Err(MoneyParseError::TooPrecise)
        );
        for bad in ["", ".5", "1.", "1e3", "abc", "1.2.3", "--1", "+1"] {
            assert_eq!(
                bad.parse::<Money>(),
                Err(MoneyParseError::NotDecimal),
                "{bad}"
            );
        }
        assert_eq!(
            "99999999999999999999".parse::<Money>(),
            Err(MoneyParseError::OutOfRange)
        );
    }

    #[test]
    fn serde_is_a_decimal_string() {
        let m = Money::from_micros(1_234_567);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"1.234567\"");
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>("1.5").is_err());
    }

    #[test]
    fn mul_div_rounds_half_up_once() {
        // 6.50 per 1,000 series, 1 series: 0.0065 exactly.
        assert_eq!(
            Money::from_units(6)
                .saturating_add(Money::from_micros(500_000))
                .mul_div(1, 1000),
            Some(Money::from_micros(6_500))
        );
        // 1 micro / 2 = 0.5 micro -> rounds up to 1.
        assert_eq!(
            Money::from_micros(1).mul_div(1, 2),
            Some(Money::from_micros(1))
        );
        assert_eq!(Money::from_micros(1).mul_div(1, 3), Some(Money::ZERO));
        assert_eq!(
            Money::from_micros(-3).mul_div(1, 2),
            Some(Money::from_micros(-2))
        );
        assert_eq!(Money::from_micros(1).mul_div(1, 0), None);
        assert_eq!(Money::from_micros(i64::MAX).mul_div(2, 1), None);
    }
}
