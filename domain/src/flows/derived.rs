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
                    search: step_search_text(step),
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

/// Text drawn from a step's observations for the full-text index: every distinct candidate
/// id, reason code and reason text, whole. (A cap once made ids past the first 16 KiB of a
/// step unfindable, issue #14 item 6; an engine that must cap its index says so instead,
/// `FlowPage::search_complete`.)
pub fn observation_text(observations: &[Observation]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    let mut push = |part: &str| {
        if seen.insert(part.to_owned()) {
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

/// Turns what a user typed into a full-text query: each whitespace-separated word becomes a
/// phrase of its alphanumeric tokens, the last one matched as a prefix; all words must match.
/// A run of a script written without spaces (Chinese, Japanese, Thai) becomes the phrase of
/// its overlapping character pairs, as [`unspaced_pairs`] indexed them, so a word is found
/// inside a longer run (`价格` in `候选商品的价格超出范围`). Empty when nothing searchable is
/// left.
pub fn search_words(text: &str) -> Vec<Vec<String>> {
    text.split_whitespace()
        .map(|word| {
            // Marks (Thai vowels and tones) belong to their run, not between tokens.
            word.split(|c: char| !c.is_alphanumeric() && !unspaced(c))
                .filter(|token| !token.is_empty())
                .flat_map(|token| split_unspaced(&token.to_lowercase()))
                .collect::<Vec<_>>()
        })
        .filter(|tokens| !tokens.is_empty())
        .collect()
}

/// Whether `c` belongs to a script written without spaces between words: Han, Hiragana,
/// Katakana (Unicode blocks of CJK ideographs and kana), Thai, Lao, Khmer, Myanmar.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3400..=0x4DBF      // CJK Extension A
        | 0x4E00..=0x9FFF      // CJK Unified Ideographs
        | 0xF900..=0xFAFF      // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F    // CJK Extensions B–F, Compatibility Supplement
        | 0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F      // Myanmar
        | 0x1780..=0x17FF      // Khmer
    )
}

/// The runs of `text` in scripts written without spaces, each with its overlapping pairs of
/// characters (a run of one character is itself), in order; other text is left out.
fn pairs_of_runs(text: &str) -> Vec<Vec<String>> {
    let mut runs = Vec::new();
    let mut run: Vec<char> = Vec::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if unspaced(c) {
            run.push(c);
        } else if !run.is_empty() {
            runs.push(if run.len() == 1 {
                vec![run[0].to_string()]
            } else {
                run.windows(2).map(|pair| pair.iter().collect()).collect()
            });
            run.clear();
        }
    }
    runs
}

/// A query token split where it changes between spaced and unspaced scripts, each unspaced
/// run replaced by its pairs (`b0价格x` → `b0`, `价格`, `x`).
fn split_unspaced(token: &str) -> Vec<String> {
    if !token.chars().any(unspaced) {
        return vec![token.to_string()];
    }
    let mut out = Vec::new();
    let mut spaced = String::new();
    let mut run = String::new();
    for c in token.chars().chain(std::iter::once(' ')) {
        if unspaced(c) {
            if !spaced.is_empty() {
                out.push(std::mem::take(&mut spaced));
            }
            run.push(c);
        } else {
            if !run.is_empty() {
                out.extend(
                    pairs_of_runs(&std::mem::take(&mut run))
                        .into_iter()
                        .flatten(),
                );
            }
            if c != ' ' {
                spaced.push(c);
            }
        }
    }
    if !spaced.is_empty() {
        out.push(spaced);
    }
    out
}

/// What the search index gets of unspaced scripts in `text`: each word holding such a script
/// split as a query splits it ([`split_unspaced`]: every run's overlapping pairs of
/// characters, the letters and digits around them in order), space-separated. Both engines'
/// tokenizers keep a run whole, so a word inside it, or an id like `候补3`, would otherwise
/// be unfindable. Empty when `text` has none.
pub fn unspaced_pairs(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric() && !unspaced(c))
        .filter(|word| word.chars().any(unspaced))
        .flat_map(|word| split_unspaced(&word.to_lowercase()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A step's own text for the search index: its observations' text ([`observation_text`])
/// and the character pairs of unspaced scripts in its name, reasoning and that text.
fn step_search_text(step: &StepRecord) -> Option<String> {
    let mut observed = observation_text(&step.observations);
    // The step's exact reason counts name codes that no recorded observation may carry
    // (`counts_only`, a sample): they are findable too, so `q=<code>` finds every flow a
    // reason chart counts (`/pipelines/{name}`).
    for code in step.reasons.iter().filter(|(_, n)| **n > 0).map(|(c, _)| c) {
        let text = observed.get_or_insert_with(String::new);
        if !text.split(' ').any(|word| word == code) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(code);
        }
    }
    let texts = [
        step.name.as_str(),
        step.reasoning.as_deref().unwrap_or(""),
        observed.as_deref().unwrap_or(""),
    ];
    // Most text has no unspaced script: scanning is cheaper than building pairs.
    let pairs = if texts.iter().any(|text| text.chars().any(unspaced)) {
        unspaced_pairs(&texts.join(" "))
    } else {
        String::new()
    };
    match (observed, pairs.is_empty()) {
        (observed, true) => observed,
        (None, false) => Some(pairs),
        (Some(observed), false) => Some(format!("{observed} {pairs}")),
    }
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
    fn words_inside_unspaced_scripts_are_indexed_and_queried_as_character_pairs() {
        assert_eq!(
            unspaced_pairs("候选商品的价格"),
            "候选 选商 商品 品的 的价 价格"
        );
        assert_eq!(unspaced_pairs("laptop stand"), "");
        // Letters and digits around a run are indexed in the order a query splits them.
        assert_eq!(
            unspaced_pairs("候补3 型号X200, abc候补"),
            "候补 3 型号 x200 abc 候补"
        );
        assert_eq!(
            search_words("候补3"),
            vec![vec!["候补".to_string(), "3".into()]]
        );
        assert_eq!(search_words("价格"), vec![vec!["价格".to_string()]]);
        assert_eq!(
            search_words("价格超出 B0价x"),
            vec![
                vec!["价格".to_string(), "格超".into(), "超出".into()],
                vec!["b0".to_string(), "价".into(), "x".into()]
            ]
        );
        assert_eq!(
            search_words("ราคา"),
            vec![vec!["รา".to_string(), "าค".into(), "คา".into()]]
        );
    }

    #[test]
    fn observation_text_is_distinct_and_whole() {
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
        // Every id of a large step, the last one too.
        let many: Vec<_> = (0..3000).map(|i| observation(&format!("C{i}"))).collect();
        let text = observation_text(&many).unwrap();
        assert!(text.ends_with(" C2999"), "{}", &text[text.len() - 20..]);
        assert_eq!(text.matches("too_far").count(), 1);
        assert_eq!(observation_text(&[]), None);
    }
}
