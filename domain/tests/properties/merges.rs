//! Exact counts after merges. A flow is delivered in pieces: its steps split into steps
//! pushes (`POST /api/v1/flows/{id}/steps`) sent in any order and at any versions, the
//! running flow record first (carrying some of the steps) or not at all, the finished record
//! last or not at all; deliveries retried with the same idempotency key (replayed), with a
//! new one (a second job with the same body), and jobs stored by a worker that then lost its
//! lease (stored again); a push after the finished record changes nothing. Through
//! `ingest::submit`/`prepare_steps` and the ingest processor, it ends up stored exactly as
//! the same flow delivered at once to another team, and every count derived from it —
//! reason counts per bucket, step and code (from the hourly rollups and from the steps), the
//! funnel, the step count, the largest drop — is the one the test computes itself from the
//! candidates it generated.

use std::collections::BTreeMap;
use std::time::Duration;

use flowtrail_domain::analysis::{StatsQuery, reason_stats};
use flowtrail_domain::ingest;
use flowtrail_domain::millis::{HOUR_MS, hour_floor};
use flowtrail_types::{
    Capture, FlowRecord, FlowStatus, Funnel, FunnelStep, Observation, Reason, ReasonStats, SdkInfo,
    StatsBucket, StepKind, StepRecord, StepsPush, Verdict,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Db, at_ms, db_config, drain, fresh, runtime};

const PIPELINE: &str = "competitor_selection";
const CODES: [&str; 4] = [
    "price_out_of_range",
    "rating_below_threshold",
    "out_of_stock",
    "off_topic",
];
/// How many pieces a flow's steps are split into (some may stay empty).
const PIECES: usize = 4;

/// One candidate as a step judged it: its verdict and the reason codes it carries (a
/// rejected candidate's codes are what the step's histogram counts).
#[derive(Debug, Clone)]
struct Candidate {
    verdict: Verdict,
    codes: Vec<&'static str>,
}

/// One step: every candidate it judged, how much of them it captured as observations, and
/// whether it sent its counts or left them to be derived from its observations.
#[derive(Debug, Clone)]
struct StepPlan {
    kind: StepKind,
    capture: Capture,
    sends_counts: bool,
    candidates: Vec<Candidate>,
}

impl StepPlan {
    fn name(&self, seq: u32) -> String {
        format!("{}_{seq}", self.kind.as_str())
    }

    /// The candidates observed, by index: all of them (full capture), the passing ones and
    /// every other rejected one (sampled), or none (counts only).
    fn observed(&self) -> impl Iterator<Item = (usize, &Candidate)> {
        self.candidates
            .iter()
            .enumerate()
            .filter(move |(i, c)| match self.capture {
                Capture::Full => true,
                Capture::Sampled => c.verdict != Verdict::Rejected || i % 2 == 0,
                Capture::CountsOnly => false,
            })
    }

    /// How many candidates came in and went on, counted over every candidate.
    fn all_counts(&self) -> (u64, u64) {
        let passed = self
            .candidates
            .iter()
            .filter(|c| c.verdict != Verdict::Rejected)
            .count();
        (self.candidates.len() as u64, passed as u64)
    }

    /// Each reason code and how many rejected candidates carry it, over every candidate.
    fn all_reasons(&self) -> BTreeMap<String, u64> {
        let mut histogram = BTreeMap::new();
        for candidate in self
            .candidates
            .iter()
            .filter(|c| c.verdict == Verdict::Rejected)
        {
            for code in &candidate.codes {
                *histogram.entry(code.to_string()).or_insert(0) += 1;
            }
        }
        histogram
    }

    /// The counts the stored step has (CONTRACT: exact when sent; implied by the observations
    /// when not sent and every candidate is observed; else none).
    fn counts(&self) -> Option<(u64, u64)> {
        let implied = self.capture == Capture::Full && !self.candidates.is_empty();
        (self.sends_counts || implied).then(|| self.all_counts())
    }

    /// The reason histogram the stored step has, by the same rule.
    fn reasons(&self) -> BTreeMap<String, u64> {
        if self.sends_counts || self.capture == Capture::Full {
            self.all_reasons()
        } else {
            BTreeMap::new()
        }
    }

