//! The flows list's filters: **one vocabulary**, parsed once, for `GET /api/v1/flows`, the
//! dashboard's list (its URL and its server function) and the live-arrival check in the
//! browser. Add a list filter here (parsing, [`FlowFilters::to_query`], [`FlowFilters::admits`])
//! and in the SQL that applies it (`domain/src/engines/sql/flows.rs`).
//!
//! Accepted forms (empty values are ignored; unknown names are ignored; a filter other than
//! `tag` given twice is refused). Time ranges are half-open: `since` ≤ `started_at` <
//! `until`, so `until=2026-11-21` ends where that day starts.
//!
//! | name | form |
//! |---|---|
//! | `pipeline` | any text |
//! | `q` | words, at most 1,024 bytes |
//! | `status` | `running`, `succeeded`, `failed` |
//! | `tag` (repeatable) | `key:value`, split at the first `:` that is not escaped; a key that holds `:` or `\` writes them `\:` and `\\` (`k8s\:namespace:prod`) |
//! | `since`, `until` | RFC 3339 (`2026-11-21T10:00:00Z`), or `YYYY-MM-DD[THH:MM[:SS]]` read as UTC |
//! | `step_kind` | a step kind (`StepKind::ALL`) |
//! | `min_eliminated` | a share `0`–`1` (`0.9`) or a percentage `0%`–`100%` (`90%`), at most 6 decimals of the share |
//! | `limit` | `1`–`500` (default 50) |
//! | `cursor` | a `next_cursor` this server handed out |

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

pub use crate::share::Share;
use crate::{FlowStatus, FlowSummary, StepKind};

/// The names of the flows list's filters — what selects flows, paging aside (`limit`,
/// `cursor`); `tag` may repeat. The export and saved views take the same.
pub const FILTER_NAMES: &[&str] = &[
    "pipeline",
    "status",
    "tag",
    "since",
    "until",
    "q",
    "step_kind",
    "min_eliminated",
    "step",
    "reason",
];

/// The filters that take one value (`tag` may repeat).
const SINGLE_VALUED: &[&str] = &[
    "pipeline",
    "status",
    "since",
    "until",
    "q",
    "step_kind",
    "min_eliminated",
    "step",
    "reason",
    "limit",
    "cursor",
];

/// The longest `q`, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// The most `tag` filters one query takes: each is a join in SQL, and engines bound a
/// statement's size (SQLite: an expression tree 1,000 deep), so more would fail in the
/// database instead of being refused here.
pub const MAX_TAG_FILTERS: usize = 20;

/// Rows per page when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit`.
pub const MAX_LIMIT: u32 = 500;

/// Filters of the flows list. Every field is optional and they combine (`AND`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowFilters {
    pub pipeline: Option<String>,
    pub status: Option<FlowStatus>,
    /// Every pair must match.
    pub tags: Vec<(String, String)>,
    /// Flows started at or after.
    pub since: Option<OffsetDateTime>,
    /// Flows started before.
    pub until: Option<OffsetDateTime>,
    /// Text in the pipeline, the error, step names, reasoning, reasons and candidate ids.
    pub text: Option<String>,
    /// With `min_eliminated`: some step of this kind eliminated at least that share.
    pub step_kind: Option<StepKind>,
    pub min_eliminated: Option<Share>,
    /// Some step has this name (with `reason`: that step counted the reason).
    pub step: Option<String>,
    /// Some step (the one named `step`, when given) counted at least one rejection with this
    /// reason code — in its exact counts, not only its recorded observations.
    pub reason: Option<String>,
    /// Rows per page, 1–[`MAX_LIMIT`].
    pub limit: u32,
    pub cursor: Option<FlowCursor>,
}

