//! `GET /api/v1/export`: the flows the list's filters select, as JSON Lines, CSV or Parquet
//! ([`parquet`]), at the level of flows, steps or observations — streamed (the body is written as rows are read,
//! so memory stays flat whatever the size). A failure mid-way aborts the body: a client never
//! takes a cut export for a whole one.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flowtrail_domain::flows::export::{Level, Row};
use flowtrail_types::FlowFilters;
use flowtrail_types::filters::FILTER_NAMES;
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::{ErrorBody, FlowStatus, StepKind};
use serde_json::Value;
use tokio::sync::mpsc;

mod parquet;

use super::auth::Reader;
use super::error::ApiError;
use super::flows::query_pairs;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/export", get(export))
}

/// The export's file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    JsonLines,
    Csv,
    Parquet,
}

/// Rows into the bytes of one format.
pub(crate) enum Encoder {
    JsonLines,
    Csv(CsvRows),
    Parquet(Box<parquet::ParquetRows>),
}

impl Encoder {
    pub(crate) fn new(format: Format, level: Level) -> Result<Self, String> {
        Ok(match format {
            Format::JsonLines => Encoder::JsonLines,
            Format::Csv => Encoder::Csv(CsvRows::new(level)),
            Format::Parquet => Encoder::Parquet(Box::new(
                parquet::ParquetRows::new(level).map_err(|e| e.to_string())?,
            )),
        })
    }

    /// What comes before the first row (CSV's header row).
    pub(crate) fn header(&self) -> Option<Bytes> {
        match self {
            Encoder::Csv(csv) => Some(csv.header()),
            _ => None,
        }
    }

    /// The bytes of a row, when there are some to write now.
    pub(crate) fn row(&mut self, row: &Row) -> Result<Option<Bytes>, String> {
        match self {
            Encoder::JsonLines => Ok(Some(json_line(row))),
            Encoder::Csv(csv) => Ok(Some(csv.row(row))),
            Encoder::Parquet(parquet) => parquet.row(row).map_err(|e| e.to_string()),
        }
    }

