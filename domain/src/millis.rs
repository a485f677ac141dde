//! Time as stored: Unix milliseconds (both database engines index plain integers).

use time::OffsetDateTime;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// An instant in Unix milliseconds.
pub fn to_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds back to an instant (out-of-range values read as the epoch).
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The start of the hour `ms` falls in (reason counts are rolled up per hour).
pub fn hour_floor(ms: i64) -> i64 {
    ms - ms.rem_euclid(3_600_000)
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
}
