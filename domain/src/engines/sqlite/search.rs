//! Full-text search on SQLite (FTS5), and the order of its index.
//!
//! FTS5 walks a match's rowids in order and stops early under `ORDER BY rowid DESC LIMIT n`,
//! but the flows list is ordered by `(started_at, id)`. So a search document's rowid is its
//! flow's time bucket (`started_at`, clamped to ±139 years around 1970, in units of 2,048 ms)
//! shifted left by 30 bits, plus a counter within the bucket. A newest-first walk over rowids
//! then visits the buckets newest first; only the order inside the last bucket reached has to
//! be settled by `(started_at, id)` (see [`search_flows`]).

use flowtrail_types::{FlowFilters, FlowSummary};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::Database;
use crate::Result;
use crate::engines::sql::flows::{FLOW_COLUMNS, LIST_ORDER, push_flow_filters};
use crate::engines::sql::rows::flow_summary;
use crate::flows::search_query;
use crate::millis::bound_ms;

/// Times are clamped to `[-OFFSET, OFFSET)` ms, then shifted to be non-negative.
const OFFSET_MS: i64 = 1 << 42;
/// A bucket is 2^11 ms = 2.048 s.
const BUCKET_BITS: u32 = 11;
/// Up to 2^30 documents per bucket.
const COUNTER_BITS: u32 = 30;

/// The time bucket of `started_at` (Unix ms), in `[0, 2^32)`.
pub(crate) fn bucket(started_at_ms: i64) -> i64 {
    (started_at_ms.clamp(-OFFSET_MS, OFFSET_MS - 1) + OFFSET_MS) >> BUCKET_BITS
}

/// The first rowid of a bucket; `first_rowid(b + 1)` is one past its last.
pub(crate) fn first_rowid(bucket: i64) -> i64 {
    bucket << COUNTER_BITS
}

/// The bucket a rowid belongs to.
pub(crate) fn bucket_of_rowid(rowid: i64) -> i64 {
    rowid >> COUNTER_BITS
}

/// [`bucket`] in SQL, of the column or expression `started_at`.
pub(crate) fn bucket_sql(started_at: &str) -> String {
    format!(
        "((min(max({started_at}, {lo}), {hi}) + {OFFSET_MS}) >> {BUCKET_BITS})",
        lo = -OFFSET_MS,
        hi = OFFSET_MS - 1
    )
}

/// [`first_rowid`] in SQL, of a bucket expression.
pub(crate) fn first_rowid_sql(bucket: &str) -> String {
    format!("({bucket} << {COUNTER_BITS})")
}

/// The first `want` flows of a text search, in list order. The walk goes newest first over
/// the search index's time-ordered rowids and stops at `want` matches; the oldest bucket
/// it reached may have more matches than it saw, so that bucket is read again whole, in
/// `(started_at, id)` order, before the page is cut.
pub(crate) async fn search_flows(
    db: &Database,
    team_id: i64,
    query: &FlowFilters,
    text: &str,
    want: i64,
) -> Result<Vec<FlowSummary>> {
    // The user asked for text and typed nothing searchable: nothing matches.
    let Some(fts) = fts_query(text) else {
        return Ok(Vec::new());
    };
    let fts = fts.as_str();
    let want = want as usize;
    let (lo, hi) = search_range(query);
    if lo >= hi {
        return Ok(Vec::new());
    }
    let mut sql = flows_where(team_id, query, Some((fts, lo, hi)));
    sql.push(" ORDER BY flow_search.rowid DESC LIMIT ")
        .push_bind(want as i64);
    let rows = sql.build().fetch_all(&db.read).await?;
    let mut flows = Vec::with_capacity(rows.len());
    for row in &rows {
        let rowid: i64 = row.try_get("search_rowid")?;
        flows.push((bucket_of_rowid(rowid), flow_summary(row)?));
    }
    if let Some(&(last, _)) = flows.last().filter(|_| flows.len() == want) {
        flows.retain(|(bucket, _)| *bucket > last);
        let range = (first_rowid(last).max(lo), first_rowid(last + 1).min(hi));
        let mut sql = flows_where(team_id, query, Some((fts, range.0, range.1)));
        sql.push(LIST_ORDER).push_bind(want as i64);
        for row in sql.build().fetch_all(&db.read).await? {
            flows.push((last, flow_summary(&row)?));
        }
    }
    let mut flows: Vec<FlowSummary> = flows.into_iter().map(|(_, flow)| flow).collect();
    flows.sort_by_key(|flow| std::cmp::Reverse((flow.started_at, flow.id)));
    flows.truncate(want);
    Ok(flows)
}

