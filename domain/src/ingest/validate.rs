//! Ingest validation: everything about a flow record that its types cannot say — lengths,
//! counts, uniqueness, consistency. Each bound is named in the error that enforces it
//! (422 `validation_failed` with the field's path). Add a new ingest rule here.

use std::collections::HashSet;

use flowtrail_types::FlowRecord;

use crate::{Error, Result};

/// Bounds on what one flow may carry. Each is named in the error that enforces it.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_steps: usize,
    pub max_observations_per_step: usize,
    /// Names, pipeline, candidate ids, reason codes, tag keys.
    pub max_name_len: usize,
    /// Reasoning, reason texts, tag values, error.
    pub max_text_len: usize,
    pub max_tags: usize,
    pub max_reasons_per_observation: usize,
}

impl Default for Limits {
    fn default() -> Self {
        use flowtrail_types::limits;
        Limits {
            max_steps: limits::MAX_STEPS,
            max_observations_per_step: limits::MAX_OBSERVATIONS_PER_STEP,
            max_name_len: limits::MAX_NAME_BYTES,
            max_text_len: limits::MAX_TEXT_BYTES,
            max_tags: limits::MAX_TAGS,
            max_reasons_per_observation: limits::MAX_REASONS_PER_OBSERVATION,
        }
    }
}

/// Largest candidate count or reason count (2^53: exact in every JSON reader and in SQL).
pub const MAX_COUNT: u64 = flowtrail_types::limits::MAX_COUNT;

/// Checks everything serde cannot: lengths, counts, uniqueness, consistency.
pub fn validate(flow: &FlowRecord, limits: &Limits) -> Result<()> {
    let name = |field: &str, value: &str| -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::invalid(field, format!("{field} must not be empty")));
        }
        if value.len() > limits.max_name_len {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} is {} bytes; the limit is {}",
                    value.len(),
                    limits.max_name_len
                ),
            ));
        }
        Ok(())
    };
    let text = |field: &str, value: &str| -> Result<()> {
        if value.len() > limits.max_text_len {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} is {} bytes; the limit is {}",
                    value.len(),
                    limits.max_text_len
                ),
            ));
        }
        Ok(())
    };
    if flow.id.is_nil() {
        return Err(Error::invalid(
            "id",
            "id must be a non-nil UUID (UUIDv7 recommended)",
        ));
    }
    if flow.version == 0 {
        return Err(Error::invalid("version", "version starts at 1"));
    }
    name("pipeline", &flow.pipeline)?;
    if let Some(ended) = flow.ended_at
        && ended < flow.started_at
    {
        return Err(Error::invalid("ended_at", "ended_at is before started_at"));
    }
    if flow.tags.len() > limits.max_tags {
        return Err(Error::invalid(
            "tags",
            format!("{} tags; the limit is {}", flow.tags.len(), limits.max_tags),
        ));
    }
    for (key, value) in &flow.tags {
        name(&format!("tags.{key}"), key)?;
        text(&format!("tags.{key}"), value)?;
    }
    if let Some(error) = &flow.error {
        text("error", error)?;
    }
    if flow.steps.len() > limits.max_steps {
        return Err(Error::invalid(
            "steps",
            format!(
                "{} steps; the limit is {}",
                flow.steps.len(),
                limits.max_steps
            ),
        ));
    }
    let mut seqs = HashSet::with_capacity(flow.steps.len());
    let mut spans = HashSet::new();
    for (i, step) in flow.steps.iter().enumerate() {
        let at = |field: &str| format!("steps[{i}].{field}");
        if !seqs.insert(step.seq) {
            return Err(Error::invalid(
                at("seq"),
                format!("seq {} appears twice in this flow", step.seq),
            ));
        }
        name(&at("name"), &step.name)?;
        if step.parent_seq == Some(step.seq) {
            return Err(Error::invalid(
                at("parent_seq"),
                "a step cannot be its own parent",
            ));
        }
        for (field, id) in [
            ("span_id", &step.span_id),
            ("parent_span_id", &step.parent_span_id),
        ] {
            if let Some(id) = id
                && !is_span_id(id)
            {
                return Err(Error::invalid(
                    at(field),
                    format!(
                        "{field} must be 16 lowercase hex digits, not all zero (W3C Trace Context)"
                    ),
                ));
            }
        }
        if let Some(id) = &step.span_id
            && !spans.insert(id.as_str())
        {
            return Err(Error::invalid(
                at("span_id"),
                format!("span_id {id} appears twice in this flow"),
            ));
        }
        if let Some(reasoning) = &step.reasoning {
            text(&at("reasoning"), reasoning)?;
        }
        if let (Some(start), Some(end)) = (step.started_at, step.ended_at)
            && end < start
        {
            return Err(Error::invalid(
                at("ended_at"),
                "ended_at is before started_at",
            ));
        }
        for (field, count) in [
            ("candidates_in", step.candidates_in),
            ("candidates_out", step.candidates_out),
        ] {
            if count.is_some_and(|n| n > MAX_COUNT) {
                return Err(Error::invalid(
                    at(field),
                    format!("{field} is above {MAX_COUNT}"),
                ));
            }
        }
        if let Some((code, _)) = step.reasons.iter().find(|(_, n)| **n > MAX_COUNT) {
            return Err(Error::invalid(
                format!("{}.{code}", at("reasons")),
                format!("reason counts are at most {MAX_COUNT}"),
            ));
        }
        if let (Some(input), Some(output)) = (
            step.effective_candidates_in(),
            step.effective_candidates_out(),
        ) && output > input
            && step.kind.chooses_among_input()
        {
            return Err(Error::invalid(
                at("candidates_out"),
                format!(
                    "candidates_out ({output}) is larger than candidates_in ({input}): a {} \
                     step chooses among its candidates (only generate, retrieve, transform \
                     and custom steps may create some)",
                    step.kind
                ),
            ));
        }
        for code in step.reasons.keys() {
            name(&format!("{}.{code}", at("reasons")), code)?;
        }
        if step.observations.len() > limits.max_observations_per_step {
            return Err(Error::invalid(
                at("observations"),
                format!(
                    "{} observations; the limit is {} per step",
                    step.observations.len(),
                    limits.max_observations_per_step
                ),
            ));
        }
        if step.capture == flowtrail_types::Capture::CountsOnly && !step.observations.is_empty() {
            return Err(Error::invalid(
                at("observations"),
                "a counts_only step carries no observations",
            ));
        }
        for (j, observation) in step.observations.iter().enumerate() {
            let at = |field: &str| format!("steps[{i}].observations[{j}].{field}");
            name(&at("candidate_id"), &observation.candidate_id)?;
            // A score is a double: an integer of 2^53 or more may not come back as sent
            // (2^53 + 1 reads as 2^53), and no score needs to be that large.
            if observation
                .score
                .is_some_and(|s| s.abs() >= MAX_COUNT as f64)
            {
                return Err(Error::invalid(
                    at("score"),
                    format!("score is a number below {MAX_COUNT} in magnitude"),
                ));
            }
            if observation.reasons.len() > limits.max_reasons_per_observation {
                return Err(Error::invalid(
                    at("reasons"),
                    format!(
                        "{} reasons; the limit is {}",
                        observation.reasons.len(),
                        limits.max_reasons_per_observation
                    ),
                ));
            }
            for (k, reason) in observation.reasons.iter().enumerate() {
                name(&at(&format!("reasons[{k}].code")), &reason.code)?;
                if let Some(reason_text) = &reason.text {
                    text(&at(&format!("reasons[{k}].text")), reason_text)?;
                }
            }
        }
    }
    Ok(())
}

