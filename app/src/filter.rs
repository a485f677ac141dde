//! Filtering of a step's observations in the dashboard: pure, so the page and (later) the Web
//! Worker share it and tests pin it.

use flowtrail_types::{Observation, Verdict};
use serde_json::Value;

/// What the observations table is filtered by. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservationFilter {
    /// Case-insensitive text in the candidate id, reason codes and texts, attribute values.
    pub text: String,
    pub verdict: Option<Verdict>,
}

impl ObservationFilter {
    pub fn matches(&self, observation: &Observation) -> bool {
        if self.verdict.is_some_and(|v| v != observation.verdict) {
            return false;
        }
        let needle = self.text.trim().to_lowercase();
        if needle.is_empty() {
            return true;
        }
        let has = |text: &str| text.to_lowercase().contains(&needle);
        has(&observation.candidate_id)
            || observation
                .reasons
                .iter()
                .any(|r| has(&r.code) || r.text.as_deref().is_some_and(has))
            || observation
                .attributes
                .iter()
                .any(|(key, value)| has(key) || value_has(value, &has))
    }
}

fn value_has(value: &Value, has: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => has(s),
        Value::Number(n) => has(&n.to_string()),
        Value::Bool(b) => has(if *b { "true" } else { "false" }),
        Value::Array(items) => items.iter().any(|v| value_has(v, has)),
        Value::Object(map) => map.values().any(|v| value_has(v, has)),
        Value::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{Attributes, Reason};

    fn case() -> Observation {
        let mut attributes = Attributes::new();
        attributes.insert("category".into(), "Cell Phone Cases".into());
        attributes.insert("price".into(), 9.99.into());
        Observation {
            candidate_id: "B0CASE0001".into(),
            verdict: Verdict::Rejected,
            score: Some(0.12),
            reasons: vec![Reason {
                code: "price_out_of_range".into(),
                text: Some("9.99 is below 0.5x of 45.00".into()),
            }],
            attributes,
        }
    }

    #[test]
    fn text_matches_ids_reasons_and_attributes_case_insensitively() {
        let filter = |text: &str| ObservationFilter {
            text: text.into(),
            verdict: None,
        };
        assert!(filter("").matches(&case()));
        assert!(filter("b0case").matches(&case()));
        assert!(filter("PRICE_OUT").matches(&case()));
        assert!(filter("below 0.5x").matches(&case()));
        assert!(filter("phone").matches(&case()));
        assert!(filter("9.99").matches(&case()));
        assert!(!filter("laptop").matches(&case()));
    }

    #[test]
    fn verdict_narrows() {
        let rejected = ObservationFilter {
            text: String::new(),
            verdict: Some(Verdict::Rejected),
        };
        let kept = ObservationFilter {
            verdict: Some(Verdict::Kept),
            ..rejected.clone()
        };
        assert!(rejected.matches(&case()));
        assert!(!kept.matches(&case()));
    }
}
