//! The official OpenTelemetry Python SDK and exporters (from PyPI, in the virtual environment
//! `scripts/setup.sh test` makes at `target/otel-venv`) export a traced pipeline
//! (`tests/otel/pipeline.py`) to a real server over OTLP/HTTP protobuf, OTLP/JSON and
//! OTLP/gRPC. Each export must become one finished flow with the steps, kinds, counts and
//! verdicts the mapping promises — stored once, although the first batch is sent twice.
//!
//! Needs the feature `python-tests` (scripts/test.sh turns it on); without the virtual
//! environment the test fails and says how to make it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flowtrail_domain::Services;
use flowtrail_domain::ingest::processor;
use serde_json::Value;
use uuid::Uuid;

mod common;

/// The server under test: the API and OTLP/HTTP on one port, OTLP/gRPC on another, and a
/// processor storing what arrives. Everything stops when it is dropped.
struct Server {
    url: String,
    grpc: SocketAddr,
    key: String,
    services: Arc<Services>,
    http: reqwest::Client,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = common::fixture(addr, |_| {}).await;
    // Served instead of the fixture's router: this one's state is what the gRPC receiver
    // answers with, one application behind both ports as `flowtrail serve` runs it.
    drop(fixture.router);
    let config = flowtrail_server::HttpConfig::new(addr, fixture.dir.path().join("site"));
    let (router, state) = flowtrail_server::build_app_and_state(fixture.services.clone(), &config)
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = grpc_listener.local_addr().unwrap();
    let mut grpc_shutdown = shutdown.clone();
    tokio::spawn(flowtrail_server::otlp::grpc::serve(
        state,
        grpc_listener,
        async move {
            let _ = grpc_shutdown.changed().await;
        },
    ));
    tokio::spawn(processor::run(
        fixture.services.clone(),
        Default::default(),
        shutdown,
    ));
    Server {
        url: format!("http://{addr}"),
        grpc,
        key: fixture.key,
        services: fixture.services,
        http: reqwest::Client::new(),
        _stop: stop,
        _dir: fixture.dir,
    }
}

impl Server {
    /// `GET path` with the API key: status and JSON body.
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Flow `id` once it is finished and nothing is left in the queue.
    async fn finished_flow(&self, id: Uuid) -> Value {
        let mut last = Value::Null;
        for _ in 0..500 {
            let (status, flow) = self.get(&format!("/api/v1/flows/{id}")).await;
            if status == 200
                && flow["status"] != "running"
                && self.services.queue.depth().await.unwrap() == 0
            {
                return flow;
            }
            last = flow;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("flow {id} was not stored and finished within 10 s; last answer: {last}");
    }
}

/// The Python of the virtual environment with the OpenTelemetry packages:
/// `FLOWTRAIL_OTEL_PYTHON`, else `target/otel-venv/bin/python`.
fn python() -> PathBuf {
    let python = std::env::var_os("FLOWTRAIL_OTEL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/otel-venv/bin/python")
        });
    assert!(
        python.is_file(),
        "no Python with the OpenTelemetry SDK at {}: run `scripts/setup.sh test` (or set \
         FLOWTRAIL_OTEL_PYTHON to a Python that has the packages it installs)",
        python.display()
    );
    python
}

/// Runs `tests/otel/pipeline.py` over `transport`; the trace id it printed, as a flow id.
async fn export_pipeline(python: &PathBuf, transport: &str, server: &Server) -> Uuid {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/otel/pipeline.py"
        ))
        .args([transport, "--url", &server.url, "--key", &server.key])
        .arg("--grpc")
        .arg(server.grpc.to_string());
    // The SDK reads its configuration from `OTEL_*` too: none of the caller's may leak in.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    let output = command.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The export requests it made, shown with a failure further on.
    eprintln!("pipeline.py {transport}:\n{stderr}");
    assert!(
        output.status.success(),
        "pipeline.py {transport} failed ({}):\n{stderr}",
        output.status
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let trace_id = stdout.strip_suffix('\n').unwrap_or(&stdout);
    assert!(
        trace_id.len() == 32
            && trace_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "pipeline.py {transport} printed {stdout:?}, not a trace id; stderr:\n{stderr}"
    );
    Uuid::parse_str(trace_id).unwrap()
}

/// A count of a step as a number, for comparing several at once.
fn count(step: &Value, field: &str) -> Option<u64> {
    step[field].as_u64()
}

