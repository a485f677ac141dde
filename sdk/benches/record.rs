//! Cost on the caller's thread (`cargo bench -p flowtrail-sdk --bench record`): recording one
//! observation, and finishing a flow (handing it to the background sender). Targets: < 1 µs per
//! observation, `finish()` < 50 µs. The backend is unreachable on purpose: nothing on the
//! caller's side may depend on it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flowtrail_sdk::{Candidate, CapturePolicy, Client, Config, StepKind};

fn client(capture: CapturePolicy) -> Client {
    let mut config = Config::new("http://127.0.0.1:9", "ftk_bench");
    config.max_attempts = 1;
    config.queue_capacity = 100_000;
    config.capture = capture;
    Client::with_config(config).unwrap()
}

/// Nanoseconds per observation over `flows` flows of one 5,000-candidate filter step, the
/// candidate's construction included (what the caller's thread pays).
fn per_observation(capture: CapturePolicy, flows: usize) -> f64 {
    let client = client(capture);
    let started = Instant::now();
    for _ in 0..flows {
        let mut flow = client.flow("bench");
        {
            let mut step = flow.step("filter", StepKind::Filter);
            for i in 0..5_000u32 {
                let candidate = if i % 166 == 0 {
                    Candidate::kept(format!("B0{i:08}")).score(0.9)
                } else {
                    Candidate::rejected(format!("B0{i:08}"))
                        .score(0.1)
                        .reason("price_out_of_range", "below 0.5x of the seller's price")
                        .attr("price", 9.99)
                };
                step.observe(black_box(candidate));
            }
            step.finish();
        }
        flow.succeed(serde_json::Value::Null); // freed on the sender's thread, as in use
    }
    started.elapsed().as_nanos() as f64 / (flows * 5_000) as f64
}

fn main() {
    for (name, capture) in [
        ("full", CapturePolicy::Full),
        ("sampled (default)", CapturePolicy::default()),
        ("counts_only", CapturePolicy::CountsOnly),
    ] {
        per_observation(capture, 2); // warm up
        println!(
            "observe(), {name}: {:.0} ns per observation (id, score, reason, attribute)",
            per_observation(capture, 20)
        );
    }

    // finish(): a 5-step flow with 300 observations, handed to the sender.
    let client = client(CapturePolicy::Full);
    let mut samples = Vec::new();
    for round in 0..2_000 {
        let mut flow = client.flow("bench");
        for s in 0..5 {
            let mut step = flow.step(format!("step{s}"), StepKind::Filter);
            for i in 0..60 {
                step.observe(Candidate::rejected(format!("C{i}")).reason("price", "too cheap"));
            }
            step.finish();
        }
        let started = Instant::now();
        flow.succeed(serde_json::json!({"selected": "C1"}));
        if round >= 100 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "finish(), 5 steps / 300 observations: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples
            .last()
            .copied()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1e6
    );
    client.shutdown(Duration::from_millis(100));
}
