//! Time as stored: Unix milliseconds (both database engines index plain integers).

use time::OffsetDateTime;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// An instant in Unix milliseconds, rounded down (towards the past, also before 1970:
/// `1969-12-31T23:59:59.9995Z` is -1 ms, not 0).
pub const fn to_ms(at: OffsetDateTime) -> i64 {
    at.unix_timestamp_nanos().div_euclid(1_000_000) as i64
}

/// [`flowtrail_types::rfc3339::MIN`] and [`flowtrail_types::rfc3339::MAX`] in Unix ms.
const MIN_MS: i64 = to_ms(flowtrail_types::rfc3339::MIN);
const MAX_MS: i64 = to_ms(flowtrail_types::rfc3339::MAX);

/// A range bound (`since`, `until`) in Unix milliseconds, rounded **up**: stored times are
/// whole milliseconds, so a stored `t` is at or after the bound exactly when `t >=
/// bound_ms(bound)` (and before it exactly when `t < bound_ms(bound)`). Rounding down instead
/// put a flow of `08:00:00.000` inside `since=08:00:00.0009Z`.
pub fn bound_ms(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    (nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0)) as i64
}

/// The same instant in UTC (what every answer shows, whatever offset a caller sent).
pub fn utc(at: OffsetDateTime) -> OffsetDateTime {
    at.checked_to_offset(time::UtcOffset::UTC).unwrap_or(at)
}

/// Unix milliseconds back to an instant. Every time Flow Trail accepts lies in
/// [`flowtrail_types::rfc3339::MIN`]..=[`flowtrail_types::rfc3339::MAX`]; a stored value
/// outside them (written before that rule) reads as the nearest of the two, so an answer
/// holding it can still be written as RFC 3339.
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms.clamp(MIN_MS, MAX_MS)) * 1_000_000)
        .unwrap_or(flowtrail_types::rfc3339::MAX)
}

/// One hour in milliseconds: reason counts are rolled up per hour.
pub const HOUR_MS: i64 = 3_600_000;

/// The start of the hour `ms` falls in (rounded down, also before 1970).
pub fn hour_floor(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// The start of the `width`-ms bucket that `ms` falls in, in SQL: the same floor as
/// [`hour_floor`] (SQL's `%` truncates towards zero, so a plain `ms - ms % width` would put
/// a time before 1970 in the bucket after it). `ms` and `width` are SQL expressions.
pub fn floor_sql(ms: &str, width: &str) -> String {
    format!("({ms} - ((({ms}) % ({width})) + ({width})) % ({width}))")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_000_000).unwrap();
        assert_eq!(from_ms(to_ms(at)), at);
        // Values no accepted time gives read as the nearest accepted instant, not the epoch.
        use time::macros::datetime;
        assert_eq!(from_ms(i64::MAX), datetime!(9999-12-31 23:59:59.999 UTC));
        assert_eq!(from_ms(i64::MIN), datetime!(0000-01-01 00:00 UTC));
        let year_10000 = to_ms(datetime!(9999-12-31 23:59:59 -01:00));
        assert_eq!(from_ms(year_10000), datetime!(9999-12-31 23:59:59.999 UTC));
    }

    #[test]
    fn bounds_round_up_to_the_next_stored_millisecond() {
        use time::macros::datetime;
        assert_eq!(bound_ms(datetime!(1970-01-01 00:00:00.001 UTC)), 1);
        assert_eq!(bound_ms(datetime!(1970-01-01 00:00:00.0000001 UTC)), 1);
        assert_eq!(bound_ms(datetime!(1970-01-01 00:00:00.000999999 UTC)), 1);
        assert_eq!(bound_ms(datetime!(1969-12-31 23:59:59.9995 UTC)), 0);
        assert_eq!(bound_ms(datetime!(1969-12-31 23:59:59.999 UTC)), -1);
        assert_eq!(bound_ms(datetime!(1970-01-01 00:00 UTC)), 0);
    }

    #[test]
    fn times_before_1970_round_down() {
        use time::macros::datetime;
        assert_eq!(to_ms(datetime!(1969-12-31 23:59:59.9995 UTC)), -1);
        assert_eq!(from_ms(-1), datetime!(1969-12-31 23:59:59.999 UTC));
        let half_past_eleven = to_ms(datetime!(1969-12-31 23:30 UTC));
        assert_eq!(hour_floor(half_past_eleven), -HOUR_MS);
        assert_eq!(hour_floor(0), 0);
        assert_eq!(hour_floor(-1), -HOUR_MS);
    }
}
