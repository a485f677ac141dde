//! The SDK against a misbehaving backend: refusing connections, hung (accepts, never answers),
//! answering 500 and 429, then recovering. The host's loop must never wait for it, nothing may
//! be stored twice, what was spooled must arrive, and the counters must add up exactly.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowtrail_sdk::{Candidate, Client, Config, Redaction, Stats, StepKind};
use serde_json::{Value, json};

/// How the fake backend answers.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Accept,
    Hang,
    Status(u16),
}

/// An answer given before the mode applies: status and `Retry-After` seconds.
type Scripted = (u16, Option<u64>);

/// A tiny HTTP/1.1 backend on a loopback port. Every request is logged; accepted flows are
/// recorded by idempotency key (as the real server stores them once per key).
#[derive(Clone)]
struct Backend {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    /// Idempotency key → how many times it was accepted.
    stored: Arc<Mutex<HashMap<String, u32>>>,
    /// Every request: (idempotency key, body as JSON).
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// Non-202 answers still to give before `mode` applies (e.g. two 500s, then accept).
    script: Arc<Mutex<Vec<Scripted>>>,
}

impl Backend {
    fn start(mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend = Backend {
            port: listener.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(mode)),
            stored: Arc::default(),
            requests: Arc::default(),
            script: Arc::default(),
        };
        let serving = backend.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let backend = serving.clone();
                std::thread::spawn(move || backend.serve(stream));
            }
        });
        backend
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut headers = HashMap::new();
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let trimmed = line.trim_end();
                if trimmed.is_empty() {
                    break;
                }
                if let Some((name, value)) = trimmed.split_once(':') {
                    headers.insert(name.trim().to_lowercase(), value.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if headers.get("content-encoding").map(String::as_str) == Some("zstd") {
                body = zstd::stream::decode_all(body.as_slice()).unwrap();
            }
            let key = headers.get("idempotency-key").cloned().unwrap_or_default();
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            self.requests.lock().unwrap().push((key.clone(), json));
            let scripted = {
                let mut script = self.script.lock().unwrap();
                (!script.is_empty()).then(|| script.remove(0))
            };
            let mode = *self.mode.lock().unwrap();
            let (status, retry_after) = match (scripted, mode) {
                (Some(answer), _) => answer,
                (None, Mode::Hang) => loop {
                    std::thread::sleep(Duration::from_secs(3600));
                },
                (None, Mode::Status(status)) => (status, None),
                (None, Mode::Accept) => {
                    *self.stored.lock().unwrap().entry(key).or_default() += 1;
                    (202, None)
                }
            };
            let mut answer = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n");
            if let Some(seconds) = retry_after {
                answer.push_str(&format!("retry-after: {seconds}\r\n"));
            }
            answer.push_str("content-length: 2\r\n\r\n{}");
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// Waits until `n` distinct flows are stored, at most 20 s.
    fn wait_stored(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.stored.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} flows arrived",
                self.stored.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn config(url: &str) -> Config {
    let mut config = Config::new(url, "ftk_test");
    config.request_timeout = Duration::from_millis(300);
    config.backoff_base = Duration::from_millis(10);
    config
}

/// Records one small flow the way a pipeline would.
fn run_pipeline(client: &Client, n: usize) {
    let mut flow = client.flow("faults").input(json!({"n": n}));
    {
        let mut step = flow.step("filter", StepKind::Filter);
        for i in 0..20 {
            step.observe(Candidate::rejected(format!("C{i}")).reason("price", "too cheap"));
        }
        step.observe(Candidate::kept("winner"));
        step.finish();
    }
    flow.succeed(json!({"selected": "winner"}));
}

fn balanced(stats: &Stats) -> bool {
    stats.queued + stats.unspooled
        == stats.sent + stats.failed + stats.dropped + stats.spooled + stats.pending
}

#[test]
fn a_hung_backend_never_holds_the_host_and_the_spool_delivers_after_recovery() {
    let backend = Backend::start(Mode::Hang);
    let spool = tempfile::tempdir().unwrap();
    let mut config = config(&backend.url());
    // Memory holds 100 flows, the hand-off to the spool 100 more: the burst fits whatever the
    // disk's speed, so nothing is dropped.
    config.queue_capacity = 100;
    config.max_attempts = 2;
    config.spool_dir = Some(spool.path().to_path_buf());
    let client = Client::with_config(config).unwrap();

    // 200 runs while every request hangs: if the host waited for one request (300 ms timeout,
    // 2 attempts each), this loop would take a minute.
    let started = Instant::now();
    for n in 0..200 {
        run_pipeline(&client, n);
    }
    let host_loop = started.elapsed();
    assert!(
        host_loop < Duration::from_secs(5),
        "the host loop took {host_loop:?}"
    );
    let stats = client.stats();
    assert!(balanced(&stats), "{stats:?}");
    assert_eq!(stats.queued, 200);
    assert_eq!(stats.sent, 0);

    // Recovery: everything arrives, each flow stored once.
    backend.set(Mode::Accept);
    backend.wait_stored(200);
    assert!(client.flush(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.stats().sent < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stored = backend.stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 200);
    assert!(stored.values().all(|n| *n == 1), "stored twice: {stored:?}");
    let stats = client.stats();
    assert!(balanced(&stats), "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(
        stats.spooled > 0,
        "the memory queue overflowed to the spool: {stats:?}"
    );
    assert_eq!(stats.unspooled, stats.spooled, "{stats:?}");
    assert_eq!(stats.sent, 200, "{stats:?}");
    assert!(
        std::fs::read_dir(spool.path()).unwrap().next().is_none(),
        "spool emptied"
    );
}

#[test]
fn errors_and_rate_limits_are_retried_under_one_idempotency_key() {
    let backend = Backend::start(Mode::Accept);
    *backend.script.lock().unwrap() = vec![(500, None), (503, Some(1)), (429, Some(1))];
    let client = Client::with_config(config(&backend.url())).unwrap();
    let started = Instant::now();
    run_pipeline(&client, 0);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "recording does not send"
    );
    assert!(client.flush(Duration::from_secs(10)));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After is honoured"
    );
    let requests = backend.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|(key, _)| *key == requests[0].0));
    assert_eq!(backend.stored.lock().unwrap().len(), 1);
    let stats = client.stats();
    assert_eq!(
        (stats.sent, stats.retried, stats.failed),
        (1, 3, 0),
        "{stats:?}"
    );
    assert!(balanced(&stats));
}

