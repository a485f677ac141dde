//! What the examples share: their command line, the client, the run per seed, the last
//! ranking step's verdicts, and the closing report.

use std::time::Duration;

use flowtrail_sdk::{Candidate, Client};

/// `--seed N --runs N [--drift]`.
pub struct Args {
    pub seed: u64,
    pub runs: u64,
    pub drift: bool,
}

/// Parses the command line of `example`; `--drift` only where it `offers_drift`. Exits with
/// the usage on anything else.
pub fn args(example: &str, default_seed: u64, offers_drift: bool) -> Args {
    let usage = || -> ! {
        let drift = if offers_drift { " [--drift]" } else { "" };
        eprintln!("usage: {example} [--seed N] [--runs N]{drift}");
        std::process::exit(2)
    };
    let mut parsed = Args {
        seed: default_seed,
        runs: 3,
        drift: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--seed" => parsed.seed = number(),
            "--runs" => parsed.runs = number(),
            "--drift" if offers_drift => parsed.drift = true,
            _ => usage(),
        }
    }
    parsed
}

/// A client from `FLOWTRAIL_URL` and `FLOWTRAIL_API_KEY`, or exit with a hint.
pub fn client() -> Client {
    Client::from_env().unwrap_or_else(|error| {
        eprintln!("{error}: set FLOWTRAIL_URL and FLOWTRAIL_API_KEY");
        std::process::exit(2)
    })
}

/// Runs `run` once per seed of `args` (`--seed`, `--seed + 1`, … `--runs` of them), printing
/// `flow {id} seed {seed} {what}` for each `(id, what)` it returns, then [`finish`]es.
pub fn run_seeds(client: &Client, args: &Args, mut run: impl FnMut(u64) -> (String, String)) {
    for i in 0..args.runs {
        let seed = args.seed + i;
        let (id, what) = run(seed);
        println!("flow {id} seed {seed} {what}");
    }
    finish(client);
}

/// The verdict of the candidate at `rank` (from 0) of a final ranking: the first is selected,
/// every other rejected for `lower_score`.
// Not every example rejects its runners-up (competitor_selection keeps them).
#[allow(dead_code)]
pub fn ranked(rank: usize, id: &str) -> Candidate {
    if rank == 0 {
        Candidate::selected(id)
    } else {
        Candidate::rejected(id).reason("lower_score", format!("rank {}", rank + 1))
    }
}

/// Delivers what is queued, prints the counters, and exits with 1 unless every flow was sent.
pub fn finish(client: &Client) {
    let delivered = client.shutdown(Duration::from_secs(30));
    let stats = client.stats();
    println!(
        "sent {} of {} flows (retried {}, failed {}, dropped {}, spooled {})",
        stats.sent, stats.queued, stats.retried, stats.failed, stats.dropped, stats.spooled
    );
    if !delivered || stats.sent != stats.queued {
        std::process::exit(1);
    }
}