impl Default for FlowFilters {
    fn default() -> Self {
        FlowFilters {
            pipeline: None,
            status: None,
            tags: Vec::new(),
            since: None,
            until: None,
            text: None,
            step_kind: None,
            min_eliminated: None,
            step: None,
            reason: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// A filter value that is not one of the accepted forms: `field` names the parameter,
/// `message` says what to send instead (the API answers it as 422 `validation_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

/// A query string whose parameter does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter's name as far as it decodes (lossily), or `query`.
    pub parameter: String,
    pub message: String,
}

/// Splits and decodes a URL query string (`application/x-www-form-urlencoded`, WHATWG URL
/// Standard §5.1: `&`-separated, `=` between name and value, `+` for a space, `%XX` bytes),
/// refusing a name or value that is not UTF-8 once percent-decoded (`q=%FF`) rather than
/// replacing its bytes with U+FFFD as lossy decoding would — a filter must be what was sent.
pub fn decode_query(raw: &str) -> Result<Vec<(String, String)>, QueryError> {
    query_parts(raw)
        .map(|(name, value)| {
            let decoded_name = String::from_utf8(decode_part(name)).map_err(|_| QueryError {
                parameter: "query".into(),
                message: "a parameter name is not UTF-8 once percent-decoded".into(),
            })?;
            let value = String::from_utf8(decode_part(value)).map_err(|_| QueryError {
                message: format!("{decoded_name} is not UTF-8 once percent-decoded"),
                parameter: decoded_name.clone(),
            })?;
            Ok((decoded_name, value))
        })
        .collect()
}

/// [`decode_query`] for showing what was sent (a form's fields): bytes that are not UTF-8
/// once percent-decoded are replaced by U+FFFD instead of refused. Never for filtering.
pub fn decode_query_lossy(raw: &str) -> Vec<(String, String)> {
    query_parts(raw)
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(&decode_part(name)).into_owned(),
                String::from_utf8_lossy(&decode_part(value)).into_owned(),
            )
        })
        .collect()
}

/// The `(name, value)` parts of a query string, still encoded (without a leading `?`, empty
/// parts skipped, a part without `=` an empty value).
fn query_parts(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.strip_prefix('?')
        .unwrap_or(raw)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// One encoded part's bytes: `+` read as a space, then percent-decoded.
fn decode_part(part: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(&part.replace('+', " ")).collect()
}

/// The first of `names` given more than once among `pairs` (name, value), if any: a
/// parameter with one value given twice is ambiguous, and is refused rather than one of its
/// values picked — the rule of every query string of the API and the dashboard. `names`
/// `None` checks every name.
pub fn repeated<'a, N: AsRef<str>, V>(
    pairs: &'a [(N, V)],
    names: Option<&[&str]>,
) -> Option<&'a str> {
    pairs.iter().enumerate().find_map(|(i, (name, _))| {
        let name = name.as_ref();
        let counted = names.is_none_or(|names| names.contains(&name));
        (counted
            && pairs[..i]
                .iter()
                .any(|(earlier, _)| earlier.as_ref() == name))
        .then_some(name)
    })
}

fn invalid(field: &'static str, message: impl Into<String>) -> FilterError {
    FilterError {
        field,
        message: message.into(),
    }
}

impl FlowFilters {
    /// Parses a URL query string (`pipeline=a&tag=env:prod&min_eliminated=90%25`), without
    /// its leading `?`. Errors name the first parameter that is not in an accepted form.
    pub fn from_query(raw: &str) -> Result<Self, FilterError> {
        let pairs = decode_query(raw).map_err(|e| {
            let known = SINGLE_VALUED
                .iter()
                .chain(&["tag"])
                .find(|n| **n == e.parameter);
            invalid(known.copied().unwrap_or("query"), e.message)
        })?;
        Self::from_pairs(pairs)
    }

