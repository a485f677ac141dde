//! Time bucketing of the statistics. A time sent as RFC 3339 text (any offset, fractional
//! seconds to the nanosecond, before 1970, on leap days and year ends) reads as the instant
//! its calendar names, in Unix milliseconds rounded down; it falls in exactly one hour and
//! one day (UTC), the ones the calendar names, whose start is at or before it and whose end
//! is after it; buckets keep time order; SQL (`millis::floor_sql`, what the rollups and the
//! statistics queries use) computes the same buckets as Rust (`millis::hour_floor`), and a
//! day of hourly rollups is the day of their times. Stored, reason counts over any range are
//! the exact sums of the reasons of the flows that started in it, per bucket.

use std::collections::BTreeMap;

use flowtrail_domain::analysis::{ReasonRow, StatsQuery};
use flowtrail_domain::flows::{FlowWrite, StepPayloads, WriteMode};
use flowtrail_domain::ingest::MAX_COUNT;
use flowtrail_domain::millis::{HOUR_MS, floor_sql, from_ms, hour_floor, to_ms};
use flowtrail_types::{FlowRecord, FlowStatus, StepKind, StepRecord};
use proptest::prelude::*;
use proptest::sample::select;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::{at_ms, config, db_config, fresh, runtime};

const DAY_MS: i64 = 24 * HOUR_MS;

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`): the test's own calendar, independent of the `time` crate.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A time as RFC 3339 text, by its parts.
#[derive(Debug, Clone)]
struct Stamp {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// The fraction of a second as written: its digits (0 to 9) and their value.
    fraction: (u32, u64),
    /// `None` for `Z`; else (sign, hours, minutes) as written (`-00:00` included).
    offset: Option<(bool, i64, i64)>,
}

impl Stamp {
    fn text(&self) -> String {
        let fraction = match self.fraction {
            (0, _) => String::new(),
            (digits, value) => format!(".{value:0width$}", width = digits as usize),
        };
        let offset = match self.offset {
            None => "Z".to_string(),
            Some((negative, hours, minutes)) => {
                format!(
                    "{}{hours:02}:{minutes:02}",
                    if negative { '-' } else { '+' }
                )
            }
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{offset}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    fn offset_seconds(&self) -> i64 {
        match self.offset {
            None => 0,
            Some((negative, hours, minutes)) => {
                let seconds = hours * 3600 + minutes * 60;
                if negative { -seconds } else { seconds }
            }
        }
    }

    fn nanos(&self) -> i64 {
        let (digits, value) = self.fraction;
        value as i64 * 10i64.pow(9 - digits)
    }

    /// The instant in Unix ms (rounded down), by the test's calendar.
    fn unix_ms(&self) -> i64 {
        let local = days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.minute * 60
            + self.second;
        (local - self.offset_seconds()) * 1000 + self.nanos() / 1_000_000
    }
}

fn stamp() -> impl Strategy<Value = Stamp> {
    let year = prop_oneof![
        0i64..=9999,
        // 1970 and the years around it, leap years (2000 is, 1900 and 2100 are not), the
        // first and last years RFC 3339 writes.
        select(vec![
            1969i64, 1970, 1971, 1900, 2000, 2024, 2100, 2400, 1600, 0, 1, 9999
        ]),
        1960i64..2040,
    ];
    let fraction = (0u32..=9).prop_flat_map(|digits| (Just(digits), 0..10u64.pow(digits)));
    let offset = proptest::option::of((any::<bool>(), 0i64..=23, 0i64..=59));
    (
        year,
        1i64..=12,
        // Biased to month ends: a day past the month's last is its last.
        prop_oneof![1i64..=31, 28i64..=31],
        (0i64..24, 0i64..60, 0i64..60, fraction),
        // Exactly on the hour.
        any::<bool>(),
        offset,
    )
        .prop_map(
            |(year, month, day, (hour, minute, second, fraction), on_the_hour, offset)| {
                let (minute, second, fraction) = if on_the_hour {
                    (0, 0, (fraction.0, 0))
                } else {
                    (minute, second, fraction)
                };
                Stamp {
                    year,
                    month,
                    day: day.min(days_in_month(year, month)),
                    hour,
                    minute,
                    second,
                    fraction,
                    offset,
                }
            },
        )
}

/// The stamp read as a flow record reads `started_at` (`flowtrail_types::rfc3339`): `None`
/// when refused, which must be exactly when the test's calendar puts the instant outside
/// the years 0000 to 9999 of UTC (year 0 in a positive offset, 9999 in a negative one).
fn parse(stamp: &Stamp) -> Option<OffsetDateTime> {
    let parsed = flowtrail_types::rfc3339::parse(&stamp.text());
    let first = days_from_civil(0, 1, 1) * DAY_MS;
    let after_last = days_from_civil(10_000, 1, 1) * DAY_MS;
    let in_utc_years = (first..after_last).contains(&stamp.unix_ms());
    assert_eq!(
        parsed.is_ok(),
        in_utc_years,
        "{} reads as {parsed:?}",
        stamp.text()
    );
    if let Err(reason) = &parsed {
        assert_eq!(reason, flowtrail_types::rfc3339::OUT_OF_RANGE);
    }
    parsed.ok()
}

/// Unix ms across the years a flow can start at, with hour and day edges (±1 ms).
fn any_ms() -> impl Strategy<Value = i64> {
    let (min, max) = (to_ms(at_year(-9999)), to_ms(at_year(9999)));
    prop_oneof![
        min..max,
        (min / DAY_MS..max / DAY_MS, -1i64..=1).prop_map(|(day, d)| day * DAY_MS + d),
        (min / HOUR_MS..max / HOUR_MS, -1i64..=1).prop_map(|(hour, d)| hour * HOUR_MS + d),
        -2 * DAY_MS..2 * DAY_MS,
    ]
}

fn at_year(year: i32) -> OffsetDateTime {
    time::Date::from_calendar_date(year, time::Month::January, 1)
        .unwrap()
        .midnight()
        .assume_utc()
}

/// `floor_sql` run by SQLite on `ms` and `width`, and on the hour floor of `ms` (how the
/// statistics bucket hourly rollups) and `width`.
async fn sql_floors(pool: &sqlx::SqlitePool, ms: i64, width: i64) -> (i64, i64) {
    let sql = format!(
        "SELECT {}, {}",
        floor_sql("?1", "?2"),
        floor_sql(&floor_sql("?1", &HOUR_MS.to_string()), "?2")
    );
    sqlx::query_as(&sql)
        .bind(ms)
        .bind(width)
        .fetch_one(pool)
        .await
        .unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_rfc3339_time_reads_as_the_instant_its_calendar_names(stamp in stamp()) {
        let Some(parsed) = parse(&stamp) else { return Ok(()) };
        let ms = to_ms(parsed);
        prop_assert_eq!(ms, stamp.unix_ms(), "{}", stamp.text());
        // The list's `since`/`until` read the same text as the same instant.
        let filter = flowtrail_types::filters::parse_time("since", &stamp.text());
        prop_assert_eq!(filter, Ok(parsed));
        // Stored milliseconds read back as the instant cut to the millisecond.
        let cut = parsed.to_offset(UtcOffset::UTC).replace_nanosecond(
            parsed.nanosecond() / 1_000_000 * 1_000_000,
        ).unwrap();
        prop_assert_eq!(from_ms(ms), cut);
    }

    #[test]
    fn a_time_falls_in_exactly_the_hour_and_day_its_calendar_names(stamp in stamp()) {
        let Some(parsed) = parse(&stamp) else { return Ok(()) };
        let ms = to_ms(parsed);
        let utc = parsed.to_offset(UtcOffset::UTC);
        let day = days_from_civil(
            i64::from(utc.year()),
            i64::from(u8::from(utc.month())),
            i64::from(utc.day()),
        ) * DAY_MS;
        let hour = day + i64::from(utc.hour()) * HOUR_MS;
        prop_assert_eq!(hour_floor(ms), hour, "{}", stamp.text());
        // Exactly one hour holds it: its start, its last millisecond and nothing around.
        prop_assert!(hour <= ms && ms < hour + HOUR_MS);
        prop_assert_eq!(hour_floor(hour), hour);
        prop_assert_eq!(hour_floor(hour + HOUR_MS - 1), hour);
        prop_assert_eq!(hour_floor(hour - 1), hour - HOUR_MS);
        prop_assert_eq!(hour_floor(hour + HOUR_MS), hour + HOUR_MS);
        // SQL puts it in the same hour, and in the day the calendar names.
        runtime().block_on(async {
            let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
            prop_assert_eq!(sql_floors(&pool, ms, HOUR_MS).await, (hour, hour));
            prop_assert_eq!(sql_floors(&pool, ms, DAY_MS).await, (day, day), "{}", stamp.text());
            Ok(())
        })?;
    }

    #[test]
    fn buckets_hold_their_times_and_keep_time_order(
        times in proptest::collection::vec(any_ms(), 2..12),
        hours in 1i64..=48,
    ) {
        // Widths the statistics use (an hour, a day) and any whole number of hours.
        let widths = [HOUR_MS, DAY_MS, hours * HOUR_MS];
        runtime().block_on(async {
            let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
            let mut buckets = Vec::new();
            for &t in &times {
                let mut of_t = Vec::new();
                for width in widths {
                    let (start, of_hour) = sql_floors(&pool, t, width).await;
                    prop_assert!(start <= t && t < start + width, "{} in {}", t, width);
                    prop_assert_eq!(start.rem_euclid(width), 0);
                    // A bucket of hourly rollups is the bucket of their times.
                    prop_assert_eq!(of_hour, start, "{} in {}", t, width);
                    of_t.push(start);
                }
                prop_assert_eq!(of_t[0], hour_floor(t));
                buckets.push((t, of_t));
            }
            buckets.sort();
            for pair in buckets.windows(2) {
                let ((early, early_buckets), (late, late_buckets)) = (&pair[0], &pair[1]);
                for (i, width) in widths.into_iter().enumerate() {
                    prop_assert!(early_buckets[i] <= late_buckets[i]);
                    // Times a bucket apart are in different buckets; in one, less than apart.
                    if late - early >= width {
                        prop_assert!(early_buckets[i] < late_buckets[i], "{} {}", early, late);
                    }
                    if early_buckets[i] == late_buckets[i] {
                        prop_assert!(late - early < width);
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// One flow of the range property: its start, its pipeline, and per step (name, reasons).
#[derive(Debug, Clone)]
struct RangeFlow {
    started_ms: i64,
    pipeline: &'static str,
    steps: Vec<(&'static str, BTreeMap<&'static str, u64>)>,
    /// A second version that moves the flow to another start.
    moved_to: Option<i64>,
}

impl RangeFlow {
    fn record(&self, id: Uuid, version: u32, started_ms: i64) -> FlowRecord {
        let mut record = FlowRecord::new(id, self.pipeline, at_ms(started_ms));
        record.version = version;
        record.status = FlowStatus::Succeeded;
        record.steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(seq, (name, reasons))| {
                let mut step = StepRecord::new(seq as u32, *name, StepKind::Filter);
                step.reasons = reasons
                    .iter()
                    .map(|(code, n)| (code.to_string(), *n))
                    .collect();
                step
            })
            .collect();
        record
    }

    fn final_start(&self) -> i64 {
        self.moved_to.unwrap_or(self.started_ms)
    }
}

/// An offset from the base hour: on an hour edge (±1 ms) or anywhere, within ±3 hours.
fn offset_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        (-3i64..=3, -1i64..=1).prop_map(|(h, d)| h * HOUR_MS + d),
        // Half hours: where the statistics switch from reading steps to subtracting them.
        (-6i64..=6, -1i64..=1).prop_map(|(half, d)| half * HOUR_MS / 2 + d),
        -3 * HOUR_MS..3 * HOUR_MS,
    ]
}

fn range_flow() -> impl Strategy<Value = RangeFlow> {
    let count = prop_oneof![4 => 1u64..1000, 1 => (MAX_COUNT - 3)..=MAX_COUNT];
    let reasons =
        proptest::collection::btree_map(select(vec!["price", "rating", "stock"]), count, 1..3);
    let steps =
        proptest::sample::subsequence(vec!["filter", "judge"], 1..=2).prop_flat_map(move |names| {
            let n = names.len();
            (Just(names), proptest::collection::vec(reasons.clone(), n))
        });
    (
        offset_ms(),
        select(vec!["ranker", "matcher"]),
        steps,
        proptest::option::weighted(0.3, offset_ms()),
    )
        .prop_map(
            |(started_ms, pipeline, (names, reasons), moved_to)| RangeFlow {
                started_ms,
                pipeline,
                steps: names.into_iter().zip(reasons).collect(),
                moved_to,
            },
        )
}

proptest! {
    #![proptest_config(db_config())]

    #[test]
    fn reason_counts_over_any_range_are_the_exact_sums_of_its_flows_per_bucket(
        base_hour in -10 * 8766i64..60 * 8766,
        flows in proptest::collection::vec(range_flow(), 1..7),
        range in (offset_ms(), offset_ms()),
        bucket_ms in select(vec![HOUR_MS, DAY_MS]),
        pipeline in proptest::option::of(select(vec!["ranker", "matcher"])),
        step in proptest::option::of(select(vec!["filter", "judge"])),
    ) {
        let base = base_hour * HOUR_MS;
        let (since, until) = (base + range.0.min(range.1), base + range.0.max(range.1));
        runtime().block_on(async {
            let db = fresh().await;
            let none = StepPayloads::new();
            let ids: Vec<Uuid> = flows.iter().map(|_| Uuid::now_v7()).collect();
            let first: Vec<FlowRecord> = flows
                .iter()
                .zip(&ids)
                .map(|(flow, &id)| flow.record(id, 1, base + flow.started_ms))
                .collect();
            let writes: Vec<FlowWrite> = first
                .iter()
                .map(|flow| FlowWrite {
                    team_id: db.team,
                    flow,
                    payloads: &none,
                    mode: WriteMode::Replace,
                    imported: false,
                })
                .collect();
            db.services.metadata.upsert_flows(&writes).await.unwrap();
            // Corrections that move flows to other hours: their counts move with them.
            for (flow, &id) in flows.iter().zip(&ids) {
                if let Some(moved) = flow.moved_to {
                    let record = flow.record(id, 2, base + moved);
                    let outcome = db.services.metadata.upsert_flow(db.team, &record, &none).await;
                    prop_assert!(outcome.unwrap().is_written());
                }
            }
            let query = StatsQuery {
                pipeline: pipeline.map(str::to_string),
                step: step.map(str::to_string),
                since: at_ms(since),
                until: at_ms(until),
                bucket_ms,
                tag: None,
            };
            let rows = db.services.metadata.reason_counts(db.team, &query).await.unwrap();

            let mut expected: BTreeMap<(i64, String, String, String), u128> = BTreeMap::new();
            for flow in &flows {
                let started = base + flow.final_start();
                if started < since || started >= until || pipeline.is_some_and(|p| p != flow.pipeline) {
                    continue;
                }
                for (name, reasons) in &flow.steps {
                    if step.is_some_and(|s| s != *name) {
                        continue;
                    }
                    for (code, n) in reasons {
                        let bucket = started.div_euclid(bucket_ms) * bucket_ms;
                        let key = (bucket, flow.pipeline.to_string(), name.to_string(), code.to_string());
                        *expected.entry(key).or_default() += u128::from(*n);
                    }
                }
            }
            let expected: Vec<ReasonRow> = expected
                .into_iter()
                .map(|((bucket_ms, pipeline, step, code), count)| ReasonRow {
                    bucket_ms,
                    pipeline,
                    step,
                    code,
                    count,
                })
                .collect();
            prop_assert_eq!(rows, expected, "[{}, {})", since, until);
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(db_config())]

    /// The hourly flow counts (migration `flow_counts`) follow every write: a flow's second
    /// version may move it to another hour, another status (failed) or another pipeline, and
    /// retention may delete it; flows and failures per day over any range, and of one
    /// pipeline, are then the exact counts of the flows stored.
    #[test]
    fn flow_counts_over_any_range_are_the_exact_counts_of_its_flows_per_day(
        base_hour in -10 * 8766i64..60 * 8766,
        flows in proptest::collection::vec(
            (range_flow(), any::<bool>(), any::<bool>(), any::<bool>()),
            1..8,
        ),
        range in (offset_ms(), offset_ms()),
        pipeline in select(vec!["ranker", "matcher"]),
    ) {
        let base = base_hour * HOUR_MS;
        let (since, until) = (base + range.0.min(range.1), base + range.0.max(range.1));
        runtime().block_on(async {
            let db = fresh().await;
            let meta = &db.services.metadata;
            let none = StepPayloads::new();
            // (pipeline, start, failed) of every flow still stored at the end.
            let mut stored: Vec<(&str, i64, bool)> = Vec::new();
            let mut deleted = Vec::new();
            for (flow, fails, switch, delete) in &flows {
                let id = Uuid::now_v7();
                let first = flow.record(id, 1, base + flow.started_ms);
                prop_assert!(meta.upsert_flow(db.team, &first, &none).await.unwrap().is_written());
                let mut last = (flow.pipeline, base + flow.started_ms, false);
                if flow.moved_to.is_some() || *fails || *switch {
                    let mut second = flow.record(id, 2, base + flow.final_start());
                    if *fails {
                        second.status = FlowStatus::Failed;
                    }
                    let name = if *switch { "other" } else { flow.pipeline };
                    second.pipeline = name.to_string();
                    prop_assert!(meta.upsert_flow(db.team, &second, &none).await.unwrap().is_written());
                    last = (name, base + flow.final_start(), *fails);
                }
                if *delete {
                    deleted.push(id.hyphenated().to_string());
                } else {
                    stored.push(last);
                }
            }
            let batch = meta.delete_flows(db.team, &deleted).await.unwrap();
            prop_assert_eq!(batch.deleted.flows as usize, deleted.len());

            let mut expected: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
            for (name, started, failed) in &stored {
                if *started >= since && *started < until {
                    let day = started.div_euclid(DAY_MS) * DAY_MS;
                    let entry = expected.entry((name.to_string(), day)).or_default();
                    entry.0 += 1;
                    entry.1 += u64::from(*failed);
                }
            }
            let mut days: Vec<(String, i64, u64, u64)> =
                meta.flow_counts_by_day(db.team, since, until).await.unwrap();
            days.sort();
            let want: Vec<(String, i64, u64, u64)> = expected
                .iter()
                .map(|((name, day), (all, failed))| (name.clone(), *day, *all, *failed))
                .collect();
            prop_assert_eq!(days, want, "[{}, {})", since, until);
            let one = meta.flow_counts(db.team, pipeline, since, until, None).await.unwrap();
            let want_one = expected
                .iter()
                .filter(|((name, _), _)| name == pipeline)
                .fold((0, 0), |(a, f), (_, (all, failed))| (a + all, f + failed));
            prop_assert_eq!(one, want_one);
            // The other team sees none of them.
            prop_assert!(meta.flow_counts_by_day(db.other_team, since, until).await.unwrap().is_empty());
            Ok(())
        })?;
    }
}
