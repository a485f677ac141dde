//! Times as Flow Trail reads and writes them: RFC 3339 text whose instant, in UTC, lies in
//! the years RFC 3339 can write (`0000-01-01T00:00:00Z` to `9999-12-31T23:59:59.999999999Z`,
//! RFC 3339 §5.6: `date-fullyear = 4DIGIT`).
//!
//! A time may be written in any offset, so a text can be valid RFC 3339 and still name an
//! instant that UTC cannot write: `9999-12-31T23:59:59-01:00` is in the year 10000 and
//! `0000-01-01T00:30:00+01:00` in the year -1. Flow Trail stores instants (Unix ms) and
//! answers in UTC, so such a time is refused where it arrives — as a validation error on its
//! field — rather than stored and later read back wrong or not at all (a flow list that can
//! no longer be written as JSON). Every time that crosses the wire goes through this module:
//! use `#[serde(with = "flowtrail_types::rfc3339")]` (or `rfc3339::option`) on the field.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The earliest instant accepted: `0000-01-01T00:00:00Z`.
pub const MIN: OffsetDateTime = time::macros::datetime!(0000-01-01 00:00:00 UTC);

/// The latest instant accepted: `9999-12-31T23:59:59.999999999Z`.
pub const MAX: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC);

/// Why a time outside [`MIN`]..=[`MAX`] is refused (the message of the validation error).
pub const OUT_OF_RANGE: &str = "the time, converted to UTC, is outside the years RFC 3339 can \
     write (0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z)";

/// `at` itself when its instant lies in [`MIN`]..=[`MAX`]; else `Err(OUT_OF_RANGE)`.
pub fn check(at: OffsetDateTime) -> Result<OffsetDateTime, &'static str> {
    match at.checked_to_offset(UtcOffset::UTC) {
        Some(utc) if (MIN..=MAX).contains(&utc) => Ok(at),
        _ => Err(OUT_OF_RANGE),
    }
}

/// Reads RFC 3339 text (any offset, up to nine fractional digits) as an accepted instant.
///
/// Errors: the text is not RFC 3339 (the parser's message), or its instant is outside
/// [`MIN`]..=[`MAX`] ([`OUT_OF_RANGE`]).
pub fn parse(text: &str) -> Result<OffsetDateTime, String> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|error| error.to_string())?;
    check(at).map_err(str::to_string)
}

/// Writes `at` as RFC 3339 (its own offset kept).
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::serialize(at, serializer)
}

/// Reads a time with [`parse`]'s rules; the error names the field through serde's path.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    let at = time::serde::rfc3339::deserialize(deserializer)?;
    check(at).map_err(D::Error::custom)
}

/// The same rules for an optional time (`null` or absent reads as `None`).
pub mod option {
    use super::*;

    /// Writes `Some(at)` as RFC 3339, `None` as `null`.
    pub fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::option::serialize(at, serializer)
    }

    /// Reads `null` as `None`, else a time as [`super::deserialize`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Time(#[serde(with = "super")] OffsetDateTime);
        Ok(Option::<Time>::deserialize(deserializer)?.map(|Time(at)| at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, serde::Serialize)]
    struct Record {
        #[serde(with = "super")]
        at: OffsetDateTime,
        #[serde(default, with = "option")]
        end: Option<OffsetDateTime>,
    }

    fn read(json: &str) -> Result<Record, String> {
        serde_json::from_str(json).map_err(|error| error.to_string())
    }

    #[test]
    fn times_whose_utc_instant_rfc3339_can_write_are_read_in_any_offset() {
        for text in [
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00-00:00",
            "0000-01-01T01:00:00+01:00",
            "0000-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59+01:00",
            "9999-12-31T22:59:59-01:00",
            "2026-11-21T10:00:00.5+05:30",
        ] {
            let record = read(&format!(r#"{{"at":"{text}","end":"{text}"}}"#)).unwrap();
            assert_eq!(record.at, OffsetDateTime::parse(text, &Rfc3339).unwrap());
            assert_eq!(record.end, Some(record.at), "{text}");
            assert_eq!(parse(text), Ok(record.at));
            // Written back and read again: the same instant.
            let again = read(&serde_json::to_string(&record).unwrap()).unwrap();
            assert_eq!(again.at, record.at);
        }
        assert_eq!(
            read(r#"{"at":"2026-11-21T10:00:00Z","end":null}"#)
                .unwrap()
                .end,
            None
        );
        assert_eq!(read(r#"{"at":"2026-11-21T10:00:00Z"}"#).unwrap().end, None);
    }

    #[test]
    fn times_in_the_years_10000_or_minus_1_once_in_utc_are_refused() {
        for text in [
            // 10000-01-01T00:59:59Z and 10000-01-01T00:00:00Z.
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:00:00-01:00",
            // -0001-12-31T23:30:00Z.
            "0000-01-01T00:30:00+01:00",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(parse(text), Err(OUT_OF_RANGE.to_string()), "{text}");
            let error = read(&format!(r#"{{"at":"{text}"}}"#)).unwrap_err();
            assert!(error.contains(OUT_OF_RANGE), "{text}: {error}");
            let error = read(&format!(
                r#"{{"at":"2026-11-21T10:00:00Z","end":"{text}"}}"#
            ))
            .unwrap_err();
            assert!(error.contains(OUT_OF_RANGE), "{text}: {error}");
        }
        // Not RFC 3339 at all: the parser's own message.
        assert!(parse("2026-13-01T00:00:00Z").is_err());
        assert!(
            !read(r#"{"at":"yesterday"}"#)
                .unwrap_err()
                .contains(OUT_OF_RANGE)
        );
    }
}