    /// [`FlowFilters::from_query`] for pairs already split and decoded.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, FilterError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut filters = FlowFilters::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (name, value) in pairs {
            // `step` and `reason` match stored names and codes exactly, spaces included (a
            // code `"A "` is not `"A"`); the other values are read trimmed.
            let exact = value.as_ref();
            let value = exact.trim();
            if value.is_empty() {
                continue;
            }
            // A filter given twice (but `tag`) is ambiguous: refused rather than one picked.
            if let Some(known) = SINGLE_VALUED.iter().find(|n| **n == name.as_ref()) {
                if seen.contains(known) {
                    return Err(invalid(known, format!("{known} is given more than once")));
                }
                seen.push(known);
            }
            match name.as_ref() {
                "pipeline" => filters.pipeline = Some(value.to_string()),
                "status" => {
                    filters.status = Some(FlowStatus::parse(value).ok_or_else(|| {
                        invalid(
                            "status",
                            format!("status is one of {}", FlowStatus::names()),
                        )
                    })?)
                }
                "tag" if filters.tags.len() >= MAX_TAG_FILTERS => {
                    return Err(invalid(
                        "tag",
                        format!("at most {MAX_TAG_FILTERS} tag filters in one query"),
                    ));
                }
                "tag" => filters.tags.push(parse_tag(value)?),
                "since" => filters.since = Some(parse_time("since", value)?),
                "until" => filters.until = Some(parse_time("until", value)?),
                "q" if value.len() > MAX_TEXT_BYTES => {
                    return Err(invalid(
                        "q",
                        format!("q is {} bytes; the limit is {MAX_TEXT_BYTES}", value.len()),
                    ));
                }
                // Search words are runs of letters and digits; punctuation is never syntax.
                // A `q` of punctuation alone (`*`) searches for nothing: refused, rather
                // than answered with no flows or with every flow.
                "q" if !value.chars().any(char::is_alphanumeric) => {
                    return Err(invalid(
                        "q",
                        "q has no letter or digit to search for (punctuation is not query \
                         syntax; leave q out to list every flow)",
                    ));
                }
                "q" => filters.text = Some(value.to_string()),
                "step_kind" => {
                    filters.step_kind = Some(StepKind::parse(value).ok_or_else(|| {
                        invalid(
                            "step_kind",
                            format!("step_kind is one of {}", StepKind::names()),
                        )
                    })?)
                }
                "min_eliminated" => filters.min_eliminated = Some(Share::parse(value)?),
                "step" => filters.step = Some(exact.to_string()),
                "reason" => filters.reason = Some(exact.to_string()),
                "limit" => {
                    filters.limit = value
                        .parse()
                        .ok()
                        .filter(|v| (1..=MAX_LIMIT).contains(v))
                        .ok_or_else(|| {
                            invalid(
                                "limit",
                                format!("limit is a whole number from 1 to {MAX_LIMIT}"),
                            )
                        })?
                }
                "cursor" => {
                    filters.cursor = Some(FlowCursor::decode(value).ok_or_else(|| {
                        invalid("cursor", "cursor is not one this server handed out")
                    })?)
                }
                _ => {}
            }
        }
        Ok(filters)
    }

    /// The canonical query string of these filters (no leading `?`): what
    /// [`FlowFilters::from_query`] reads back to the same filters.
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(pipeline) = &self.pipeline {
            query.append_pair("pipeline", pipeline);
        }
        if let Some(status) = self.status {
            query.append_pair("status", status.as_str());
        }
        for (key, value) in &self.tags {
            query.append_pair("tag", &tag_filter(key, value));
        }
        for (name, at) in [("since", self.since), ("until", self.until)] {
            if let Some(text) = at.and_then(|at| at.format(&Rfc3339).ok()) {
                query.append_pair(name, &text);
            }
        }
        if let Some(text) = &self.text {
            query.append_pair("q", text);
        }
        if let Some(kind) = self.step_kind {
            query.append_pair("step_kind", kind.as_str());
        }
        if let Some(share) = self.min_eliminated {
            query.append_pair("min_eliminated", &share.to_string());
        }
        if let Some(step) = &self.step {
            query.append_pair("step", step);
        }
        if let Some(reason) = &self.reason {
            query.append_pair("reason", reason);
        }
        if self.limit != DEFAULT_LIMIT {
            query.append_pair("limit", &self.limit.to_string());
        }
        if let Some(cursor) = self.cursor {
            query.append_pair("cursor", &cursor.encode());
        }
        query.finish()
    }

    /// Whether a flow that arrives live belongs in this list, judged in the browser from its
    /// summary. Filters a summary cannot answer (text, a step kind or share: they need the
    /// flow's steps) answer `None`: the page offers a refresh instead.
    pub fn admits(&self, flow: &FlowSummary) -> Option<bool> {
        if self.text.is_some()
            || self.step_kind.is_some()
            || self.min_eliminated.is_some()
            || self.step.is_some()
            || self.reason.is_some()
        {
            return None;
        }
        let pipeline = self.pipeline.as_ref().is_none_or(|p| *p == flow.pipeline);
        let status = self.status.is_none_or(|s| s == flow.status);
        let since = self.since.is_none_or(|since| flow.started_at >= since);
        let until = self.until.is_none_or(|until| flow.started_at < until);
        let tags = self.tags.iter().all(|(k, v)| flow.tags.get(k) == Some(v));
        Some(pipeline && status && since && until && tags)
    }
}

