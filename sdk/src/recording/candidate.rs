//! A candidate's fate in a step, built fluently. Rules: a candidate carries one verdict, its
//! reasons (a stable `code` for machines, a `text` for people), an optional finite score and
//! free attributes; whether the step keeps it is decided by its
//! [`CapturePolicy`](crate::CapturePolicy), not here.

use serde::Serialize;

use super::to_value;
use crate::{Observation, Reason, Verdict};

/// A candidate's fate, built fluently: `Candidate::rejected("B0…").score(0.1).reason(…)`.
#[derive(Debug, Clone)]
pub struct Candidate(pub(crate) Observation);

impl Candidate {
    /// A candidate with this verdict.
    pub fn new(id: impl Into<String>, verdict: Verdict) -> Self {
        Candidate(Observation {
            candidate_id: id.into(),
            verdict,
            score: None,
            reasons: Vec::new(),
            attributes: Default::default(),
        })
    }

    /// A candidate the step passed on.
    pub fn kept(id: impl Into<String>) -> Self {
        Self::new(id, Verdict::Kept)
    }

    /// A candidate the step eliminated; say why with [`Candidate::reason`].
    pub fn rejected(id: impl Into<String>) -> Self {
        Self::new(id, Verdict::Rejected)
    }

    /// The candidate the step (usually the last) chose.
    pub fn selected(id: impl Into<String>) -> Self {
        Self::new(id, Verdict::Selected)
    }

    /// The step's score for it. NaN and infinities (JSON has neither) are kept as text in
    /// the attribute `score_out_of_range` instead.
    pub fn score(mut self, score: f64) -> Self {
        if score.is_finite() {
            self.0.score = Some(score);
        } else {
            // JSON has no NaN or infinity: kept as text rather than lost.
            self.0.score = None;
            self.0.attributes.insert(
                "score_out_of_range".into(),
                crate::limits::score_text(score).into(),
            );
        }
        self
    }

    /// A reason: a stable `code` for machines, a `text` for people.
    pub fn reason(mut self, code: impl Into<String>, text: impl Into<String>) -> Self {
        self.0.reasons.push(Reason {
            code: code.into(),
            text: Some(text.into()),
        });
        self
    }

    /// A reason given by its `code` alone (no text for people).
    pub fn reason_code(mut self, code: impl Into<String>) -> Self {
        self.0.reasons.push(Reason {
            code: code.into(),
            text: None,
        });
        self
    }

    /// Free attributes, already JSON (what a binding converted).
    pub fn attributes(mut self, attributes: serde_json::Map<String, serde_json::Value>) -> Self {
        self.0.attributes.extend(attributes);
        self
    }

    /// A free attribute (`price`, `rating`, `category`…).
    pub fn attr(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.0.attributes.insert(key.into(), to_value(value));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Candidate;

    #[test]
    fn non_finite_scores_are_not_recorded() {
        assert_eq!(Candidate::kept("a").score(f64::NAN).0.score, None);
        assert_eq!(Candidate::kept("a").score(0.5).0.score, Some(0.5));
    }
}
