//! Analysis over stored flows: reason statistics and funnels, a candidate's journey, a diff.

use std::collections::BTreeMap;

use flowtrail_types::{Capture, StepKind, Verdict};
use serde_json::json;
use uuid::Uuid;

use crate::fixture::{at, flow, fresh, ingest_all, observation, stats_query, step, store};

#[tokio::test]
async fn reason_stats_are_exact_sums_per_bucket_and_funnels_are_medians() {
    let f = fresh().await;
    // Three flows of one pipeline in three different hours, one of another pipeline.
    let mut sent = Vec::new();
    for (i, (rejected, out)) in [(4100u64, 30u64), (100, 50), (7, 1)]
        .into_iter()
        .enumerate()
    {
        let mut record = flow("competitor_selection", i as i64 * 3_600, &[]);
        record.steps[1].reasons = BTreeMap::from([
            ("price_out_of_range".to_string(), rejected),
            ("rating_below".to_string(), i as u64),
        ]);
        record.steps[1].candidates_out = Some(out);
        sent.push(record);
    }
    let mut other = flow("categorization", 0, &[]);
    other.steps[1].reasons = BTreeMap::from([("wrong_taxonomy".to_string(), 12)]);
    sent.push(other);
    for record in &sent {
        store(&f, record).await;
    }
    // Storing a flow again (a retry: stale, its version is final; or a newer version) must
    // not count it twice.
    let retry = f
        .services
        .metadata
        .upsert_flow(f.team, &sent[0], &Default::default())
        .await
        .unwrap();
    assert!(!retry.is_written(), "a finished version is written once");
    let mut newer = sent[0].clone();
    newer.version = 2;
    store(&f, &newer).await;

    let hourly = flowtrail_domain::analysis::StatsQuery {
        bucket_ms: 3_600_000,
        tag: None,
        ..stats_query(Some("competitor_selection"))
    };
    let stats = flowtrail_domain::analysis::reason_stats(
        &f.services,
        f.team,
        &hourly,
        flowtrail_types::StatsBucket::Hour,
    )
    .await
    .unwrap();
    let totals: Vec<_> = stats
        .totals
        .iter()
        .map(|t| (t.code.as_str(), t.count))
        .collect();
    assert_eq!(
        totals,
        vec![("price_out_of_range", 4207), ("rating_below", 3)]
    );
    let price_buckets: Vec<_> = stats
        .buckets
        .iter()
        .filter(|b| b.code == "price_out_of_range")
        .map(|b| b.count)
        .collect();
    assert_eq!(
        price_buckets,
        vec![4100, 100, 7],
        "one bucket per hour, oldest first"
    );
    assert!(stats.buckets.windows(2).all(|w| w[0].start <= w[1].start));
    assert!(
        stats.buckets.iter().all(|b| b.count > 0),
        "zero counts are left out"
    );

    let funnel = &stats.funnels[0];
    assert_eq!(
        (funnel.pipeline.as_str(), funnel.flows, funnel.capped),
        ("competitor_selection", 3, false)
    );
    let names: Vec<_> = funnel.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["keywords", "price_filter", "rank"],
        "in seq order"
    );
    let filter = &funnel.steps[1];
    assert_eq!(
        (filter.runs, filter.median_in, filter.median_out),
        (3, 5000.0, 30.0)
    );

    // Every pipeline, daily; the step filter narrows it.
    let all = flowtrail_domain::analysis::reason_stats(
        &f.services,
        f.team,
        &stats_query(None),
        flowtrail_types::StatsBucket::Day,
    )
    .await
    .unwrap();
    assert_eq!(all.funnels.len(), 2);
    assert!(
        all.totals
            .iter()
            .any(|t| t.pipeline == "categorization" && t.count == 12)
    );
    assert_eq!(
        all.buckets
            .iter()
            .map(|b| b.start)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    let outside = flowtrail_domain::analysis::StatsQuery {
        since: at(86_400 * 10),
        until: at(86_400 * 11),
        ..stats_query(None)
    };
    let empty = flowtrail_domain::analysis::reason_stats(
        &f.services,
        f.team,
        &outside,
        flowtrail_types::StatsBucket::Day,
    )
    .await
    .unwrap();
    assert!(empty.totals.is_empty() && empty.funnels.is_empty());
}

