//! Filtering and sorting of a step's observations: pure, so the Web Worker (which does the work
//! in the browser) and the tests share one definition.

use std::cmp::Ordering;

use flowtrail_types::{Observation, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the observations table is filtered by. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservationFilter {
    /// Case-insensitive text in the candidate id, reason codes and texts, attribute keys and
    /// values.
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// An exact reason code.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub score_min: Option<f64>,
    #[serde(default)]
    pub score_max: Option<f64>,
    /// `key`, `key=text` (contains, case-insensitive), `key>n`, `key<n`, `key>=n`, `key<=n`.
    #[serde(default)]
    pub attribute: String,
}

/// A table column to sort by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The order the pipeline recorded.
    #[default]
    Recorded,
    Candidate,
    Verdict,
    Score,
    Reason,
}

/// Sort order of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// An attribute condition, parsed from [`ObservationFilter::attribute`].
#[derive(Debug, Clone, PartialEq)]
enum AttributeTest {
    Present(String),
    Contains(String, String),
    Compare(String, Ordering, bool, f64),
}

impl AttributeTest {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        for (op, order, or_equal) in [
            (">=", Ordering::Greater, true),
            ("<=", Ordering::Less, true),
            (">", Ordering::Greater, false),
            ("<", Ordering::Less, false),
        ] {
            if let Some((key, number)) = text.split_once(op)
                && let Ok(number) = number.trim().parse::<f64>()
            {
                return Some(AttributeTest::Compare(
                    key.trim().to_lowercase(),
                    order,
                    or_equal,
                    number,
                ));
            }
        }
        Some(match text.split_once('=') {
            Some((key, value)) => {
                AttributeTest::Contains(key.trim().to_lowercase(), value.trim().to_lowercase())
            }
            None => AttributeTest::Present(text.to_lowercase()),
        })
    }

    fn matches(&self, observation: &Observation) -> bool {
        let find = |key: &str| {
            observation
                .attributes
                .iter()
                .find(|(k, _)| k.to_lowercase() == key)
                .map(|(_, v)| v)
        };
        match self {
            AttributeTest::Present(key) => find(key).is_some(),
            AttributeTest::Contains(key, needle) => find(key).is_some_and(|value| {
                any_scalar(value, &mut |text| {
                    text.to_lowercase().contains(needle.as_str())
                })
            }),
            AttributeTest::Compare(key, order, or_equal, number) => find(key)
                .and_then(Value::as_f64)
                .and_then(|value| value.partial_cmp(number))
                .is_some_and(|found| found == *order || (*or_equal && found == Ordering::Equal)),
        }
    }
}

/// A step's observations, ready to be filtered and sorted many times: the text each
/// observation is searched by is lower-cased once, when loaded.
pub struct ObservationIndex {
    observations: Vec<Observation>,
    haystacks: Vec<String>,
    /// The last answer, so paging through it (scrolling) costs nothing.
    last: Option<(ObservationFilter, Sort, Vec<u32>)>,
}

impl ObservationIndex {
    pub fn new(observations: Vec<Observation>) -> Self {
        let haystacks = observations.iter().map(haystack).collect();
        ObservationIndex {
            observations,
            haystacks,
            last: None,
        }
    }

    pub fn len(&self) -> usize {
        self.observations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }

    pub fn get(&self, index: u32) -> Option<&Observation> {
        self.observations.get(index as usize)
    }

    /// Positions of the observations that match, in sort order. The answer is kept, so asking
    /// again with the same filter and sort is free.
    pub fn query(&mut self, filter: &ObservationFilter, sort: Sort) -> &[u32] {
        let fresh = !matches!(&self.last, Some((f, s, _)) if f == filter && *s == sort);
        if fresh {
            let mut positions = self.matching(filter);
            self.sort(&mut positions, sort);
            self.last = Some((filter.clone(), sort, positions));
        }
        self.last
            .as_ref()
            .map(|(_, _, p)| p.as_slice())
            .unwrap_or(&[])
    }

