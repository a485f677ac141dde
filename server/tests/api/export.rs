//! `GET /api/v1/export`: every flow the filters select, as JSON Lines or CSV, at the level of
//! flows, steps or observations — paged past the list's page size, nothing twice.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use crate::app::{app, error_code, other_flow};

/// 450 flows (more than two export pages): 300 of pipeline `a`, 150 of `b`, each with one
/// step holding one observation whose candidate id names the flow.
fn flow(n: u32) -> Value {
    let mut flow = other_flow(n);
    flow["pipeline"] = json!(if n.is_multiple_of(3) { "b" } else { "a" });
    flow["started_at"] = json!(format!("2026-11-21T10:{:02}:{:02}.000Z", n / 60, n % 60));
    flow["ended_at"] = Value::Null;
    flow["steps"][0]["observations"][0]["candidate_id"] = json!(format!("=C{n}"));
    flow
}

#[tokio::test]
async fn the_export_holds_every_selected_flow_at_each_level_in_both_formats() {
    let app = app().await;
    for n in 0..450 {
        let (status, _, body) = app.send(&flow(n)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    app.drain_all().await;

    // Flows, JSON Lines: every flow once, newest first.
    let (status, headers, body) = app.get("/api/v1/export?format=jsonl&level=flows").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/jsonl");
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 450);
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let starts: Vec<&str> = lines
        .iter()
        .map(|l| l["started_at"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 450, "nothing twice across pages");

    // The list's filters apply: pipeline b at the steps level.
    let (_, _, body) = app.get("/api/v1/export?pipeline=b&level=steps").await;
    let steps: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 150);
    assert_eq!(steps[0]["name"], "price_and_rating_filter");
    assert_eq!(steps[0]["candidates_in"], 5000);
    assert!(steps[0]["flow_id"].is_string());

    // Observations as CSV: a header, a row per observation, formulas neutralised.
    let (status, headers, body) = app
        .get("/api/v1/export?format=csv&level=observations&pipeline=a")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("flowtrail-observations.csv")
    );
    let text = String::from_utf8(body).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "flow_id,seq,step,candidate_id,verdict,score,reasons,attributes"
    );
    assert_eq!(rows.len(), 1 + 300);
    assert!(
        rows[1].contains(",'=C"),
        "a cell starting with = is prefixed: {}",
        rows[1]
    );
    assert!(rows[1].contains(",rejected,0.12,"), "{}", rows[1]);
    assert!(
        rows[1].contains(r#""[{""code"":""price_out_of_range"""#),
        "{}",
        rows[1]
    );
    // Parquet: the documented schema, every row, readable by the parquet crate's reader.
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let (status, headers, body) = app
        .get("/api/v1/export?format=parquet&level=observations&pipeline=a")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/vnd.apache.parquet"
    );
    let reader = ParquetRecordBatchReaderBuilder::try_new(axum::body::Bytes::from(body)).unwrap();
    let fields: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        fields,
        [
            "flow_id",
            "seq",
            "step",
            "candidate_id",
            "verdict",
            "score",
            "reasons",
            "attributes"
        ]
    );
    let batches: Vec<_> = reader.build().unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 300);
    let scores = batches[0]
        .column_by_name("score")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    assert_eq!(scores.value(0), 0.12);
    let (_, _, body) = app.get("/api/v1/export?format=parquet").await;
    let reader = ParquetRecordBatchReaderBuilder::try_new(axum::body::Bytes::from(body)).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 450);
    assert_eq!(
        reader
            .schema()
            .field_with_name("started_at")
            .unwrap()
            .data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
    );
}

#[tokio::test]
async fn export_parameters_are_checked_like_the_lists() {
    let app = app().await;
    for (query, field) in [
        ("format=xml", "format"),
        ("level=candidates", "level"),
        ("limit=5", "limit"),
        ("cursor=abc", "cursor"),
        ("status=done", "status"),
        ("min_eliminated=90", "min_eliminated"),
        // Given twice or empty: which one was meant cannot be known.
        ("format=csv&format=jsonl", "format"),
        ("level=steps&level=steps", "level"),
        ("format=", "format"),
        ("level=", "level"),
        // A mistyped or unknown parameter must not export every flow.
        ("pipline=a", "pipline"),
        ("format=csv&foo=bar", "foo"),
    ] {
        let (status, body) = app.get_json(&format!("/api/v1/export?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(error_code(&body), "validation_failed");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    // More tag filters than a statement can hold: refused by the list and the export alike,
    // not a database error (an "unavailable" 503 a client would retry for ever).
    let tags: String = (0..21).map(|n| format!("&tag=k{n}:v")).collect();
    for uri in [
        format!("/api/v1/export?format=csv{tags}"),
        format!("/api/v1/flows?{tags}"),
    ] {
        let (status, body) = app.get_json(&uri).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], "tag", "{body}");
    }
    let twenty: String = (0..20).map(|n| format!("&tag=k{n}:v")).collect();
    let (status, body) = app.get_json(&format!("/api/v1/flows?{twenty}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Nothing selected: an empty JSON Lines body, a CSV of the header alone.
    let (status, _, body) = app.get("/api/v1/export").await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    let (_, _, body) = app.get("/api/v1/export?format=csv").await;
    assert_eq!(String::from_utf8(body).unwrap().lines().count(), 1);
}