    /// The step as the SDK sends it.
    fn sent(&self, seq: u32, started_ms: i64) -> StepRecord {
        let observations = self
            .observed()
            .map(|(i, candidate)| Observation {
                candidate_id: format!("B0CAND{i:04}"),
                verdict: candidate.verdict,
                score: Some(i as f64 / 7.0),
                reasons: candidate
                    .codes
                    .iter()
                    .map(|code| Reason {
                        code: code.to_string(),
                        text: (i % 2 == 0).then(|| format!("candidate {i}: {code}")),
                    })
                    .collect(),
                attributes: json!({"rank": i}).as_object().unwrap().clone(),
            })
            .collect();
        let (candidates_in, candidates_out) = self.all_counts();
        StepRecord {
            seq,
            name: self.name(seq),
            kind: self.kind,
            status: FlowStatus::Succeeded,
            started_at: Some(at_ms(started_ms + i64::from(seq))),
            ended_at: Some(at_ms(started_ms + i64::from(seq) + 1)),
            input: json!({"seq": seq}),
            output: Value::Null,
            reasoning: Some(format!("step {seq} judged {candidates_in} candidates")),
            candidates_in: self.sends_counts.then_some(candidates_in),
            candidates_out: self.sends_counts.then_some(candidates_out),
            reasons: if self.sends_counts {
                self.all_reasons()
            } else {
                BTreeMap::new()
            },
            capture: self.capture,
            observations,
            boundaries: Vec::new(),
            parent_seq: None,
            span_id: None,
            parent_span_id: None,
        }
    }

    /// The step as it must be stored: counts and histogram as [`StepPlan::counts`] and
    /// [`StepPlan::reasons`] say.
    fn stored(&self, seq: u32, started_ms: i64) -> StepRecord {
        let counts = self.counts();
        StepRecord {
            candidates_in: counts.map(|c| c.0),
            candidates_out: counts.map(|c| c.1),
            reasons: self.reasons(),
            ..self.sent(seq, started_ms)
        }
    }
}

/// A flow and how it is delivered in pieces.
#[derive(Debug, Clone)]
struct Plan {
    started_ms: i64,
    title: String,
    tags: BTreeMap<String, String>,
    /// Step `i` has seq `3 i + 1` (seqs need not be contiguous).
    steps: Vec<StepPlan>,
    /// The piece each step is sent in.
    piece_of: Vec<usize>,
    /// The pieces in the order they are sent.
    order: Vec<usize>,
    /// The version of each piece's push.
    versions: Vec<u32>,
    /// Whether each piece's push carries the flow's input, tags and SDK.
    carries_header: Vec<bool>,
    /// The running flow record, sent first at this version with the first piece's steps.
    record_first: Option<u32>,
    /// Repeated deliveries: (which delivery, where after it, with a new idempotency key).
    repeats: Vec<(usize, usize, bool)>,
    /// Jobs a worker stores, then loses the lease of (so they are claimed and stored again).
    lost_leases: usize,
    /// Jobs the ingest processor claims at once.
    worker_batch: usize,
    /// The finished record, sent last at this version; then a push of this piece at this
    /// many versions above it, which must change nothing (a finished flow is final).
    finish: Option<(u32, usize, u32)>,
    bucket: StatsBucket,
    /// Whole hours before and after the flow's hour of the first statistics range.
    margins: (i64, i64),
    /// Milliseconds before and after the flow's start of the second range.
    ragged: (i64, i64),
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (select(Verdict::ALL), subsequence(CODES.to_vec(), 0..=2))
        .prop_map(|(verdict, codes)| Candidate { verdict, codes })
}

fn step_plan() -> impl Strategy<Value = StepPlan> {
    (
        select(StepKind::ALL),
        select(Capture::ALL),
        any::<bool>(),
        proptest::collection::vec(candidate(), 0..8),
    )
        .prop_map(|(kind, capture, sends_counts, candidates)| StepPlan {
            kind,
            capture,
            sends_counts,
            candidates,
        })
}

