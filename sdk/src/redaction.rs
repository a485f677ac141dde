//! Masking values before a flow leaves the process. Rules: redaction runs on the sender's
//! side, never on the caller's thread (except to compare a replayed boundary's input, which
//! the recording holds masked), and before a flow is sent *or* written to the spool; named
//! fields match object keys without case, at any depth of inputs, outputs, recorded calls
//! (boundaries) and candidate attributes, and tag keys (`tags`, `attributes` and `reasons`
//! name every tag, attribute and reason text); the `mask` closure runs after them on every
//! value. Names (pipeline, step, boundary, reason code, any key) are never masked.

use std::sync::Arc;

use serde_json::Value;

use crate::FlowRecord;

/// A closure called with each object member's key and value, which it may change.
pub type Mask = Arc<dyn Fn(&str, &mut Value) + Send + Sync>;

/// Masks values before a flow leaves the process: every object key named in `fields`
/// (compared without case, at any depth of inputs, outputs and candidate attributes) has its
/// value replaced by `"[redacted]"`, then `mask`, if set, may change any value it likes.
#[derive(Clone, Default)]
pub struct Redaction {
    /// Object keys whose values are replaced, compared without case.
    pub fields: Vec<String>,
    /// Called on every object member after the named fields are masked.
    pub mask: Option<Mask>,
}

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redaction")
            .field("fields", &self.fields)
            .field("mask", &self.mask.as_ref().map(|_| "closure"))
            .finish()
    }
}