#[test]
fn a_refused_flow_is_final_and_counted() {
    let backend = Backend::start(Mode::Status(422));
    let client = Client::with_config(config(&backend.url())).unwrap();
    run_pipeline(&client, 0);
    assert!(client.flush(Duration::from_secs(5)));
    assert_eq!(
        backend.requests.lock().unwrap().len(),
        1,
        "a 422 is not retried"
    );
    let stats = client.stats();
    assert_eq!((stats.sent, stats.failed), (0, 1));
    assert!(balanced(&stats));
}

#[test]
fn a_restarted_process_delivers_what_the_last_one_spooled() {
    // Nothing listens on this port: connections are refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let spool = tempfile::tempdir().unwrap();
    let mut first = config(&url);
    first.max_attempts = 2;
    first.spool_dir = Some(spool.path().to_path_buf());
    let client = Client::with_config(first).unwrap();
    for n in 0..10 {
        run_pipeline(&client, n);
    }
    let started = Instant::now();
    client.shutdown(Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown keeps to its timeout"
    );
    let stats = client.stats();
    assert_eq!(stats.spooled, 10, "{stats:?}");
    assert!(balanced(&stats), "{stats:?}");
    drop(client);
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 10);
    #[cfg(unix)]
    for entry in std::fs::read_dir(spool.path()).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "a spool file is owner-only: {mode:o}");
    }

    // The next process, same spool, a backend that answers.
    let backend = Backend::start(Mode::Accept);
    let mut next = config(&backend.url());
    next.spool_dir = Some(spool.path().to_path_buf());
    let client = Client::with_config(next).unwrap();
    backend.wait_stored(10);
    // The last 202 may still be on its way back to the client.
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.stats().unspooled < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = client.stats();
    assert_eq!(
        (stats.queued, stats.unspooled, stats.sent),
        (0, 10, 10),
        "{stats:?}"
    );
    assert!(balanced(&stats), "{stats:?}");
    let bodies = backend.requests.lock().unwrap().clone();
    assert!(bodies.iter().all(|(_, body)| body["pipeline"] == "faults"));
}

#[test]
fn shutdown_returns_in_time_with_a_hung_backend() {
    let backend = Backend::start(Mode::Hang);
    let mut config = config(&backend.url());
    config.request_timeout = Duration::from_secs(30);
    let client = Client::with_config(config).unwrap();
    for n in 0..5 {
        run_pipeline(&client, n);
    }
    let started = Instant::now();
    let clean = client.shutdown(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(!clean, "flows were lost");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let stats = client.stats();
    assert!(balanced(&stats), "{stats:?}");
    assert_eq!(
        (stats.dropped, stats.pending),
        (5, 0),
        "no spool: the four waiting and the hung one are dropped and counted, none left pending"
    );
    let notices = client.take_notices();
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.contains("4 flow(s) dropped: still queued at shutdown"))
            .count(),
        1,
        "one notice for the flows still queued: {notices:?}"
    );
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.contains("it was still being sent"))
            .count(),
        1,
        "the hung one is told: {notices:?}"
    );
    // The sender makes no new attempt after shutdown.
    let made = backend.requests.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(backend.requests.lock().unwrap().len(), made);
}

