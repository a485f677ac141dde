//! Real sockets and the real binary: the SDK against a server on port 0, and the CLI contract.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use flowtrail_domain::accounts::Scope;
use flowtrail_domain::ingest::processor;
use flowtrail_domain::{Services, StorageConfig};
use flowtrail_sdk::{Candidate, CapturePolicy, Client, StepKind};
use flowtrail_server::http::serve::{ReadTimeouts, serve};
use serde_json::{Value, json};

struct Live {
    url: String,
    key: String,
    services: Arc<Services>,
    /// Workers run until the fixture is dropped.
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

mod common;

async fn live() -> Live {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = common::fixture(addr, |_| {}).await;
    let app = fixture.router;
    // The server loop `flowtrail serve` runs, with its default read timeouts.
    tokio::spawn(serve(
        listener,
        app,
        ReadTimeouts::default(),
        std::future::pending(),
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(processor::run(
        fixture.services.clone(),
        Default::default(),
        shutdown,
    ));
    Live {
        url: format!("http://{addr}"),
        key: fixture.key,
        services: fixture.services,
        _stop: stop,
        _dir: fixture.dir,
    }
}

async fn get(live: &Live, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", live.url))
        .bearer_auth(&live.key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_sdk_records_is_what_the_api_returns() {
    let live = live().await;
    let (url, key) = (live.url.clone(), live.key.clone());
    // The SDK is synchronous on the caller's side: record on a plain thread.
    let (flow_id, stats) = tokio::task::spawn_blocking(move || {
        let client = Client::new(url, key).unwrap();
        let mut flow = client
            .flow("competitor_selection")
            .input(json!({"title": "laptop stand"}))
            .tag("env", "test");
        let id = flow.id();
        {
            let mut step = flow.step("keyword_generation", StepKind::Generate);
            step.output(json!({"keywords": ["laptop stand"]}))
                .reasoning("kept the product type");
            step.finish();
        }
        {
            let mut step = flow.step("price_filter", StepKind::Filter);
            step.capture(CapturePolicy::Full);
            for i in 0..2_000 {
                let candidate = if i % 4 == 0 {
                    Candidate::kept(format!("B0{i:06}"))
                } else {
                    Candidate::rejected(format!("B0{i:06}"))
                        .reason("price_out_of_range", format!("{i}.99 too cheap"))
                };
                step.observe(
                    candidate
                        .score(i as f64 / 2000.0)
                        .attr("price", i as f64 + 0.99),
                );
            }
            step.finish();
        }
        {
            // The default policy: the survivors and 50 rejected per reason; exact counts.
            let mut step = flow.step("judge", StepKind::Judge);
            for i in 0..2_000 {
                step.observe(if i % 4 == 0 {
                    Candidate::kept(format!("B0{i:06}"))
                } else {
                    Candidate::rejected(format!("B0{i:06}")).reason("off_topic", "not a stand")
                });
            }
            step.finish();
        }
        flow.succeed(json!({"selected": "B0000000"}));
        assert!(client.shutdown(Duration::from_secs(20)));
        (id, client.stats())
    })
    .await
    .unwrap();
    assert_eq!(
        (stats.queued, stats.sent, stats.failed, stats.dropped),
        (1, 1, 0, 0)
    );

    let path = format!("/api/v1/flows/{flow_id}");
    let mut flow = Value::Null;
    for _ in 0..250 {
        let (status, body) = get(&live, &path).await;
        if status == 200 {
            flow = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        flow["pipeline"], "competitor_selection",
        "the flow became queryable"
    );
    assert_eq!(flow["status"], "succeeded");
    assert_eq!(flow["sdk"]["name"], "flowtrail-rust");
    assert_eq!(flow["steps"][1]["candidates_in"], 2000);
    assert_eq!(flow["steps"][1]["candidates_out"], 500);
    assert_eq!(flow["steps"][1]["reasons"]["price_out_of_range"], 1500);
    let (status, observations) = get(&live, &format!("{path}/steps/1/observations")).await;
    assert_eq!(status, 200);
    let observations = observations["observations"].as_array().unwrap();
    assert_eq!(observations.len(), 2000);
    assert_eq!(observations[1]["candidate_id"], "B0000001");
    assert_eq!(observations[1]["verdict"], "rejected");
    assert_eq!(observations[1]["reasons"][0]["text"], "1.99 too cheap");
    assert_eq!(flow["steps"][1]["capture"], "full");
    assert_eq!(flow["steps"][2]["capture"], "sampled");
    assert_eq!(flow["steps"][2]["candidates_in"], 2000);
    assert_eq!(flow["steps"][2]["candidates_out"], 500);
    assert_eq!(flow["steps"][2]["reasons"]["off_topic"], 1500);
    let (_, sampled) = get(&live, &format!("{path}/steps/2/observations")).await;
    assert_eq!(sampled["observations"].as_array().unwrap().len(), 550);
    assert_eq!(live.services.queue.depth().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_counted_not_retried_and_never_raised() {
    let live = live().await;
    let url = live.url.clone();
    let stats = tokio::task::spawn_blocking(move || {
        let client = Client::new(url, "ftk_wrong").unwrap();
        client.flow("p").succeed(json!(null));
        assert!(client.flush(Duration::from_secs(10)));
        client.stats()
    })
    .await
    .unwrap();
    assert_eq!((stats.sent, stats.failed, stats.retried), (0, 1, 0));
}

fn flowtrail(args: &[&str], data: &std::path::Path, stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("FLOWTRAIL_DATABASE_URL")
        .env_remove("FLOWTRAIL_REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_cli_creates_users_and_prints_a_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = flowtrail(&["migrate"], dir.path(), None);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(dir.path().join("flowtrail.db").exists());

    let user = flowtrail(
        &[
            "admin",
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
            "--role",
            "admin",
        ],
        dir.path(),
        Some("a long password\n"),
    );
    assert!(
        user.status.success(),
        "{}",
        String::from_utf8_lossy(&user.stderr)
    );
    let again = flowtrail(
        &[
            "admin",
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        dir.path(),
        Some("a long password\n"),
    );
    assert!(!again.status.success(), "a duplicate e-mail is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let key = flowtrail(
        &[
            "admin",
            "create-api-key",
            "--team",
            "acme",
            "--name",
            "pipeline",
            "--scope",
            "ingest",
        ],
        dir.path(),
        None,
    );
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let stdout = String::from_utf8(key.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the key alone on stdout: {stdout:?}");
    assert!(lines[0].starts_with("ftk_") && lines[0].len() == 52);

    let services = Services::open(&StorageConfig::embedded(dir.path()))
        .await
        .unwrap();
    let stored = services.api_key(lines[0]).await.unwrap().unwrap();
    assert_eq!(
        (stored.team.slug.as_str(), stored.scope),
        ("acme", Scope::Ingest)
    );
    let user = services
        .authenticate("ops@example.com", "a long password")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.memberships[0].role,
        flowtrail_domain::accounts::Role::Admin
    );

    // An unreachable S3 endpoint is a clear start-up error, not a failure later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("FLOWTRAIL_OBJECT_STORE_URL", "s3://flowtrail/payloads")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("the object store does not answer"),
        "{stderr}"
    );

    let unsupported = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("FLOWTRAIL_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!unsupported.status.success());
    assert!(String::from_utf8_lossy(&unsupported.stderr).contains("unsupported database URL"));
}

/// Reads an event stream until `until` holds for the text read so far, or fails after 15 s.
async fn read_events(
    response: &mut reqwest::Response,
    seen: &mut String,
    until: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !until(seen) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no matching event within 15 s; got:\n{seen}"))
            .unwrap()
            .expect("the event stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn send(live: &Live, key: &str, body: &Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/flows", live.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_arrive_live_over_server_sent_events_for_their_team_only() {
    let live = live().await;
    live.services.metadata.ensure_team("other").await.unwrap();
    let other_key = live
        .services
        .create_api_key("other", "other", Scope::All)
        .await
        .unwrap();
    let mut events = reqwest::Client::new()
        .get(format!("{}/api/v1/events?pipeline=watched", live.url))
        .bearer_auth(&live.key)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut seen = String::new();
    read_events(&mut events, &mut seen, |text| text.contains("event: ready")).await;

    let flow = |id: &str, pipeline: &str| {
        json!({"id": id, "pipeline": pipeline, "status": "succeeded",
               "started_at": "2026-11-21T10:00:00Z", "steps": [
                   {"seq": 0, "name": "filter", "kind": "filter", "candidates_in": 10, "candidates_out": 2}]})
    };
    let foreign = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d0001";
    let unwatched = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d0002";
    let watched = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d0003";
    send(&live, &other_key, &flow(foreign, "watched")).await;
    send(&live, &live.key, &flow(unwatched, "elsewhere")).await;
    send(&live, &live.key, &flow(watched, "watched")).await;
    read_events(&mut events, &mut seen, |text| text.contains(watched)).await;

    assert!(
        !seen.contains(foreign),
        "another team's flow leaked:\n{seen}"
    );
    assert!(
        !seen.contains(unwatched),
        "the pipeline filter let a flow through:\n{seen}"
    );
    let data = seen
        .lines()
        .skip_while(|line| *line != "event: flow")
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap();
    let summary: Value = serde_json::from_str(data).unwrap();
    assert_eq!(summary["id"], watched);
    assert_eq!(summary["pipeline"], "watched");
    assert_eq!(summary["step_count"], 1);
    // The flow is queryable by the time its event arrives.
    let (status, _) = get(&live, &format!("/api/v1/flows/{watched}")).await;
    assert_eq!(status, 200);
}

#[test]
fn an_unreachable_redis_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("FLOWTRAIL_REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let bad = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("FLOWTRAIL_REDIS_URL", "http://not-redis")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("FLOWTRAIL_REDIS_URL"));
}

/// Polls `GET path` until `ready` holds for the answer, at most 5 s.
async fn poll(live: &Live, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..250 {
        let (status, body) = get(live, path).await;
        if status == 200 && ready(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never got there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_leaves_its_pushed_steps_and_a_finished_one_supersedes_them() {
    let live = live().await;
    let (url, key) = (live.url.clone(), live.key.clone());
    let (crashed, finished, stats) = tokio::task::spawn_blocking(move || {
        let mut config = flowtrail_sdk::Config::new(url, key);
        config.push_steps = true;
        let client = Client::with_config(config).unwrap();
        let run = |crash: bool| {
            let mut flow = client.flow("competitor_selection").tag("env", "test");
            let id = flow.id();
            for (name, kind) in [
                ("keywords", StepKind::Generate),
                ("price", StepKind::Filter),
            ] {
                let mut step = flow.step(name, kind);
                step.observe(Candidate::rejected("B0CASE0001").reason("price", "too cheap"));
                step.observe(Candidate::kept("B0STAND0042"));
                step.finish();
            }
            if crash {
                // The process dies here: the flow is never finished nor dropped.
                std::mem::forget(flow);
            } else {
                flow.succeed(json!({"selected": "B0STAND0042"}));
            }
            id
        };
        let crashed = run(true);
        let finished = run(false);
        assert!(client.shutdown(Duration::from_secs(20)));
        (crashed, finished, client.stats())
    })
    .await
    .unwrap();
    // Two pushes for each run, and the finished record of the second.
    assert_eq!((stats.queued, stats.sent, stats.failed), (5, 5, 0));
    let partial = poll(&live, &format!("/api/v1/flows/{crashed}"), |f| {
        f["step_count"] == 2
    })
    .await;
    assert_eq!(partial["status"], "running", "the partial trail is kept");
    assert_eq!(partial["steps"][1]["name"], "price");
    let done = poll(&live, &format!("/api/v1/flows/{finished}"), |f| {
        f["status"] == "succeeded"
    })
    .await;
    assert_eq!(
        done["version"], 3,
        "one version per push, then the finished record"
    );
    assert_eq!(done["step_count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_flow_replays_its_boundaries_without_calling_out() {
    let live = live().await;
    let (url, key) = (live.url.clone(), live.key.clone());
    let recorded = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key.clone());
        move || {
            let client = Client::new(url, key).unwrap();
            let mut flow = client.flow("competitor_selection");
            let id = flow.id();
            let mut step = flow.step("keywords", StepKind::Generate);
            let words: Vec<String> = step
                .boundary("llm.keywords", "laptop stand", || {
                    vec!["laptop stand".to_string(), "desk riser".to_string()]
                })
                .unwrap();
            let score: f64 = step
                .boundary("llm.score", &json!({"w": words}), || 0.75)
                .unwrap();
            step.output(json!({"score": score}));
            step.finish();
            flow.succeed(json!({}));
            assert!(client.shutdown(Duration::from_secs(20)));
            id
        }
    })
    .await
    .unwrap();
    let stored = poll(&live, &format!("/api/v1/flows/{recorded}"), |_| true).await;
    assert_eq!(stored["steps"][0]["boundaries"][0]["name"], "llm.keywords");
    assert_eq!(stored["steps"][0]["boundaries"][1]["output"], 0.75);

    tokio::task::spawn_blocking(move || {
        let replay =
            flowtrail_sdk::Replay::fetch(&url, &key, recorded, Duration::from_secs(5)).unwrap();
        assert_eq!(replay.remaining(), 2);
        let client = Client::new(url.clone(), key.clone()).unwrap();
        let mut flow = client.replay("competitor_selection", replay.clone());
        let mut step = flow.step("keywords", StepKind::Generate);
        let words: Vec<String> = step
            .boundary("llm.keywords", "laptop stand", || -> Vec<String> {
                panic!("a replay never calls out")
            })
            .unwrap();
        assert_eq!(words, vec!["laptop stand", "desk riser"]);
        let score: f64 = step
            .boundary("llm.score", &json!({"w": words}), || -> f64 {
                panic!("no call")
            })
            .unwrap();
        assert_eq!(score, 0.75);
        // Called once more than recorded: an error, not a call.
        let again = step.boundary("llm.score", &json!({}), || -> f64 { panic!("no call") });
        assert!(matches!(
            again,
            Err(flowtrail_sdk::Error::ReplayMissing { .. })
        ));
        step.finish();
        flow.succeed(json!({}));

        // Another input than recorded: an error naming both.
        let mut flow = client.replay("competitor_selection", replay);
        let mut step = flow.step("keywords", StepKind::Generate);
        let changed = step.boundary("llm.keywords", "phone case", || -> Vec<String> {
            panic!("no call")
        });
        match changed {
            Err(flowtrail_sdk::Error::ReplayMismatch {
                recorded, given, ..
            }) => {
                assert_eq!(
                    (recorded, given),
                    (json!("laptop stand"), json!("phone case"))
                );
            }
            other => panic!("{other:?}"),
        }
        step.finish();
        flow.succeed(json!({}));
        assert!(client.shutdown(Duration::from_secs(20)));
        let missing =
            flowtrail_sdk::Replay::fetch(&url, &key, uuid::Uuid::now_v7(), Duration::from_secs(5));
        assert!(matches!(missing, Err(flowtrail_sdk::Error::ReplayFetch(_))));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_the_export_to_stdout_and_its_totals_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let services = std::sync::Arc::new(
        flowtrail_domain::Services::open(&flowtrail_domain::StorageConfig::embedded(dir.path()))
            .await
            .unwrap(),
    );
    services.bootstrap(None).await.unwrap();
    let team = services
        .metadata
        .team_by_slug("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    for (n, pipeline) in [(1, "a"), (2, "b"), (3, "a")] {
        let flow = serde_json::json!({
            "id": format!("01936b2e-7c4a-7cc0-9a57-4c1f0e6d000{n}"), "pipeline": pipeline,
            "status": "succeeded", "started_at": format!("2026-11-21T10:00:0{n}Z"),
            "steps": [{"seq": 0, "name": "filter", "kind": "filter", "observations": [
                {"candidate_id": format!("C{n}"), "verdict": "kept"},
                {"candidate_id": "@SUM(A1)", "verdict": "rejected"}]}]
        });
        flowtrail_domain::ingest::submit(&services, team, None, flow.to_string().as_bytes(), None)
            .await
            .unwrap();
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(flowtrail_domain::ingest::processor::run(
        services.clone(),
        Default::default(),
        shutdown,
    ));
    while services.queue.depth().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    worker.await.unwrap();
    drop(services);

    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flowtrail"))
            .arg("export")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let output = export(&["pipeline=a", "--format", "csv", "--level", "observations"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(
        lines[1].starts_with("01936b2e-7c4a-7cc0-9a57-4c1f0e6d0003,0,filter,C3,kept"),
        "{csv}"
    );
    assert!(csv.contains(",'@SUM(A1),rejected"), "{csv}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("exported 2 flows, 4 rows"));

    let output = export(&[]);
    let flows: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(flows.len(), 3);
    assert_eq!(flows[0]["pipeline"], "a");

    let refused = export(&["status=done"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("(status)"));
    // The format is a flag; in the filters it would be ambiguous.
    let refused = export(&["format=csv"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--format"));
    let parquet = export(&["--format", "parquet", "--level", "steps"]);
    assert!(parquet.status.success());
    assert!(parquet.stdout.starts_with(b"PAR1") && parquet.stdout.ends_with(b"PAR1"));
    // The filters as options, combined with a query string; into a file with --output.
    let file = dir.path().join("a.jsonl");
    let output = export(&[
        "--pipeline",
        "a",
        "since=2026-11-21T10:00:02Z",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.contains("6d0003"), "{written}");
    // A refused export leaves no file behind, not even a partial one.
    let missing = dir.path().join("never.csv");
    let refused = export(&["--status", "done", "-o", missing.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(!missing.exists());
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("partial"))
            .count(),
        0
    );

    // A bare word is not a filter (it would export every flow); a directory is not a file;
    // `-o -` is stdout.
    let refused = export(&["a"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a filter"));
    let refused = export(&["-o", dir.path().to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is a directory"));
    let output = export(&["--pipeline", "a", "-o", "-"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("6d0003"));
    assert!(!std::path::Path::new("-").exists(), "no file named -");
    // A link is followed: the file it names is replaced, the link stays a link; the file's
    // mode is kept.
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let target = dir.path().join("target.jsonl");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink("target.jsonl", &link).unwrap();
        let output = export(&["--pipeline", "a", "-o", link.to_str().unwrap()]);
        assert!(output.status.success(), "{output:?}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let written = std::fs::read_to_string(&target).unwrap();
        assert_eq!(written.lines().count(), 2, "{written}");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A dangling link: the file is made where it points.
        let dangling = dir.path().join("dangling.jsonl");
        std::os::unix::fs::symlink("made.jsonl", &dangling).unwrap();
        let output = export(&["--pipeline", "a", "-o", dangling.to_str().unwrap()]);
        assert!(output.status.success(), "{output:?}");
        assert!(
            std::fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("made.jsonl"))
                .unwrap()
                .lines()
                .count(),
            2
        );
        // A device and a FIFO are written in place (no temporary file beside /dev/null).
        let output = export(&["--pipeline", "a", "-o", "/dev/null"]);
        assert!(output.status.success(), "{output:?}");
        let output = export(&["--pipeline", "a", "-o", "/dev/stdout"]);
        assert!(output.status.success(), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
        let fifo = dir.path().join("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        let output = export(&["--pipeline", "a", "-o", fifo.to_str().unwrap()]);
        assert!(output.status.success(), "{output:?}");
        let through = reader.join().unwrap();
        assert_eq!(through.lines().count(), 2, "{through}");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo(),
            "the FIFO is not replaced by a file"
        );
    }

    // A mistyped data directory is an error, not a new empty deployment.
    let nowhere = dir.path().join("typo");
    let output = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(["export", "--data-dir"])
        .arg(&nowhere)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no Flow Trail data in"));
    assert!(!nowhere.exists());

    // A bundle of two flows, imported into another deployment: refused whole when tampered,
    // imported once, then skipped.
    let bundle = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args([
            "bundle",
            "01936b2e-7c4a-7cc0-9a57-4c1f0e6d0001",
            "01936b2e-7c4a-7cc0-9a57-4c1f0e6d0003",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        bundle.status.success(),
        "{}",
        String::from_utf8_lossy(&bundle.stderr)
    );
    let other = tempfile::tempdir().unwrap();
    let services = Services::open(&StorageConfig::embedded(other.path()))
        .await
        .unwrap();
    services.bootstrap(None).await.unwrap();
    drop(services);
    let import = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_flowtrail"))
            .arg("import")
            .arg(file)
            .arg("--data-dir")
            .arg(other.path())
            .output()
            .unwrap()
    };
    let mut tar = zstd::stream::decode_all(bundle.stdout.as_slice()).unwrap();
    let at = tar.windows(4).position(|w| w == b"\"C3\"").unwrap();
    tar[at + 2] = b'4';
    let forged = other.path().join("forged.ft");
    std::fs::write(
        &forged,
        zstd::stream::encode_all(tar.as_slice(), 3).unwrap(),
    )
    .unwrap();
    let refused = import(&forged);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("checksum mismatch") && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    // Not a bundle: refused from its first bytes, even an endless input.
    let refused = import(std::path::Path::new("/dev/zero"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a Flow Trail bundle"));
    // Two bundles joined are not one.
    let joined = other.path().join("joined.ft");
    std::fs::write(
        &joined,
        [bundle.stdout.clone(), bundle.stdout.clone()].concat(),
    )
    .unwrap();
    let refused = import(&joined);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("follow the bundle"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let file = other.path().join("two.ft");
    std::fs::write(&file, &bundle.stdout).unwrap();
    for expected in ["\"imported\": 2", "\"skipped\": 2"] {
        let output = import(&file);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report = String::from_utf8(output.stdout).unwrap();
        assert!(report.contains(expected), "{report}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args(["export", "--data-dir"])
        .arg(other.path())
        .output()
        .unwrap();
    let flows: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(flows.len(), 2);
    assert!(
        flows.iter().all(|f| f["imported_at"].is_string()),
        "{flows:?}"
    );
}

/// `flowtrail admin evaluate-alerts` on a server's data: evaluates every rule now, prints
/// what it did as JSON; a second run keeps the open alert rather than opening another.
#[tokio::test]
async fn the_cli_evaluates_the_alert_rules_now() {
    let dir = tempfile::tempdir().unwrap();
    let services =
        flowtrail_domain::Services::open(&flowtrail_domain::StorageConfig::embedded(dir.path()))
            .await
            .unwrap();
    let team = services.bootstrap(None).await.unwrap();
    // No flow at all in the last hour: "fewer than 1 flow per hour" holds.
    let rule: flowtrail_types::alerts::AlertRuleInput = serde_json::from_value(json!({
        "name": "pipeline stopped", "pipeline": "ranker", "metric": "flows_per_hour",
        "comparison": "below", "threshold": 1, "min_flows": 1
    }))
    .unwrap();
    services
        .metadata
        .create_alert_rule(
            team.id,
            &rule.validated().unwrap(),
            flowtrail_domain::millis::now_ms(),
        )
        .await
        .unwrap();
    drop(services);
    for (run, (opened, kept)) in [(1, 0), (0, 1)].into_iter().enumerate() {
        let out = flowtrail(&["admin", "evaluate-alerts"], dir.path(), None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["rules"], 1, "run {run}: {report}");
        assert_eq!(
            (report["opened"].as_u64(), report["kept"].as_u64()),
            (Some(opened), Some(kept)),
            "run {run}: {report}"
        );
    }
}

/// What a raw client reads from `addr` after sending `request` and then nothing more: the
/// bytes until the server closes the connection (or 10 s pass), and how long that took.
fn stall(addr: std::net::SocketAddr, request: &[u8]) -> (String, Duration) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    // A reset after the answer counts as closed too.
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Slow HTTP (OWASP: slowloris, slow POST): a connection that sends nothing and a request
/// head that never ends get their connection closed once the head timeout passes, and a body that stalls is answered 400
/// `malformed_json` once the body timeout passes — neither holds a connection for ever,
/// and the server keeps answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_its_request_is_cut_off() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = common::fixture(addr, |_| {}).await;
    let timeouts = ReadTimeouts {
        head: Duration::from_secs(1),
        body_idle: Duration::from_secs(1),
    };
    tokio::spawn(serve(
        listener,
        fixture.router,
        timeouts,
        std::future::pending(),
    ));
    let key = fixture.key.clone();
    let (silent, head, body, healthy) = tokio::task::spawn_blocking(move || {
        // A client that connects and sends nothing at all.
        let silent = stall(addr, b"");
        let head = stall(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: flowtrail\r\nX-Slow: 1",
        );
        let body = stall(
            addr,
            format!(
                "POST /api/v1/flows HTTP/1.1\r\nHost: flowtrail\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"id\": "
            )
            .as_bytes(),
        );
        let healthy = stall(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: flowtrail\r\nConnection: close\r\n\r\n",
        );
        (silent, head, body, healthy)
    })
    .await
    .unwrap();
    assert!(
        silent.1 >= Duration::from_millis(900) && silent.1 < Duration::from_secs(8),
        "the silent connection was cut off after {:?}: {:?}",
        silent.1,
        silent.0
    );
    assert!(
        head.1 >= Duration::from_millis(900) && head.1 < Duration::from_secs(8),
        "the unfinished head was cut off after {:?}: {:?}",
        head.1,
        head.0
    );
    assert!(!head.0.contains("200 OK"), "{:?}", head.0);
    assert!(
        body.1 >= Duration::from_millis(900) && body.1 < Duration::from_secs(8),
        "the stalled body was cut off after {:?}: {:?}",
        body.1,
        body.0
    );
    assert!(body.0.starts_with("HTTP/1.1 400"), "{:?}", body.0);
    assert!(body.0.contains("malformed_json"), "{:?}", body.0);
    assert!(healthy.0.starts_with("HTTP/1.1 200"), "{:?}", healthy.0);
}