/// A start between 1960 and 2060, to the millisecond.
fn started_ms() -> impl Strategy<Value = i64> {
    const YEAR: i64 = 365 * 24 * HOUR_MS;
    prop_oneof![
        -10 * YEAR..90 * YEAR,
        // On an hour, or next to one.
        (-10 * YEAR / HOUR_MS..90 * YEAR / HOUR_MS, -1i64..=1)
            .prop_map(|(hour, delta)| hour * HOUR_MS + delta),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    let flow = (
        started_ms(),
        "[a-z ]{1,12}",
        proptest::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{0,6}", 0..3),
        proptest::collection::vec(step_plan(), 1..7),
    );
    let pieces = (
        Just((0..PIECES).collect::<Vec<_>>()).prop_shuffle(),
        proptest::collection::vec(1u32..=3, PIECES),
        proptest::collection::vec(any::<bool>(), PIECES),
        proptest::option::of(1u32..=3),
        proptest::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 0..4),
        0usize..6,
        1usize..=8,
        proptest::option::weighted(0.4, (1u32..=5, 0..PIECES, 0u32..=2)),
    );
    let stats = (
        prop_oneof![Just(StatsBucket::Hour), Just(StatsBucket::Day)],
        (0i64..3, 0i64..3),
        (0i64..HOUR_MS, 1i64..HOUR_MS),
    );
    (flow, pieces, stats).prop_flat_map(|(flow, pieces, stats)| {
        let steps = flow.3.len();
        (
            Just((flow, pieces, stats)),
            proptest::collection::vec(0..PIECES, steps),
        )
            .prop_map(
                |(
                    (
                        (started_ms, title, tags, steps),
                        (
                            order,
                            versions,
                            carries_header,
                            record_first,
                            repeats,
                            lost_leases,
                            worker_batch,
                            finish,
                        ),
                        (bucket, margins, ragged),
                    ),
                    piece_of,
                )| Plan {
                    started_ms,
                    title,
                    tags,
                    steps,
                    piece_of,
                    order,
                    versions,
                    carries_header,
                    record_first,
                    repeats,
                    lost_leases,
                    worker_batch,
                    finish,
                    bucket,
                    margins,
                    ragged,
                },
            )
    })
}

fn seq(i: usize) -> u32 {
    3 * i as u32 + 1
}

fn sdk() -> SdkInfo {
    SdkInfo {
        name: "flowtrail-rust".into(),
        version: "0.1.0".into(),
    }
}

impl Plan {
    fn steps_of(&self, piece: usize) -> Vec<StepRecord> {
        (0..self.steps.len())
            .filter(|&i| self.piece_of[i] == piece)
            .map(|i| self.steps[i].sent(seq(i), self.started_ms))
            .collect()
    }

    /// The pieces sent as pushes, in order: every piece that holds a step, but the one the
    /// first record carries.
    fn pushed(&self) -> Vec<usize> {
        let skip = self.record_first.map(|_| self.order[0]);
        self.order
            .iter()
            .copied()
            .filter(|&p| Some(p) != skip && self.piece_of.contains(&p))
            .collect()
    }

    /// Which pushes carry the flow's input, tags and SDK: as generated, and at least one of
    /// the newest version when the first record is not of it (the newest version's fields
    /// win, and a push never erases what it does not carry: so the stored flow has them).
    fn header_carriers(&self) -> Vec<bool> {
        let mut carries = self.carries_header.clone();
        let pushed = self.pushed();
        let newest = self.newest_version();
        let record_is_newest = self.record_first == Some(newest);
        let newest_carries = pushed
            .iter()
            .any(|&p| self.versions[p] == newest && carries[p]);
        if !record_is_newest
            && !newest_carries
            && let Some(&p) = pushed.iter().find(|&&p| self.versions[p] == newest)
        {
            carries[p] = true;
        }
        carries
    }

    /// The highest version of the running pieces.
    fn newest_version(&self) -> u32 {
        self.pushed()
            .iter()
            .map(|&p| self.versions[p])
            .chain(self.record_first)
            .max()
            .unwrap_or(1)
    }

