//! Fitting a flow record to the server's ingest limits ([`flowtrail_types::limits`]) before it
//! is sent, so that one value out of bounds (a 300-byte candidate id, a 1 MB error text, a
//! score of 1e20, a value nested 100 deep) costs that value, not the whole flow: the server
//! would refuse the record with 422 and nothing of it would be stored.
//!
//! Rules: a name that is empty becomes `"(empty)"`, one that is too long is cut at a character
//! boundary and ends with `…`; a text that is too long is cut and ends with
//! `… [cut: N bytes]`; what is beyond a count limit (steps, tags, observations, reasons of an
//! observation) is left out — observations only after the step's counts and reason histogram
//! are made explicit, so they stay exact, and the step then says it holds a sample; a score out
//! of range moves to the observation's attributes as text (`score_out_of_range`); a step's
//! counts that contradict each other are removed; a container nested deeper than the record
//! may hold is replaced by `"<too deep>"`; an end before the start becomes the start. Every
//! change is described in a [`Fitted`] note the client reports.

use std::collections::BTreeMap;

/// A score kept as text: NaN and the infinities spelt as ECMAScript (and Python's `json`)
/// spell them — `NaN`, `Infinity`, `-Infinity` — not Rust's `inf`; other numbers as Rust
/// prints them (shortest round-trip form).
pub(crate) fn score_text(score: f64) -> String {
    if score.is_nan() {
        "NaN".into()
    } else if score.is_infinite() {
        if score > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        score.to_string()
    }
}

use flowtrail_types::limits::{
    MAX_COUNT, MAX_DEPTH, MAX_NAME_BYTES, MAX_OBSERVATIONS_PER_STEP, MAX_REASONS_PER_OBSERVATION,
    MAX_STEPS, MAX_TAGS, MAX_TEXT_BYTES,
};
use flowtrail_types::{Capture, FlowRecord, StepRecord};
use serde_json::Value;

/// What [`fit`] changed in one record: the first few changes in words, and how many in all.
#[derive(Debug, Default)]
pub(crate) struct Fitted {
    /// Up to [`Fitted::SHOWN`] descriptions (`steps[2].observations[7].candidate_id: 300
    /// bytes, cut to 256`).
    pub(crate) shown: Vec<String>,
    /// Every change, shown or not.
    pub(crate) changes: usize,
}

impl Fitted {
    const SHOWN: usize = 5;

    fn note(&mut self, path: impl FnOnce() -> String, what: impl FnOnce() -> String) {
        if self.shown.len() < Self::SHOWN {
            self.shown.push(format!("{}: {}", path(), what()));
        }
        self.changes += 1;
    }

    /// Whether nothing was changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.changes == 0
    }
}

impl std::fmt::Display for Fitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown.join("; "))?;
        if self.changes > self.shown.len() {
            write!(f, "; and {} more", self.changes - self.shown.len())?;
        }
        Ok(())
    }
}

/// Changes `record` as little as possible so that the server's ingest checks accept it (see
/// the module's rules); what changed is in the answer.
pub(crate) fn fit(record: &mut FlowRecord) -> Fitted {
    let mut fitted = Fitted::default();
    let f = &mut fitted;
    fit_name(&mut record.pipeline, f, || "pipeline".into());
    if let Some(ended) = record.ended_at
        && ended < record.started_at
    {
        record.ended_at = Some(record.started_at);
        f.note(
            || "ended_at".into(),
            || "before started_at: set to it".into(),
        );
    }
    fit_tags(&mut record.tags, f);
    if let Some(error) = record.error.as_mut() {
        fit_text(error, f, || "error".into());
    }
    // The record's `{` is level 1: a member's value starts at depth 1.
    fit_depth(&mut record.input, MAX_DEPTH - 1, f, &mut || "input".into());
    fit_depth(&mut record.output, MAX_DEPTH - 1, f, &mut || {
        "output".into()
    });
    if record.steps.len() > MAX_STEPS {
        let left_out = record.steps.len() - MAX_STEPS;
        record.steps.truncate(MAX_STEPS);
        f.note(
            || "steps".into(),
            || format!("{left_out} steps beyond the first {MAX_STEPS} left out"),
        );
    }
    for (i, step) in record.steps.iter_mut().enumerate() {
        fit_step(step, i, f);
    }
    fitted
}