    fn matching(&self, filter: &ObservationFilter) -> Vec<u32> {
        let needle = filter.text.trim().to_lowercase();
        let attribute = AttributeTest::parse(&filter.attribute);
        let reason = filter.reason.as_deref().filter(|r| !r.is_empty());
        self.observations
            .iter()
            .zip(&self.haystacks)
            .enumerate()
            .filter(|(_, (o, haystack))| {
                filter.verdict.is_none_or(|v| v == o.verdict)
                    && reason.is_none_or(|code| o.reasons.iter().any(|r| r.code == code))
                    && filter
                        .score_min
                        .is_none_or(|min| o.score.is_some_and(|s| s >= min))
                    && filter
                        .score_max
                        .is_none_or(|max| o.score.is_some_and(|s| s <= max))
                    && (needle.is_empty() || haystack.contains(&needle))
                    && attribute.as_ref().is_none_or(|test| test.matches(o))
            })
            .map(|(i, _)| i as u32)
            .collect()
    }

    fn sort(&self, positions: &mut [u32], sort: Sort) {
        if sort.key == SortKey::Recorded {
            if sort.descending {
                positions.reverse();
            }
            return;
        }
        let direct = |o: Ordering| if sort.descending { o.reverse() } else { o };
        positions.sort_unstable_by(|a, b| {
            let (x, y) = (
                &self.observations[*a as usize],
                &self.observations[*b as usize],
            );
            let column = match sort.key {
                SortKey::Recorded => Ordering::Equal,
                SortKey::Candidate => direct(x.candidate_id.cmp(&y.candidate_id)),
                SortKey::Verdict => direct(x.verdict.as_str().cmp(y.verdict.as_str())),
                SortKey::Reason => direct(first_reason(x).cmp(first_reason(y))),
                // Unscored rows go last whichever the direction.
                SortKey::Score => match (x.score, y.score) {
                    (Some(p), Some(q)) => direct(p.total_cmp(&q)),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                },
            };
            // Ties keep the recorded order.
            column.then(a.cmp(b))
        });
    }
}

fn first_reason(observation: &Observation) -> &str {
    observation
        .reasons
        .first()
        .map(|r| r.code.as_str())
        .unwrap_or("")
}