#[test]
fn redaction_masks_values_before_they_leave_the_process() {
    let backend = Backend::start(Mode::Accept);
    let mut config = config(&backend.url());
    config.redaction = Redaction::fields(["email"]).with_mask(|key, value| {
        if key == "phone" {
            *value = json!("***");
        }
    });
    let client = Client::with_config(config).unwrap();
    let mut flow = client
        .flow("redaction")
        .input(json!({"seller": {"Email": "a@b.c", "phone": "+33 6 12"}, "asin": "B0X"}));
    {
        let mut step = flow.step("judge", StepKind::Judge);
        step.output(json!([{"email": "x@y.z"}]));
        step.observe(
            Candidate::kept("B0X")
                .attr("email", "c@d.e")
                .attr("price", 9.5),
        );
        step.finish();
    }
    flow.succeed(json!({"selected": "B0X"}));
    assert!(client.flush(Duration::from_secs(5)));
    let requests = backend.requests.lock().unwrap().clone();
    let body = requests[0].1.to_string();
    for secret in ["a@b.c", "+33 6 12", "x@y.z", "c@d.e"] {
        assert!(!body.contains(secret), "{secret} left the process: {body}");
    }
    let sent = &requests[0].1;
    assert_eq!(sent["input"]["seller"]["Email"], "[redacted]");
    assert_eq!(sent["input"]["seller"]["phone"], "***");
    assert_eq!(sent["input"]["asin"], "B0X");
    assert_eq!(
        sent["steps"][0]["observations"][0]["attributes"]["price"],
        9.5
    );
}

#[test]
fn a_request_hung_at_shutdown_leaves_its_flow_in_the_spool() {
    let backend = Backend::start(Mode::Hang);
    let spool = tempfile::tempdir().unwrap();
    let mut hung = config(&backend.url());
    hung.request_timeout = Duration::from_secs(30);
    hung.spool_dir = Some(spool.path().to_path_buf());
    let client = Client::with_config(hung).unwrap();
    run_pipeline(&client, 0);
    // The request is under way (and hangs).
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.requests.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no request was made");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    assert!(
        client.shutdown(Duration::from_millis(500)),
        "nothing is left pending"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let stats = client.stats();
    assert_eq!((stats.spooled, stats.pending), (1, 0), "{stats:?}");
    assert!(balanced(&stats), "{stats:?}");

    // The next process sends it, once.
    backend.set(Mode::Accept);
    let mut next = config(&backend.url());
    next.spool_dir = Some(spool.path().to_path_buf());
    let client = Client::with_config(next).unwrap();
    backend.wait_stored(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.stats().unspooled < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client.stats().sent, 1);
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

#[test]
fn a_flow_too_large_for_the_server_is_shrunk_and_sent_again() {
    let backend = Backend::start(Mode::Accept);
    *backend.script.lock().unwrap() = vec![(413, None)];
    let mut big = config(&backend.url());
    big.capture = flowtrail_sdk::CapturePolicy::Full;
    let client = Client::with_config(big).unwrap();
    let mut flow = client
        .flow("big")
        .input(json!({"blob": "x".repeat(100_000)}));
    {
        let mut step = flow.step("filter", StepKind::Filter);
        for i in 0..3_000 {
            step.observe(Candidate::rejected(format!("C{i}")).reason("price", "too cheap"));
        }
        step.finish();
    }
    flow.succeed(json!({}));
    assert!(client.flush(Duration::from_secs(10)));
    backend.wait_stored(1);
    let requests = backend.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "refused once, then sent shrunk");
    let sent = &requests[1].1;
    let step = &sent["steps"][0];
    assert_eq!(step["observations"].as_array().unwrap().len(), 1_000);
    assert_eq!(
        (
            step["candidates_in"].as_u64(),
            step["reasons"]["price"].as_u64()
        ),
        (Some(3_000), Some(3_000))
    );
    assert_eq!(step["capture"], "sampled");
    assert!(sent["input"].as_str().unwrap().starts_with("<left out"));
    let stats = client.stats();
    assert_eq!((stats.sent, stats.adjusted), (1, 1), "{stats:?}");
    let notices = client.take_notices();
    assert!(notices.iter().any(|n| n.contains("413")), "{notices:?}");
    assert!(client.take_notices().is_empty(), "taken once");
}

#[test]
fn a_refusal_is_told_in_the_notices_with_the_server_answer() {
    let backend = Backend::start(Mode::Status(403));
    let client = Client::with_config(config(&backend.url())).unwrap();
    run_pipeline(&client, 0);
    assert!(client.flush(Duration::from_secs(5)));
    let notices = client.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("refused") && notices[0].contains("403"),
        "{notices:?}"
    );
}

