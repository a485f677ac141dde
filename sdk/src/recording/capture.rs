//! What a step keeps of its candidates, and the exact counts it keeps whatever it samples.
//! Rules: every observed candidate counts towards `candidates_in`, `candidates_out` and the
//! reason histogram (a rejected candidate once per reason code); sampling keeps every kept or
//! selected candidate and the first N rejected ones per *primary* reason code; a step says
//! whether anything was left out (`Capture::Sampled`) or not (`Capture::Full`); no policy
//! keeps more than the server stores of one step (100,000 observations).

use std::collections::{BTreeMap, HashMap};

use flowtrail_types::StepRecord;
use flowtrail_types::limits::MAX_OBSERVATIONS_PER_STEP;

use crate::{Capture, Observation, Verdict};

/// What a step keeps of its candidates. Whatever is kept, `candidates_in`,
/// `candidates_out` and the reason histogram are counted from every candidate observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturePolicy {
    /// Every candidate.
    Full,
    /// Every kept or selected candidate, and the first `rejected_per_reason` rejected
    /// candidates of each reason code (those without a reason count as one code).
    Sampled {
        /// Rejected candidates kept per reason code.
        rejected_per_reason: usize,
    },
    /// No candidate: counts and the reason histogram only.
    CountsOnly,
}

impl Default for CapturePolicy {
    /// Sampled, 50 rejected per reason: a 5,000 → 30 filter keeps its 30 survivors and a few
    /// hundred rejections that explain the rest; a small step keeps everything.
    fn default() -> Self {
        CapturePolicy::Sampled {
            rejected_per_reason: 50,
        }
    }
}

/// Exact counts of everything observed in a step, and what the policy keeps.
pub(super) struct Tally {
    policy: CapturePolicy,
    seen: u64,
    passed: u64,
    /// Rejected candidates per reason code (each counted once per code).
    reasons: BTreeMap<String, u64>,
    /// Rejected candidates kept so far per primary reason code (sampling).
    kept_per_reason: HashMap<String, usize>,
    /// Candidates kept so far (at most [`MAX_OBSERVATIONS_PER_STEP`]).
    kept: usize,
    /// Candidates the policy would have kept beyond that.
    capped: u64,
    sampled_out: bool,
}

impl Tally {
    pub(super) fn new(policy: CapturePolicy) -> Self {
        Tally {
            policy,
            seen: 0,
            passed: 0,
            reasons: Default::default(),
            kept_per_reason: Default::default(),
            kept: 0,
            capped: 0,
            sampled_out: false,
        }
    }

    /// Keeps the next candidates by `policy`; those already counted stay as they were.
    pub(super) fn set_policy(&mut self, policy: CapturePolicy) {
        self.policy = policy;
    }

    /// Counts `observation`; whether the policy keeps it.
    pub(super) fn count(&mut self, observation: &Observation) -> bool {
        self.seen += 1;
        if observation.verdict.passes() {
            self.passed += 1;
        }
        if observation.verdict == Verdict::Rejected {
            for reason in &observation.reasons {
                match self.reasons.get_mut(&reason.code) {
                    Some(n) => *n += 1,
                    None => {
                        self.reasons.insert(reason.code.clone(), 1);
                    }
                }
            }
        }
        // A step stores at most this many observations; beyond it, only counts.
        let room = self.kept < MAX_OBSERVATIONS_PER_STEP;
        let wanted = match self.policy {
            CapturePolicy::Full => true,
            CapturePolicy::CountsOnly => false,
            CapturePolicy::Sampled { .. } if observation.verdict != Verdict::Rejected => true,
            CapturePolicy::Sampled {
                rejected_per_reason,
            } => {
                let code = observation.reasons.first().map_or("", |r| r.code.as_str());
                let kept = match self.kept_per_reason.get_mut(code) {
                    Some(kept) => kept,
                    None => self.kept_per_reason.entry(code.to_string()).or_insert(0),
                };
                if *kept < rejected_per_reason {
                    *kept += 1;
                    true
                } else {
                    false
                }
            }
        };
        let keep = wanted && room;
        if keep {
            self.kept += 1;
        } else {
            self.sampled_out = true;
            if wanted {
                self.capped += 1;
            }
        }
        keep
    }

    /// How many candidates the policy wanted beyond the most a step stores, if any.
    pub(super) fn capped(&self) -> Option<u64> {
        (self.capped > 0).then_some(self.capped)
    }

