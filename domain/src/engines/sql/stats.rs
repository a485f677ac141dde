//! Reason statistics and funnels in SQL, the same statements on SQLite and PostgreSQL. Each
//! query answers one JSON array rather than thousands of rows (sqlx hands SQLite rows over
//! one at a time between threads); only the name of the JSON aggregate differs
//! ([`SqlDatabase::json_rows`]).

use super::rows::{FunnelTuple, ReasonTuple, funnel_row, parse_json, reason_row};
use super::writes::REASON_LO_BITS;
use super::{SqlDatabase, on_pool};
use crate::Result;
use crate::analysis::{FunnelRow, ReasonRow, StatsQuery};
use crate::millis::{HOUR_MS, bound_ms, floor_sql, hour_floor};

/// The start of the first hour at or after `ms`.
fn hour_ceil(ms: i64) -> i64 {
    let floor = hour_floor(ms);
    if floor == ms { ms } else { floor + HOUR_MS }
}

/// Which stored counts answer a range: hourly rollups over `rollup` (whole hours), plus the
/// steps of the flows that started in `add`, minus those of the flows that started in
/// `subtract` (each at most two ranges, empty ones as `(0, 0)`).
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    rollup: (i64, i64),
    add: [(i64, i64); 2],
    subtract: [(i64, i64); 2],
}

impl Plan {
    /// The cheapest exact plan for `[since, until)`. A part of an hour at either end is read
    /// from the steps when it is at most half the hour; else its whole hour comes from the
    /// rollup and the rest of that hour is subtracted — so the default range, which ends
    /// now, reads the few flows started after now in this hour (usually none) rather than
    /// every flow of the hour so far. Exact because a rollup changes in the same
    /// transaction as its flows (writes, merges and retention).
    fn of(since: i64, until: i64) -> Plan {
        const HALF: i64 = HOUR_MS / 2;
        let (first_hour, last_hour) = (hour_ceil(since), hour_floor(until));
        let mut add = Vec::new();
        let mut subtract = Vec::new();
        let rollup = if since >= until {
            (0, 0)
        } else if first_hour > last_hour {
            // Inside one hour.
            let hour = last_hour;
            if until - since <= HALF {
                add.push((since, until));
                (hour, hour)
            } else {
                subtract.extend([(hour, since), (until, hour + HOUR_MS)]);
                (hour, hour + HOUR_MS)
            }
        } else {
            let (mut from, mut to) = (first_hour, last_hour);
            if first_hour - since <= HALF {
                add.push((since, first_hour));
            } else {
                from = first_hour - HOUR_MS;
                subtract.push((from, since));
            }
            if until - last_hour <= HALF {
                add.push((last_hour, until));
            } else {
                to = last_hour + HOUR_MS;
                subtract.push((until, to));
            }
            (from, to)
        };
        let two = |mut ranges: Vec<(i64, i64)>| {
            ranges.retain(|(from, to)| from < to);
            ranges.resize(2, (0, 0));
            [ranges[0], ranges[1]]
        };
        Plan {
            rollup,
            add: two(add),
            subtract: two(subtract),
        }
    }
}