    /// A flow record of this flow with `steps`.
    fn record(&self, id: Uuid, version: u32, steps: Vec<StepRecord>) -> FlowRecord {
        FlowRecord {
            id,
            version,
            pipeline: PIPELINE.into(),
            status: FlowStatus::Running,
            started_at: at_ms(self.started_ms),
            ended_at: None,
            input: json!({"title": self.title}),
            output: Value::Null,
            tags: self.tags.clone(),
            error: None,
            sdk: Some(sdk()),
            steps,
        }
    }

    /// The flow delivered at once: running at the newest version, or the finished record.
    fn whole(&self, id: Uuid) -> FlowRecord {
        let steps = (0..self.steps.len())
            .map(|i| self.steps[i].sent(seq(i), self.started_ms))
            .collect();
        let running = self.record(id, self.newest_version(), steps);
        match self.finish {
            None => running,
            Some((version, ..)) => FlowRecord {
                version,
                status: FlowStatus::Succeeded,
                ended_at: Some(at_ms(self.started_ms + 5_000)),
                output: json!({"selected": "B0CAND0000"}),
                ..running
            },
        }
    }

    /// What must be stored: [`Plan::whole`] with every step as [`StepPlan::stored`] says.
    fn expected(&self, id: Uuid) -> FlowRecord {
        FlowRecord {
            steps: (0..self.steps.len())
                .map(|i| self.steps[i].stored(seq(i), self.started_ms))
                .collect(),
            ..self.whole(id)
        }
    }

    /// Every delivery in the order sent.
    fn deliveries(&self, id: Uuid) -> Vec<Delivery> {
        let mut sent = Vec::new();
        if let Some(version) = self.record_first {
            let record = self.record(id, version, self.steps_of(self.order[0]));
            sent.push(Delivery::record(&record, None));
        }
        let carries = self.header_carriers();
        for piece in self.pushed() {
            let header = carries[piece];
            let push = StepsPush {
                id: None,
                version: self.versions[piece],
                pipeline: PIPELINE.into(),
                started_at: at_ms(self.started_ms),
                input: if header {
                    json!({"title": self.title})
                } else {
                    Value::Null
                },
                tags: if header {
                    self.tags.clone()
                } else {
                    BTreeMap::new()
                },
                sdk: header.then(sdk),
                steps: self.steps_of(piece),
            };
            sent.push(Delivery {
                push: true,
                body: serde_json::to_vec(&push).unwrap(),
                key: None,
                replay: false,
            });
        }
        if let Some((version, piece, above)) = self.finish {
            // Its own key: the first record may have had the same version.
            sent.push(Delivery::record(&self.whole(id), Some("finish".into())));
            let late = StepsPush {
                id: Some(id),
                version: version + above,
                pipeline: PIPELINE.into(),
                started_at: at_ms(self.started_ms),
                input: json!({"title": "late"}),
                tags: BTreeMap::from([("late".to_string(), "yes".to_string())]),
                sdk: None,
                // The piece's steps, or a step the flow never had.
                steps: match self.steps_of(piece) {
                    steps if !steps.is_empty() => steps,
                    _ => vec![self.steps[0].sent(0, self.started_ms)],
                },
            };
            sent.push(Delivery {
                push: true,
                body: serde_json::to_vec(&late).unwrap(),
                key: Some("late".into()),
                replay: false,
            });
        }
        for (n, &(which, place, new_key)) in self.repeats.iter().enumerate() {
            let original = &sent[which % sent.len()];
            // A whole record sent again after the window would replace the pushed steps
            // (CONTRACT); only a push is sent again under a new key.
            let repeat = if new_key && original.push {
                Delivery {
                    key: Some(format!("retry-{n}")),
                    replay: false,
                    ..original.clone()
                }
            } else {
                Delivery {
                    replay: true,
                    ..original.clone()
                }
            };
            let after = which % sent.len() + 1;
            sent.insert(after + place % (sent.len() + 1 - after), repeat);
        }
        sent
    }

