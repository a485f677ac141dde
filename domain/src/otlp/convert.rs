//! The mapping of one OTLP export request onto Flow Trail's record: spans grouped by trace,
//! each span a step (kind, input, output, candidates, exact counts), the root span's fields
//! the flow's. ARCHITECTURE.md ("OpenTelemetry in") has the mapping as a table and
//! `docs/otel-conventions.md` the attributes a pipeline can add.

use std::collections::{BTreeMap, HashSet};

use flowtrail_types::{Capture, FlowRecord, FlowStatus, SdkInfo, StepKind, StepRecord, Verdict};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::attributes::{Attributes, count_of, parse_json_text, text_of};
use super::candidates::{candidate_event, documents, rerank};
use super::{RootSpan, SpanBatch};
use crate::ingest::{Limits, validate};

/// Resource and span attributes under this prefix become the flow's tags (prefix removed).
pub const TAG_PREFIX: &str = "flowtrail.tag.";

/// What one export request becomes.
#[derive(Debug, Default)]
pub struct Conversion {
    /// One batch per trace, in the order the traces first appear.
    pub batches: Vec<SpanBatch>,
    /// Spans refused (a bad id, a value past the limits), counted for `partial_success`.
    pub rejected_spans: u64,
    /// Why, one line per distinct reason (at most [`MAX_MESSAGES`]).
    pub messages: Vec<String>,
}

/// Distinct rejection messages kept for `partial_success.error_message`.
pub const MAX_MESSAGES: usize = 5;

impl Conversion {
    fn reject(&mut self, spans: u64, message: String) {
        self.rejected_spans += spans;
        if self.messages.len() < MAX_MESSAGES && !self.messages.contains(&message) {
            self.messages.push(message);
        }
    }

    /// `partial_success.error_message`: the distinct reasons, joined.
    pub fn error_message(&self) -> String {
        self.messages.join("; ")
    }
}

/// One span with what the mapping needs of its context.
struct SpanIn<'a> {
    span: &'a Span,
    resource: &'a Attributes,
    service_name: Option<&'a str>,
}

