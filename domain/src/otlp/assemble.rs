//! Assembling a trace: the stored flow plus newly arrived span batches → the flow's next
//! version, written with [`WriteMode::Spans`](crate::flows::WriteMode::Spans).
//!
//! The rules:
//! - a span id is a step's identity in its trace: a re-sent span replaces its step;
//! - steps are ordered by start time and numbered from 0; within one millisecond (what a
//!   step keeps) a parent comes first, then the order of arrival; `parent_seq` points at the
//!   step of the parent span when that span has arrived;
//! - the flow's own fields come from the root span once it has arrived; before that the
//!   flow is running, named by `flowtrail.pipeline`, else `service.name`;
//! - a finished flow stays finished: a late span adds its step, never reopens the flow or
//!   removes a step;
//! - nothing new (a batch stored before, re-sent) writes nothing.

use std::collections::{BTreeMap, HashMap};

use flowtrail_types::{FlowRecord, FlowStatus, StepRecord};
use uuid::Uuid;

use super::{SpanBatch, UNKNOWN_PIPELINE};
use crate::flows::StepPayloads;
use crate::ingest::validate;
use crate::payloads::PayloadRef;
use crate::{Result, Services};

/// The flow's next version and where its steps' observations are.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub flow: FlowRecord,
    pub payloads: StepPayloads,
}

/// Assembles `batches` (with their payloads, keyed by batch position) of flow `flow_id`
/// with what is stored. `None` when they change nothing. Errors: storage, a stored payload
/// that fails its checksum, a flow past the limits.
pub async fn assemble(
    services: &Services,
    team_id: i64,
    flow_id: Uuid,
    batches: &[(SpanBatch, StepPayloads)],
) -> Result<Option<Assembled>> {
    let stored = match services.metadata.get_flow(team_id, flow_id).await? {
        Some(detail) => Some(services.stored_record(team_id, detail).await?),
        None => None,
    };
    let limits = &services.limits;
    let assembled = merge(stored.as_ref(), batches, limits.max_steps, limits.max_tags);
    if let Some((record, _)) = &stored {
        let mut unchanged = assembled.flow.clone();
        unchanged.version = record.version;
        if unchanged == *record {
            return Ok(None);
        }
    }
    validate(&assembled.flow, &services.limits)?;
    Ok(Some(assembled))
}

/// A step's identity: its span id, or (a step not made from a span) its seq.
fn identity(step: &StepRecord) -> String {
    match &step.span_id {
        Some(id) => id.clone(),
        None => format!("seq:{}", step.seq),
    }
}

/// How many ancestors each step has among `steps` (by parent span id; at most 64, so a loop
/// in the ids cannot hang).
fn depths(steps: &HashMap<String, (StepRecord, Option<PayloadRef>)>) -> HashMap<String, usize> {
    steps
        .iter()
        .map(|(id, (step, _))| {
            let mut depth = 0;
            let mut parent = step.parent_span_id.as_ref();
            while let Some((ancestor, _)) = parent.and_then(|p| steps.get(p))
                && depth < 64
            {
                depth += 1;
                parent = ancestor.parent_span_id.as_ref();
            }
            (id.clone(), depth)
        })
        .collect()
}