fn fit_step(step: &mut StepRecord, i: usize, f: &mut Fitted) {
    let at = |field: &str| format!("steps[{i}].{field}");
    fit_name(&mut step.name, f, || at("name"));
    if let Some(reasoning) = step.reasoning.as_mut() {
        fit_text(reasoning, f, || at("reasoning"));
    }
    if let (Some(start), Some(end)) = (step.started_at, step.ended_at)
        && end < start
    {
        step.ended_at = Some(start);
        f.note(|| at("ended_at"), || "before started_at: set to it".into());
    }
    // root → steps → step: a step member's value starts at depth 3.
    fit_depth(&mut step.input, MAX_DEPTH - 3, f, &mut || at("input"));
    fit_depth(&mut step.output, MAX_DEPTH - 3, f, &mut || at("output"));
    for (b, boundary) in step.boundaries.iter_mut().enumerate() {
        // … → boundaries → boundary: depth 5.
        let path = |field: &str| at(&format!("boundaries[{b}].{field}"));
        fit_depth(&mut boundary.input, MAX_DEPTH - 5, f, &mut || path("input"));
        fit_depth(&mut boundary.output, MAX_DEPTH - 5, f, &mut || {
            path("output")
        });
        if let Some(error) = boundary.error.as_mut() {
            fit_text(&mut error.kind, f, || path("error.type"));
            fit_text(&mut error.message, f, || path("error.message"));
        }
    }
    // Counts first: leaving observations out below must not change what they imply.
    if step.observations.len() > MAX_OBSERVATIONS_PER_STEP {
        step.candidates_in = step.effective_candidates_in();
        step.candidates_out = step.effective_candidates_out();
        step.reasons = step.effective_reasons();
        let left_out = step.observations.len() - MAX_OBSERVATIONS_PER_STEP;
        step.observations.truncate(MAX_OBSERVATIONS_PER_STEP);
        if step.capture == Capture::Full {
            step.capture = Capture::Sampled;
        }
        f.note(
            || at("observations"),
            || {
                format!(
                    "{left_out} observations beyond the first {MAX_OBSERVATIONS_PER_STEP} \
                     left out (counts kept exact)"
                )
            },
        );
    }
    if step.capture == Capture::CountsOnly && !step.observations.is_empty() {
        step.observations.clear();
        f.note(
            || at("observations"),
            || "a counts_only step carries none: left out".into(),
        );
    }
    for (field, count) in [
        ("candidates_in", &mut step.candidates_in),
        ("candidates_out", &mut step.candidates_out),
    ] {
        if count.is_some_and(|n| n > MAX_COUNT) {
            *count = Some(MAX_COUNT);
            f.note(|| at(field), || format!("above {MAX_COUNT}: set to it"));
        }
    }
    if let (Some(input), Some(output)) = (
        step.effective_candidates_in(),
        step.effective_candidates_out(),
    ) && output > input
        && step.kind.chooses_among_input()
    {
        step.candidates_in = None;
        step.candidates_out = None;
        f.note(
            || at("candidates_out"),
            || {
                format!(
                    "{output} is more than candidates_in ({input}) in a {} step, which \
                     chooses among its candidates: both counts left out",
                    step.kind
                )
            },
        );
    }
    fit_histogram(&mut step.reasons, f, &|code| at(&format!("reasons.{code}")));
    for (j, observation) in step.observations.iter_mut().enumerate() {
        let at = |field: &str| at(&format!("observations[{j}].{field}"));
        fit_name(&mut observation.candidate_id, f, || at("candidate_id"));
        if let Some(score) = observation.score
            && (!score.is_finite() || score.abs() >= MAX_COUNT as f64)
        {
            observation.score = None;
            observation.attributes.insert(
                "score_out_of_range".into(),
                Value::String(score_text(score)),
            );
            f.note(
                || at("score"),
                || format!("{score} is not below {MAX_COUNT} in magnitude: moved to attributes"),
            );
        }
        if observation.reasons.len() > MAX_REASONS_PER_OBSERVATION {
            let left_out = observation.reasons.len() - MAX_REASONS_PER_OBSERVATION;
            observation.reasons.truncate(MAX_REASONS_PER_OBSERVATION);
            f.note(
                || at("reasons"),
                || {
                    format!(
                        "{left_out} reasons beyond the first {MAX_REASONS_PER_OBSERVATION} left out"
                    )
                },
            );
        }
        for (k, reason) in observation.reasons.iter_mut().enumerate() {
            fit_name(&mut reason.code, f, || at(&format!("reasons[{k}].code")));
            if let Some(text) = reason.text.as_mut() {
                fit_text(text, f, || at(&format!("reasons[{k}].text")));
            }
        }
        // … → observations → observation → attributes: a member's value starts at depth 6.
        for (key, value) in observation.attributes.iter_mut() {
            fit_depth(value, MAX_DEPTH - 6, f, &mut || {
                at(&format!("attributes.{key}"))
            });
        }
    }
}