/// The flows of a team that pass every filter of `query` but the text, as a `SELECT` to
/// which the caller adds the order and the limit. With `search` (an FTS5 query and a rowid
/// range), only the flows whose search document matches, walked from the search index.
fn flows_where<'q>(
    team_id: i64,
    query: &'q FlowFilters,
    search: Option<(&'q str, i64, i64)>,
) -> QueryBuilder<'q, Sqlite> {
    let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
    sql.push(FLOW_COLUMNS);
    match search {
        None => {
            sql.push(" FROM flows f JOIN pipelines p ON p.id = f.pipeline_id WHERE true");
        }
        Some((fts, lo, hi)) => {
            sql.push(
                ", flow_search.rowid AS search_rowid FROM flow_search \
                 JOIN flow_search_ids d ON d.id = flow_search.rowid \
                 JOIN flows f ON f.team_id = d.team_id AND f.id = d.flow_id \
                 JOIN pipelines p ON p.id = f.pipeline_id \
                 WHERE flow_search MATCH ",
            )
            .push_bind(fts)
            .push(" AND flow_search.rowid >= ")
            .push_bind(lo)
            .push(" AND flow_search.rowid < ")
            .push_bind(hi);
        }
    }
    sql.push(" AND f.team_id = ").push_bind(team_id);
    push_flow_filters(&mut sql, query);
    sql
}

/// The search index rowids `[lo, hi)` that can hold a flow in the query's time range and
/// after its cursor, so the walk starts at the right bucket instead of filtering its way there.
fn search_range(query: &FlowFilters) -> (i64, i64) {
    let lo = query
        .since
        .map_or(i64::MIN, |since| first_rowid(bucket(bound_ms(since))));
    let ends = [
        query.until.map(|until| bound_ms(until).saturating_sub(1)),
        query.cursor.as_ref().map(|cursor| cursor.started_at_ms),
    ];
    let hi = ends
        .into_iter()
        .flatten()
        .map(|last| first_rowid(bucket(last) + 1))
        .min()
        .unwrap_or(i64::MAX);
    (lo, hi)
}