/// Whether `id` is an OpenTelemetry span id as text: 16 lowercase hex digits, not all zero
/// (W3C Trace Context, `parent-id`).
pub fn is_span_id(id: &str) -> bool {
    id.len() == 16
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{StepKind, StepRecord};

    fn flow_with(kind: StepKind, candidates_in: u64, candidates_out: u64) -> FlowRecord {
        let mut flow: FlowRecord = serde_json::from_value(serde_json::json!({
            "id": "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11",
            "version": 1,
            "pipeline": "p",
            "status": "succeeded",
            "started_at": "2026-11-21T10:00:00Z",
            "steps": []
        }))
        .unwrap();
        let mut step = StepRecord::new(0, "step", kind);
        step.candidates_in = Some(candidates_in);
        step.candidates_out = Some(candidates_out);
        flow.steps.push(step);
        flow
    }

    #[test]
    fn steps_that_create_candidates_are_valid_and_choosing_steps_cannot_grow() {
        let limits = Limits::default();
        for kind in StepKind::ALL.iter().copied() {
            let grown = validate(&flow_with(kind, 3, 5_000), &limits);
            if kind.chooses_among_input() {
                let message = grown.unwrap_err().to_string();
                assert!(
                    message.contains("candidates_out (5000)"),
                    "{kind}: {message}"
                );
            } else {
                assert!(grown.is_ok(), "a {kind} step may create candidates");
            }
            assert!(
                validate(&flow_with(kind, 5_000, 3), &limits).is_ok(),
                "{kind}"
            );
        }
        assert!(validate(&flow_with(StepKind::Generate, 0, 3), &limits).is_ok());
    }
}
