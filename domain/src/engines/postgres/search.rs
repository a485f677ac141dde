//! Full-text search on PostgreSQL: the flow's `search` column (a `tsvector` kept by
//! `writes.rs`) matched word by word or a candidate id matched whole (`flow_candidates`), the list's other filters, order and paging shared with
//! SQLite (`engines/sql/flows.rs`).

use flowtrail_types::{FlowFilters, FlowSummary};
use sqlx::{Postgres, QueryBuilder};

use super::Database;
use crate::Result;
use crate::engines::sql::flows::{FLOW_COLUMNS, LIST_ORDER, push_flow_filters};
use crate::engines::sql::rows::flow_summary;
use crate::flows::search_query;

/// The first `want` flows whose search document matches every word of `text`, in list order.
pub(crate) async fn search_flows(
    db: &Database,
    team_id: i64,
    filters: &FlowFilters,
    text: &str,
    want: i64,
) -> Result<Vec<FlowSummary>> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {FLOW_COLUMNS} FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
         WHERE f.team_id = "
    ));
    sql.push_bind(team_id);
    push_flow_filters(&mut sql, filters);
    let words: Vec<(&str, String)> = text
        .split_whitespace()
        .filter_map(|word| Some((word, ts_query(word)?)))
        .collect();
    if words.is_empty() {
        // The user asked for text and typed nothing searchable: nothing matches.
        return Ok(Vec::new());
    }
    // Every word: as PostgreSQL's own parser reads it (so `0.5x` or `9.99` match as they were
    // indexed), or as a phrase of its alphanumeric tokens with a prefix. Or the whole text is
    // a candidate id of the flow (the candidate index holds every id; the `tsvector` only
    // the start of a large flow's text).
    sql.push(" AND ((true");
    for (word, tsquery) in words {
        sql.push(" AND f.search @@ (phraseto_tsquery('simple', ")
            .push_bind(word.to_string())
            .push(") || to_tsquery('simple', ")
            .push_bind(tsquery)
            .push("))");
    }
    sql.push(") OR f.id IN (SELECT c.flow_id FROM flow_candidates c WHERE c.team_id = ")
        .push_bind(team_id)
        .push(" AND c.candidate_id = ")
        .push_bind(text.trim().to_string())
        .push("))");
    sql.push(LIST_ORDER).push_bind(want);
    let rows = sql.build().fetch_all(&db.read).await?;
    rows.iter().map(flow_summary).collect()
}

/// Whether every flow of the team passing `filters` (but the text) had its whole search
/// document indexed (see `writes::SEARCH_DOCUMENT_CHARS`).
pub(crate) async fn search_complete(
    db: &Database,
    team_id: i64,
    filters: &FlowFilters,
) -> Result<bool> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT NOT EXISTS (SELECT 1 FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
         WHERE f.search_partial AND f.team_id = ",
    );
    sql.push_bind(team_id);
    let unfiltered = FlowFilters {
        text: None,
        cursor: None,
        ..filters.clone()
    };
    push_flow_filters(&mut sql, &unfiltered);
    sql.push(")");
    Ok(sql.build_query_scalar().fetch_one(&db.read).await?)
}

/// A PostgreSQL `tsquery` for what the user typed: every word a phrase of its tokens (which
/// are alphanumeric, so no operator can be injected), the last token a prefix.
fn ts_query(text: &str) -> Option<String> {
    search_query(
        text,
        |tokens| format!("({}:*)", tokens.join(" <-> ")),
        " & ",
    )
}