/// Reads a `tag` filter: the key up to the first `:` that is not escaped (`\:` is a `:` of
/// the key, `\\` a `\`), the value after it, as is.
fn parse_tag(text: &str) -> Result<(String, String), FilterError> {
    let refuse = || {
        invalid(
            "tag",
            "tag filters are written key:value; a key that holds : or \\ writes them \\: and \\\\",
        )
    };
    let mut key = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped @ (':' | '\\'))) => key.push(escaped),
                _ => return Err(refuse()),
            },
            ':' => return Ok((key, text[at + 1..].to_string())),
            c => key.push(c),
        }
    }
    Err(refuse())
}

/// The `tag` filter that matches `key` = `value` exactly, escaping the key (see
/// [`FlowFilters::from_query`]).
pub fn tag_filter(key: &str, value: &str) -> String {
    let key = key.replace('\\', "\\\\").replace(':', "\\:");
    format!("{key}:{value}")
}

/// Reads `since`/`until`: RFC 3339, or `YYYY-MM-DD[THH:MM[:SS]]` as UTC (what a browser's
/// `datetime-local` input gives).
///
/// Errors (`validation_failed` on `field`): the text is neither, or it names an instant
/// outside the years RFC 3339 can write in UTC ([`crate::rfc3339::check`]).
pub fn parse_time(field: &'static str, text: &str) -> Result<OffsetDateTime, FilterError> {
    let at = read_time(field, text)?;
    crate::rfc3339::check(at)
        .map_err(|reason| invalid(field, format!("{field} is out of range: {reason}")))
}

fn read_time(field: &'static str, text: &str) -> Result<OffsetDateTime, FilterError> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    // `+01:00` sent unencoded in a query string arrives as ` 01:00` (`+` is a space in
    // `application/x-www-form-urlencoded`): read it as the offset it was.
    if let Some((time, offset)) = text.rsplit_once(' ')
        && offset.len() == 5
        && offset.as_bytes()[2] == b':'
        && let Ok(at) = OffsetDateTime::parse(&format!("{time}+{offset}"), &Rfc3339)
    {
        return Ok(at);
    }
    let padded = match text.len() {
        10 => Some(format!("{text}T00:00:00Z")),
        16 => Some(format!("{text}:00Z")),
        19 => Some(format!("{text}Z")),
        _ => None,
    };
    padded
        .and_then(|padded| OffsetDateTime::parse(&padded, &Rfc3339).ok())
        .ok_or_else(|| {
            invalid(
                field,
                format!(
                    "{field} must be an RFC 3339 time (2026-11-21T10:00:00Z) or \
                     YYYY-MM-DDTHH:MM in UTC"
                ),
            )
        })
}

/// Position in the flows list, newest first: the last row's start time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCursor {
    /// Unix milliseconds.
    pub started_at_ms: i64,
    pub id: Uuid,
}

