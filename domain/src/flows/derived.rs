//! Data derived from a flow's record when it is written, the same on every engine: the text
//! of a step's observations for the search index, the full-text query words, the stored form
//! of boundaries, and a step row's prepared columns.

use flowtrail_types::{Observation, StepRecord};

use crate::payloads::PayloadRef;
use crate::{Error, Result};

/// A step's columns as both SQL engines store them (JSON texts serialised once).
pub(crate) struct StepRow<'a> {
    pub team_id: i64,
    pub flow_id: String,
    pub step: &'a StepRecord,
    pub payload: Option<&'a PayloadRef>,
    pub input: String,
    pub output: String,
    pub reasons: String,
    pub search: Option<String>,
    pub boundaries: Option<String>,
}

impl<'a> StepRow<'a> {
    /// Prepares every step of a write.
    pub(crate) fn of_write(write: &'a super::FlowWrite<'a>) -> Result<Vec<StepRow<'a>>> {
        let flow_id = write.flow.id.hyphenated().to_string();
        write
            .flow
            .steps
            .iter()
            .map(|step| {
                Ok(StepRow {
                    team_id: write.team_id,
                    flow_id: flow_id.clone(),
                    step,
                    payload: write.payloads.get(&step.seq),
                    input: json_text(&step.input)?,
                    output: json_text(&step.output)?,
                    reasons: json_text(&step.effective_reasons())?,
                    search: observation_text(&step.observations),
                    boundaries: boundaries_json(step)?,
                })
            })
            .collect()
    }
}

/// A value as stored JSON text.
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}

/// Text drawn from a step's observations for the full-text index: distinct candidate ids,
/// reason codes and texts, at most [`SEARCH_TEXT_MAX`] bytes.
pub fn observation_text(observations: &[Observation]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    let mut push = |part: &str| {
        if text.len() + part.len() < SEARCH_TEXT_MAX && seen.insert(part.to_owned()) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(part);
        }
    };
    for observation in observations {
        push(&observation.candidate_id);
        for reason in &observation.reasons {
            push(&reason.code);
            if let Some(reason_text) = &reason.text {
                push(reason_text);
            }
        }
    }
    (!text.is_empty()).then_some(text)
}

/// A step's recorded boundaries as stored (`NULL` when it has none).
pub fn boundaries_json(step: &StepRecord) -> Result<Option<String>> {
    if step.boundaries.is_empty() {
        return Ok(None);
    }
    json_text(&step.boundaries).map(Some)
}

/// Cap of the observation text indexed per step.
pub const SEARCH_TEXT_MAX: usize = 16 * 1024;

/// Turns what a user typed into a full-text query: each whitespace-separated word becomes a
/// phrase of its alphanumeric tokens, the last one matched as a prefix; all words must match.
/// Empty when nothing searchable is left.
pub fn search_words(text: &str) -> Vec<Vec<String>> {
    text.split_whitespace()
        .map(|word| {
            word.split(|c: char| !c.is_alphanumeric())
                .filter(|token| !token.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .filter(|tokens| !tokens.is_empty())
        .collect()
}

/// A full-text query in an engine's syntax for what the user typed: each word of
/// [`search_words`] becomes `phrase(tokens)` (the engine quotes it, so no operator can be
/// injected), joined by `and`. `None` when nothing searchable is left.
pub fn search_query(text: &str, phrase: impl Fn(&[String]) -> String, and: &str) -> Option<String> {
    let phrases: Vec<String> = search_words(text).iter().map(|t| phrase(t)).collect();
    (!phrases.is_empty()).then(|| phrases.join(and))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{Reason, Verdict};

    #[test]
    fn search_words_split_on_punctuation_and_drop_operators() {
        assert_eq!(
            search_words("price_out_of_range  B0CASE\"* OR-"),
            vec![
                vec![
                    "price".to_string(),
                    "out".into(),
                    "of".into(),
                    "range".into()
                ],
                vec!["b0case".to_string()],
                vec!["or".to_string()],
            ]
        );
        assert!(search_words(" \"*() ").is_empty());
    }

    #[test]
    fn observation_text_is_distinct_and_capped() {
        let observation = |id: &str| Observation {
            candidate_id: id.into(),
            verdict: Verdict::Rejected,
            score: None,
            reasons: vec![Reason {
                code: "too_far".into(),
                text: Some("x".repeat(100)),
            }],
            attributes: Default::default(),
        };
        let text = observation_text(&[observation("A1"), observation("B2")]).unwrap();
        assert_eq!(text.matches("too_far").count(), 1);
        assert!(text.starts_with("A1 too_far"));
        assert!(text.contains("B2"));
        let many: Vec<_> = (0..2000).map(|i| observation(&format!("C{i}"))).collect();
        assert!(observation_text(&many).unwrap().len() < SEARCH_TEXT_MAX);
        assert_eq!(observation_text(&[]), None);
    }
}
