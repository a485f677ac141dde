//! OpenTelemetry in: OTLP/HTTP (`POST /v1/traces`, protobuf and JSON) and OTLP/gRPC
//! exports become flows, steps and candidates — across batches, re-sends and bad input.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use prost::Message;
use serde_json::Value;

use crate::app::{TestApp, app, app_with};

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const T0: u64 = 1_764_000_000_000_000_000;

fn s(value: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, s(value))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(
        key,
        Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    )
}

fn double(key: &str, value: f64) -> KeyValue {
    kv(
        key,
        Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
    )
}

fn span_id(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 0, 0, 0, 0xa0, n]
}

/// Span `n` of [`TRACE`] under `parent`, from `start` to `end` ms after `T0`.
fn span(
    n: u8,
    parent: Option<u8>,
    name: &str,
    start: u64,
    end: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: span_id(n),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.into(),
        kind: 1,
        start_time_unix_nano: T0 + start * 1_000_000,
        end_time_unix_nano: T0 + end * 1_000_000,
        attributes,
        ..Default::default()
    }
}

/// The five spans of a competitor-selection pipeline instrumented with OpenInference and
/// Flow Trail's conventions: root (1), retriever (2), reranker (3), LLM judge with candidate
/// events (4), selection with exact counts (5).
fn pipeline_spans() -> Vec<Span> {
    let mut retriever = vec![
        text("openinference.span.kind", "RETRIEVER"),
        text("input.value", "laptop stand"),
    ];
    for (i, (id, score)) in [("B0STAND42", 0.91), ("B0CASE01", 0.40), ("B0DESK07", 0.77)]
        .iter()
        .enumerate()
    {
        retriever.push(text(&format!("retrieval.documents.{i}.document.id"), id));
        retriever.push(double(
            &format!("retrieval.documents.{i}.document.score"),
            *score,
        ));
        retriever.push(text(
            &format!("retrieval.documents.{i}.document.content"),
            &format!("{id} text"),
        ));
    }
    let mut reranker = vec![
        text("openinference.span.kind", "RERANKER"),
        int("reranker.top_k", 2),
    ];
    for (i, id) in ["B0STAND42", "B0CASE01", "B0DESK07"].iter().enumerate() {
        reranker.push(text(
            &format!("reranker.input_documents.{i}.document.id"),
            id,
        ));
    }
    for (i, (id, score)) in [("B0STAND42", 0.95), ("B0DESK07", 0.62)].iter().enumerate() {
        reranker.push(text(
            &format!("reranker.output_documents.{i}.document.id"),
            id,
        ));
        reranker.push(double(
            &format!("reranker.output_documents.{i}.document.score"),
            *score,
        ));
    }
    let mut judge = span(
        4,
        Some(1),
        "llm_judge",
        30,
        40,
        vec![
            text("openinference.span.kind", "EVALUATOR"),
            text("llm.model_name", "judge-1"),
            text("flowtrail.reasoning", "a desk is not a laptop stand"),
        ],
    );
    judge.events = vec![
        Event {
            name: "flowtrail.candidate".into(),
            attributes: vec![
                text("candidate_id", "B0STAND42"),
                text("verdict", "kept"),
                double("score", 0.9),
            ],
            ..Default::default()
        },
        Event {
            name: "flowtrail.candidate".into(),
            attributes: vec![
                text("candidate_id", "B0DESK07"),
                text("verdict", "rejected"),
                double("score", 0.2),
                text("reason.code", "wrong_category"),
                text("reason.text", "a desk, not a stand"),
                text("attr.category", "Desks"),
            ],
            ..Default::default()
        },
        Event {
            name: "exception".into(),
            ..Default::default()
        },
    ];
    vec![
        span(
            1,
            None,
            "competitor_selection",
            0,
            60,
            vec![
                text("openinference.span.kind", "CHAIN"),
                text("input.value", r#"{"title": "Adjustable laptop stand"}"#),
                text("input.mime_type", "application/json"),
                text("output.value", "B0STAND42"),
                text("flowtrail.tag.seller", "S1"),
            ],
        ),
        span(2, Some(1), "retrieve", 5, 10, retriever),
        span(3, Some(1), "rerank", 12, 20, reranker),
        judge,
        span(
            5,
            Some(1),
            "select",
            45,
            50,
            vec![
                text("flowtrail.step.kind", "select"),
                int("flowtrail.candidates_in", 1),
                int("flowtrail.candidates_out", 1),
            ],
        ),
    ]
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "competitor-service"),
                    text("flowtrail.tag.env", "test"),
                    text("telemetry.sdk.name", "opentelemetry"),
                    text("telemetry.sdk.language", "rust"),
                    text("telemetry.sdk.version", "0.33.0"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

impl TestApp {
    /// Posts raw bytes to `/v1/traces` with `content_type`: status, headers, body.
    async fn post_otlp(
        &self,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let request = Request::post("/v1/traces")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        self.call(request).await
    }

    /// Exports `request` as protobuf; the decoded answer.
    async fn export(&self, request: &ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let (status, headers, body) = self
            .post_otlp("application/x-protobuf", request.encode_to_vec())
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
        ExportTraceServiceResponse::decode(body.as_slice()).unwrap()
    }
}

/// The flow id of [`TRACE`].
fn flow_id() -> String {
    uuid::Uuid::from_bytes(TRACE).to_string()
}

/// Checks the stored pipeline flow: fields, steps in start order, kinds, nesting, counts
/// and verdicts, nothing duplicated.
async fn check_pipeline_flow(app: &TestApp) {
    let (status, flow) = app.get_json(&format!("/api/v1/flows/{}", flow_id())).await;
    assert_eq!(status, StatusCode::OK, "{flow}");
    assert_eq!(flow["pipeline"], "competitor_selection");
    assert_eq!(flow["status"], "succeeded");
    assert_eq!(flow["input"]["title"], "Adjustable laptop stand");
    assert_eq!(flow["output"], "B0STAND42");
    assert_eq!(flow["tags"]["seller"], "S1");
    assert_eq!(flow["tags"]["env"], "test");
    assert_eq!(flow["sdk"]["name"], "opentelemetry-rust");
    let steps = flow["steps"].as_array().unwrap();
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "competitor_selection",
            "retrieve",
            "rerank",
            "llm_judge",
            "select"
        ],
        "one step per span, in start order"
    );
    let kinds: Vec<_> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["custom", "retrieve", "rank", "judge", "select"]);
    let seqs: Vec<_> = steps.iter().map(|s| s["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert!(steps[0].get("parent_seq").is_none_or(Value::is_null));
    for step in &steps[1..] {
        assert_eq!(step["parent_seq"], 0, "{step}");
        assert_eq!(step["parent_span_id"], "000000000000a001");
    }
    assert_eq!(steps[1]["span_id"], "000000000000a002");
    // Retriever: three documents kept.
    assert_eq!(
        (
            steps[1]["candidates_in"].as_u64(),
            steps[1]["candidates_out"].as_u64()
        ),
        (Some(3), Some(3))
    );
    // Reranker: 3 in, 2 out, one rejected below the top 2.
    assert_eq!(
        (
            steps[2]["candidates_in"].as_u64(),
            steps[2]["candidates_out"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(steps[2]["reasons"]["not_in_top_k"], 1);
    let (_, observations) = app
        .get_json(&format!("/api/v1/flows/{}/steps/2/observations", flow_id()))
        .await;
    let observations = observations["observations"].as_array().unwrap();
    assert_eq!(observations.len(), 3);
    let rejected: Vec<_> = observations
        .iter()
        .filter(|o| o["verdict"] == "rejected")
        .map(|o| o["candidate_id"].as_str().unwrap())
        .collect();
    assert_eq!(rejected, ["B0CASE01"]);
    // Judge: events as observations with reasons and attributes.
    assert_eq!(steps[3]["reasoning"], "a desk is not a laptop stand");
    assert_eq!(steps[3]["reasons"]["wrong_category"], 1);
    let (_, judged) = app
        .get_json(&format!("/api/v1/flows/{}/steps/3/observations", flow_id()))
        .await;
    let desk = judged["observations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["candidate_id"] == "B0DESK07")
        .unwrap()
        .clone();
    assert_eq!(desk["verdict"], "rejected");
    assert_eq!(desk["score"], 0.2);
    assert_eq!(desk["reasons"][0]["text"], "a desk, not a stand");
    assert_eq!(desk["attributes"]["category"], "Desks");
    // Selection: exact counts without observations.
    assert_eq!(steps[4]["capture"], "counts_only");
    assert_eq!(steps[4]["candidates_in"], 1);
    // The journey of a candidate runs through the steps.
    let (status, journey) = app
        .get_json(&format!("/api/v1/flows/{}/candidates/B0DESK07", flow_id()))
        .await;
    assert_eq!(status, StatusCode::OK, "{journey}");
}

#[tokio::test]
async fn spans_over_several_batches_out_of_order_and_resent_become_one_flow() {
    let app = app().await;
    let spans = pipeline_spans();
    // Children first (a batch span processor exports them as they end), the root last with
    // one child again; then the first batch re-sent.
    let first = request(vec![spans[3].clone(), spans[1].clone()]);
    let response = app.export(&first).await;
    assert_eq!(response.partial_success, None);
    app.drain_all().await;
    let (_, running) = app.get_json(&format!("/api/v1/flows/{}", flow_id())).await;
    assert_eq!(running["status"], "running", "no root yet: {running}");
    assert_eq!(
        running["pipeline"], "competitor-service",
        "named by service.name until the root arrives"
    );
    assert_eq!(running["steps"].as_array().unwrap().len(), 2);

    app.export(&request(vec![
        spans[2].clone(),
        spans[4].clone(),
        spans[0].clone(),
        spans[1].clone(),
    ]))
    .await;
    let (replayed, _, _) = app
        .post_otlp("application/x-protobuf", first.encode_to_vec())
        .await;
    assert_eq!(replayed, StatusCode::OK);
    app.drain_all().await;
    check_pipeline_flow(&app).await;

    // A late span never reopens the finished flow; a re-send of everything adds nothing.
    app.export(&request(spans.clone())).await;
    app.export(&request(vec![span(6, Some(1), "late", 70, 80, vec![])]))
        .await;
    app.drain_all().await;
    let (_, flow) = app.get_json(&format!("/api/v1/flows/{}", flow_id())).await;
    assert_eq!(flow["status"], "succeeded");
    let names: Vec<_> = flow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "competitor_selection",
            "retrieve",
            "rerank",
            "llm_judge",
            "select",
            "late"
        ]
    );
    let (_, list) = app.get_json("/api/v1/flows").await;
    assert_eq!(
        list["flows"].as_array().unwrap().len(),
        1,
        "one flow per trace"
    );
}

#[tokio::test]
async fn otlp_json_with_hex_ids_is_accepted_and_answered_in_json() {
    let app = app().await;
    let body = serde_json::to_vec(&request(pipeline_spans())).unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(
        text.contains("\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "OTLP/JSON ids are hex: {text:.300}"
    );
    let (status, headers, answer) = app.post_otlp("application/json", body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert!(
        answer.get("partialSuccess").is_none_or(Value::is_null),
        "{answer}"
    );
    app.drain_all().await;
    check_pipeline_flow(&app).await;
}

/// The `google.rpc.Status` of an error answer in protobuf: its code and message.
fn rpc_status(body: &[u8]) -> (i32, String) {
    #[derive(Clone, PartialEq, Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let status = RpcStatus::decode(body).expect("a google.rpc.Status");
    (status.code, status.message)
}

#[tokio::test]
async fn bad_exports_get_clear_answers_and_store_nothing_half() {
    let app = app().await;
    // Undecodable protobuf: 400 with a Status in protobuf, INVALID_ARGUMENT.
    let (status, headers, body) = app
        .post_otlp("application/x-protobuf", vec![0x0a, 0xff, 0xff, 0x01])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    let (code, message) = rpc_status(&body);
    assert_eq!(code, 3, "{message}");
    assert!(message.contains("ExportTraceServiceRequest"), "{message}");
    // Undecodable JSON: 400 with a JSON Status.
    let (status, _, body) = app
        .post_otlp("application/json", b"{\"resourceSpans\": 7}".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], 3);
    // Another content type: 415, answered in JSON.
    let (status, _, body) = app.post_otlp("text/plain", b"spans".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application/x-protobuf"),
        "{body}"
    );
    // Another method: 405, Allow: POST, a JSON Status.
    let (status, headers, body) = app.get("/v1/traces").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 12);
    // No API key: 401 as a Status.
    let unauthenticated = Request::post("/v1/traces")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Body::from(request(pipeline_spans()).encode_to_vec()))
        .unwrap();
    let (status, _, body) = app.call(unauthenticated).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(rpc_status(&body).0, 16);
    // No API key and no content type: still 401 (nothing is said about the body first).
    let (status, _, body) = app
        .call(Request::post("/v1/traces").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 16);

    // A zero trace id, a bad span id and attributes nested past the limit: those spans are
    // refused and counted; the good span of the same request is stored.
    let mut zero = span(1, None, "zero", 0, 1, vec![]);
    zero.trace_id = vec![0; 16];
    let mut short = span(2, None, "short", 0, 1, vec![]);
    short.span_id = vec![1, 2, 3];
    let nested_value = |levels: usize| {
        let mut deep = AnyValue {
            value: Some(any_value::Value::IntValue(1)),
        };
        for _ in 0..levels {
            deep = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![deep],
                })),
            };
        }
        deep
    };
    // Nested past what protobuf decoding allows: the request is refused whole.
    let too_deep = span(
        3,
        None,
        "nested",
        0,
        1,
        vec![kv("deep", Some(nested_value(100)))],
    );
    let (status, _, body) = app
        .post_otlp(
            "application/x-protobuf",
            request(vec![too_deep]).encode_to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        rpc_status(&body).1.contains("recursion limit"),
        "{:?}",
        rpc_status(&body)
    );
    let nested = span(
        3,
        None,
        "nested",
        0,
        1,
        vec![kv("deep", Some(nested_value(40)))],
    );
    let good = span(4, None, "good", 0, 1, vec![]);
    let response = app.export(&request(vec![zero, short, nested, good])).await;
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial.error_message.contains("all zeros"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("\"deep\""),
        "{}",
        partial.error_message
    );
    app.drain_all().await;
    let (_, flow) = app.get_json(&format!("/api/v1/flows/{}", flow_id())).await;
    let names: Vec<_> = flow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [Value::from("good")]);

    // A failed root makes a failed flow with the status message as its error.
    let mut failed = span(9, None, "failing_pipeline", 0, 5, vec![]);
    failed.trace_id = vec![7; 16];
    failed.status = Some(Status {
        message: "judge timed out".into(),
        code: status::StatusCode::Error as i32,
    });
    app.export(&request(vec![failed])).await;
    app.drain_all().await;
    let (_, flow) = app
        .get_json(&format!(
            "/api/v1/flows/{}",
            uuid::Uuid::from_bytes([7; 16])
        ))
        .await;
    assert_eq!(flow["status"], "failed");
    assert_eq!(flow["error"], "judge timed out");
}

