//! [`Share`]: an exact share of candidates, as the flows list's `min_eliminated` filter reads
//! it (`0.9` or `90%`) and as every engine compares it (in integers, never in floats).

use std::fmt;

use crate::filters::FilterError;

/// A share of candidates, exact: parts per million (0–1,000,000).
///
/// Written `0.9` (a share) or `90%` (a percentage); more than 6 decimals of the share are
/// refused rather than rounded, so a threshold means exactly what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Share {
    ppm: u32,
}

impl Share {
    /// One million parts: the whole.
    pub const WHOLE_PPM: u32 = 1_000_000;

    /// The share of `parts_per_million` (at most [`Share::WHOLE_PPM`]).
    pub fn from_ppm(parts_per_million: u32) -> Option<Self> {
        (parts_per_million <= Self::WHOLE_PPM).then_some(Share {
            ppm: parts_per_million,
        })
    }

    /// Parts per million.
    pub fn ppm(self) -> u32 {
        self.ppm
    }

    /// Whether `eliminated` of `candidates_in` is at least this share, exactly
    /// (`eliminated · 10⁶ ≥ ppm · candidates_in` in 128-bit integers). Every counted step
    /// reaches a share of 0 (one that creates candidates too); otherwise a step with no
    /// candidates in eliminated nothing.
    pub fn is_reached_by(self, eliminated: u64, candidates_in: u64) -> bool {
        self.ppm == 0
            || candidates_in > 0
                && u128::from(eliminated) * u128::from(Self::WHOLE_PPM)
                    >= u128::from(self.ppm) * u128::from(candidates_in)
    }

    /// Parses `0.9`, `1`, `0`, `90%`, `12.5%`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let refuse = || FilterError {
            field: "min_eliminated",
            message: "min_eliminated is a share from 0 to 1 (0.9) or a percentage (90%), \
                 with at most 6 decimals of the share"
                .into(),
        };
        let text = text.trim();
        let (number, scale) = match text.strip_suffix('%') {
            Some(percent) => (percent.trim_end(), 10_000u64),
            None => (text, 1_000_000u64),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !digits(whole)
            || !digits(fraction)
            || whole.len() > 7
        {
            return Err(refuse());
        }
        // scale · number, exactly: the fraction must not carry more digits than the scale.
        let places = scale.ilog10() as usize;
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > places {
            return Err(refuse());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| refuse())?
        };
        let fraction_value: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse::<u64>().map_err(|_| refuse())?
                * 10u64.pow((places - fraction.len()) as u32)
        };
        let ppm = whole * scale + fraction_value;
        u32::try_from(ppm)
            .ok()
            .and_then(Share::from_ppm)
            .ok_or_else(refuse)
    }
}

impl fmt::Display for Share {
    /// The share as a decimal (`0.9`, `0.07`, `1`): what [`Share::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.ppm / Self::WHOLE_PPM;
        let fraction = self.ppm % Self::WHOLE_PPM;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_read_exactly_as_a_share_or_a_percentage() {
        let ppm = |text: &str| Share::parse(text).map(Share::ppm);
        assert_eq!(ppm("0.9"), Ok(900_000));
        assert_eq!(ppm("90%"), Ok(900_000));
        assert_eq!(ppm("0.07"), Ok(70_000));
        assert_eq!(ppm("7%"), Ok(70_000));
        assert_eq!(ppm("12.5%"), Ok(125_000));
        assert_eq!(ppm("1"), Ok(1_000_000));
        assert_eq!(ppm("100%"), Ok(1_000_000));
        assert_eq!(ppm("0"), Ok(0));
        assert_eq!(ppm(".5"), Ok(500_000));
        assert_eq!(ppm("0.1234560"), Ok(123_456));
        for refused in [
            "90",
            "1.5",
            "101%",
            "-0.1",
            "0.1234567",
            "abc",
            "%",
            ".",
            "1e-1",
            "0x1",
        ] {
            assert!(
                Share::parse(refused).is_err(),
                "{refused} should be refused"
            );
        }
        assert_eq!(Share::parse("0.07").unwrap().to_string(), "0.07");
        assert_eq!(Share::parse("100%").unwrap().to_string(), "1");
    }

    #[test]
    fn a_share_is_reached_exactly_at_its_own_value() {
        let share = Share::parse("0.07").unwrap();
        assert!(share.is_reached_by(7, 100));
        assert!(share.is_reached_by(14, 200));
        assert!(!share.is_reached_by(6, 100));
        assert!(!share.is_reached_by(0, 0));
        assert!(Share::parse("0.55").unwrap().is_reached_by(55, 100));
    }
}
