//! Time as stored: Unix milliseconds (both database engines index plain integers).

use time::OffsetDateTime;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// An instant in Unix milliseconds, rounded down (towards the past, also before 1970:
/// `1969-12-31T23:59:59.9995Z` is -1 ms, not 0).
pub fn to_ms(at: OffsetDateTime) -> i64 {
    at.unix_timestamp_nanos().div_euclid(1_000_000) as i64
}

/// Unix milliseconds back to an instant (out-of-range values read as the epoch).
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
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
        assert_eq!(from_ms(i64::MAX), OffsetDateTime::UNIX_EPOCH);
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
