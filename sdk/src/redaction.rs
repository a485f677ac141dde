//! Masking values before a flow leaves the process. Rules: redaction runs on the sender's
//! side, never on the caller's thread (except to compare a replayed boundary's input, which
//! the recording holds masked), and before a flow is sent *or* written to the spool; named
//! fields match object keys without case, at any depth of inputs, outputs, recorded calls
//! (boundaries) and candidate attributes, and tag keys; the `mask` closure runs after them on
//! every object member and every tag (as a string member).

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

    fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(members) => self.apply_members(members),
            Value::Array(items) => items.iter_mut().for_each(|item| self.apply(item)),
            _ => {}
        }
    }

    fn apply_members(&self, members: &mut serde_json::Map<String, Value>) {
        for (key, member) in members.iter_mut() {
            if self.fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                *member = Value::String("[redacted]".into());
            } else {
                self.apply(member);
            }
            if let Some(mask) = &self.mask {
                mask(key, member);
            }
        }
    }

    /// Masks one value as a record's inputs are masked (what a replayed boundary's input is
    /// compared as: the recording holds it masked).
    pub fn redact_value(&self, value: &mut Value) {
        if !self.is_empty() {
            self.apply(value);
        }
    }

    /// Masks a whole flow record in place: inputs and outputs of the flow, its steps and
    /// their boundaries (recorded calls: prompts, answers), candidate attributes, and tag
    /// values (a tag whose key is a named field becomes `"[redacted]"`; the mask sees each
    /// tag as a string member).
    pub fn redact(&self, record: &mut FlowRecord) {
        if self.is_empty() {
            return;
        }
        self.apply(&mut record.input);
        self.apply(&mut record.output);
        for step in &mut record.steps {
            self.apply(&mut step.input);
            self.apply(&mut step.output);
            for boundary in &mut step.boundaries {
                self.apply(&mut boundary.input);
                self.apply(&mut boundary.output);
            }
            for observation in &mut step.observations {
                self.apply_members(&mut observation.attributes);
            }
        }
        for (key, value) in record.tags.iter_mut() {
            let mut member = Value::String(std::mem::take(value));
            if self.fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                member = Value::String("[redacted]".into());
            }
            if let Some(mask) = &self.mask {
                mask(key, &mut member);
            }
            *value = match member {
                Value::String(text) => text,
                other => other.to_string(),
            };
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
}