    fn bucket_start(&self, width: i64) -> i64 {
        self.started_ms.div_euclid(width) * width
    }

    /// Reason counts per (bucket start, step, code) in any range holding the flow's start.
    fn expected_buckets(&self) -> BTreeMap<(i64, String, String), u128> {
        let start = self.bucket_start(self.bucket.millis());
        let mut counts = BTreeMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            for (code, n) in step.reasons() {
                *counts
                    .entry((start, step.name(seq(i)), code))
                    .or_insert(0u128) += u128::from(n);
            }
        }
        counts
    }

    /// The funnel of a range holding the flow: each step that counted its candidates, once.
    fn expected_funnels(&self) -> Vec<Funnel> {
        let steps: Vec<FunnelStep> = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| {
                let (cin, cout) = step.counts()?;
                Some(FunnelStep {
                    name: step.name(seq(i)),
                    kind: step.kind,
                    runs: 1,
                    median_in: cin as f64,
                    median_out: cout as f64,
                    median_eliminated_share: (cin > 0).then(|| (cin - cout) as f64 / cin as f64),
                })
            })
            .collect();
        if steps.is_empty() {
            return Vec::new();
        }
        vec![Funnel {
            pipeline: PIPELINE.into(),
            flows: 1,
            capped: false,
            steps,
        }]
    }

    /// The largest drop, (seq, candidates eliminated): the largest share of the candidates
    /// in, then the larger count, then the earlier step; none if nothing was eliminated.
    fn expected_largest_drop(&self) -> Option<(u32, u64)> {
        let mut best: Option<(u32, u64, u64)> = None;
        for (i, step) in self.steps.iter().enumerate() {
            let Some((cin, cout)) = step.counts() else {
                continue;
            };
            let eliminated = cin - cout;
            if eliminated == 0 {
                continue;
            }
            let larger = match best {
                None => true,
                Some((_, best_in, best_eliminated)) => {
                    let (this, that) = (
                        u128::from(eliminated) * u128::from(best_in),
                        u128::from(best_eliminated) * u128::from(cin),
                    );
                    this > that || (this == that && eliminated > best_eliminated)
                }
            };
            if larger {
                best = Some((seq(i), cin, eliminated));
            }
        }
        best.map(|(seq, _, eliminated)| (seq, eliminated))
    }

    /// The statistics ranges: whole hours around the flow's hour (answered from the hourly
    /// rollups), and a range that starts and ends inside hours (answered from the steps).
    fn stats_queries(&self) -> [StatsQuery; 2] {
        let hour = hour_floor(self.started_ms);
        let query = |since: i64, until: i64| StatsQuery {
            pipeline: None,
            step: None,
            since: at_ms(since),
            until: at_ms(until),
            bucket_ms: self.bucket.millis(),
            tag: None,
        };
        [
            query(
                hour - self.margins.0 * HOUR_MS,
                hour + (1 + self.margins.1) * HOUR_MS,
            ),
            query(
                self.started_ms - self.ragged.0,
                self.started_ms + self.ragged.1,
            ),
        ]
    }
}

/// One request: a flow record or a steps push, with its `Idempotency-Key` header.
#[derive(Debug, Clone)]
struct Delivery {
    push: bool,
    body: Vec<u8>,
    key: Option<String>,
    /// The same key and body were sent before: the answer is a replay.
    replay: bool,
}

impl Delivery {
    fn record(record: &FlowRecord, key: Option<String>) -> Self {
        Delivery {
            push: false,
            body: serde_json::to_vec(record).unwrap(),
            key,
            replay: false,
        }
    }

    async fn send(&self, db: &Db, team: i64, id: Uuid) -> ingest::Accepted {
        let services = &db.services;
        if self.push {
            let job = ingest::prepare_steps(
                &services.limits,
                team,
                id,
                self.key.as_deref(),
                &self.body,
                None,
            )
            .unwrap();
            ingest::enqueue(services, job).await.unwrap()
        } else {
            ingest::submit(services, team, self.key.as_deref(), &self.body, None)
                .await
                .unwrap()
        }
    }
}