/// Tags: at most [`MAX_TAGS`] (the first by key), keys as names, values as texts.
fn fit_tags(tags: &mut BTreeMap<String, String>, f: &mut Fitted) {
    if tags.len() > MAX_TAGS {
        let left_out = tags.len() - MAX_TAGS;
        while tags.len() > MAX_TAGS {
            tags.pop_last();
        }
        f.note(
            || "tags".into(),
            || format!("{left_out} tags beyond the first {MAX_TAGS} by key left out"),
        );
    }
    if tags.keys().any(|key| !name_fits(key)) {
        let old = std::mem::take(tags);
        for (mut key, value) in old {
            fit_name(&mut key, f, || "tags".into());
            tags.entry(key).or_insert(value);
        }
    }
    for (key, value) in tags.iter_mut() {
        fit_text(value, f, || format!("tags.{key}"));
    }
}

/// A reason histogram whose codes are names; codes that become equal add up (at most
/// [`MAX_COUNT`]).
fn fit_histogram(reasons: &mut BTreeMap<String, u64>, f: &mut Fitted, at: &dyn Fn(&str) -> String) {
    if reasons
        .iter()
        .all(|(code, n)| name_fits(code) && *n <= MAX_COUNT)
    {
        return;
    }
    let old = std::mem::take(reasons);
    for (mut code, n) in old {
        let path = at(&code);
        fit_name(&mut code, f, || path);
        let count = reasons.entry(code).or_insert(0);
        *count = count.saturating_add(n).min(MAX_COUNT);
    }
    if reasons.values().any(|n| *n == MAX_COUNT) {
        f.note(|| at("*"), || format!("counts are at most {MAX_COUNT}"));
    }
}

fn name_fits(name: &str) -> bool {
    !name.trim().is_empty() && name.len() <= MAX_NAME_BYTES
}

/// A name: not empty (nor only white space), at most [`MAX_NAME_BYTES`] bytes.
fn fit_name(name: &mut String, f: &mut Fitted, path: impl FnOnce() -> String) {
    if name.trim().is_empty() {
        f.note(path, || {
            format!("{name:?} is empty: recorded as \"(empty)\"")
        });
        *name = "(empty)".into();
    } else if name.len() > MAX_NAME_BYTES {
        let bytes = name.len();
        cut(name, MAX_NAME_BYTES - '…'.len_utf8());
        name.push('…');
        f.note(path, || format!("{bytes} bytes, cut to {MAX_NAME_BYTES}"));
    }
}

/// A text of at most [`MAX_TEXT_BYTES`] bytes.
fn fit_text(text: &mut String, f: &mut Fitted, path: impl FnOnce() -> String) {
    if text.len() > MAX_TEXT_BYTES {
        let bytes = text.len();
        let marker = format!("… [cut: {bytes} bytes]");
        cut(text, MAX_TEXT_BYTES - marker.len());
        text.push_str(&marker);
        f.note(path, || format!("{bytes} bytes, cut to {MAX_TEXT_BYTES}"));
    }
}

/// Cuts `text` to at most `bytes` bytes, at a character boundary.
fn cut(text: &mut String, bytes: usize) {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Replaces every array or object that would sit deeper than `room` more levels with
/// `"<too deep>"` (a scalar takes no level; an array or object takes one).
fn fit_depth(value: &mut Value, room: usize, f: &mut Fitted, path: &mut dyn FnMut() -> String) {
    let is_container = matches!(value, Value::Array(_) | Value::Object(_));
    if !is_container {
        return;
    }
    if room == 0 {
        *value = Value::String("<too deep>".into());
        f.note(path, || {
            format!("nested deeper than a record may hold ({MAX_DEPTH} levels): cut")
        });
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                fit_depth(item, room - 1, f, path);
            }
        }
        Value::Object(members) => {
            for member in members.values_mut() {
                fit_depth(member, room - 1, f, path);
            }
        }
        _ => {}
    }
}