/// Reason counts per bucket, pipeline, step and code (see `FlowStore::reason_counts`), exact
/// for any `since` and `until`: whole hours come from the hourly rollups (`reason_counts`),
/// the parts of an hour at either end from the steps of the flows that started in them, or
/// from the rollup of that hour less the steps of the flows in the rest of it ([`Plan::of`]).
/// The parts of the stored counts are summed apart and combined in Rust
/// (`rows::reason_row`): a bucket sums at most a few thousand hourly rows, each part far below
/// 2^63.
pub(crate) async fn reason_counts(
    db: &SqlDatabase,
    team_id: i64,
    query: &StatsQuery,
) -> Result<Vec<ReasonRow>> {
    let plan = Plan::of(bound_ms(query.since), bound_ms(query.until));
    let sql = db.json_rows(
        "b, name, step, code, hi, lo",
        Some("b, name, step, code"),
        &format!(
            "SELECT {bucket} AS b, p.name, r.step, r.code, \
                CAST(SUM(r.count_hi) AS BIGINT) AS hi, CAST(SUM(r.count_lo) AS BIGINT) AS lo \
         FROM reason_counts r JOIN pipelines p ON p.id = r.pipeline_id \
         WHERE r.team_id = $2 AND r.bucket >= $3 AND r.bucket < $4 \
           AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
           AND (CAST($6 AS TEXT) IS NULL OR r.step = $6) \
           AND CAST($7 AS BIGINT) <= CAST($8 AS BIGINT) \
         GROUP BY b, p.name, r.step, r.code \
         HAVING SUM(r.count_hi) <> 0 OR SUM(r.count_lo) <> 0",
            bucket = floor_sql("r.bucket", "$1"),
        ),
    );
    let (entries, value) = db.json_object_entries("s.reasons");
    let edge_sql = db.json_rows(
        "b, name, step, code, hi, lo",
        None,
        &format!(
            "SELECT {bucket} AS b, p.name, s.name AS step, j.key AS code, \
                CAST(SUM({value} >> {bits}) AS BIGINT) AS hi, \
                CAST(SUM({value} & {mask}) AS BIGINT) AS lo \
         FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
         JOIN steps s ON s.team_id = f.team_id AND s.flow_id = f.id, {entries} \
         WHERE f.team_id = $2 \
           AND ((f.started_at >= $3 AND f.started_at < $4) \
                OR (f.started_at >= $7 AND f.started_at < $8)) \
           AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
           AND (CAST($6 AS TEXT) IS NULL OR s.name = $6) \
         GROUP BY 1, 2, 3, 4",
            bucket = floor_sql("f.started_at", "$1"),
            bits = REASON_LO_BITS,
            mask = (1u64 << REASON_LO_BITS) - 1,
        ),
    );
    let fetch = |sql: String, (a, b): (i64, i64), (c, d): (i64, i64)| async move {
        let json: String = on_pool!(db, read, |pool| {
            sqlx::query_scalar(&sql)
                .bind(query.bucket_ms)
                .bind(team_id)
                .bind(a)
                .bind(b)
                .bind(&query.pipeline)
                .bind(&query.step)
                .bind(c)
                .bind(d)
                .fetch_one(pool)
                .await?
        });
        parse_json::<Vec<ReasonTuple>>(&json, "reason counts")
    };
    // Both statements take the same eight parameters; the rollups' $7 and $8 are a no-op
    // clause (PostgreSQL refuses a parameter a statement does not use).
    let fetch = &fetch;
    let steps = |[first, second]: [(i64, i64); 2]| {
        let sql = edge_sql.clone();
        async move {
            if first.0 < first.1 || second.0 < second.1 {
                fetch(sql, first, second).await
            } else {
                Ok(Vec::new())
            }
        }
    };
    let rollup = async {
        if plan.rollup.0 < plan.rollup.1 {
            fetch(sql.clone(), plan.rollup, (0, 0)).await
        } else {
            Ok(Vec::new())
        }
    };
    if let Some((key, tag_value)) = &query.tag {
        // Rollups have no tags: the whole range from the steps of the flows so tagged.
        let tagged_sql = db.json_rows(
            "b, name, step, code, hi, lo",
            None,
            &format!(
                "SELECT {bucket} AS b, p.name, s.name AS step, j.key AS code, \
                    CAST(SUM({value} >> {bits}) AS BIGINT) AS hi, \
                    CAST(SUM({value} & {mask}) AS BIGINT) AS lo \
             FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
             JOIN steps s ON s.team_id = f.team_id AND s.flow_id = f.id, {entries} \
             WHERE f.team_id = $2 AND f.started_at >= $3 AND f.started_at < $4 \
               AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
               AND (CAST($6 AS TEXT) IS NULL OR s.name = $6) \
               AND EXISTS (SELECT 1 FROM flow_tags t WHERE t.team_id = f.team_id \
                   AND t.flow_id = f.id AND t.key = $7 AND t.value = $8) \
             GROUP BY 1, 2, 3, 4",
                bucket = floor_sql("f.started_at", "$1"),
                bits = REASON_LO_BITS,
                mask = (1u64 << REASON_LO_BITS) - 1,
            ),
        );
        let json: String = on_pool!(db, read, |pool| {
            sqlx::query_scalar(&tagged_sql)
                .bind(query.bucket_ms)
                .bind(team_id)
                .bind(bound_ms(query.since))
                .bind(bound_ms(query.until))
                .bind(&query.pipeline)
                .bind(&query.step)
                .bind(key)
                .bind(tag_value)
                .fetch_one(pool)
                .await?
        });
        let rows = parse_json::<Vec<ReasonTuple>>(&json, "reason counts")?;
        return Ok(sum_rows(vec![(rows, 1)]));
    }
    let (rollup_rows, added, subtracted) =
        futures::try_join!(rollup, steps(plan.add), steps(plan.subtract))?;
    Ok(sum_rows(vec![
        (rollup_rows, 1),
        (added, 1),
        (subtracted, -1),
    ]))
}