/// An FTS5 query for what the user typed: every word a phrase of its tokens, quoted (so no
/// operator or column filter can be injected), the last token a prefix.
fn fts_query(text: &str) -> Option<String> {
    search_query(text, |tokens| format!("\"{}\"*", tokens.join(" ")), " AND ")
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

/// Properties of the search index's time buckets on generated times (proptest, issue #18):
/// a time in the range the index orders exactly falls in exactly one 2,048 ms bucket, which
/// holds it; buckets keep time order everywhere (also where times are clamped); a rowid reads
/// back to the bucket it was made in; and the SQL twins compute what the Rust functions do.
/// `PROPTEST_CASES` sets the number of cases (default 512).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(512);
        ProptestConfig::with_cases(cases)
    }

    /// Width of a bucket in ms.
    const WIDTH: i64 = 1 << BUCKET_BITS;

    /// A time (Unix ms) the index orders exactly, `[-OFFSET_MS, OFFSET_MS)`: anywhere, at a
    /// bucket's edge (±1 ms), at either end of the range, or around 1970.
    fn ordered_ms() -> impl Strategy<Value = i64> {
        let edges = OFFSET_MS / WIDTH;
        prop_oneof![
            -OFFSET_MS..OFFSET_MS,
            (-edges..edges, -1i64..=1).prop_map(|(edge, delta)| {
                (edge * WIDTH + delta).clamp(-OFFSET_MS, OFFSET_MS - 1)
            }),
            (0i64..3 * WIDTH).prop_map(|back| OFFSET_MS - 1 - back),
            (0i64..3 * WIDTH).prop_map(|on| -OFFSET_MS + on),
            -3 * WIDTH..3 * WIDTH,
        ]
    }

    /// Any time in Unix ms, also outside what the index orders exactly (clamped).
    fn any_ms() -> impl Strategy<Value = i64> {
        prop_oneof![
            ordered_ms(),
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            (0i64..3 * WIDTH).prop_map(|d| -OFFSET_MS - 1 - d),
            (0i64..3 * WIDTH).prop_map(|d| OFFSET_MS + d),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn a_time_falls_in_exactly_the_one_bucket_that_holds_it(t in ordered_ms()) {
            let b = bucket(t);
            prop_assert!((0..1i64 << 32).contains(&b), "bucket {b} of {t}");
            // Buckets are the 2,048 ms from each multiple of 2,048 ms since 1970: the one of
            // `t` starts at `start`, the time before it is in `b - 1`, its last time is
            // `start + WIDTH - 1` and the next one is in `b + 1`.
            let start = t - t.rem_euclid(WIDTH);
            prop_assert!(start <= t && t < start + WIDTH);
            prop_assert_eq!(bucket(start), b);
            prop_assert_eq!(bucket(start + WIDTH - 1), b);
            if start > -OFFSET_MS {
                prop_assert_eq!(bucket(start - 1), b - 1, "start {}", start);
            }
            if start + WIDTH < OFFSET_MS {
                prop_assert_eq!(bucket(start + WIDTH), b + 1, "start {}", start);
            }
        }

        #[test]
        fn buckets_keep_time_order(a in any_ms(), b in any_ms()) {
            let (early, late) = (a.min(b), a.max(b));
            prop_assert!(bucket(early) <= bucket(late), "{early} {late}");
            // Times a bucket apart, both ordered exactly, are in different buckets.
            let ordered = -OFFSET_MS..OFFSET_MS;
            if ordered.contains(&early) && ordered.contains(&late) && late - early >= WIDTH {
                prop_assert!(bucket(early) < bucket(late), "{early} {late}");
            }
            prop_assert!((0..1i64 << 32).contains(&bucket(a)));
        }

        #[test]
        fn a_rowid_reads_back_to_its_bucket(
            t in any_ms(),
            counter in 0i64..1 << COUNTER_BITS,
            later in 0i64..1 << COUNTER_BITS,
        ) {
            let b = bucket(t);
            let rowid = first_rowid(b) + counter;
            prop_assert_eq!(bucket_of_rowid(rowid), b);
            // One past a bucket's last rowid is the next bucket's first, and still an i64.
            let next = (b + 1).checked_mul(1 << COUNTER_BITS);
            prop_assert_eq!(next, Some(first_rowid(b + 1)));
            prop_assert_eq!(first_rowid(b + 1) - first_rowid(b), 1 << COUNTER_BITS);
            prop_assert!(rowid < first_rowid(b + 1));
            // Every rowid of a later bucket is above every rowid of this one.
            prop_assert_eq!(bucket_of_rowid(first_rowid(b + 1) + later), b + 1);
            prop_assert!(first_rowid(b + 1) + later > rowid);
        }

        #[test]
        fn the_sql_buckets_are_the_rust_buckets(times in proptest::collection::vec(any_ms(), 1..16)) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
                let bucket_query = format!("SELECT {}", bucket_sql("?1"));
                let rowid_query = format!("SELECT {}", first_rowid_sql(&bucket_sql("?1")));
                for &t in &times {
                    let b: i64 = sqlx::query_scalar(&bucket_query)
                        .bind(t)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    prop_assert_eq!(b, bucket(t), "bucket of {}", t);
                    let rowid: i64 = sqlx::query_scalar(&rowid_query)
                        .bind(t)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    prop_assert_eq!(rowid, first_rowid(bucket(t)), "first rowid of {}", t);
                }
                Ok(())
            })?;
        }
    }
}