impl Redaction {
    /// Masks the named fields.
    pub fn fields<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Redaction {
            fields: fields.into_iter().map(Into::into).collect(),
            mask: None,
        }
    }

    /// Also calls `mask(key, value)` on every object member (after the named fields).
    pub fn with_mask(mut self, mask: impl Fn(&str, &mut Value) + Send + Sync + 'static) -> Self {
        self.mask = Some(Arc::new(mask));
        self
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.mask.is_none()
    }

    fn named(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.eq_ignore_ascii_case(key))
    }

    /// Masks a free-form value held under `key` (a record's field, e.g. `input`, or an object
    /// member's key): a named key masks it whole; otherwise its members and items are masked,
    /// then the mask sees it.
    fn apply(&self, key: &str, value: &mut Value) {
        if self.named(key) {
            *value = Value::String("[redacted]".into());
        } else {
            match value {
                Value::Object(members) => self.apply_members(members),
                // Items are seen under their array's key.
                Value::Array(items) => items.iter_mut().for_each(|item| self.apply(key, item)),
                _ => {}
            }
        }
        if let Some(mask) = &self.mask {
            mask(key, value);
        }
    }

    fn apply_members(&self, members: &mut serde_json::Map<String, Value>) {
        for (key, member) in members.iter_mut() {
            self.apply(key, member);
        }
    }

    /// Masks a text held under `key` (a tag, a reasoning, an error, a candidate id): as a
    /// string value; a mask that answers something else leaves its JSON text.
    fn apply_text(&self, key: &str, text: &mut String) {
        if self.named(key) {
            *text = "[redacted]".into();
        }
        if let Some(mask) = &self.mask {
            let mut value = Value::String(std::mem::take(text));
            mask(key, &mut value);
            *text = match value {
                Value::String(masked) => masked,
                other => other.to_string(),
            };
        }
    }

    /// Masks one value as a recorded call's input is masked (what a replayed boundary's input
    /// is compared as: the recording holds it masked).
    pub fn redact_value(&self, value: &mut Value) {
        if !self.is_empty() {
            self.apply("input", value);
        }
    }

    /// Masks a whole flow record in place. Every value it carries is seen under its key: the
    /// flow's and each step's `input` and `output`, each recorded call's `input` and `output`
    /// (prompts, answers — a plain string included), every object member under its own key
    /// and every array item under its array's key, each step's `reasoning`, the flow's
    /// `error` (and a failed step's `reasoning`, which is its error), each observation's
    /// `candidate_id`, each reason's `text` and each candidate
    /// attribute, and each tag under its key. A key named in `fields` masks its value whole
    /// (`"[redacted]"`), and so do three container names: `tags` (every tag's value),
    /// `attributes` (every candidate attribute's value) and `reasons` (every reason's text).
    /// The mask then sees every value (after what is inside it); tag values and candidate ids
    /// are text, so it sees them as strings.
    ///
    /// Names are never masked nor shown to the mask — keep secrets out of them: the pipeline,
    /// step and boundary names, reason codes (a reason given as a bare string is a code), tag
    /// keys, attribute keys and object keys.
    pub fn redact(&self, record: &mut FlowRecord) {
        if self.is_empty() {
            return;
        }
        self.apply("input", &mut record.input);
        self.apply("output", &mut record.output);
        if let Some(error) = record.error.as_mut() {
            self.apply_text("error", error);
        }
        for step in &mut record.steps {
            self.apply("input", &mut step.input);
            self.apply("output", &mut step.output);
            if let Some(reasoning) = step.reasoning.as_mut() {
                // A failed step's reasoning is its error (an exception's text, say): named
                // `error` masks it too.
                if step.status == flowtrail_types::FlowStatus::Failed && self.named("error") {
                    *reasoning = "[redacted]".into();
                }
                self.apply_text("reasoning", reasoning);
            }
            for boundary in &mut step.boundaries {
                self.apply("input", &mut boundary.input);
                self.apply("output", &mut boundary.output);
                if let Some(error) = boundary.error.as_mut() {
                    self.apply_text("error", &mut error.message);
                }
            }
            let (all_reasons, all_attributes) = (self.named("reasons"), self.named("attributes"));
            for observation in &mut step.observations {
                self.apply_text("candidate_id", &mut observation.candidate_id);
                for reason in &mut observation.reasons {
                    if let Some(text) = reason.text.as_mut() {
                        if all_reasons {
                            *text = "[redacted]".into();
                        }
                        self.apply_text("text", text);
                    }
                }
                if all_attributes {
                    for value in observation.attributes.values_mut() {
                        *value = Value::String("[redacted]".into());
                    }
                }
                self.apply_members(&mut observation.attributes);
            }
        }
        let all_tags = self.named("tags");
        for (key, value) in record.tags.iter_mut() {
            if all_tags {
                *value = "[redacted]".into();
            }
            self.apply_text(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::{Boundary, StepKind};

    #[test]
    fn boundaries_and_tags_are_masked_too() {
        let mut record = FlowRecord::new(Uuid::nil(), "p", OffsetDateTime::UNIX_EPOCH);
        record.tags.insert("Password".into(), "hunter2".into());
        record.tags.insert("note".into(), "sk-secret".into());
        let mut step = flowtrail_types::StepRecord::new(0, "s", StepKind::Custom);
        step.boundaries.push(Boundary {
            name: "llm".into(),
            input: json!({"api_key": "AKIA", "prompt": "hi"}),
            output: json!({"token": "sk-out"}),
            error: None,
        });
        record.steps.push(step);
        let redaction = Redaction::fields(["password", "API_KEY"]).with_mask(|_, value| {
            if let Value::String(text) = value
                && text.starts_with("sk-")
            {
                *text = "[key]".into();
            }
        });
        redaction.redact(&mut record);
        assert_eq!(record.tags["Password"], "[redacted]");
        assert_eq!(record.tags["note"], "[key]");
        let boundary = &record.steps[0].boundaries[0];
        assert_eq!(
            boundary.input,
            json!({"api_key": "[redacted]", "prompt": "hi"})
        );
        assert_eq!(boundary.output, json!({"token": "[key]"}));
        let mut given = json!({"api_key": "AKIA", "prompt": "hi"});
        redaction.redact_value(&mut given);
        assert_eq!(
            given, boundary.input,
            "a replayed input compares as recorded"
        );
    }

    #[test]
    fn every_value_is_seen_plain_strings_texts_ids_and_array_items_included() {
        let mut record = FlowRecord::new(Uuid::nil(), "p", OffsetDateTime::UNIX_EPOCH);
        record.input = json!("sk-input");
        record.output = json!(["sk-item", {"k": ["sk-deep"]}]);
        record.error = Some("sk-error".into());
        let mut step = flowtrail_types::StepRecord::new(0, "s", StepKind::Custom);
        step.reasoning = Some("sk-reasoning".into());
        step.boundaries.push(Boundary {
            name: "llm".into(),
            input: json!("sk-prompt"),
            output: json!("sk-answer"),
            error: Some(flowtrail_types::BoundaryError {
                kind: "builtins.TimeoutError".into(),
                message: "sk-error-message".into(),
            }),
        });
        step.observations.push(
            crate::Candidate::rejected("sk-id")
                .reason("code", "sk-text")
                .attr("a", "sk-attr")
                .0,
        );
        record.steps.push(step);
        let redaction = Redaction::default().with_mask(|_, value| {
            if let Value::String(text) = value
                && text.starts_with("sk-")
            {
                *text = "[key]".into();
            }
        });
        redaction.redact(&mut record);
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("sk-"), "{text}");
        assert_eq!(record.steps[0].observations[0].reasons[0].code, "code");
        let mut containers = record.clone();
        containers.tags.insert("team".into(), "blue".into());
        containers.steps[0].observations[0] = crate::Candidate::rejected("c")
            .reason("code", "why")
            .attr("price", 3)
            .0;
        Redaction::fields(["tags", "attributes", "reasons"]).redact(&mut containers);
        let observation = &containers.steps[0].observations[0];
        assert_eq!(containers.tags["team"], "[redacted]");
        assert_eq!(observation.attributes["price"], "[redacted]");
        assert_eq!(observation.reasons[0].text.as_deref(), Some("[redacted]"));
        assert_eq!(observation.reasons[0].code, "code", "a code is a name");
        let mut failed = flowtrail_types::StepRecord::new(1, "f", StepKind::Custom);
        failed.status = crate::FlowStatus::Failed;
        failed.reasoning = Some("RuntimeError: sk-exception".into());
        let mut errors = record.clone();
        errors.steps = vec![failed.clone()];
        Redaction::fields(["error"]).redact(&mut errors);
        assert_eq!(errors.steps[0].reasoning.as_deref(), Some("[redacted]"));
        let named = Redaction::fields(["reasoning", "text"]);
        let mut step = flowtrail_types::StepRecord::new(0, "s", StepKind::Custom);
        step.reasoning = Some("why".into());
        record.steps = vec![step];
        named.redact(&mut record);
        assert_eq!(record.steps[0].reasoning.as_deref(), Some("[redacted]"));
    }
}
