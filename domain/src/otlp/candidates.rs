//! Candidates of a span: OpenInference retrieval and reranker documents and Flow Trail's
//! `flowtrail.candidate` span events, as observations with their verdicts, scores and
//! reasons.

use std::collections::{BTreeMap, HashSet};

use flowtrail_types::{Observation, Reason, Verdict};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::{Map, Value};

use super::attributes::{Attributes, number_of, parse_json_text, text_of};

/// OpenInference documents under `prefix` (`retrieval.documents.`) as observations with
/// `verdict`: `document.id` the candidate (else the position), `document.score` the score,
/// content and metadata (parsed when JSON) as attributes.
pub(crate) fn documents(
    attributes: &Attributes,
    prefix: &str,
    verdict: Verdict,
) -> Vec<Observation> {
    attributes
        .indexed(prefix)
        .into_iter()
        .enumerate()
        .map(|(position, document)| document_observation(document, position, verdict))
        .collect()
}

fn document_observation(
    document: BTreeMap<String, Value>,
    position: usize,
    verdict: Verdict,
) -> Observation {
    let mut observation = Observation {
        candidate_id: document
            .get("document.id")
            .map(text_of)
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| format!("#{position}")),
        verdict,
        score: document.get("document.score").and_then(number_of),
        reasons: Vec::new(),
        attributes: Map::new(),
    };
    for (key, value) in document {
        let key = key.trim_start_matches("document.");
        match key {
            "id" | "score" => {}
            "metadata" => {
                observation
                    .attributes
                    .insert(key.into(), parse_json_text(&value));
            }
            _ => {
                observation.attributes.insert(key.into(), value);
            }
        }
    }
    observation
}

/// A reranker's documents: those of `reranker.output_documents` kept (with their rank and
/// score), those only in `reranker.input_documents` rejected (`not_in_top_k`); the exact
/// counts in and out. `None` when the span lists no reranker documents.
pub(crate) fn rerank(attributes: &Attributes) -> Option<(Vec<Observation>, u64, u64)> {
    let input = attributes.indexed("reranker.input_documents.");
    let output = attributes.indexed("reranker.output_documents.");
    if input.is_empty() && output.is_empty() {
        return None;
    }
    let identity = |d: &BTreeMap<String, Value>| {
        d.get("document.id")
            .or_else(|| d.get("document.content"))
            .map(text_of)
    };
    let kept: HashSet<Option<String>> = output.iter().map(identity).collect();
    let top_k = attributes
        .count("reranker.top_k")
        .unwrap_or(output.len() as u64);
    let mut observations = Vec::with_capacity(input.len().max(output.len()));
    for (rank, document) in output.into_iter().enumerate() {
        let mut observation = document_observation(document, rank, Verdict::Kept);
        observation
            .attributes
            .insert("rank".into(), Value::from(rank as u64 + 1));
        observations.push(observation);
    }
    let kept_count = observations.len() as u64;
    for (position, document) in input.into_iter().enumerate() {
        if kept.contains(&identity(&document)) {
            continue;
        }
        let mut observation = document_observation(document, position, Verdict::Rejected);
        observation.reasons.push(Reason {
            code: "not_in_top_k".into(),
            text: Some(format!("ranked below the reranker's top {top_k}")),
        });
        observations.push(observation);
    }
    let total = observations.len() as u64;
    Some((observations, total, kept_count))
}

/// A `flowtrail.candidate` span event as an observation: `candidate_id`, `verdict`
/// (`kept`, `rejected`, `selected`), `score`, `reason.code` and `reason.text` (a string or
/// a list of them, paired by position), `attr.<name>` as attributes.
pub(crate) fn candidate_event(event: &Event, span_id: &[u8]) -> Result<Observation, String> {
    let here = || format!("span {}: a flowtrail.candidate event", hex::encode(span_id));
    let attributes = Attributes::of(&event.attributes).map_err(|m| format!("{}: {m}", here()))?;
    let candidate_id = attributes
        .text("candidate_id")
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| format!("{} has no candidate_id", here()))?;
    let verdict = match attributes.text("verdict") {
        None => Verdict::Kept,
        Some(v) => Verdict::parse(&v.trim().to_ascii_lowercase()).ok_or_else(|| {
            format!(
                "{} has verdict {v:?}; use kept, rejected or selected",
                here()
            )
        })?,
    };
    let list = |key: &str| -> Vec<String> {
        match attributes.get(key) {
            Some(Value::Array(items)) => items.iter().map(text_of).collect(),
            Some(value) => vec![text_of(value)],
            None => Vec::new(),
        }
    };
    let texts = list("reason.text");
    let reasons = list("reason.code")
        .into_iter()
        .enumerate()
        .map(|(i, code)| Reason {
            code,
            text: texts.get(i).cloned(),
        })
        .collect();
    Ok(Observation {
        candidate_id,
        verdict,
        score: attributes.number("score"),
        reasons,
        attributes: attributes
            .with_prefix("attr.")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    })
}