/// Everything the text filter looks in, lower-cased, separated by a character no needle
/// crosses.
fn haystack(observation: &Observation) -> String {
    let mut text = observation.candidate_id.to_lowercase();
    // Lower-cased straight into the one string: no allocation per part (this runs for every
    // observation of a step when it is opened).
    let mut push = |part: &str| {
        text.push('\u{1}');
        if part.is_ascii() {
            text.extend(part.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            text.extend(part.chars().flat_map(char::to_lowercase));
        }
    };
    for reason in &observation.reasons {
        push(&reason.code);
        if let Some(t) = &reason.text {
            push(t);
        }
    }
    for (key, value) in &observation.attributes {
        push(key);
        any_scalar(value, &mut |t| {
            push(t);
            false
        });
    }
    text
}

/// Calls `f` with each scalar in `value` until it answers true; tells whether it did.
fn any_scalar(value: &Value, f: &mut dyn FnMut(&str) -> bool) -> bool {
    match value {
        Value::String(s) => f(s),
        Value::Number(n) => f(&n.to_string()),
        Value::Bool(b) => f(if *b { "true" } else { "false" }),
        Value::Array(items) => items.iter().any(|v| any_scalar(v, f)),
        Value::Object(map) => map.values().any(|v| any_scalar(v, f)),
        Value::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{Attributes, Reason};

    fn observation(id: &str, verdict: Verdict, score: Option<f64>, reason: &str) -> Observation {
        let mut attributes = Attributes::new();
        attributes.insert("category".into(), "Cell Phone Cases".into());
        attributes.insert("price".into(), 9.99.into());
        Observation {
            candidate_id: id.into(),
            verdict,
            score,
            reasons: if reason.is_empty() {
                Vec::new()
            } else {
                vec![Reason {
                    code: reason.into(),
                    text: Some("9.99 is below 0.5x of 45.00".into()),
                }]
            },
            attributes,
        }
    }

    fn index() -> ObservationIndex {
        let mut stand = observation("B0STAND01", Verdict::Kept, Some(0.9), "");
        stand.attributes.insert("price".into(), 39.5.into());
        stand
            .attributes
            .insert("category".into(), "Laptop Stands".into());
        ObservationIndex::new(vec![
            observation(
                "B0CASE0001",
                Verdict::Rejected,
                Some(0.12),
                "price_out_of_range",
            ),
            stand,
            observation(
                "B0CASE0002",
                Verdict::Rejected,
                None,
                "rating_below_threshold",
            ),
            observation("B0PICK", Verdict::Selected, Some(0.95), ""),
        ])
    }

    fn ids(index: &mut ObservationIndex, filter: &ObservationFilter, sort: Sort) -> Vec<String> {
        let positions = index.query(filter, sort).to_vec();
        positions
            .into_iter()
            .map(|i| index.get(i).unwrap().candidate_id.clone())
            .collect()
    }

    #[test]
    fn text_matches_ids_reasons_and_attributes_case_insensitively() {
        let mut index = index();
        let text = |text: &str| ObservationFilter {
            text: text.into(),
            ..ObservationFilter::default()
        };
        let all = Sort::default();
        assert_eq!(ids(&mut index, &text(""), all).len(), 4);
        assert_eq!(
            ids(&mut index, &text("b0case"), all),
            ["B0CASE0001", "B0CASE0002"]
        );
        assert_eq!(ids(&mut index, &text("PRICE_OUT"), all), ["B0CASE0001"]);
        assert_eq!(ids(&mut index, &text("below 0.5x"), all).len(), 2);
        assert_eq!(ids(&mut index, &text("laptop"), all), ["B0STAND01"]);
        assert_eq!(ids(&mut index, &text("39.5"), all), ["B0STAND01"]);
        assert!(ids(&mut index, &text("monitor"), all).is_empty());
        // A needle never spans two fields.
        assert!(ids(&mut index, &text("0001price"), all).is_empty());
    }

    #[test]
    fn verdict_reason_score_and_attribute_narrow() {
        let mut index = index();
        let all = Sort::default();
        let rejected = ObservationFilter {
            verdict: Some(Verdict::Rejected),
            ..ObservationFilter::default()
        };
        assert_eq!(
            ids(&mut index, &rejected, all),
            ["B0CASE0001", "B0CASE0002"]
        );
        let reason = ObservationFilter {
            reason: Some("rating_below_threshold".into()),
            ..ObservationFilter::default()
        };
        assert_eq!(ids(&mut index, &reason, all), ["B0CASE0002"]);
        let scored = ObservationFilter {
            score_min: Some(0.5),
            score_max: Some(0.92),
            ..ObservationFilter::default()
        };
        assert_eq!(ids(&mut index, &scored, all), ["B0STAND01"]);
        let attribute = |text: &str| ObservationFilter {
            attribute: text.into(),
            ..ObservationFilter::default()
        };
        assert_eq!(ids(&mut index, &attribute("price>20"), all), ["B0STAND01"]);
        assert_eq!(ids(&mut index, &attribute("price <= 9.99"), all).len(), 3);
        assert_eq!(ids(&mut index, &attribute("Category=phone"), all).len(), 3);
        assert_eq!(ids(&mut index, &attribute("category"), all).len(), 4);
        assert!(ids(&mut index, &attribute("brand"), all).is_empty());
    }

    #[test]
    fn sorts_by_column_with_unscored_last_and_ties_in_recorded_order() {
        let mut index = index();
        let none = ObservationFilter::default();
        let by = |key, descending| Sort { key, descending };
        assert_eq!(
            ids(&mut index, &none, by(SortKey::Score, false)),
            ["B0CASE0001", "B0STAND01", "B0PICK", "B0CASE0002"]
        );
        assert_eq!(
            ids(&mut index, &none, by(SortKey::Score, true)),
            ["B0PICK", "B0STAND01", "B0CASE0001", "B0CASE0002"]
        );
        assert_eq!(
            ids(&mut index, &none, by(SortKey::Candidate, true)),
            ["B0STAND01", "B0PICK", "B0CASE0002", "B0CASE0001"]
        );
        // kept < rejected < selected; the two rejected keep their recorded order.
        assert_eq!(
            ids(&mut index, &none, by(SortKey::Verdict, false)),
            ["B0STAND01", "B0CASE0001", "B0CASE0002", "B0PICK"]
        );
        assert_eq!(
            ids(&mut index, &none, by(SortKey::Recorded, true)),
            ["B0PICK", "B0CASE0002", "B0STAND01", "B0CASE0001"]
        );
    }
}