/// Maps every span of `request`; a span that cannot be mapped is counted in
/// `rejected_spans`, never fails the others.
pub fn convert(request: &ExportTraceServiceRequest, limits: &Limits) -> Conversion {
    let mut conversion = Conversion::default();
    let mut traces: Vec<([u8; 16], Vec<SpanIn<'_>>)> = Vec::new();
    let mut resources = Vec::with_capacity(request.resource_spans.len());
    for resource_spans in &request.resource_spans {
        let attributes = resource_spans
            .resource
            .as_ref()
            .map(|r| Attributes::of(&r.attributes))
            .unwrap_or_else(|| Ok(Attributes::default()));
        resources.push(attributes);
    }
    for (resource_spans, attributes) in request.resource_spans.iter().zip(&resources) {
        let spans = resource_spans.scope_spans.iter().flat_map(|s| &s.spans);
        let resource = match attributes {
            Ok(attributes) => attributes,
            Err(message) => {
                conversion.reject(spans.count() as u64, format!("resource {message}"));
                continue;
            }
        };
        let service_name = match resource.get("service.name") {
            Some(Value::String(name)) if !name.trim().is_empty() => Some(name.as_str()),
            _ => None,
        };
        for span in spans {
            let Ok(trace_id) = <[u8; 16]>::try_from(span.trace_id.as_slice()) else {
                conversion.reject(1, "a trace id is not 16 bytes".into());
                continue;
            };
            if trace_id == [0; 16] {
                conversion.reject(
                    1,
                    "a trace id is all zeros (invalid, W3C Trace Context)".into(),
                );
                continue;
            }
            let input = SpanIn {
                span,
                resource,
                service_name,
            };
            match traces.iter_mut().find(|(id, _)| *id == trace_id) {
                Some((_, spans)) => spans.push(input),
                None => traces.push((trace_id, vec![input])),
            }
        }
    }
    for (trace_id, spans) in traces {
        if let Some(batch) = trace_batch(trace_id, spans, limits, &mut conversion) {
            conversion.batches.push(batch);
        }
    }
    conversion
}

/// The batch of one trace's spans, or `None` when none of them could be mapped.
fn trace_batch(
    trace_id: [u8; 16],
    spans: Vec<SpanIn<'_>>,
    limits: &Limits,
    conversion: &mut Conversion,
) -> Option<SpanBatch> {
    let flow_id = Uuid::from_bytes(trace_id);
    let mut steps = Vec::with_capacity(spans.len());
    let mut batch = SpanBatch {
        flow_id,
        root: None,
        pipeline: None,
        service_name: None,
        tags: BTreeMap::new(),
        sdk: None,
        steps: Vec::new(),
    };
    let mut seen = HashSet::new();
    for input in &spans {
        let (step, attributes) = match step_of(input.span) {
            Ok(mapped) => mapped,
            Err(message) => {
                conversion.reject(1, message);
                continue;
            }
        };
        if let Err(error) = validate_step(&step, &attributes, input.resource, limits) {
            conversion.reject(
                1,
                format!("span {}: {error}", step.span_id.as_deref().unwrap_or("?")),
            );
            continue;
        }
        // A span repeated in one request: the last copy counts.
        if !seen.insert(step.span_id.clone()) {
            steps.retain(|(s, _, _): &(StepRecord, Attributes, &SpanIn<'_>)| {
                s.span_id != step.span_id
            });
        }
        steps.push((step, attributes, input));
    }
    if steps.is_empty() {
        return None;
    }
    // Flow-level hints: the first span naming a pipeline, the first resource's service.
    for (step, attributes, input) in &steps {
        if batch.pipeline.is_none() {
            batch.pipeline = attributes
                .text("flowtrail.pipeline")
                .filter(|p| !p.trim().is_empty());
        }
        if batch.service_name.is_none() {
            batch.service_name = input.service_name.map(str::to_string);
        }
        if batch.sdk.is_none() {
            batch.sdk = sdk_of(input.resource);
        }
        for (key, value) in input
            .resource
            .with_prefix(TAG_PREFIX)
            .chain(attributes.with_prefix(TAG_PREFIX))
        {
            if !key.is_empty() {
                batch.tags.insert(key.to_string(), text_of(value));
            }
        }
        if step.parent_span_id.is_none() && batch.root.is_none() {
            batch.root = Some(root_of(input.span, step, attributes));
        }
    }
    // In start order at the spans' own precision (nanoseconds): steps keep milliseconds, and
    // a fast pipeline starts several spans within one.
    steps.sort_by_key(|(step, _, input)| {
        let start = input.span.start_time_unix_nano;
        (start == 0, start, step.span_id.clone())
    });
    batch.steps = steps.into_iter().map(|(step, ..)| step).collect();
    for (seq, step) in batch.steps.iter_mut().enumerate() {
        step.seq = seq as u32;
    }
    if batch.steps.len() > limits.max_steps {
        // The same cap as across requests: the earliest-starting spans are kept.
        conversion.reject(
            (batch.steps.len() - limits.max_steps) as u64,
            format!(
                "trace {}: {} spans; a flow keeps at most {} steps, the latest-starting are \
                 left out",
                hex::encode(trace_id),
                batch.steps.len(),
                limits.max_steps
            ),
        );
        batch.steps.truncate(limits.max_steps);
        if batch
            .root
            .as_ref()
            .is_some_and(|_| !batch.steps.iter().any(|s| s.parent_span_id.is_none()))
        {
            batch.root = None;
        }
    }
    // A flow keeps at most `max_tags` tags (the first by key).
    while batch.tags.len() > limits.max_tags {
        batch.tags.pop_last();
    }
    // The flow's own fields (pipeline, tags, root input and output) obey the record's rules.
    if let Err(error) = validate(&batch.provisional_record(), limits) {
        conversion.reject(
            batch.steps.len() as u64,
            format!("trace {}: {error}", hex::encode(trace_id)),
        );
        return None;
    }
    Some(batch)
}

/// The rules of a flow record that one span must follow on its own: as a step, and with the
/// pipeline and tags it names (its own and its resource's), so that no span accepted here
/// makes its flow break a rule once merged.
fn validate_step(
    step: &StepRecord,
    attributes: &Attributes,
    resource: &Attributes,
    limits: &Limits,
) -> crate::Result<()> {
    let pipeline = attributes
        .text("flowtrail.pipeline")
        .unwrap_or_else(|| "otlp".into());
    let mut record = FlowRecord::new(Uuid::max(), pipeline, OffsetDateTime::UNIX_EPOCH);
    record.tags = resource
        .with_prefix(TAG_PREFIX)
        .chain(attributes.with_prefix(TAG_PREFIX))
        .map(|(key, value)| (key.to_string(), text_of(value)))
        .take(limits.max_tags)
        .collect();
    record.steps.push(step.clone());
    validate(&record, limits)
}

/// Milliseconds since the epoch as stored (a step's times are kept to the millisecond).
fn time_of(unix_nanos: u64) -> Option<OffsetDateTime> {
    if unix_nanos == 0 {
        return None;
    }
    Some(crate::millis::from_ms((unix_nanos / 1_000_000) as i64))
}

fn hex_id(bytes: &[u8]) -> Option<String> {
    (bytes.len() == 8 && bytes.iter().any(|b| *b != 0)).then(|| hex::encode(bytes))
}

fn failed(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

/// The flow's fields from its root span.
fn root_of(span: &Span, step: &StepRecord, attributes: &Attributes) -> RootSpan {
    let error = failed(span).then(|| {
        let message = span
            .status
            .as_ref()
            .map(|s| s.message.trim())
            .unwrap_or_default();
        if message.is_empty() {
            "the root span's status is ERROR".to_string()
        } else {
            message.to_string()
        }
    });
    RootSpan {
        name: span.name.clone(),
        pipeline: attributes
            .text("flowtrail.pipeline")
            .filter(|p| !p.trim().is_empty()),
        status: if error.is_some() {
            FlowStatus::Failed
        } else {
            FlowStatus::Succeeded
        },
        started_at: step.started_at,
        ended_at: step.ended_at,
        input: step.input.clone(),
        output: step.output.clone(),
        error,
    }
}

fn sdk_of(resource: &Attributes) -> Option<SdkInfo> {
    let name = resource.text("telemetry.sdk.name")?;
    let language = resource.text("telemetry.sdk.language");
    Some(SdkInfo {
        name: match language {
            Some(language) => format!("{name}-{language}"),
            None => name,
        },
        version: resource.text("telemetry.sdk.version").unwrap_or_default(),
    })
}

/// Attribute keys the mapping reads; what remains of a span's attributes is its input when
/// it has no `input.value`.
const CONSUMED: &[&str] = &[
    "flowtrail.step.kind",
    "flowtrail.pipeline",
    "flowtrail.reasoning",
    "flowtrail.candidates_in",
    "flowtrail.candidates_out",
    "flowtrail.reason",
    "flowtrail.tag",
    "openinference.span.kind",
    "gen_ai.operation.name",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "llm.input_messages",
    "llm.output_messages",
    "gen_ai.prompt",
    "gen_ai.completion",
    "reranker.query",
    "retrieval.documents",
    "reranker.input_documents",
    "reranker.output_documents",
];

/// One span as a step (seq to be set by the caller) and its attributes.
fn step_of(span: &Span) -> Result<(StepRecord, Attributes), String> {
    let span_id = hex_id(&span.span_id).ok_or("a span id is not 8 bytes, or is all zeros")?;
    let attributes =
        Attributes::of(&span.attributes).map_err(|m| format!("span {span_id}: {m}"))?;
    // No parent (empty, or all zeros) makes a root; a parent id of another length is refused
    // rather than taken for a root that would end the flow.
    let parent_span_id = match span.parent_span_id.as_slice() {
        [] => None,
        bytes if bytes.len() != 8 => {
            return Err(format!("span {span_id}: its parent span id is not 8 bytes"));
        }
        bytes => hex_id(bytes),
    };
    if parent_span_id.as_ref() == Some(&span_id) {
        return Err(format!("span {span_id}: it names itself as its parent"));
    }
    let mut step = StepRecord::new(0, span.name.clone(), kind_of(&attributes));
    step.span_id = Some(span_id.clone());
    step.parent_span_id = parent_span_id;
    step.status = if failed(span) {
        FlowStatus::Failed
    } else {
        FlowStatus::Succeeded
    };
    step.started_at = time_of(span.start_time_unix_nano);
    step.ended_at = time_of(span.end_time_unix_nano).or(step.started_at);
    step.input = io_of(&attributes, "input").unwrap_or(Value::Null);
    step.output = io_of(&attributes, "output").unwrap_or(Value::Null);
    step.reasoning = attributes.text("flowtrail.reasoning").or_else(|| {
        let status = span.status.as_ref()?;
        (failed(span) && !status.message.trim().is_empty()).then(|| status.message.clone())
    });

    let mut observations = documents(&attributes, "retrieval.documents.", Verdict::Kept);
    let reranked = rerank(&attributes);
    if let Some((rerank_observations, _, _)) = &reranked {
        observations.extend(rerank_observations.iter().cloned());
    }
    for event in span
        .events
        .iter()
        .filter(|e| e.name == "flowtrail.candidate")
    {
        observations.push(candidate_event(event, &span.span_id)?);
    }
    // An exact count that is no count is refused, not ignored.
    let count = |key: &str| -> Result<Option<u64>, String> {
        match attributes.get(key) {
            None => Ok(None),
            Some(value) => count_of(value)
                .filter(|n| *n <= crate::ingest::MAX_COUNT)
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "span {span_id}: {key} is {value}; it must be a whole number from 0 to {}",
                        crate::ingest::MAX_COUNT
                    )
                }),
        }
    };
    step.candidates_in =
        count("flowtrail.candidates_in")?.or(reranked.as_ref().map(|(_, input, _)| *input));
    step.candidates_out =
        count("flowtrail.candidates_out")?.or(reranked.as_ref().map(|(_, _, output)| *output));
    let codes: Vec<String> = attributes
        .with_prefix("flowtrail.reason.")
        .map(|(code, _)| code.to_string())
        .collect();
    for code in codes {
        if let Some(n) = count(&format!("flowtrail.reason.{code}"))? {
            step.reasons.insert(code, n);
        }
    }
    let explicit = step.candidates_in.is_some() || step.candidates_out.is_some();
    step.capture = if observations.is_empty() && explicit {
        Capture::CountsOnly
    } else if explicit && step.candidates_in != Some(observations.len() as u64) {
        Capture::Sampled
    } else {
        Capture::Full
    };
    step.observations = observations;
    // Stored exactly as the rules derive them, so a re-sent span compares equal to its step.
    step.candidates_in = step.effective_candidates_in();
    step.candidates_out = step.effective_candidates_out();
    step.reasons = step.effective_reasons();
    if step.input.is_null() {
        let mut rest = attributes.clone();
        for key in CONSUMED {
            rest.take_tree(key);
        }
        if !rest.0.is_empty() {
            step.input = Value::Object(rest.into_object());
        }
    }
    Ok((step, attributes))
}