/// Flows that started in `[since_ms, until_ms)` per `bucket_ms`-wide bucket (from 1970,
/// like every bucket of the statistics) and pipeline — of one pipeline when `pipeline` is
/// given: `(pipeline, bucket start in Unix ms, flows, failed)`, in no order, empty buckets
/// left out. Exact for any range, planned like [`reason_counts`]: whole hours from the
/// hourly flow counts (migration `flow_counts`), the parts of an hour at either end from the
/// flows themselves. A bucket is at least an hour wide and a whole number of hours.
pub(crate) async fn flow_counts(
    db: &SqlDatabase,
    team_id: i64,
    pipeline: Option<&str>,
    (since_ms, until_ms): (i64, i64),
    bucket_ms: i64,
) -> Result<Vec<(String, i64, u64, u64)>> {
    let plan = Plan::of(since_ms, until_ms);
    let rollup_sql = format!(
        "SELECT {bucket} AS b, p.name, CAST(SUM(r.flows) AS BIGINT), \
             CAST(SUM(r.failed) AS BIGINT) \
         FROM flow_counts r JOIN pipelines p ON p.id = r.pipeline_id \
         WHERE r.team_id = $2 AND r.bucket >= $3 AND r.bucket < $4 \
           AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
           AND CAST($6 AS BIGINT) <= CAST($7 AS BIGINT) \
         GROUP BY 1, 2",
        bucket = floor_sql("r.bucket", "$1"),
    );
    let flows_sql = format!(
        "SELECT {bucket} AS b, p.name, CAST(COUNT(*) AS BIGINT), \
             CAST(SUM(CASE WHEN f.status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) \
         FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
         WHERE f.team_id = $2 \
           AND ((f.started_at >= $3 AND f.started_at < $4) \
                OR (f.started_at >= $6 AND f.started_at < $7)) \
           AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
         GROUP BY 1, 2",
        bucket = floor_sql("f.started_at", "$1"),
    );
    // Both statements take the same seven parameters; the rollup's $6 and $7 are a no-op
    // clause (PostgreSQL refuses a parameter a statement does not use).
    let fetch = |sql: &str, (a, b): (i64, i64), (c, d): (i64, i64)| {
        let sql = sql.to_owned();
        async move {
            if a >= b && c >= d {
                return Ok(Vec::new());
            }
            let rows: Vec<(i64, String, i64, i64)> = on_pool!(db, read, |pool| {
                sqlx::query_as(&sql)
                    .bind(bucket_ms)
                    .bind(team_id)
                    .bind(a)
                    .bind(b)
                    .bind(pipeline)
                    .bind(c)
                    .bind(d)
                    .fetch_all(pool)
                    .await?
            });
            Ok::<_, crate::Error>(rows)
        }
    };
    let [add_first, add_second] = plan.add;
    let [sub_first, sub_second] = plan.subtract;
    let (rollup, added, subtracted) = futures::try_join!(
        fetch(&rollup_sql, plan.rollup, (0, 0)),
        fetch(&flows_sql, add_first, add_second),
        fetch(&flows_sql, sub_first, sub_second),
    )?;
    let mut sums: std::collections::HashMap<(String, i64), (i64, i64)> =
        std::collections::HashMap::new();
    for (rows, sign) in [(rollup, 1), (added, 1), (subtracted, -1)] {
        for (bucket, name, flows, failed) in rows {
            let sum = sums.entry((name, bucket)).or_default();
            sum.0 += sign * flows;
            sum.1 += sign * failed;
        }
    }
    // What is subtracted is part of a rollup that is added: no sum goes below zero.
    Ok(sums
        .into_iter()
        .filter(|(_, (flows, _))| *flows > 0)
        .map(|((name, bucket), (flows, failed))| {
            (
                name,
                bucket,
                u64::try_from(flows).unwrap_or(0),
                u64::try_from(failed).unwrap_or(0),
            )
        })
        .collect())
}

/// One [`ReasonRow`] per (bucket, pipeline, step, code), in that order, from parts of the
/// stored counts each added or subtracted (`sign`). What is subtracted is part of a rollup
/// that is added, so no sum goes below zero; zero sums are left out.
fn sum_rows(parts: Vec<(Vec<ReasonTuple>, i128)>) -> Vec<ReasonRow> {
    let mut sums: std::collections::BTreeMap<(i64, String, String, String), i128> =
        std::collections::BTreeMap::new();
    for (row, sign) in parts
        .into_iter()
        .flat_map(|(rows, sign)| rows.into_iter().map(reason_row).map(move |row| (row, sign)))
    {
        // `reason_row` built each count from an i128 (at most 2^95), so it fits one.
        *sums
            .entry((row.bucket_ms, row.pipeline, row.step, row.code))
            .or_default() += sign * row.count as i128;
    }
    sums.into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|((bucket_ms, pipeline, step, code), count)| ReasonRow {
            bucket_ms,
            pipeline,
            step,
            code,
            count: count as u128,
        })
        .collect()
}