impl FlowCursor {
    /// The opaque text form handed to clients: `<ms>_<uuid without hyphens>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.started_at_ms, self.id.simple())
    }

    /// Parses [`FlowCursor::encode`]'s output.
    pub fn decode(text: &str) -> Option<Self> {
        let (ms, id) = text.split_once('_')?;
        Some(FlowCursor {
            started_at_ms: ms.parse().ok()?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_back_to_the_same_filters() {
        let filters = FlowFilters::from_query(
            "pipeline=competitor_selection&status=failed&tag=env:prod&tag=seller:B0%3A1\
             &since=2026-11-21T10:00&until=2026-11-22T00:00:00Z&q=phone+case\
             &step_kind=filter&min_eliminated=90%25&limit=20&cursor=1000_0193000000007000a000000000000001",
        )
        .unwrap();
        assert_eq!(filters.tags[1], ("seller".into(), "B0:1".into()));
        assert_eq!(filters.min_eliminated.unwrap().ppm(), 900_000);
        assert_eq!(FlowFilters::from_query(&filters.to_query()), Ok(filters));
    }

    #[test]
    fn every_tag_key_can_be_filtered_on() {
        for (key, value) in [
            ("env", "prod"),
            ("k8s:namespace", "prod"),
            ("a\\b", "c:d"),
            ("\\:", ""),
            ("url", "http://example.org:8080/x"),
        ] {
            let filter = tag_filter(key, value);
            assert_eq!(
                parse_tag(&filter),
                Ok((key.to_string(), value.to_string())),
                "{filter}"
            );
        }
        assert_eq!(
            FlowFilters::from_query("tag=k8s%5C%3Anamespace%3Aprod")
                .unwrap()
                .tags,
            vec![("k8s:namespace".to_string(), "prod".to_string())]
        );
        assert_eq!(parse_tag("env:a:b"), Ok(("env".into(), "a:b".into())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("bad\\escape:x").is_err());
    }

    #[test]
    fn an_offset_whose_plus_became_a_space_still_reads() {
        let sent = parse_time("since", "2026-11-21T10:00:00+01:00").unwrap();
        // `since=2026-11-21T10:00:00+01:00` unencoded: the `+` decodes as a space.
        let filters = FlowFilters::from_query("since=2026-11-21T10:00:00+01:00").unwrap();
        assert_eq!(filters.since, Some(sent));
        assert_eq!(
            parse_time("since", "2026-11-21T10:00:00.5 05:30").unwrap(),
            parse_time("since", "2026-11-21T10:00:00.5+05:30").unwrap()
        );
        // Only an offset's shape is read so: other spaces are still refused.
        assert!(parse_time("since", "2026-11-21T10:00:00 1:00").is_err());
        assert!(parse_time("since", "2026-11-21T10:00:00 ab:cd").is_err());
    }

    #[test]
    fn a_time_utc_cannot_write_is_refused_on_its_parameter() {
        // The year 10000 and the year -1 once in UTC; the edges themselves are kept.
        for (query, field) in [
            ("since=9999-12-31T23:59:59-01:00", "since"),
            ("until=0000-01-01T00:30:00%2B01:00", "until"),
            ("until=0000-01-01T00:30:00+01:00", "until"),
        ] {
            let error = FlowFilters::from_query(query).unwrap_err();
            assert_eq!(error.field, field, "{query}");
            assert!(error.message.contains("out of range"), "{query}: {error:?}");
        }
        let kept = FlowFilters::from_query("since=0000-01-01&until=9999-12-31T23:59:59Z").unwrap();
        assert_eq!(kept.since, Some(crate::rfc3339::MIN));
        assert_eq!(
            kept.until,
            Some(time::macros::datetime!(9999-12-31 23:59:59 UTC))
        );
    }

    #[test]
    fn refused_values_name_their_parameter() {
        for (query, field) in [
            ("pipeline=a&pipeline=b", "pipeline"),
            ("limit=1&limit=5", "limit"),
            ("status=done", "status"),
            ("tag=env", "tag"),
            ("since=yesterday", "since"),
            ("step_kind=sort", "step_kind"),
            ("min_eliminated=90", "min_eliminated"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("cursor=zzz", "cursor"),
        ] {
            assert_eq!(
                FlowFilters::from_query(query).unwrap_err().field,
                field,
                "{query}"
            );
        }
        assert_eq!(
            FlowFilters::from_query("status=&q=&other=1"),
            Ok(FlowFilters::default())
        );
    }
}
