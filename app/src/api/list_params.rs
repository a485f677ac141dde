//! The flows list's filters as the page's URL carries them, read by the API's own parser.

use serde::{Deserialize, Serialize};

/// The flows list's parameters as the page's URL carries them: raw text, for the form. They
/// are parsed only by the flows list's one vocabulary, [`flowtrail_types::FlowFilters`] — the
/// parser of `GET /api/v1/flows` — so the dashboard accepts and refuses exactly what the API
/// does, with the same messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListParams {
    pub pipeline: Option<String>,
    pub status: Option<String>,
    /// Each `key:value` (the URL's repeated `tag`).
    pub tags: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
    pub step_kind: Option<String>,
    /// A share (`0.9`) or a percentage (`90%`).
    pub min_eliminated: Option<String>,
    /// A step name; with `reason`, the step that counted it.
    pub step: Option<String>,
    /// A reason code some step counted.
    pub reason: Option<String>,
    pub cursor: Option<String>,
    /// Flows per page (1–500), kept on the next page's address.
    pub limit: Option<String>,
    /// The page address's whole query string as sent (`pipeline=a&tag=env:prod`), when the
    /// list is read from an address: then it alone is parsed, by the API's own
    /// [`flowtrail_types::FlowFilters::from_query`], so a filter given twice or a value that
    /// is not UTF-8 once percent-decoded is refused as `GET /api/v1/flows` refuses it (the
    /// fields above, read leniently by the router, only fill the form).
    pub query: Option<String>,
}

impl ListParams {
    /// The parameters of the page address's query string `raw` (with or without its `?`):
    /// the first non-blank value of each name, every `tag`, each decoded once
    /// ([`crate::format::query_pairs`]), and `raw` itself as [`ListParams::query`].
    pub fn from_query(raw: &str) -> ListParams {
        let raw = raw.strip_prefix('?').unwrap_or(raw);
        let pairs = crate::format::query_pairs(raw);
        let first = |name: &str| crate::format::first_value(&pairs, name);
        ListParams {
            pipeline: first("pipeline"),
            status: first("status"),
            tags: pairs
                .iter()
                .filter(|(name, value)| name == "tag" && !value.trim().is_empty())
                .map(|(_, value)| value.clone())
                .collect(),
            since: first("since"),
            until: first("until"),
            q: first("q"),
            step_kind: first("step_kind"),
            min_eliminated: first("min_eliminated"),
            step: first("step"),
            reason: first("reason"),
            cursor: first("cursor"),
            limit: first("limit"),
            query: Some(raw.to_string()),
        }
    }

    /// The named, non-empty parameters in URL order (tags repeated).
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = Vec::new();
        for (name, value) in [
            ("pipeline", &self.pipeline),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
            ("step_kind", &self.step_kind),
            ("min_eliminated", &self.min_eliminated),
            ("step", &self.step),
            ("reason", &self.reason),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                pairs.push((name, value));
            }
        }
        for tag in self.tags.iter().filter(|t| !t.trim().is_empty()) {
            pairs.push(("tag", tag.as_str()));
        }
        if let Some(limit) = self.limit.as_deref().filter(|v| !v.trim().is_empty()) {
            pairs.push(("limit", limit));
        }
        if let Some(cursor) = self.cursor.as_deref().filter(|v| !v.trim().is_empty()) {
            pairs.push(("cursor", cursor));
        }
        pairs
    }

    /// The filters these parameters mean, or the API's error for the first bad one.
    pub fn parse(&self) -> Result<flowtrail_types::FlowFilters, flowtrail_types::FilterError> {
        match &self.query {
            Some(raw) => flowtrail_types::FlowFilters::from_query(raw),
            None => flowtrail_types::FlowFilters::from_pairs(self.pairs()),
        }
    }

    /// True when some filter (not the cursor) is set.
    pub fn any(&self) -> bool {
        self.pairs().iter().any(|(name, _)| *name != "cursor")
    }

    /// Whether a flow that arrives live belongs in this list (see
    /// [`flowtrail_types::FlowFilters::admits`]); `None` when it cannot be judged here.
    pub fn admits(&self, flow: &flowtrail_types::FlowSummary) -> Option<bool> {
        self.parse().ok()?.admits(flow)
    }

    /// The export of every flow these filters select (`GET /api/v1/export`; the page's
    /// `limit` and `cursor` are not the export's) in `format` at `level`.
    pub fn export_href(&self, format: &str, level: &str) -> String {
        let mut href = format!("/api/v1/export?format={format}&level={level}");
        for (name, value) in self.pairs() {
            if name != "cursor" && name != "limit" {
                href.push_str(&format!("&{name}={}", crate::format::encode(value)));
            }
        }
        href
    }

    /// This view's address with another cursor (the next page).
    pub fn href_with_cursor(&self, cursor: &str) -> String {
        let mut href = format!("/?cursor={}", crate::format::encode(cursor));
        for (name, value) in self.pairs() {
            if name != "cursor" {
                href.push_str(&format!("&{name}={}", crate::format::encode(value)));
            }
        }
        href
    }
}