#[tokio::test]
async fn a_candidate_journey_tells_absent_from_unknown() {
    let f = fresh().await;
    let mut record = flow("competitor_selection", 0, &[]);
    // Step 0 kept everything it saw (full), step 1 a sample, step 2 counts only.
    record.steps[0].capture = Capture::Full;
    record.steps[0].observations = vec![
        observation("B0CASE0001", Verdict::Kept, None),
        observation("B0STAND0042", Verdict::Kept, None),
    ];
    record.steps[0].candidates_in = Some(2);
    record.steps[0].candidates_out = Some(2);
    record.steps[2].capture = Capture::CountsOnly;
    ingest_all(&f, std::slice::from_ref(&record)).await;

    let journey = flowtrail_domain::analysis::journey(&f.services, f.team, record.id, "B0CASE0001")
        .await
        .unwrap()
        .unwrap();
    let presence: Vec<_> = journey.steps.iter().map(|s| s.presence).collect();
    use flowtrail_types::Presence::*;
    assert_eq!(presence, vec![Observed, Observed, Unknown]);
    assert_eq!(journey.final_verdict, Some(Verdict::Rejected));
    let at = journey.eliminated_at.unwrap();
    assert_eq!((at.seq, at.step.as_str()), (1, "price_filter"));
    assert_eq!(at.reasons[0].code, "price_out_of_range");
    assert_eq!(journey.steps[1].score, Some(0.5));
    assert_eq!(journey.steps[1].attributes["price"], json!(9.99));

    let stranger = flowtrail_domain::analysis::journey(&f.services, f.team, record.id, "B0NOPE")
        .await
        .unwrap()
        .unwrap();
    let presence: Vec<_> = stranger.steps.iter().map(|s| s.presence).collect();
    assert_eq!(
        presence,
        vec![Absent, Unknown, Unknown],
        "sampled is unknown, not absent"
    );
    assert!(!flowtrail_domain::analysis::observed_anywhere(&stranger));
    assert!(
        flowtrail_domain::analysis::journey(&f.services, f.team, Uuid::now_v7(), "x")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_diff_names_added_removed_and_changed_candidates_per_step() {
    let f = fresh().await;
    let good = flow("competitor_selection", 0, &[]);
    let mut bad = flow("competitor_selection", 100, &[]);
    bad.input = json!({"title": "laptop stand", "category": "Phone Cases"});
    // In the bad run the case passes the filter, the stand is rejected, a lamp appears.
    bad.steps[1].observations = vec![
        observation("B0CASE0001", Verdict::Kept, None),
        observation("B0STAND0042", Verdict::Rejected, Some("category_mismatch")),
        observation("B0LAMP0007", Verdict::Kept, None),
    ];
    bad.steps[1].reasons = BTreeMap::from([("category_mismatch".to_string(), 4000)]);
    bad.steps[1].reasoning = Some("category gate".into());
    bad.steps.remove(2);
    bad.steps.push(step(3, "judge", StepKind::Judge, (30, 1)));
    ingest_all(&f, &[good.clone(), bad.clone()]).await;

    let diff = flowtrail_domain::analysis::diff(&f.services, f.team, good.id, bad.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        diff.input.as_ref().unwrap().b["category"],
        json!("Phone Cases")
    );
    assert!(diff.output.is_none(), "same output");
    let names: Vec<_> = diff
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.seq_a, s.seq_b))
        .collect();
    assert_eq!(
        names,
        vec![
            ("keywords", Some(0), Some(0)),
            ("price_filter", Some(1), Some(1)),
            ("rank", Some(2), None),
            ("judge", None, Some(3)),
        ]
    );
    let filter = &diff.steps[1];
    assert_eq!(filter.added, vec!["B0LAMP0007".to_string()]);
    assert!(filter.removed.is_empty());
    let changed: Vec<_> = filter
        .verdict_changed
        .iter()
        .map(|c| (c.candidate_id.as_str(), c.a, c.b))
        .collect();
    assert_eq!(
        changed,
        vec![
            ("B0CASE0001", Verdict::Rejected, Verdict::Kept),
            ("B0STAND0042", Verdict::Kept, Verdict::Rejected),
        ]
    );
    assert_eq!(
        filter.verdict_changed[0].reasons_a[0].code,
        "price_out_of_range"
    );
    assert_eq!(
        filter.verdict_changed[1].reasons_b[0].code,
        "category_mismatch"
    );
    assert_eq!(filter.reasons["price_out_of_range"].a, 4100);
    assert_eq!(filter.reasons["price_out_of_range"].b, 0);
    assert_eq!(filter.reasons["category_mismatch"].b, 4000);
    assert!(!filter.exact, "sampled steps compare samples");
    assert!(filter.reasoning.is_some());
    assert!(diff.steps[0].reasoning.is_none() && diff.steps[0].added.is_empty());
    assert!(
        flowtrail_domain::analysis::diff(&f.services, f.team, good.id, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn times_before_1970_fall_in_their_own_hour_and_day() {
    use flowtrail_types::StatsBucket;
    use time::macros::datetime;
    let f = fresh().await;
    let mut record = flow("pre_epoch", 0, &[]);
    record.started_at = datetime!(1969-12-31 23:30 UTC);
    record.ended_at = None;
    record.steps[1].reasons = BTreeMap::from([("too_old".to_string(), 5)]);
    let mut edge = flow("pre_epoch", 0, &[]);
    edge.started_at = datetime!(1969-12-31 23:59:59.9995 UTC);
    edge.ended_at = None;
    for record in [&record, &edge] {
        store(&f, record).await;
    }
    let stored = f
        .services
        .metadata
        .get_flow(f.team, edge.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.summary.started_at,
        datetime!(1969-12-31 23:59:59.999 UTC),
        "milliseconds are rounded down, not towards 1970"
    );
    for (bucket, width, start) in [
        (
            StatsBucket::Hour,
            3_600_000,
            datetime!(1969-12-31 23:00 UTC),
        ),
        (
            StatsBucket::Day,
            86_400_000,
            datetime!(1969-12-31 00:00 UTC),
        ),
    ] {
        let query = flowtrail_domain::analysis::StatsQuery {
            pipeline: Some("pre_epoch".into()),
            step: Some("price_filter".into()),
            since: datetime!(1969-12-30 00:00 UTC),
            until: datetime!(1970-01-02 00:00 UTC),
            bucket_ms: width,
            tag: None,
        };
        let stats = flowtrail_domain::analysis::reason_stats(&f.services, f.team, &query, bucket)
            .await
            .unwrap();
        let too_old: Vec<_> = stats
            .buckets
            .iter()
            .filter(|b| b.code == "too_old")
            .map(|b| (b.start, b.count))
            .collect();
        assert_eq!(too_old, vec![(start, 5)], "{bucket:?}");
    }
}

#[tokio::test]
async fn reason_sums_beyond_64_bits_are_exact_and_never_fail_a_write() {
    use flowtrail_domain::flows::StepPayloads;
    use flowtrail_domain::flows::{FlowWrite, WriteMode};
    use flowtrail_domain::ingest::MAX_COUNT;
    let f = fresh().await;
    // Issue #14, item 4: 600 counts-only steps of the largest count, per flow, in one hour.
    // One flow's 600 × 2^53 fits in 63 bits; two overflowed SQLite's and PostgreSQL's
    // BIGINT sums. Four flows sum past 2^64.
    let dedupe = |seq: u32| {
        let mut s = step(seq, "dedupe", StepKind::Filter, (MAX_COUNT, 0));
        s.capture = Capture::CountsOnly;
        s.reasons = BTreeMap::from([("dup".to_string(), MAX_COUNT)]);
        s
    };
    let records: Vec<_> = (0..4)
        .map(|i| {
            let mut record = flow("overflow", i, &[]);
            record.steps = (0..600).map(dedupe).collect();
            record
        })
        .collect();
    let payloads = StepPayloads::new();
    let writes: Vec<_> = records
        .iter()
        .map(|flow| FlowWrite {
            team_id: f.team,
            flow,
            payloads: &payloads,
            mode: WriteMode::Replace,
            imported: false,
        })
        .collect();
    // One batch: every flow is written.
    let outcomes = f.services.metadata.upsert_flows(&writes).await.unwrap();
    assert!(outcomes.iter().all(|o| o.is_written()));
    let expected = 2400 * u128::from(MAX_COUNT);
    assert!(expected > u128::from(u64::MAX));
    for pipeline in [Some("overflow"), None] {
        let stats = flowtrail_domain::analysis::reason_stats(
            &f.services,
            f.team,
            &stats_query(pipeline),
            flowtrail_types::StatsBucket::Day,
        )
        .await
        .unwrap();
        let dup: Vec<_> = stats
            .totals
            .iter()
            .filter(|t| t.code == "dup")
            .map(|t| t.count)
            .collect();
        assert_eq!(dup, vec![expected], "pipeline filter {pipeline:?}");
        let buckets: u128 = stats
            .buckets
            .iter()
            .filter(|b| b.code == "dup")
            .map(|b| b.count)
            .sum();
        assert_eq!(buckets, expected);
    }
    // Replacing a flow subtracts exactly what it added: one flow now counts 1 per step.
    let mut newer = records[0].clone();
    newer.version = 2;
    for s in &mut newer.steps {
        s.reasons = BTreeMap::from([("dup".to_string(), 1)]);
    }
    store(&f, &newer).await;
    let stats = flowtrail_domain::analysis::reason_stats(
        &f.services,
        f.team,
        &stats_query(Some("overflow")),
        flowtrail_types::StatsBucket::Hour,
    )
    .await
    .unwrap();
    let dup: Vec<_> = stats
        .totals
        .iter()
        .filter(|t| t.code == "dup")
        .map(|t| t.count)
        .collect();
    assert_eq!(dup, vec![1800 * u128::from(MAX_COUNT) + 600]);
}

#[tokio::test]
async fn reason_stats_count_exactly_the_flows_of_a_range_that_is_not_whole_hours() {
    use flowtrail_types::StatsBucket;
    use time::macros::datetime;
    let f = fresh().await;
    // Flows at 10:15, 13:15 and 20:15, with 1, 10 and 100 rejections.
    for (minute, n) in [
        (datetime!(2026-03-01 10:15 UTC), 1),
        (datetime!(2026-03-01 13:15 UTC), 10),
        (datetime!(2026-03-01 20:15 UTC), 100),
    ] {
        let mut record = flow("edges", 0, &[]);
        record.started_at = minute;
        record.ended_at = None;
        record.steps[1].reasons = BTreeMap::from([("off".to_string(), n)]);
        store(&f, &record).await;
    }
    let count = |since, until, bucket_ms| {
        let query = flowtrail_domain::analysis::StatsQuery {
            pipeline: Some("edges".into()),
            step: Some("price_filter".into()),
            since,
            until,
            bucket_ms,
            tag: None,
        };
        let services = &f.services;
        let team = f.team;
        async move {
            let bucket = if bucket_ms == 3_600_000 {
                StatsBucket::Hour
            } else {
                StatsBucket::Day
            };
            let stats = flowtrail_domain::analysis::reason_stats(services, team, &query, bucket)
                .await
                .unwrap();
            let total: u128 = stats.totals.iter().map(|t| t.count).sum();
            let flows = stats.funnels.first().map_or(0, |f| f.flows);
            (total, flows)
        }
    };
    for bucket_ms in [3_600_000, 86_400_000] {
        // Parts of an hour longer than half of it: the hour's rollup less the steps of the
        // rest of the hour (the 10:15 flow is in the first two ranges, not in the last).
        for (since, until, expected) in [
            (
                datetime!(2026-03-01 10:10 UTC),
                datetime!(2026-03-01 13:50 UTC),
                (11, 2),
            ),
            (
                datetime!(2026-03-01 10:05 UTC),
                datetime!(2026-03-01 10:50 UTC),
                (1, 1),
            ),
            (
                datetime!(2026-03-01 10:20 UTC),
                datetime!(2026-03-01 10:55 UTC),
                (0, 0),
            ),
            (
                datetime!(2026-03-01 10:20 UTC),
                datetime!(2026-03-01 20:59 UTC),
                (110, 2),
            ),
        ] {
            assert_eq!(
                count(since, until, bucket_ms).await,
                expected,
                "{since}..{until}"
            );
        }
        // Issue found by a new-user pass: the 10:15 flow was counted from 10:30 on.
        assert_eq!(
            count(
                datetime!(2026-03-01 10:30 UTC),
                datetime!(2026-03-02 00:00 UTC),
                bucket_ms
            )
            .await,
            (110, 2)
        );
        assert_eq!(
            count(
                datetime!(2026-03-01 00:00 UTC),
                datetime!(2026-03-01 13:05 UTC),
                bucket_ms
            )
            .await,
            (1, 1)
        );
        assert_eq!(
            count(
                datetime!(2026-03-01 10:10 UTC),
                datetime!(2026-03-01 10:20 UTC),
                bucket_ms
            )
            .await,
            (1, 1)
        );
        assert_eq!(
            count(
                datetime!(2026-03-01 10:16 UTC),
                datetime!(2026-03-01 10:20 UTC),
                bucket_ms
            )
            .await,
            (0, 0)
        );
        assert_eq!(
            count(
                datetime!(2026-03-01 10:15 UTC),
                datetime!(2026-03-01 20:15 UTC),
                bucket_ms
            )
            .await,
            (11, 2)
        );
        assert_eq!(
            count(
                datetime!(2026-03-01 10:00 UTC),
                datetime!(2026-03-01 21:00 UTC),
                bucket_ms
            )
            .await,
            (111, 3)
        );
    }
}