#[tokio::test]
async fn a_request_of_more_spans_than_the_limit_is_refused_whole() {
    let app = app_with(|config| config.max_body_bytes = 16 * 1024 * 1024).await;
    let spans: Vec<Span> = (0..10_001u32)
        .map(|i| {
            let mut span = span(1, None, "s", 0, 1, vec![]);
            span.span_id = [&[1u8, 0, 0, 0][..], &i.to_be_bytes()[..]].concat();
            span
        })
        .collect();
    let (status, _, body) = app
        .post_otlp("application/x-protobuf", request(spans).encode_to_vec())
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, message) = rpc_status(&body);
    assert_eq!(code, 3);
    assert!(message.contains("10000"), "{message}");
    assert_eq!(
        app.services.queue.depth().await.unwrap(),
        0,
        "nothing queued"
    );
}

#[tokio::test]
async fn otlp_grpc_exports_are_stored_and_need_an_ingest_key() {
    let app = app().await;
    let config = flowtrail_server::HttpConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        app._dir.path().join("site"),
    );
    let (_, state) = flowtrail_server::build_app_and_state(app.services.clone(), &config)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(flowtrail_server::otlp::grpc::serve(
        state,
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    let anonymous = client.export(request(pipeline_spans())).await.unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    let mut call = tonic::Request::new(request(pipeline_spans()));
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.key).parse().unwrap(),
    );
    let response = client.export(call).await.unwrap().into_inner();
    assert_eq!(response.partial_success, None);
    app.drain_all().await;
    check_pipeline_flow(&app).await;

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_opentelemetry_sdk_exports_a_pipeline_over_otlp_http() {
    use opentelemetry::KeyValue as Kv;
    use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};

    let app = app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let key = app.key.clone();
    // The SDK's batch processor exports from its own thread with a blocking client.
    let trace_id = tokio::task::spawn_blocking(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("http://{addr}/v1/traces"))
            .with_headers([("authorization".to_string(), format!("Bearer {key}"))].into())
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("rust-pipeline")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("flowtrail-test");
        let trace_id = tracer.in_span("keyword_pipeline", |cx| {
            cx.span()
                .set_attribute(Kv::new("input.value", "laptop stand"));
            tracer.in_span("generate_keywords", |cx| {
                let span = cx.span();
                span.set_attribute(Kv::new("gen_ai.operation.name", "chat"));
                span.set_attribute(Kv::new(
                    "gen_ai.output.messages",
                    r#"[{"role":"assistant","parts":["stand"]}]"#,
                ));
            });
            tracer.in_span("filter", |cx| {
                let span = cx.span();
                span.set_attribute(Kv::new("flowtrail.step.kind", "filter"));
                span.set_attribute(Kv::new("flowtrail.candidates_in", 10_i64));
                span.set_attribute(Kv::new("flowtrail.candidates_out", 4_i64));
                span.set_attribute(Kv::new("flowtrail.reason.price_out_of_range", 6_i64));
                span.add_event(
                    "flowtrail.candidate",
                    vec![
                        Kv::new("candidate_id", "B0CASE01"),
                        Kv::new("verdict", "rejected"),
                        Kv::new("reason.code", "price_out_of_range"),
                        Kv::new("score", 0.1),
                    ],
                );
            });
            cx.span().span_context().trace_id()
        });
        provider.shutdown().unwrap();
        trace_id
    })
    .await
    .unwrap();
    app.drain_all().await;
    let id = uuid::Uuid::from_bytes(trace_id.to_bytes());
    let (status, flow) = app.get_json(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{flow}");
    assert_eq!(flow["pipeline"], "keyword_pipeline");
    assert_eq!(flow["status"], "succeeded");
    assert_eq!(flow["input"], "laptop stand");
    assert_eq!(flow["sdk"]["name"], "opentelemetry-rust");
    let steps = flow["steps"].as_array().unwrap();
    let kinds: Vec<_> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["custom", "generate", "filter"]);
    assert_eq!(steps[1]["output"][0]["parts"][0], "stand");
    assert_eq!(steps[2]["capture"], "sampled");
    assert_eq!(
        (
            steps[2]["candidates_in"].as_u64(),
            steps[2]["candidates_out"].as_u64()
        ),
        (Some(10), Some(4))
    );
    assert_eq!(steps[2]["reasons"]["price_out_of_range"], 6);
}