/// Observations a step keeps in a record the server found too large.
const SHRUNK_OBSERVATIONS: usize = 1_000;
/// Largest free-form value (as JSON) kept in a record the server found too large.
const SHRUNK_VALUE_BYTES: usize = 16 * 1024;

/// Makes a record the server refused as too large (413 `payload_too_large`) small enough in
/// most cases: each step keeps its first [`SHRUNK_OBSERVATIONS`] observations (its counts and
/// reason histogram made explicit first, so they stay exact), and every free-form value
/// (inputs, outputs, recorded calls, an observation's attributes) larger than
/// [`SHRUNK_VALUE_BYTES`] as JSON becomes `"<left out: N bytes>"`.
pub(crate) fn shrink(record: &mut FlowRecord) -> Fitted {
    let mut fitted = Fitted::default();
    let f = &mut fitted;
    shrink_value(&mut record.input, f, || "input".into());
    shrink_value(&mut record.output, f, || "output".into());
    for (i, step) in record.steps.iter_mut().enumerate() {
        let at = |field: &str| format!("steps[{i}].{field}");
        shrink_value(&mut step.input, f, || at("input"));
        shrink_value(&mut step.output, f, || at("output"));
        for (b, boundary) in step.boundaries.iter_mut().enumerate() {
            shrink_value(&mut boundary.input, f, || {
                at(&format!("boundaries[{b}].input"))
            });
            shrink_value(&mut boundary.output, f, || {
                at(&format!("boundaries[{b}].output"))
            });
        }
        if step.observations.len() > SHRUNK_OBSERVATIONS {
            step.candidates_in = step.effective_candidates_in();
            step.candidates_out = step.effective_candidates_out();
            step.reasons = step.effective_reasons();
            let left_out = step.observations.len() - SHRUNK_OBSERVATIONS;
            step.observations.truncate(SHRUNK_OBSERVATIONS);
            if step.capture == Capture::Full {
                step.capture = Capture::Sampled;
            }
            f.note(
                || at("observations"),
                || format!("{left_out} observations left out (counts kept exact)"),
            );
        }
        for (j, observation) in step.observations.iter_mut().enumerate() {
            let size = json_size(&observation.attributes);
            if size > SHRUNK_VALUE_BYTES {
                observation.attributes.clear();
                observation
                    .attributes
                    .insert("left_out".into(), Value::String(format!("{size} bytes")));
                f.note(
                    || at(&format!("observations[{j}].attributes")),
                    || format!("{size} bytes left out"),
                );
            }
        }
    }
    fitted
}

fn shrink_value(value: &mut Value, f: &mut Fitted, path: impl FnOnce() -> String) {
    let size = json_size(value);
    if size > SHRUNK_VALUE_BYTES {
        *value = Value::String(format!("<left out: {size} bytes>"));
        f.note(path, || format!("{size} bytes left out"));
    }
}