/// The pure part of [`assemble`]: the stored record (if any) and the batches, in order.
fn merge(
    stored: Option<&(FlowRecord, StepPayloads)>,
    batches: &[(SpanBatch, StepPayloads)],
    max_steps: usize,
    max_tags: usize,
) -> Assembled {
    let mut steps: HashMap<String, (StepRecord, Option<PayloadRef>)> = HashMap::new();
    // Where each step was first seen: (0, its seq) when stored, (1 + the batch's index, its
    // position in the batch) when new. A re-sent span keeps its stored place.
    let mut arrival: HashMap<String, (usize, u32)> = HashMap::new();
    if let Some((record, payloads)) = stored {
        for step in &record.steps {
            arrival.insert(identity(step), (0, step.seq));
            steps.insert(
                identity(step),
                (step.clone(), payloads.get(&step.seq).cloned()),
            );
        }
    }
    for (index, (batch, payloads)) in batches.iter().enumerate() {
        for step in &batch.steps {
            arrival
                .entry(identity(step))
                .or_insert((index + 1, step.seq));
            steps.insert(
                identity(step),
                (step.clone(), payloads.get(&step.seq).cloned()),
            );
        }
    }
    let depths = depths(&steps);
    let mut ordered: Vec<(StepRecord, Option<PayloadRef>)> = steps.into_values().collect();
    // Start order. Steps keep milliseconds, and a fast pipeline starts several spans within
    // one: then a parent comes before its children, and otherwise the order of arrival wins —
    // a batch is in nanosecond start order, and a span exported in a later request ended
    // (and, for steps that run one after another, started) later.
    ordered.sort_by_key(|(step, _)| {
        let id = identity(step);
        (
            step.started_at.is_none(),
            step.started_at,
            depths.get(&id).copied().unwrap_or(0),
            arrival.get(&id).copied().unwrap_or_default(),
            id,
        )
    });
    if ordered.len() > max_steps {
        tracing::warn!(
            steps = ordered.len(),
            max_steps,
            "a trace has more spans than a flow may have steps; the latest are left out"
        );
        ordered.truncate(max_steps);
    }
    let seqs: HashMap<String, u32> = ordered
        .iter()
        .enumerate()
        .filter_map(|(seq, (step, _))| Some((step.span_id.clone()?, seq as u32)))
        .collect();
    let mut payloads = StepPayloads::new();
    let mut records = Vec::with_capacity(ordered.len());
    for (seq, (mut step, payload)) in ordered.into_iter().enumerate() {
        step.seq = seq as u32;
        if step.span_id.is_some() {
            step.parent_seq = step
                .parent_span_id
                .as_ref()
                .and_then(|parent| seqs.get(parent).copied());
        }
        if let Some(payload) = payload {
            payloads.insert(step.seq, payload);
        }
        records.push(step);
    }
    let flow = header(stored.map(|(record, _)| record), batches, records, max_tags);
    Assembled { flow, payloads }
}