/// A trace `n` (its own trace id) with `spans`.
fn traced(n: u8, mut spans: Vec<Span>) -> Vec<Span> {
    for span in &mut spans {
        span.trace_id = vec![n; 16];
    }
    spans
}

#[tokio::test]
async fn what_is_accepted_is_stored_and_what_cannot_be_is_refused_at_once() {
    let app = app().await;
    // A span naming itself as its parent, and one with a 3-byte parent id: refused, counted;
    // the root and the good child of the same trace are stored.
    let mut own_parent = span(3, Some(3), "own_parent", 2, 3, vec![]);
    own_parent.parent_span_id = span_id(3);
    let mut short_parent = span(4, Some(1), "short_parent", 2, 3, vec![]);
    short_parent.parent_span_id = vec![1, 2, 3];
    let response = app
        .export(&request(traced(
            1,
            vec![
                span(1, None, "root", 0, 10, vec![]),
                span(2, Some(1), "child", 1, 2, vec![]),
                own_parent,
                short_parent,
            ],
        )))
        .await;
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 2, "{}", partial.error_message);
    assert!(
        partial.error_message.contains("itself as its parent"),
        "{}",
        partial.error_message
    );

    // Tags adding up over requests past the limit (64): the first ones kept, nothing lost.
    let tags = |prefix: &str, n: usize| -> Vec<KeyValue> {
        (0..n)
            .map(|i| text(&format!("flowtrail.tag.{prefix}{i:02}"), "v"))
            .collect()
    };
    app.export(&request(traced(
        2,
        vec![span(2, Some(1), "child", 1, 2, tags("a", 40))],
    )))
    .await;
    app.drain_all().await;
    app.export(&request(traced(
        2,
        vec![span(1, None, "root", 0, 10, tags("r", 30))],
    )))
    .await;

    // A root without a start time (0) that ended: stored, finished, not before its start.
    let mut no_start = span(1, None, "no_start", 0, 10, vec![]);
    no_start.start_time_unix_nano = 0;
    app.export(&request(traced(3, vec![no_start]))).await;

    // A tag value past the text limit refuses its span only.
    let big = "x".repeat(70_000);
    let response = app
        .export(&request(traced(
            4,
            vec![
                span(1, None, "root", 0, 10, vec![]),
                span(
                    2,
                    Some(1),
                    "big_tag",
                    1,
                    2,
                    vec![text("flowtrail.tag.big", &big)],
                ),
            ],
        )))
        .await;
    assert_eq!(response.partial_success.unwrap().rejected_spans, 1);

    // Counts that are no counts refuse their span; a JSON input with a number storage would
    // round is kept as its text.
    let response = app
        .export(&request(traced(
            5,
            vec![
                span(
                    1,
                    None,
                    "root",
                    0,
                    10,
                    vec![
                        text("input.value", r#"{"n": 123456789012345678901234567890}"#),
                        text("input.mime_type", "application/json"),
                    ],
                ),
                span(
                    2,
                    Some(1),
                    "negative",
                    1,
                    2,
                    vec![int("flowtrail.candidates_in", -1)],
                ),
                span(
                    3,
                    Some(1),
                    "text",
                    1,
                    2,
                    vec![text("flowtrail.reason.price", "many")],
                ),
            ],
        )))
        .await;
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 2, "{}", partial.error_message);
    assert!(
        partial.error_message.contains("whole number"),
        "{}",
        partial.error_message
    );

    // 1,001 spans of one trace in one request: the earliest 1,000 kept, the last refused.
    let many: Vec<Span> = (0..1_001u32)
        .map(|i| {
            let mut span = span(1, None, "s", u64::from(i) + 1, u64::from(i) + 2, vec![]);
            span.span_id = [&[2u8, 0, 0, 0][..], &i.to_be_bytes()[..]].concat();
            span.parent_span_id = span_id(1);
            span
        })
        .collect();
    let mut many = traced(6, many);
    many.insert(
        0,
        traced(6, vec![span(1, None, "root", 0, 5_000, vec![])]).remove(0),
    );
    let big_app = app_with(|config| config.max_body_bytes = 4 * 1024 * 1024).await;
    let response = big_app.export(&request(many)).await;
    assert_eq!(response.partial_success.unwrap().rejected_spans, 2);
    big_app.drain_all().await;
    let (_, flow) = big_app
        .get_json(&format!(
            "/api/v1/flows/{}",
            uuid::Uuid::from_bytes([6; 16])
        ))
        .await;
    assert_eq!(flow["steps"].as_array().unwrap().len(), 1_000);
    assert_eq!(
        flow["status"], "succeeded",
        "the root starts first and is kept"
    );

    app.drain_all().await;
    let dead = app.services.queue.dead_letters(None, 100).await.unwrap();
    assert!(
        dead.is_empty(),
        "nothing accepted is dead-lettered: {dead:?}"
    );
    let flow = |n: u8| {
        let app = &app;
        async move {
            app.get_json(&format!(
                "/api/v1/flows/{}",
                uuid::Uuid::from_bytes([n; 16])
            ))
            .await
            .1
        }
    };
    let one = flow(1).await;
    assert_eq!(one["status"], "succeeded");
    let names: Vec<_> = one["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [Value::from("root"), Value::from("child")]);
    let two = flow(2).await;
    assert_eq!(two["status"], "succeeded", "{two}");
    assert_eq!(two["tags"].as_object().unwrap().len(), 64);
    assert_eq!(two["steps"].as_array().unwrap().len(), 2);
    let three = flow(3).await;
    assert_eq!(three["status"], "succeeded", "{three}");
    assert_eq!(three["started_at"], three["ended_at"]);
    assert_eq!(flow(4).await["steps"].as_array().unwrap().len(), 1);
    let five = flow(5).await;
    assert_eq!(
        five["input"], r#"{"n": 123456789012345678901234567890}"#,
        "kept as text, not rounded"
    );
}