/// Checks what the exported pipeline became: the flow, its five steps in start order with
/// kinds and nesting, the reranker's and judge's candidates and the selection's counts.
async fn check_pipeline_flow(server: &Server, transport: &str, id: Uuid) {
    let flow = server.finished_flow(id).await;
    let context = format!("over {transport}: {flow}");
    assert_eq!(flow["status"], "succeeded", "{context}");
    assert_eq!(flow["pipeline"], "competitor_selection", "{context}");
    assert_eq!(
        flow["input"]["title"], "Adjustable laptop stand",
        "input.value in JSON is JSON {context}"
    );
    assert_eq!(flow["output"], "B0STAND42", "{context}");
    assert_eq!(flow["tags"]["env"], "test", "a resource tag {context}");
    assert_eq!(flow["tags"]["seller"], "S1", "a span tag {context}");
    assert_eq!(flow["sdk"]["name"], "opentelemetry-python", "{context}");

    let steps = flow["steps"].as_array().unwrap();
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            Some("competitor_selection"),
            Some("retrieve"),
            Some("rerank"),
            Some("llm_judge"),
            Some("select")
        ],
        "one step per span, in start order, none twice {context}"
    );
    let kinds: Vec<_> = steps.iter().map(|s| s["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            Some("custom"),
            Some("retrieve"),
            Some("rank"),
            Some("judge"),
            Some("select")
        ],
        "{context}"
    );
    let seqs: Vec<_> = steps.iter().map(|s| s["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        [Some(0), Some(1), Some(2), Some(3), Some(4)],
        "{context}"
    );
    assert!(
        steps[0].get("parent_seq").is_none_or(Value::is_null),
        "{context}"
    );
    let root_span = steps[0]["span_id"].as_str().unwrap_or_default();
    assert_eq!(root_span.len(), 16, "span ids in hex {context}");
    for step in &steps[1..] {
        assert_eq!(step["parent_seq"], 0, "{step} {context}");
        assert_eq!(step["parent_span_id"], root_span, "{step} {context}");
    }

    // Retriever: the three documents kept.
    assert_eq!(
        (
            count(&steps[1], "candidates_in"),
            count(&steps[1], "candidates_out")
        ),
        (Some(3), Some(3)),
        "{context}"
    );
    // Reranker: 3 in, 2 out, one rejected below the top 2.
    assert_eq!(
        (
            count(&steps[2], "candidates_in"),
            count(&steps[2], "candidates_out")
        ),
        (Some(3), Some(2)),
        "{context}"
    );
    assert_eq!(steps[2]["reasons"]["not_in_top_k"], 1, "{context}");
    let (status, reranked) = server
        .get(&format!("/api/v1/flows/{id}/steps/2/observations"))
        .await;
    assert_eq!(status, 200, "{reranked}");
    let reranked = reranked["observations"].as_array().unwrap();
    let mut verdicts: Vec<_> = reranked
        .iter()
        .map(|o| (o["candidate_id"].as_str(), o["verdict"].as_str()))
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        [
            (Some("B0CASE01"), Some("rejected")),
            (Some("B0DESK07"), Some("kept")),
            (Some("B0STAND42"), Some("kept"))
        ],
        "over {transport}: {reranked:?}"
    );

    // Judge: the candidate events as observations, with reasons and attributes.
    assert_eq!(
        steps[3]["reasoning"], "a desk is not a laptop stand",
        "{context}"
    );
    assert_eq!(steps[3]["reasons"]["wrong_category"], 1, "{context}");
    let (status, judged) = server
        .get(&format!("/api/v1/flows/{id}/steps/3/observations"))
        .await;
    assert_eq!(status, 200, "{judged}");
    let judged = judged["observations"].as_array().unwrap();
    let mut verdicts: Vec<_> = judged
        .iter()
        .map(|o| (o["candidate_id"].as_str(), o["verdict"].as_str()))
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        [
            (Some("B0DESK07"), Some("rejected")),
            (Some("B0STAND42"), Some("kept"))
        ],
        "over {transport}: {judged:?}"
    );
    let desk = judged
        .iter()
        .find(|o| o["candidate_id"] == "B0DESK07")
        .unwrap();
    assert_eq!(desk["score"], 0.2, "over {transport}: {desk}");
    assert_eq!(desk["reasons"][0]["code"], "wrong_category", "{desk}");
    assert_eq!(desk["reasons"][0]["text"], "a desk, not a stand", "{desk}");
    assert_eq!(desk["attributes"]["category"], "Desks", "{desk}");

    // Selection: exact counts, no observations.
    assert_eq!(steps[4]["capture"], "counts_only", "{context}");
    assert_eq!(
        (
            count(&steps[4], "candidates_in"),
            count(&steps[4], "candidates_out")
        ),
        (Some(1), Some(1)),
        "{context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_opentelemetry_sdk_exports_a_pipeline_over_each_otlp_transport() {
    let python = python();
    let server = server().await;
    let mut flows = Vec::new();
    for transport in ["http", "json", "grpc"] {
        let id = export_pipeline(&python, transport, &server).await;
        check_pipeline_flow(&server, transport, id).await;
        flows.push(id);
    }
    flows.sort();
    flows.dedup();
    assert_eq!(flows.len(), 3, "a new trace each run");
    let (status, list) = server.get("/api/v1/flows").await;
    assert_eq!(status, 200, "{list}");
    let mut listed: Vec<_> = list["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        flows.into_iter().map(Some).collect::<Vec<_>>(),
        "one flow per export, none twice despite the re-sent batch: {list}"
    );
}