/// The flow's own fields: the root span's once it has arrived (the last batch that has one
/// wins), else what is stored, else provisional ones; tags (up to `max_tags`, those already
/// stored first) and SDK accumulate. A flow never ends before it starts.
fn header(
    stored: Option<&FlowRecord>,
    batches: &[(SpanBatch, StepPayloads)],
    steps: Vec<StepRecord>,
    max_tags: usize,
) -> FlowRecord {
    let first_start = steps.iter().filter_map(|s| s.started_at).min();
    let named = batches.iter().rev().find_map(|(b, _)| b.pipeline.clone());
    let mut record = match stored {
        Some(stored) => {
            let mut record = stored.clone();
            record.version = stored.version + 1;
            if record.status == FlowStatus::Running {
                if let Some(pipeline) = &named {
                    record.pipeline = pipeline.clone();
                }
                record.started_at =
                    first_start.map_or(record.started_at, |s| s.min(record.started_at));
            }
            record
        }
        None => {
            let pipeline = named
                .or_else(|| batches.iter().find_map(|(b, _)| b.service_name.clone()))
                .unwrap_or_else(|| UNKNOWN_PIPELINE.to_string());
            let now = crate::millis::from_ms(crate::millis::now_ms());
            FlowRecord::new(
                batches.first().map_or(Uuid::nil(), |(b, _)| b.flow_id),
                pipeline,
                first_start.unwrap_or(now),
            )
        }
    };
    if let Some((batch, _)) = batches.iter().rev().find(|(b, _)| b.root.is_some())
        && let (Some(root), Some(pipeline)) = (&batch.root, batch.pipeline())
    {
        record.pipeline = pipeline;
        record.status = root.status;
        record.started_at = root
            .started_at
            .or(first_start)
            .or(root.ended_at)
            .unwrap_or(record.started_at);
        record.ended_at = root.ended_at;
        record.input = root.input.clone();
        record.output = root.output.clone();
        record.error = root.error.clone();
    }
    let mut tags: BTreeMap<String, String> = record.tags.clone();
    for (batch, _) in batches {
        for (key, value) in &batch.tags {
            if tags.len() < max_tags || tags.contains_key(key) {
                tags.insert(key.clone(), value.clone());
            }
        }
        if record.sdk.is_none() {
            record.sdk = batch.sdk.clone();
        }
    }
    record.tags = tags;
    if let Some(end) = record.ended_at
        && end < record.started_at
    {
        record.started_at = end;
    }
    record.steps = steps;
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::StepKind;
    use time::OffsetDateTime;

    fn at(ms: i64) -> OffsetDateTime {
        crate::millis::from_ms(1_764_000_000_000 + ms)
    }

    fn span(id: &str, parent: Option<&str>, start: i64) -> StepRecord {
        let mut step = StepRecord::new(0, format!("span {id}"), StepKind::Custom);
        step.span_id = Some(id.repeat(16));
        step.parent_span_id = parent.map(|p| p.repeat(16));
        step.started_at = Some(at(start));
        step.ended_at = Some(at(start + 1));
        step.status = FlowStatus::Succeeded;
        step
    }

    fn batch(steps: Vec<StepRecord>, root: bool) -> (SpanBatch, StepPayloads) {
        let mut steps = steps;
        for (i, s) in steps.iter_mut().enumerate() {
            s.seq = i as u32;
        }
        let batch = SpanBatch {
            flow_id: Uuid::from_u128(7),
            root: root.then(|| super::super::RootSpan {
                name: "pipeline".into(),
                pipeline: None,
                status: FlowStatus::Succeeded,
                started_at: Some(at(0)),
                ended_at: Some(at(100)),
                input: serde_json::json!({"q": 1}),
                output: serde_json::Value::Null,
                error: None,
            }),
            pipeline: None,
            service_name: Some("svc".into()),
            tags: BTreeMap::new(),
            sdk: None,
            steps,
        };
        (batch, StepPayloads::new())
    }

    #[test]
    fn spans_from_several_batches_merge_in_start_order_with_parents_and_no_duplicates() {
        let first = merge(
            None,
            &[batch(
                vec![span("c", Some("a"), 30), span("b", Some("a"), 10)],
                false,
            )],
            1000,
            64,
        );
        assert_eq!(first.flow.status, FlowStatus::Running);
        assert_eq!(first.flow.pipeline, "svc");
        assert_eq!(first.flow.version, 1);
        let stored = (first.flow, first.payloads);
        // The second batch re-sends b and brings the root a, which started first.
        let second = merge(
            Some(&stored),
            &[batch(
                vec![span("b", Some("a"), 10), span("a", None, 0)],
                true,
            )],
            1000,
            64,
        );
        let names: Vec<_> = second.flow.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["span a", "span b", "span c"]);
        let seqs: Vec<_> = second
            .flow
            .steps
            .iter()
            .map(|s| (s.seq, s.parent_seq))
            .collect();
        assert_eq!(seqs, [(0, None), (1, Some(0)), (2, Some(0))]);
        assert_eq!(second.flow.status, FlowStatus::Succeeded);
        assert_eq!(second.flow.pipeline, "pipeline");
        assert_eq!(second.flow.version, 2);

        // A late span after the root never reopens the flow.
        let stored = (second.flow, second.payloads);
        let late = merge(
            Some(&stored),
            &[batch(vec![span("d", Some("a"), 50)], false)],
            1000,
            64,
        );
        assert_eq!(late.flow.status, FlowStatus::Succeeded);
        assert_eq!(late.flow.steps.len(), 4);
        assert_eq!(late.flow.pipeline, "pipeline");
    }

    #[test]
    fn within_one_millisecond_a_parent_comes_before_its_children_whatever_arrived_first() {
        let children = merge(
            None,
            &[batch(
                vec![span("b", Some("a"), 0), span("c", Some("b"), 0)],
                false,
            )],
            1000,
            64,
        );
        let stored = (children.flow, children.payloads);
        let with_root = merge(
            Some(&stored),
            &[batch(vec![span("a", None, 0)], true)],
            1000,
            64,
        );
        let names: Vec<_> = with_root
            .flow
            .steps
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["span a", "span b", "span c"]);
    }

    #[test]
    fn within_one_millisecond_spans_of_a_later_request_come_after_stored_siblings() {
        // As the Python SDK exports a fast pipeline: [b, c], then [d, e] and b again, then the
        // root a; every span starts in the same millisecond.
        let first = merge(
            None,
            &[batch(
                vec![span("b", Some("a"), 0), span("c", Some("a"), 0)],
                false,
            )],
            1000,
            64,
        );
        let stored = (first.flow, first.payloads);
        let second = merge(
            Some(&stored),
            &[batch(
                vec![
                    span("d", Some("a"), 0),
                    span("e", Some("a"), 0),
                    span("b", Some("a"), 0),
                ],
                false,
            )],
            1000,
            64,
        );
        let stored = (second.flow, second.payloads);
        let last = merge(
            Some(&stored),
            &[batch(vec![span("a", None, 0)], true)],
            1000,
            64,
        );
        let names: Vec<_> = last.flow.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["span a", "span b", "span c", "span d", "span e"]);
    }

    #[test]
    fn more_spans_than_a_flow_may_have_keep_the_earliest() {
        let spans: Vec<_> = ["1", "2", "3"]
            .iter()
            .enumerate()
            .map(|(i, id)| span(id, None, 10 - i as i64))
            .collect();
        let merged = merge(None, &[batch(spans, false)], 2, 64);
        let ids: Vec<_> = merged
            .flow
            .steps
            .iter()
            .map(|s| s.span_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["3".repeat(16), "2".repeat(16)]);
    }
}