/// Reason stats as maps: totals by (step, code), buckets by (start, step, code). Each key
/// must appear once.
type Counts = (
    BTreeMap<(String, String), u128>,
    BTreeMap<(i64, String, String), u128>,
);

fn counts(stats: &ReasonStats) -> std::result::Result<Counts, TestCaseError> {
    let mut totals = BTreeMap::new();
    for t in &stats.totals {
        prop_assert_eq!(&t.pipeline, PIPELINE);
        let again = totals.insert((t.step.clone(), t.code.clone()), t.count);
        prop_assert!(again.is_none(), "total of {}/{} twice", t.step, t.code);
    }
    let mut buckets = BTreeMap::new();
    for b in &stats.buckets {
        prop_assert_eq!(&b.pipeline, PIPELINE);
        let start = (b.start.unix_timestamp_nanos() / 1_000_000) as i64;
        let again = buckets.insert((start, b.step.clone(), b.code.clone()), b.count);
        prop_assert!(
            again.is_none(),
            "bucket {start} {}/{} twice",
            b.step,
            b.code
        );
    }
    Ok((totals, buckets))
}

proptest! {
    #![proptest_config(db_config())]

    #[test]
    fn a_flow_delivered_in_pieces_is_stored_as_delivered_at_once_with_exact_counts(
        plan in plan()
    ) {
        runtime().block_on(async {
            let db = fresh().await;
            let services = &db.services;
            let id = Uuid::now_v7();
            // At once, to one team; in pieces, to the other.
            let whole = Delivery::record(&plan.whole(id), None);
            prop_assert!(!whole.send(&db, db.team, id).await.replayed);
            for delivery in plan.deliveries(id) {
                let accepted = delivery.send(&db, db.other_team, id).await;
                prop_assert_eq!(accepted.replayed, delivery.replay, "{:?}", delivery.key);
            }
            // A worker stores the first jobs and loses their leases before marking them done.
            let lost = services.queue.claim(plan.lost_leases, Duration::ZERO).await.unwrap();
            for job in &lost {
                ingest::store_job(services, job).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
            drain(services, plan.worker_batch).await;
            prop_assert!(services.queue.dead_letters(None, 10).await.unwrap().is_empty());

            let expected = plan.expected(id);
            let at_once = services.flow_record(db.team, id).await.unwrap();
            prop_assert_eq!(at_once.as_ref(), Some(&expected), "delivered at once");
            let in_pieces = services.flow_record(db.other_team, id).await.unwrap();
            prop_assert_eq!(in_pieces.as_ref(), Some(&expected), "delivered in pieces");
            // What is derived and stored beside the record (step count, largest drop,
            // observation counts) is the same too.
            let detail = |team| async move {
                let mut detail = services.metadata.get_flow(team, id).await.unwrap().unwrap();
                detail.summary.ingested_at = time::OffsetDateTime::UNIX_EPOCH;
                detail
            };
            let (at_once, in_pieces) = (detail(db.team).await, detail(db.other_team).await);
            prop_assert_eq!(&in_pieces, &at_once);
            prop_assert_eq!(in_pieces.summary.step_count as usize, plan.steps.len());
            prop_assert_eq!(
                in_pieces.summary.largest_elimination.map(|e| (e.seq, e.eliminated)),
                plan.expected_largest_drop()
            );

            let buckets = plan.expected_buckets();
            let mut totals = BTreeMap::new();
            for ((_, step, code), n) in &buckets {
                *totals.entry((step.clone(), code.clone())).or_insert(0) += n;
            }
            for query in plan.stats_queries() {
                for team in [db.team, db.other_team] {
                    let stats = reason_stats(services, team, &query, plan.bucket).await.unwrap();
                    let (got_totals, got_buckets) = counts(&stats)?;
                    prop_assert_eq!(&got_totals, &totals, "totals of {:?}", query);
                    prop_assert_eq!(&got_buckets, &buckets, "buckets of {:?}", query);
                    prop_assert_eq!(&stats.funnels, &plan.expected_funnels(), "{:?}", query);
                }
            }
            Ok(())
        })?;
    }
}