    /// Writes the counts and what was captured into the finished step's `record`.
    pub(super) fn summarise(self, record: &mut StepRecord) {
        // Counts stay exact whatever is captured: from every candidate observed, unless the
        // caller gave them (it may see more candidates than it observes).
        if self.seen > 0 {
            record.candidates_in.get_or_insert(self.seen);
            record.candidates_out.get_or_insert(self.passed);
            if record.reasons.is_empty() {
                record.reasons = self.reasons;
            }
        }
        record.capture = match self.policy {
            CapturePolicy::CountsOnly => Capture::CountsOnly,
            _ if self.sampled_out => Capture::Sampled,
            _ => Capture::Full,
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::offline_client;
    use crate::{Candidate, Capture, CapturePolicy, Flow, StepKind};

    fn filter_step(flow: &mut Flow, policy: Option<CapturePolicy>) {
        let mut step = flow.step("filter", StepKind::Filter);
        if let Some(policy) = policy {
            step.capture(policy);
        }
        for i in 0..5_000 {
            let candidate = match i % 250 {
                0 => Candidate::kept(format!("K{i}")),
                1..=99 => Candidate::rejected(format!("P{i}")).reason("price", "out of range"),
                100..=199 => Candidate::rejected(format!("C{i}"))
                    .reason("category", "off category")
                    .reason("price", "also out of range"),
                _ => Candidate::rejected(format!("N{i}")),
            };
            step.observe(candidate);
        }
    }

    #[test]
    fn capture_policies_keep_counts_exact_whatever_they_keep() {
        let client = offline_client();
        let mut flow = client.flow("p");
        filter_step(&mut flow, None); // the default: sampled, 50 rejected per reason
        filter_step(&mut flow, Some(CapturePolicy::Full));
        filter_step(&mut flow, Some(CapturePolicy::CountsOnly));
        filter_step(
            &mut flow,
            Some(CapturePolicy::Sampled {
                rejected_per_reason: 3,
            }),
        );
        let steps = &flow.record.steps;
        for step in steps {
            assert_eq!(step.candidates_in, Some(5_000));
            assert_eq!(step.candidates_out, Some(20));
            assert_eq!(step.reasons["price"], 20 * 99 + 20 * 100);
            assert_eq!(step.reasons["category"], 20 * 100);
        }
        let (sampled, full, counts, small) = (&steps[0], &steps[1], &steps[2], &steps[3]);
        assert_eq!(sampled.capture, Capture::Sampled);
        // Every survivor, then 50 per primary reason (price, category, none).
        assert_eq!(sampled.observations.len(), 20 + 50 * 3);
        assert!(
            sampled
                .observations
                .iter()
                .filter(|o| o.verdict.passes())
                .count()
                == 20
        );
        assert_eq!(full.capture, Capture::Full);
        assert_eq!(full.observations.len(), 5_000);
        assert_eq!(counts.capture, Capture::CountsOnly);
        assert!(counts.observations.is_empty());
        assert_eq!(small.observations.len(), 20 + 3 * 3);
        // A small step keeps everything under the default policy, and says so.
        let mut flow = client.flow("p");
        {
            let mut step = flow.step("tiny", StepKind::Filter);
            step.observe(Candidate::kept("a"))
                .observe(Candidate::rejected("b").reason("price", "x"));
        }
        assert_eq!(flow.record.steps[0].capture, Capture::Full);
        assert_eq!(flow.record.steps[0].observations.len(), 2);
    }

    #[test]
    fn no_policy_keeps_more_than_a_step_stores() {
        let client = offline_client();
        let mut flow = client.flow("p");
        {
            let mut step = flow.step("huge", StepKind::Filter);
            step.capture(CapturePolicy::Full);
            for i in 0..super::MAX_OBSERVATIONS_PER_STEP + 5 {
                step.observe(Candidate::kept(i.to_string()));
            }
        }
        let step = &flow.record.steps[0];
        assert_eq!(step.observations.len(), super::MAX_OBSERVATIONS_PER_STEP);
        assert_eq!(step.capture, Capture::Sampled, "it says it holds a sample");
        let total = (super::MAX_OBSERVATIONS_PER_STEP + 5) as u64;
        assert_eq!(
            (step.candidates_in, step.candidates_out),
            (Some(total), Some(total))
        );
        let notices = client.take_notices();
        assert!(
            notices.iter().any(|n| n.contains("5 more were counted")),
            "{notices:?}"
        );
        assert_eq!(client.stats().adjusted, 1);
    }
}