/// The funnel rows of one pipeline: its newest `flow_cap` flows in the range, their steps'
/// counts.
pub(crate) async fn funnel_of(
    db: &SqlDatabase,
    team_id: i64,
    query: &StatsQuery,
    flow_cap: u32,
    (pipeline_id, pipeline): (i64, String),
) -> Result<Vec<FunnelRow>> {
    let sql = db.json_rows(
        "flow_id, seq, name, kind, candidates_in, candidates_out",
        // The medians are computed from the rows in any order.
        None,
        "SELECT s.flow_id, s.seq, s.name, s.kind, s.candidates_in, s.candidates_out \
         FROM (SELECT id FROM flows WHERE team_id = $1 AND pipeline_id = $2 \
               AND started_at >= $3 AND started_at < $4 \
               AND (CAST($7 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM flow_tags t \
                   WHERE t.team_id = $1 AND t.flow_id = flows.id AND t.key = $7 \
                     AND t.value = $8)) \
               ORDER BY started_at DESC, id DESC LIMIT $5) f \
         JOIN steps s ON s.team_id = $1 AND s.flow_id = f.id \
         WHERE s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL \
           AND (CAST($6 AS TEXT) IS NULL OR s.name = $6)",
    );
    let json: String = on_pool!(db, read, |pool| {
        sqlx::query_scalar(&sql)
            .bind(team_id)
            .bind(pipeline_id)
            .bind(bound_ms(query.since))
            .bind(bound_ms(query.until))
            .bind(i64::from(flow_cap))
            .bind(&query.step)
            .bind(query.tag.as_ref().map(|(key, _)| key))
            .bind(query.tag.as_ref().map(|(_, value)| value))
            .fetch_one(pool)
            .await?
    });
    let rows: Vec<FunnelTuple> = parse_json(&json, "funnel rows")?;
    rows.into_iter()
        .map(|row| funnel_row(&pipeline, row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn within(t: i64, (from, to): (i64, i64)) -> i64 {
        i64::from(from <= t && t < to)
    }

    /// How many times the plan counts a flow started at `t`.
    fn counted(plan: &Plan, t: i64) -> i64 {
        within(t, plan.rollup) + plan.add.iter().map(|&r| within(t, r)).sum::<i64>()
            - plan.subtract.iter().map(|&r| within(t, r)).sum::<i64>()
    }

    /// Times around an hour's edges and halves, before and after 1970.
    fn instant() -> impl Strategy<Value = i64> {
        prop_oneof![
            -3 * HOUR_MS..3 * HOUR_MS,
            (-6i64..6, -2i64..=2).prop_map(|(half, d)| half * HOUR_MS / 2 + d),
        ]
    }

    proptest! {
        #[test]
        fn a_plan_counts_exactly_the_flows_of_its_range_reading_at_most_half_an_hour_of_steps(
            since in instant(),
            until in instant(),
            probes in proptest::collection::vec(instant(), 64),
        ) {
            let plan = Plan::of(since, until);
            let edges = [since - 1, since, since + 1, until - 1, until, until + 1];
            for t in probes.into_iter().chain(edges) {
                prop_assert_eq!(counted(&plan, t), within(t, (since, until)), "t={} {:?}", t, plan);
            }
            // The rollup is read by whole hours; each range of steps lies in one hour, is at
            // most half of it, and what is subtracted is inside the rollup.
            prop_assert_eq!(hour_floor(plan.rollup.0), plan.rollup.0);
            prop_assert_eq!(hour_floor(plan.rollup.1), plan.rollup.1);
            for (from, to) in plan.add.into_iter().chain(plan.subtract) {
                if from < to {
                    prop_assert!(to - from <= HOUR_MS / 2, "{:?}", plan);
                    prop_assert_eq!(hour_floor(from), hour_floor(to - 1));
                }
            }
            for (from, to) in plan.subtract {
                if from < to {
                    prop_assert!(plan.rollup.0 <= from && to <= plan.rollup.1, "{:?}", plan);
                }
            }
        }
    }

    #[test]
    fn a_range_that_ends_now_reads_the_rest_of_the_hour_not_the_hour_so_far() {
        // The statistics' default: the last 7 days up to now, 40 minutes into an hour.
        let now = 1_000 * HOUR_MS + 40 * 60_000;
        let plan = Plan::of(now - 7 * 24 * HOUR_MS, now);
        assert_eq!(plan.rollup.1, 1_001 * HOUR_MS);
        assert_eq!(plan.subtract[0], (now, 1_001 * HOUR_MS));
    }
}