    /// What comes after the last row (Parquet's last row group and footer).
    pub(crate) fn finish(self) -> Result<Option<Bytes>, String> {
        match self {
            Encoder::Parquet(parquet) => parquet.finish().map(Some).map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }
}

/// `GET /api/v1/export`.
#[utoipa::path(
    get, path = "/api/v1/export", tag = "query",
    params(
        ("format" = Option<String>, Query, pattern = "^(jsonl|csv|parquet)$", description = "jsonl (default), csv or parquet"),
        ("level" = Option<String>, Query, pattern = "^(flows|steps|observations)$", description = "flows (default), steps or observations"),
        ("pipeline" = Option<String>, Query, description = "Pipeline name (the flows list's filters follow; not limit or cursor: the export holds every flow they select; any other parameter is refused)"),
        ("status" = Option<FlowStatus>, Query, description = "running, succeeded or failed"),
        ("tag" = Option<Vec<String>>, Query, description = "key:value; repeatable (at most 20), all must match"),
        ("since" = Option<String>, Query, description = "RFC 3339; flows started at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; flows started before"),
        ("q" = Option<String>, Query, description = "Full-text, as on the flows list"),
        ("step_kind" = Option<StepKind>, Query, description = "With min_eliminated: a step of this kind"),
        ("min_eliminated" = Option<f64>, Query, minimum = 0, maximum = 1, description = "0 to 1: share of candidates_in not passed on"),
        ("step" = Option<String>, Query, description = "A step of this name (with reason: that step counted it)"),
        ("reason" = Option<String>, Query, description = "A step counted at least one rejection with this reason code (its exact counts, not only recorded observations)"),
    ),
    responses(
        (status = 200, description = "Streamed: JSON Lines (`application/jsonl`, one object per row), CSV with a header row (`text/csv`) or Parquet (`application/vnd.apache.parquet`, zstd, a row group per 8,192 rows); newest flow first, steps in order"),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 422, description = "A parameter is invalid (see field)", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Reader(caller): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (filters, format, level) = parse(raw.as_deref().unwrap_or_default())?;
    let format = format.unwrap_or(Format::JsonLines);
    let level = level.unwrap_or(Level::Flows);
    let (rows_tx, mut rows_rx) = mpsc::channel::<Row>(64);
    let (bytes_tx, bytes_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let services = state.services.clone();
    let team_id = caller.team_id;
    let producer = async move { services.export(team_id, filters, level, rows_tx).await };
    let mut encoder = Encoder::new(format, level).map_err(|error| {
        tracing::error!(%error, "an export's encoder did not start");
        ApiError::Internal
    })?;
    let writer = {
        let bytes_tx = bytes_tx.clone();
        async move {
            let failed = |error: String| Err(std::io::Error::other(error));
            if let Some(header) = encoder.header()
                && bytes_tx.send(Ok(header)).await.is_err()
            {
                return;
            }
            while let Some(row) = rows_rx.recv().await {
                let bytes = match encoder.row(&row) {
                    // Buffered (a Parquet row group filling up): stop when nobody reads.
                    Ok(None) if bytes_tx.is_closed() => return,
                    Ok(None) => continue,
                    Ok(Some(bytes)) => Ok(bytes),
                    Err(error) => failed(error),
                };
                if bytes_tx.send(bytes).await.is_err() {
                    return;
                }
            }
            match encoder.finish() {
                Ok(None) => {}
                Ok(Some(bytes)) => {
                    let _ = bytes_tx.send(Ok(bytes)).await;
                }
                Err(error) => {
                    let _ = bytes_tx.send(failed(error)).await;
                }
            }
        }
    };
    tokio::spawn(async move {
        let (exported, ()) = tokio::join!(producer, writer);
        if let Err(error) = exported {
            tracing::error!(%error, "an export failed mid-way; its body is aborted");
            let _ = bytes_tx
                .send(Err(std::io::Error::other(error.to_string())))
                .await;
        }
    });
    let (content_type, extension) = match format {
        Format::JsonLines => ("application/jsonl", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Parquet => ("application/vnd.apache.parquet", "parquet"),
    };
    let name = match level {
        Level::Flows => "flows",
        Level::Steps => "steps",
        Level::Observations => "observations",
    };
    let mut response = (
        StatusCode::OK,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(bytes_rx)),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"flowtrail-{name}.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The list's filters, the format and the level (when given) from a query string. Errors
/// name the parameter (422): an unknown or empty format or level, one given twice, `limit`
/// or `cursor`, a parameter that is not a filter (a typo must not export every flow), a
/// filter the flows list refuses.
pub(crate) fn parse(raw: &str) -> Result<(FlowFilters, Option<Format>, Option<Level>), ApiError> {
    let (mut format, mut level) = (None, None);
    let mut filters = Vec::new();
    for (name, value) in query_pairs(raw)? {
        match name.as_str() {
            "format" => {
                if format.is_some() {
                    return Err(ApiError::invalid("format", "format is given twice"));
                }
                format = Some(match value.trim() {
                    "jsonl" => Format::JsonLines,
                    "csv" => Format::Csv,
                    "parquet" => Format::Parquet,
                    _ => {
                        return Err(ApiError::invalid(
                            "format",
                            "format is jsonl, csv or parquet",
                        ));
                    }
                })
            }
            "level" => {
                if level.is_some() {
                    return Err(ApiError::invalid("level", "level is given twice"));
                }
                level = Some(Level::parse(value.trim()).ok_or_else(|| {
                    ApiError::invalid("level", "level is flows, steps or observations")
                })?)
            }
            "limit" | "cursor" => {
                return Err(ApiError::invalid(
                    name.clone(),
                    format!(
                        "{name} is not an export parameter: the export holds every flow the filters select"
                    ),
                ));
            }
            _ if FILTER_NAMES.contains(&name.as_str()) => filters.push((name, value)),
            // A mistyped filter (`pipline=`) must not export every flow.
            _ => {
                return Err(ApiError::invalid(
                    name.clone(),
                    format!(
                        "{name:?} is not an export parameter (the flows list's filters: {}; \
                         and format, level)",
                        FILTER_NAMES.join(", ")
                    ),
                ));
            }
        }
    }
    let filters =
        FlowFilters::from_pairs(filters).map_err(|e| ApiError::invalid(e.field, e.message))?;
    Ok((filters, format, level))
}

/// A row as one line of JSON.
pub(crate) fn json_line(row: &Row) -> Bytes {
    let mut line = serde_json::to_vec(row).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// CSV rows of one level: fixed columns, objects and lists as JSON text.
pub(crate) struct CsvRows {
    columns: &'static [&'static str],
}

impl CsvRows {
    pub(crate) fn new(level: Level) -> Self {
        let columns: &'static [&'static str] = match level {
            Level::Flows => &[
                "id",
                "version",
                "pipeline",
                "status",
                "started_at",
                "ended_at",
                "tags",
                "error",
                "step_count",
                "ingested_at",
                "largest_elimination",
                "imported_at",
            ],
            Level::Steps => &[
                "flow_id",
                "seq",
                "parent_seq",
                "name",
                "kind",
                "status",
                "started_at",
                "ended_at",
                "candidates_in",
                "candidates_out",
                "reasons",
                "capture",
                "observation_count",
                "reasoning",
                "input",
                "output",
                "span_id",
                "parent_span_id",
                "boundaries",
            ],
            Level::Observations => &[
                "flow_id",
                "seq",
                "step",
                "candidate_id",
                "verdict",
                "score",
                "reasons",
                "attributes",
            ],
        };
        CsvRows { columns }
    }

    pub(crate) fn header(&self) -> Bytes {
        record(self.columns.iter().map(|c| c.to_string()))
    }

    pub(crate) fn row(&mut self, row: &Row) -> Bytes {
        let value = serde_json::to_value(row).unwrap_or(Value::Null);
        record(self.columns.iter().map(|column| cell(value.get(column))))
    }
}

/// One CSV record (RFC 4180, through the `csv` crate).
fn record(cells: impl Iterator<Item = String>) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(cells.collect::<Vec<_>>());
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// A cell: text as is, numbers and booleans as written, null as empty, objects and lists as
/// JSON. Text starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with
/// `'`, so that a spreadsheet never runs it as a formula (OWASP, "CSV Injection").
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => {
            if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{text}")
            } else {
                text.clone()
            }
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}
