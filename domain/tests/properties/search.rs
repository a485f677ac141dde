//! The text search walks an index whose rowids are time buckets of 2,048 ms
//! (`engines/sqlite/search.rs`). Whatever the start times — in one bucket, on either side of
//! a bucket's edge, shared to the millisecond, before 1970, at and past the ends of the range
//! the index orders exactly — and however the flows were written (in one batch, one by one,
//! moved to another start by a later version), every page of a search, in any time range,
//! lists exactly the matching flows in list order (newest first, then by id).

use flowtrail_domain::flows::{FlowFilters, FlowWrite, StepPayloads, WriteMode};
use flowtrail_types::{FlowRecord, FlowStatus, StepKind, StepRecord};
use proptest::prelude::*;
use proptest::sample::select;
use uuid::Uuid;

use crate::{at_ms, db_config, every_page, fresh, runtime};

/// The search index's bucket width and the end of the range it orders exactly (ms).
const BUCKET_MS: i64 = 2_048;
const ORDERED: i64 = 1 << 42;

/// A start: near the case's base time (inside a bucket or at an edge, ±1 ms), or far (around
/// 1970, at the ends of the exactly ordered range and past them).
#[derive(Debug, Clone, Copy)]
enum Start {
    Near(i64),
    Far(i64),
}

impl Start {
    fn ms(self, base: i64) -> i64 {
        match self {
            Start::Near(offset) => base + offset,
            Start::Far(ms) => ms,
        }
    }
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        4 => (0i64..4 * BUCKET_MS).prop_map(Start::Near),
        4 => (0i64..4, -1i64..=1).prop_map(|(k, d)| Start::Near(k * BUCKET_MS + d)),
        1 => select(vec![
            -ORDERED - 1_000,
            -ORDERED,
            -ORDERED + 1,
            -86_400_000,
            -1,
            0,
            ORDERED - 1,
            ORDERED + 7,
            16_725_225_600_000, // 2500-01-01
        ])
        .prop_map(Start::Far),
    ]
}

#[derive(Debug, Clone)]
struct SearchFlow {
    start: Start,
    /// Its reasoning mentions a phone case (else a laptop stand).
    matches: bool,
    /// Written in the first batch (else one by one, after it).
    in_batch: bool,
    /// Moved by a second version to this start.
    moved_to: Option<Start>,
}

fn search_flow() -> impl Strategy<Value = SearchFlow> {
    (
        start(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::weighted(0.2, start()),
    )
        .prop_map(|(start, matches, in_batch, moved_to)| SearchFlow {
            start,
            matches,
            in_batch,
            moved_to,
        })
}

fn record(id: Uuid, version: u32, started_ms: i64, matches: bool) -> FlowRecord {
    let mut record = FlowRecord::new(id, "ranker", at_ms(started_ms));
    record.version = version;
    record.status = FlowStatus::Succeeded;
    let mut step = StepRecord::new(0, "judge", StepKind::Judge);
    step.reasoning = Some(
        if matches {
            "a phone case"
        } else {
            "a laptop stand"
        }
        .into(),
    );
    record.steps = vec![step];
    record
}

proptest! {
    #![proptest_config(db_config())]

    #[test]
    fn every_page_of_a_search_lists_the_matching_flows_in_list_order(
        base_bucket in -(ORDERED / BUCKET_MS) + 8..(ORDERED / BUCKET_MS) - 8,
        flows in proptest::collection::vec(search_flow(), 1..12),
        since in proptest::option::of((any::<prop::sample::Index>(), -1i64..=1)),
        until in proptest::option::of((any::<prop::sample::Index>(), -1i64..=1)),
        limit in 1u32..=4,
    ) {
        let base = base_bucket * BUCKET_MS;
        runtime().block_on(async {
            let db = fresh().await;
            let none = StepPayloads::new();
            let ids: Vec<Uuid> = flows.iter().map(|_| Uuid::now_v7()).collect();
            let first: Vec<FlowRecord> = flows
                .iter()
                .zip(&ids)
                .map(|(flow, &id)| record(id, 1, flow.start.ms(base), flow.matches))
                .collect();
            let batch: Vec<FlowWrite> = first
                .iter()
                .zip(&flows)
                .filter(|(_, flow)| flow.in_batch)
                .map(|(record, _)| FlowWrite {
                    team_id: db.team,
                    flow: record,
                    payloads: &none,
                    mode: WriteMode::Replace,
                    imported: false,
                })
                .collect();
            db.services.metadata.upsert_flows(&batch).await.unwrap();
            for (record, _) in first.iter().zip(&flows).filter(|(_, flow)| !flow.in_batch) {
                db.services.metadata.upsert_flow(db.team, record, &none).await.unwrap();
            }
            let mut starts: Vec<i64> = flows.iter().map(|flow| flow.start.ms(base)).collect();
            for (i, flow) in flows.iter().enumerate() {
                if let Some(to) = flow.moved_to {
                    starts[i] = to.ms(base);
                    let moved = record(ids[i], 2, starts[i], flow.matches);
                    db.services.metadata.upsert_flow(db.team, &moved, &none).await.unwrap();
                }
            }

            // Range bounds at a flow's start, or a millisecond either side of it.
            let bound = |at: Option<(prop::sample::Index, i64)>| {
                at.map(|(index, delta)| starts[index.index(starts.len())] + delta)
            };
            let (since, until) = (bound(since), bound(until));
            let in_range = |start: i64| {
                since.is_none_or(|since| start >= since) && until.is_none_or(|until| start < until)
            };
            let mut expected: Vec<(i64, Uuid)> = (0..flows.len())
                .filter(|&i| flows[i].matches && in_range(starts[i]))
                .map(|i| (starts[i], ids[i]))
                .collect();
            expected.sort_by(|a, b| b.cmp(a));
            let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();

            let search = FlowFilters {
                text: Some("phone".into()),
                since: since.map(at_ms),
                until: until.map(at_ms),
                limit,
                ..FlowFilters::default()
            };
            let found = every_page(&db.services, db.team, search.clone()).await;
            prop_assert_eq!(&found, &expected, "search, {:?}", starts);
            // The list without text, in the same range, agrees on the order.
            let listed = every_page(&db.services, db.team, FlowFilters { text: None, ..search }).await;
            let listed: Vec<Uuid> = listed.into_iter().filter(|id| expected.contains(id)).collect();
            prop_assert_eq!(&listed, &expected, "list, {:?}", starts);
            Ok(())
        })?;
    }
}
