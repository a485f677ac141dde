//! The fuzz targets (issue #18): one function per parser that takes untrusted bytes, each
//! checking the parser's promises on whatever it is given — it never panics, and what it
//! accepts reads back to itself. `fuzz/` drives them with cargo-fuzz (libFuzzer; run by
//! `scripts/verify.sh`); `tests/corpus.rs` replays every input kept in `fuzz/corpus/<target>/`
//! as an ordinary test, so a crash once found stays fixed.
//!
//! Each target panics (the fuzzer's "crash") only when a promise is broken.

use flowtrail_domain::ingest::{self, Limits};
use flowtrail_observations::filter::{ObservationFilter, ObservationIndex, Sort};
use flowtrail_types::{FlowCursor, FlowFilters, Observation};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// A fuzz target: bytes in, a panic only when a promise is broken.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("ingest", ingest),
    ("steps_push", steps_push),
    ("list_query", list_query),
    ("cursor", cursor),
    ("observation_filter", observation_filter),
    ("otlp_protobuf", otlp_protobuf),
    ("otlp_json", otlp_json),
];

/// `POST /api/v1/flows`: parse + validate a flow record. Accepted bodies are kept whole (the
/// queued job holds exactly the bytes sent) and named by their id and version.
pub fn ingest(data: &[u8]) {
    if let Ok(job) = ingest::prepare(&Limits::default(), 1, None, data, None) {
        let kept = zstd::bulk::decompress(&job.body, data.len() + 1).expect("a job's body unpacks");
        assert_eq!(kept, data, "the job keeps the bytes sent");
        assert_eq!(
            job.idempotency_key,
            format!("{}:{}", job.flow_id, job.flow_version)
        );
        assert!(job.flow_version >= 1, "versions start at 1");
    }
}

/// `POST /api/v1/flows/{id}/steps`: parse + validate a steps push (the merge's input).
pub fn steps_push(data: &[u8]) {
    let flow = uuid::Uuid::from_u128(0x0193_0000_0000_7000_a000_0000_0000_0001);
    if let Ok(job) = ingest::prepare_steps(&Limits::default(), 1, flow, None, data, None) {
        assert_eq!(job.flow_id, flow, "a push belongs to the flow in its path");
        assert!(
            job.idempotency_key.starts_with(&format!("{flow}:")),
            "{}",
            job.idempotency_key
        );
    }
}

/// The flows list's query string: what it reads writes back to a query that reads the same.
pub fn list_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(filters) = FlowFilters::from_query(&text) {
        let again = filters.to_query();
        assert_eq!(
            FlowFilters::from_query(&again),
            Ok(filters),
            "{text:?} → {again:?}"
        );
    }
}

/// The list's cursor: one it reads encodes back to a cursor that reads the same.
pub fn cursor(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(cursor) = FlowCursor::decode(&text) {
        assert_eq!(FlowCursor::decode(&cursor.encode()), Some(cursor));
    }
}

/// The observations table's filter (the page–worker protocol's JSON, attribute conditions
/// included) over a fixed table: answers only rows that exist, each once.
pub fn observation_filter(data: &[u8]) {
    let Ok((filter, sort)) = serde_json::from_slice::<(ObservationFilter, Sort)>(data) else {
        return;
    };
    let rows: Vec<Observation> = serde_json::from_str(TABLE).expect("the fixed table parses");
    let count = rows.len();
    let mut index = ObservationIndex::new(rows);
    let answer = index.query(&filter, sort).to_vec();
    let mut seen = answer.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), answer.len(), "a row answered twice");
    assert!(
        answer.iter().all(|&i| (i as usize) < count),
        "a row that does not exist"
    );
}

/// OTLP/HTTP protobuf: decoded and converted to flows; spans refused are counted, never a
/// panic.
pub fn otlp_protobuf(data: &[u8]) {
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        convert(&request);
    }
}

/// OTLP/HTTP JSON, as `otlp_protobuf`.
pub fn otlp_json(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(data) {
        convert(&request);
    }
}

fn convert(request: &ExportTraceServiceRequest) {
    let spans = flowtrail_domain::otlp::span_count(request);
    let conversion = flowtrail_domain::otlp::convert(request, &Limits::default());
    assert!(
        conversion.rejected_spans as usize <= spans,
        "more spans refused ({}) than sent ({spans})",
        conversion.rejected_spans
    );
    flowtrail_domain::otlp::prepare(&conversion, 1, None).expect("a converted batch queues");
}

/// The table `observation_filter` queries: verdicts, scores (none, negative, fractional),
/// reasons with and without text, attributes of every JSON type.
const TABLE: &str = r#"[
  {"candidate_id": "B0A", "verdict": "kept", "score": 0.91,
   "reasons": [], "attributes": {"price": 24.99, "brand": "Acme", "prime": true}},
  {"candidate_id": "B0B", "verdict": "rejected", "score": -1.5,
   "reasons": [{"code": "price_out_of_range", "text": "9.99 < 22.50"}],
   "attributes": {"price": 9.99, "tags": ["a", "b"], "dims": {"w": 1}}},
  {"candidate_id": "B0C", "verdict": "selected", "score": null,
   "reasons": [{"code": "best"}], "attributes": {"price": null, "title": "Ünïcödé ✓"}},
  {"candidate_id": "", "verdict": "rejected",
   "reasons": [{"code": "price_out_of_range"}, {"code": "low_rating", "text": ""}],
   "attributes": {}}
]"#;