/// Bytes of `value` as JSON.
fn json_size(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::{Candidate, StepKind};

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |inner, _| json!([inner]))
    }

    /// The depth of a JSON text, as the server measures it.
    fn depth_of(text: &str) -> usize {
        let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
        for c in text.chars() {
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (true, false, '"') => in_string = false,
                (true, ..) => {}
                (false, _, '"') => in_string = true,
                (false, _, '[' | '{') => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                (false, _, ']' | '}') => depth -= 1,
                _ => {}
            }
        }
        deepest
    }

    #[test]
    fn a_record_within_limits_is_left_as_it_is() {
        let mut record = FlowRecord::new(Uuid::now_v7(), "p", OffsetDateTime::now_utc());
        record.input = nested(MAX_DEPTH - 1);
        let mut step = StepRecord::new(0, "s", StepKind::Filter);
        step.observations.push(
            Candidate::rejected("a".repeat(MAX_NAME_BYTES))
                .score(-(MAX_COUNT as f64) + 1.0)
                .reason("r", "t".repeat(MAX_TEXT_BYTES))
                .0,
        );
        record.steps.push(step);
        let before = record.clone();
        assert!(fit(&mut record).is_empty());
        assert_eq!(record, before);
        assert_eq!(
            depth_of(&serde_json::to_string(&record).unwrap()),
            MAX_DEPTH
        );
    }

    #[test]
    fn out_of_bound_values_are_cut_and_counts_stay_exact() {
        let mut record = FlowRecord::new(Uuid::now_v7(), " ", OffsetDateTime::now_utc());
        record.error = Some("é".repeat(MAX_TEXT_BYTES));
        record.tags.insert("".into(), "v".into());
        record.input = nested(200);
        let mut step = StepRecord::new(0, "x".repeat(300), StepKind::Filter);
        for i in 0..MAX_OBSERVATIONS_PER_STEP + 10 {
            let candidate = if i % 2 == 0 {
                Candidate::kept(format!("c{i}"))
            } else {
                Candidate::rejected(format!("c{i}")).reason_code("price")
            };
            step.observations.push(candidate.0);
        }
        step.observations[0].candidate_id = "é".repeat(200);
        step.observations[1].score = Some(1e20);
        step.observations[2]
            .attributes
            .insert("deep".into(), nested(100));
        record.steps.push(step);
        let fitted = fit(&mut record);
        assert_eq!(record.pipeline, "(empty)");
        let error = record.error.as_deref().unwrap();
        assert!(
            error.len() <= MAX_TEXT_BYTES && error.ends_with("bytes]"),
            "{}",
            error.len()
        );
        assert_eq!(record.tags["(empty)"], "v");
        let step = &record.steps[0];
        assert!(step.name.len() <= MAX_NAME_BYTES && step.name.ends_with('…'));
        assert_eq!(step.observations.len(), MAX_OBSERVATIONS_PER_STEP);
        assert_eq!(step.capture, Capture::Sampled);
        let total = (MAX_OBSERVATIONS_PER_STEP + 10) as u64;
        assert_eq!(step.candidates_in, Some(total));
        assert_eq!(step.candidates_out, Some(total / 2));
        assert_eq!(step.reasons["price"], total / 2);
        let id = &step.observations[0].candidate_id;
        assert!(id.len() <= MAX_NAME_BYTES && id.ends_with('…'));
        assert_eq!(step.observations[1].score, None);
        assert_eq!(
            step.observations[1].attributes["score_out_of_range"],
            "100000000000000000000"
        );
        let text = serde_json::to_string(&record).unwrap();
        assert!(depth_of(&text) <= MAX_DEPTH, "{}", depth_of(&text));
        assert!(text.contains("<too deep>"));
        assert!(fitted.changes >= 8, "{fitted}");
        assert!(fitted.to_string().contains("pipeline"), "{fitted}");
        assert!(fit(&mut record).is_empty(), "fitting is idempotent");
        let size = serde_json::to_vec(&record).unwrap().len();
        let shrunk = shrink(&mut record);
        assert_eq!(record.steps[0].observations.len(), SHRUNK_OBSERVATIONS);
        assert_eq!(record.steps[0].candidates_in, Some(total), "{shrunk}");
        assert!(serde_json::to_vec(&record).unwrap().len() < size / 20);
    }

    #[test]
    fn scores_out_of_range_keep_json_names_for_infinities_and_nan() {
        let mut record = FlowRecord::new(Uuid::now_v7(), "p", OffsetDateTime::now_utc());
        let mut step = StepRecord::new(0, "s", StepKind::Rank);
        for score in [f64::NEG_INFINITY, f64::INFINITY, f64::NAN] {
            step.observations
                .push(Candidate::rejected("c").score(score).0);
        }
        record.steps.push(step);
        fit(&mut record);
        let moved: Vec<&Value> = record.steps[0]
            .observations
            .iter()
            .map(|o| &o.attributes["score_out_of_range"])
            .collect();
        assert_eq!(
            moved,
            [&json!("-Infinity"), &json!("Infinity"), &json!("NaN")]
        );
    }

    #[test]
    fn contradicting_counts_and_clock_steps_back_are_repaired() {
        let now = OffsetDateTime::now_utc();
        let mut record = FlowRecord::new(Uuid::now_v7(), "p", now);
        record.ended_at = Some(now - time::Duration::seconds(3));
        let mut step = StepRecord::new(0, "s", StepKind::Filter);
        step.candidates_in = Some(3);
        step.candidates_out = Some(5_000);
        step.reasons.insert("x".repeat(300), 2);
        step.reasons.insert("".into(), u64::MAX);
        record.steps.push(step);
        let fitted = fit(&mut record);
        assert_eq!(record.ended_at, Some(now));
        let step = &record.steps[0];
        assert_eq!((step.candidates_in, step.candidates_out), (None, None));
        assert_eq!(step.reasons["(empty)"], MAX_COUNT);
        assert!(step.reasons.keys().all(|code| code.len() <= MAX_NAME_BYTES));
        assert!(fitted.to_string().contains("candidates_out"), "{fitted}");
    }
}
