//! The records, the fresh database and the list helpers the repository suite shares.

use std::collections::BTreeMap;
use std::time::Duration;

use flowtrail_domain::analysis::StatsQuery;
use flowtrail_domain::flows::{FlowCursor, FlowFilters, StepPayloads};
use flowtrail_domain::{Services, ingest};
use flowtrail_test_support::engines;
use flowtrail_types::{
    Attributes, Capture, FlowRecord, FlowStatus, Observation, Reason, StepKind, StepRecord, Verdict,
};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// One test's services on a fresh database, and the team it writes as.
pub struct Fixture {
    pub services: Services,
    pub team: i64,
    pub _dir: tempfile::TempDir,
}

/// A fresh, migrated database: SQLite by default; in the scale-out pass, a new database on the
/// PostgreSQL server of `scripts/with-postgres.sh` (and S3 and Redis under prefixes of its own).
pub async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = engines::storage(dir.path()).await;
    let services = Services::open(&config).await.unwrap();
    let team = services.bootstrap(None).await.unwrap().id;
    Fixture {
        services,
        team,
        _dir: dir,
    }
}

/// A fixed instant `seconds` after the suite's epoch.
pub fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000 + seconds).unwrap()
}

/// An observation of candidate `id` with `verdict`, and a reason when `code` is given.
pub fn observation(id: &str, verdict: Verdict, code: Option<&str>) -> Observation {
    let mut attributes = Attributes::new();
    attributes.insert("price".into(), json!(9.99));
    Observation {
        candidate_id: id.into(),
        verdict,
        score: Some(0.5),
        reasons: code
            .map(|c| {
                vec![Reason {
                    code: c.into(),
                    text: Some(format!("{id} failed {c}")),
                }]
            })
            .unwrap_or_default(),
        attributes,
    }
}

/// A succeeded step `seq` that saw `counts.0` candidates and kept `counts.1`.
pub fn step(seq: u32, name: &str, kind: StepKind, counts: (u64, u64)) -> StepRecord {
    StepRecord {
        seq,
        name: name.into(),
        kind,
        status: FlowStatus::Succeeded,
        started_at: Some(at(0)),
        ended_at: Some(at(1)),
        input: json!({"seq": seq}),
        output: json!({"kept": counts.1}),
        reasoning: Some(format!("{name} reasoning about laptop stands")),
        candidates_in: Some(counts.0),
        candidates_out: Some(counts.1),
        reasons: BTreeMap::new(),
        capture: Capture::Sampled,
        observations: Vec::new(),
        boundaries: Vec::new(),
        parent_seq: None,
        span_id: None,
        parent_span_id: None,
    }
}

/// A three-step flow of `pipeline` (generate, filter with two observations, rank).
pub fn flow(pipeline: &str, started: i64, tags: &[(&str, &str)]) -> FlowRecord {
    let mut filter = step(1, "price_filter", StepKind::Filter, (5000, 30));
    filter.reasons = BTreeMap::from([("price_out_of_range".to_string(), 4100)]);
    filter.observations = vec![
        observation("B0CASE0001", Verdict::Rejected, Some("price_out_of_range")),
        observation("B0STAND0042", Verdict::Kept, None),
    ];
    FlowRecord {
        id: Uuid::now_v7(),
        version: 1,
        pipeline: pipeline.into(),
        status: FlowStatus::Succeeded,
        started_at: at(started),
        ended_at: Some(at(started + 2)),
        input: json!({"title": "laptop stand"}),
        output: json!({"selected": "B0STAND0042"}),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        error: None,
        sdk: None,
        steps: vec![
            step(0, "keywords", StepKind::Generate, (0, 0)),
            filter,
            step(2, "rank", StepKind::Rank, (30, 30)),
        ],
    }
}

/// Stores `record` straight into the metadata store; it must be written.
pub async fn store(f: &Fixture, record: &FlowRecord) {
    let outcome = f
        .services
        .metadata
        .upsert_flow(f.team, record, &StepPayloads::new())
        .await
        .unwrap();
    assert!(outcome.is_written());
}

/// The unfiltered list query, 50 a page.
pub fn query() -> FlowFilters {
    FlowFilters {
        limit: 50,
        ..FlowFilters::default()
    }
}

/// The ids of the first page of `q`.
pub async fn ids(f: &Fixture, q: &FlowFilters) -> Vec<Uuid> {
    let page = f.services.metadata.list_flows(f.team, q).await.unwrap();
    page.flows.iter().map(|s| s.id).collect()
}

/// Pages `q` to the end and returns every id in the order served.
pub async fn every_page(f: &Fixture, mut q: FlowFilters) -> Vec<Uuid> {
    let mut seen = Vec::new();
    loop {
        let page = f.services.metadata.list_flows(f.team, &q).await.unwrap();
        assert!(page.flows.len() <= q.limit as usize);
        seen.extend(page.flows.iter().map(|s| s.id));
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(FlowCursor::decode(&cursor).unwrap()),
            None => return seen,
        }
    }
}

/// Submits each record through the ingest path (payloads stored) and stores every job.
pub async fn ingest_all(f: &Fixture, records: &[FlowRecord]) {
    for record in records {
        let body = serde_json::to_vec(record).unwrap();
        ingest::submit(&f.services, f.team, None, &body, None)
            .await
            .unwrap();
    }
    let jobs = f
        .services
        .queue
        .claim(records.len() + 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), records.len());
    for job in &jobs {
        ingest::store_job(&f.services, job).await.unwrap();
    }
}

/// Reason statistics of `pipeline` (or every pipeline) over six days, daily.
pub fn stats_query(pipeline: Option<&str>) -> StatsQuery {
    StatsQuery {
        pipeline: pipeline.map(str::to_string),
        step: None,
        since: at(-86_400 * 3),
        until: at(86_400 * 3),
        bucket_ms: 86_400_000,
        tag: None,
    }
}
