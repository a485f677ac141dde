//! Whether a JSON number comes back from storage with the value it was sent with, and the
//! [`Decimal`] form that compares numbers whatever their spelling.

/// Whether the JSON number `token` comes back from storage with the value it was sent with.
/// serde_json keeps an integer in 64 bits (`-2^63 ..= 2^64 - 1`) and anything else as the
/// nearest double, written back in the shortest form that reads as that double: `1e2` comes
/// back as `100.0` (the same number), `123456789012345678901234567890` as
/// `1.2345678901234568e29` (another number). A number of at most 15 significant digits with
/// a decimal exponent within ±22 is always exact (one correctly rounded operation, and 15
/// digits survive a double: DBL_DIG, C11 §5.2.4.2.2); any other is parsed and written back
/// the way storage does, and the two compared as decimals. A token that is no number is
/// "exact": the syntax check names it.
pub(super) fn exact_number(token: &[u8]) -> bool {
    let Some(decimal) = Decimal::of(token) else {
        return true;
    };
    let integer = !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if integer && decimal.digits.len() <= 18 {
        return true;
    }
    if !integer && decimal.digits.len() <= 15 && (-22..=22).contains(&decimal.exponent) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(token) else {
        return true;
    };
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(number) => Decimal::of(number.to_string().as_bytes()) == Some(decimal),
        // Beyond a double's range (`1e400`).
        Err(_) => false,
    }
}

/// A JSON number as significant digits (no leading or trailing zeros) times a power of ten,
/// so that equal numbers compare equal whatever their spelling (`100`, `1e2`, `100.0`); zero
/// has no digits and no sign.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// `None` unless `token` is a JSON number (RFC 8259, section 6).
    fn of(token: &[u8]) -> Option<Decimal> {
        let (negative, rest) = match token.split_first()? {
            (b'-', rest) => (true, rest),
            _ => (false, token),
        };
        let mantissa_end = rest
            .iter()
            .position(|b| matches!(b, b'e' | b'E'))
            .unwrap_or(rest.len());
        let (mantissa, exponent) = rest.split_at(mantissa_end);
        let mut exponent: i64 = match exponent.split_first() {
            None => 0,
            Some((_, digits)) => {
                let text = std::str::from_utf8(digits).ok()?;
                // A huge exponent saturates: the number is then out of any double's range.
                text.parse::<i64>().unwrap_or(if text.starts_with('-') {
                    i64::MIN / 2
                } else {
                    i64::MAX / 2
                })
            }
        };
        let (whole, fraction) = match mantissa.iter().position(|b| *b == b'.') {
            Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
            None => (mantissa, &[][..]),
        };
        if whole.is_empty() || !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
            return None;
        }
        exponent = exponent.saturating_sub(fraction.len() as i64);
        let mut digits: Vec<u8> = whole
            .iter()
            .chain(fraction)
            .copied()
            .skip_while(|d| *d == b'0')
            .collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
            exponent = exponent.saturating_add(1);
        }
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Decimal {
            negative,
            digits,
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_kept_exactly_pass_whatever_their_spelling() {
        for token in [
            "0",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "1e2",
            "100.0",
            "4.0",
            "9.99",
            "0.30000000000000004",
            "1.7976931348623157e308",
            "5e-324",
            "1E+21",
            "123456789.123456",
            "0.000001",
            "2.5e-7",
            "-1.5E-10",
        ] {
            assert!(exact_number(token.as_bytes()), "{token}");
        }
        for token in [
            "18446744073709551616",
            "1.00000000000000000001",
            "1e400",
            "12345678901234567890.5",
        ] {
            assert!(!exact_number(token.as_bytes()), "{token}");
        }
        assert_eq!(Decimal::of(b"1e2"), Decimal::of(b"100.0"));
        assert_eq!(Decimal::of(b"-0.0"), Decimal::of(b"0"));
        assert_ne!(Decimal::of(b"-1"), Decimal::of(b"1"));
    }

    #[test]
    fn every_double_in_its_shortest_form_is_kept_exactly() {
        // Without serde_json's `float_roundtrip` its parser is off by one unit in the last
        // place for some 17-digit doubles (`7.0 / 30.0` = 0.23333333333333334): such a
        // score was stored changed, and then refused. Doubles from their bit patterns.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        while checked < 20_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let x = f64::from_bits(bits);
            if !x.is_finite() {
                continue;
            }
            let text = serde_json::to_string(&x).unwrap();
            assert!(exact_number(text.as_bytes()), "{text}");
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{text}");
            checked += 1;
        }
        for i in 0..30 {
            let text = serde_json::to_string(&(f64::from(i) / 30.0)).unwrap();
            assert!(exact_number(text.as_bytes()), "{text}");
        }
    }
}