/// The step kind: `flowtrail.step.kind`, else the OpenInference span kind, else the GenAI
/// operation, else custom.
fn kind_of(attributes: &Attributes) -> StepKind {
    if let Some(kind) = attributes
        .text("flowtrail.step.kind")
        .and_then(|k| StepKind::parse(&k.trim().to_ascii_lowercase()))
    {
        return kind;
    }
    if let Some(kind) = attributes.text("openinference.span.kind") {
        match kind.trim().to_ascii_uppercase().as_str() {
            "RETRIEVER" => return StepKind::Retrieve,
            "RERANKER" => return StepKind::Rank,
            "LLM" => return StepKind::Generate,
            "EVALUATOR" => return StepKind::Judge,
            "GUARDRAIL" => return StepKind::Filter,
            "TOOL" | "EMBEDDING" => return StepKind::Transform,
            "CHAIN" | "AGENT" => return StepKind::Custom,
            _ => {}
        }
    }
    match attributes.text("gen_ai.operation.name").as_deref() {
        Some("chat" | "text_completion" | "generate_content") => StepKind::Generate,
        Some("embeddings" | "execute_tool") => StepKind::Transform,
        _ => StepKind::Custom,
    }
}

/// A step's input or output (`side` = `input` or `output`): `<side>.value` (parsed when its
/// MIME type is JSON), else the GenAI messages (`gen_ai.<side>.messages`), else
/// OpenInference's `llm.<side>_messages.N.message.*`, else the older GenAI
/// `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`; a reranker's input may be its
/// `reranker.query`.
fn io_of(attributes: &Attributes, side: &str) -> Option<Value> {
    if let Some(value) = attributes.get(&format!("{side}.value")) {
        let json = attributes
            .text(&format!("{side}.mime_type"))
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        return Some(if json {
            parse_json_text(value)
        } else {
            value.clone()
        });
    }
    if let Some(messages) = attributes.get(&format!("gen_ai.{side}.messages")) {
        return Some(parse_json_text(messages));
    }
    if side == "input"
        && let Some(query) = attributes.get("reranker.query")
    {
        return Some(query.clone());
    }
    let legacy = if side == "input" {
        "gen_ai.prompt."
    } else {
        "gen_ai.completion."
    };
    for prefix in [format!("llm.{side}_messages."), legacy.to_string()] {
        let messages = attributes.indexed(&prefix);
        if !messages.is_empty() {
            return Some(Value::Array(
                messages
                    .into_iter()
                    .map(|m| {
                        let object: Map<String, Value> = m
                            .into_iter()
                            .map(|(k, v)| (k.trim_start_matches("message.").to_string(), v))
                            .collect();
                        Value::Object(object)
                    })
                    .collect(),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn span(attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "call".into(),
            start_time_unix_nano: 1_764_000_000_123_456_789,
            end_time_unix_nano: 1_764_000_000_223_456_789,
            attributes,
            ..Default::default()
        }
    }

    #[test]
    fn the_kind_comes_from_flowtrail_then_openinference_then_genai() {
        let kind = |attributes| step_of(&span(attributes)).unwrap().0.kind;
        assert_eq!(
            kind(vec![
                text("flowtrail.step.kind", "Filter"),
                text("openinference.span.kind", "LLM")
            ]),
            StepKind::Filter
        );
        assert_eq!(
            kind(vec![text("openinference.span.kind", "guardrail")]),
            StepKind::Filter
        );
        assert_eq!(
            kind(vec![text("gen_ai.operation.name", "chat")]),
            StepKind::Generate
        );
        assert_eq!(
            kind(vec![text("gen_ai.operation.name", "embeddings")]),
            StepKind::Transform
        );
        assert_eq!(kind(vec![]), StepKind::Custom);
    }

    #[test]
    fn input_and_output_come_from_values_messages_or_the_remaining_attributes() {
        let (step, _) = step_of(&span(vec![
            text("llm.input_messages.0.message.role", "user"),
            text("llm.input_messages.0.message.content", "which stand?"),
            text(
                "gen_ai.output.messages",
                r#"[{"role": "assistant", "parts": ["B0STAND42"]}]"#,
            ),
        ]))
        .unwrap();
        assert_eq!(
            step.input,
            serde_json::json!([{"role": "user", "content": "which stand?"}])
        );
        assert_eq!(step.output[0]["parts"][0], "B0STAND42");
        // Times are kept to the millisecond, as stored.
        assert_eq!(
            crate::millis::to_ms(step.started_at.unwrap()),
            1_764_000_000_123
        );
        let (step, _) = step_of(&span(vec![
            text("llm.model_name", "judge-1"),
            text("openinference.span.kind", "LLM"),
        ]))
        .unwrap();
        assert_eq!(step.input, serde_json::json!({"llm.model_name": "judge-1"}));
    }

    #[test]
    fn a_request_maps_to_one_batch_per_trace_and_counts_what_it_refuses() {
        let mut other = span(vec![]);
        other.trace_id = vec![3; 16];
        let mut bad = span(vec![]);
        bad.span_id = vec![0; 8];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                    spans: vec![span(vec![]), other, bad],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let conversion = convert(&request, &Limits::default());
        assert_eq!(conversion.batches.len(), 2);
        assert_eq!(conversion.rejected_spans, 1);
        assert!(conversion.error_message().contains("span id"));
        assert_eq!(conversion.batches[0].flow_id, Uuid::from_bytes([1; 16]));
        assert!(
            conversion.batches[0].root.is_some(),
            "a span without a parent is the root"
        );
    }
}
