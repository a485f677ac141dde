//! The order of the full-text index.
//!
//! FTS5 walks a match's rowids in order and stops early under `ORDER BY rowid DESC LIMIT n`,
//! but the flows list is ordered by `(started_at, id)`. So a search document's rowid is its
//! flow's time bucket (`started_at`, clamped to ±139 years around 1970, in units of 2,048 ms)
//! shifted left by 30 bits, plus a counter within the bucket. A newest-first walk over rowids
//! then visits the buckets newest first; only the order inside the last bucket reached has to
//! be settled by `(started_at, id)` (see `SqliteMetadata::search_flows`).

/// Times are clamped to `[-OFFSET, OFFSET)` ms, then shifted to be non-negative.
const OFFSET_MS: i64 = 1 << 42;
/// A bucket is 2^11 ms = 2.048 s.
const BUCKET_BITS: u32 = 11;
/// Up to 2^30 documents per bucket.
const COUNTER_BITS: u32 = 30;

/// The time bucket of `started_at` (Unix ms), in `[0, 2^32)`.
pub(super) fn bucket(started_at_ms: i64) -> i64 {
    (started_at_ms.clamp(-OFFSET_MS, OFFSET_MS - 1) + OFFSET_MS) >> BUCKET_BITS
}

/// The first rowid of a bucket; `first_rowid(b + 1)` is one past its last.
pub(super) fn first_rowid(bucket: i64) -> i64 {
    bucket << COUNTER_BITS
}

/// The bucket a rowid belongs to.
pub(super) fn bucket_of_rowid(rowid: i64) -> i64 {
    rowid >> COUNTER_BITS
}

/// [`bucket`] in SQL, of the column or expression `started_at`.
pub(super) fn bucket_sql(started_at: &str) -> String {
    format!(
        "((min(max({started_at}, {lo}), {hi}) + {OFFSET_MS}) >> {BUCKET_BITS})",
        lo = -OFFSET_MS,
        hi = OFFSET_MS - 1
    )
}

/// [`first_rowid`] in SQL, of a bucket expression.
pub(super) fn first_rowid_sql(bucket: &str) -> String {
    format!("({bucket} << {COUNTER_BITS})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_time_order_and_rowids_fit() {
        let times = [
            i64::MIN,
            -OFFSET_MS - 1,
            -1,
            0,
            2_047,
            2_048,
            1_795_000_000_000,
            OFFSET_MS,
            i64::MAX,
        ];
        let buckets: Vec<i64> = times.iter().map(|&t| bucket(t)).collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(bucket(0), bucket(2_047));
        assert_eq!(bucket(2_047) + 1, bucket(2_048));
        assert_eq!(buckets[0], 0);
        let last = *buckets.last().unwrap();
        assert!(last < 1 << 32);
        // One past the last rowid of the last bucket still fits in an i64.
        assert!(first_rowid(last + 1) > first_rowid(last));
        assert_eq!(bucket_of_rowid(first_rowid(last) + (1 << 30) - 1), last);
    }

    #[tokio::test]
    async fn the_sql_bucket_is_the_rust_bucket() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        for t in [
            i64::MIN,
            -OFFSET_MS - 5,
            -3_000,
            -1,
            0,
            4_095,
            1_795_000_123_456,
            i64::MAX,
        ] {
            let sql = format!("SELECT {}", first_rowid_sql(&bucket_sql("?")));
            let rowid: i64 = sqlx::query_scalar(&sql)
                .bind(t)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(rowid, first_rowid(bucket(t)), "started_at {t}");
        }
    }
}