#[test]
fn no_attempt_is_made_after_shutdown() {
    let backend = Backend::start(Mode::Status(500));
    let mut config = config(&backend.url());
    config.max_attempts = 1_000;
    let client = Client::with_config(config).unwrap();
    run_pipeline(&client, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.requests.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the flow is not being retried");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !client.shutdown(Duration::from_millis(100)),
        "a flow was lost"
    );
    let stats = client.stats();
    assert_eq!((stats.dropped, stats.pending), (1, 0), "{stats:?}");
    assert!(balanced(&stats), "{stats:?}");
    // An attempt under way at shutdown may still end; none starts after it.
    std::thread::sleep(Duration::from_millis(100));
    let made = backend.requests.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        backend.requests.lock().unwrap().len(),
        made,
        "retried after shutdown"
    );
    assert_eq!(client.stats(), stats, "counters settle once");
}

#[test]
fn a_flow_whose_mask_runs_at_shutdown_is_counted_and_spooled_once_masked() {
    for with_spool in [false, true] {
        let backend = Backend::start(Mode::Accept);
        let spool = tempfile::tempdir().unwrap();
        let mut config = config(&backend.url());
        if with_spool {
            config.spool_dir = Some(spool.path().to_path_buf());
        }
        let masking = Arc::new(AtomicBool::new(false));
        let seen = masking.clone();
        config.redaction = Redaction::default().with_mask(move |_, _| {
            if !seen.swap(true, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(600));
            }
        });
        let client = Client::with_config(config).unwrap();
        run_pipeline(&client, 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !masking.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the mask was not called");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !client.shutdown(Duration::from_millis(100)),
            "a flow was lost"
        );
        let stats = client.stats();
        assert_eq!((stats.dropped, stats.pending), (1, 0), "{stats:?}");
        assert!(balanced(&stats), "{stats:?}");
        let notices = client.take_notices();
        assert!(
            notices
                .iter()
                .any(|n| n.contains("its mask was still running")),
            "{notices:?}"
        );
        if with_spool {
            // Once the mask returns, the spool keeps it after all (and counts it there).
            let deadline = Instant::now() + Duration::from_secs(5);
            while client.stats().spooled == 0 {
                assert!(Instant::now() < deadline, "{:?}", client.stats());
                std::thread::sleep(Duration::from_millis(10));
            }
            let stats = client.stats();
            assert_eq!((stats.dropped, stats.spooled), (0, 1), "{stats:?}");
            assert!(balanced(&stats), "{stats:?}");
        }
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            backend.requests.lock().unwrap().is_empty(),
            "sent after shutdown"
        );
    }
}

#[test]
fn a_refused_key_keeps_flows_in_the_spool_and_only_a_202_is_an_acknowledgement() {
    // 401: the key, not the flow. With a spool the flow is kept, and so are spooled ones.
    let backend = Backend::start(Mode::Status(401));
    let spool = tempfile::tempdir().unwrap();
    let mut refused = config(&backend.url());
    refused.spool_dir = Some(spool.path().to_path_buf());
    let client = Client::with_config(refused.clone()).unwrap();
    run_pipeline(&client, 0);
    assert!(
        client.shutdown(Duration::from_secs(2)),
        "kept in the spool: not lost"
    );
    let stats = client.stats();
    assert_eq!((stats.spooled, stats.failed), (1, 0), "{stats:?}");
    drop(client);
    let again = Client::with_config(refused).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        again.stats().failed,
        0,
        "a spooled flow is not refused for good on a 401"
    );
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 1);
    drop(again);

    // A 200 is not the ingest API's answer: not counted as sent.
    let proxy = Backend::start(Mode::Status(200));
    let client = Client::with_config(config(&proxy.url())).unwrap();
    run_pipeline(&client, 1);
    assert!(!client.shutdown(Duration::from_secs(2)));
    let stats = client.stats();
    assert_eq!((stats.sent, stats.failed), (0, 1), "{stats:?}");
    assert!(
        client
            .take_notices()
            .iter()
            .any(|n| n.contains("not the ingest API")),
        "told"
    );

    // A key read from a file (a trailing newline) works; one with a line break inside, or a
    // URL that does not parse, is refused at once.
    let accept = Backend::start(Mode::Accept);
    let mut trailing = config(&accept.url());
    trailing.api_key = "ftk_test\n".into();
    let client = Client::with_config(trailing).unwrap();
    run_pipeline(&client, 2);
    assert!(client.shutdown(Duration::from_secs(5)));
    let mut broken = config(&accept.url());
    broken.api_key = "ftk\ntest".into();
    assert!(Client::with_config(broken).is_err());
    assert!(Client::with_config(config("http://[::1")).is_err());
}
