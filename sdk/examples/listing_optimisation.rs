//! Listing optimisation, simulated: rewrite a seller's product title to rank better —
//! LLM keyword research → LLM title drafts → marketplace policy filter → LLM quality judge →
//! pick the best draft.
//!
//! It goes wrong on every third seed (`seed % 3 == 1`) or with `--drift`: keyword research pulls
//! in a competitor's brand ("Apple MacBook"), the policy filter has no trademark rule, and the
//! judge rewards the extra keyword coverage — the chosen title names a brand the seller does not
//! own. Flow Trail shows the keyword step's output, and the filter keeping those drafts.
//!
//! ```text
//! FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=ftk_… \
//!   cargo run -p flowtrail-sdk --example listing_optimisation -- --seed 4 --runs 3
//! ```

mod common;

use flowtrail_sdk::{Candidate, Client, StepKind};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

const BRAND: &str = "Lumina";
const ORIGINAL: &str = "Lumina laptop stand aluminium";
const BANNED: &[&str] = &["best", "cheapest", "#1", "guaranteed"];
const MAX_TITLE: usize = 120;

fn run(client: &Client, seed: u64, drift: bool) -> (String, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let drifted = drift || seed % 3 == 1;
    let mut flow = client
        .flow("listing_optimisation")
        .input(json!({"asin": "B0LUMINA01", "brand": BRAND, "title": ORIGINAL}))
        .tag("marketplace", "amazon.de")
        .tag("seed", seed.to_string());

    // 1. Keyword research (an LLM call, simulated).
    let mut keywords = vec![
        "laptop stand",
        "adjustable",
        "ergonomic",
        "aluminium",
        "macbook compatible",
    ];
    if drifted {
        keywords.push("apple macbook");
        keywords.push("best");
    }
    {
        let mut step = flow.step("keyword_research", StepKind::Generate);
        step.input(json!({"title": ORIGINAL, "category": "Laptop Stands"}))
            .output(json!({"keywords": keywords}))
            .reasoning(if drifted {
                "Added high-volume search terms seen on top-selling competitor listings"
            } else {
                "Kept terms that describe the product itself"
            });
        step.finish();
    }

    // 2. Title drafts: combinations of the keywords.
    let drafts: Vec<String> = (0..40)
        .map(|i| {
            let mut words = keywords.clone();
            words.shuffle(&mut rng);
            let take = rng.random_range(2..=words.len().min(5));
            let lead = if i % 7 == 3 { "" } else { BRAND };
            format!("{lead} {}", words[..take].join(", "))
                .trim()
                .to_string()
        })
        .collect();
    {
        let mut step = flow.step("title_drafts", StepKind::Generate);
        step.candidates_out(drafts.len() as u64)
            .output(json!({"drafts": drafts.len(), "example": drafts[0]}));
        step.finish();
    }

    // 3. Policy filter: length, banned claims, the seller's brand first. No trademark rule.
    let mut allowed = Vec::new();
    {
        let mut step = flow.step("policy_filter", StepKind::Filter);
        step.reasoning(
            "Marketplace title policy: ≤ 120 characters, no superlative claims, brand first",
        );
        for (i, draft) in drafts.iter().enumerate() {
            let id = format!("draft-{i:02}");
            let lower = draft.to_lowercase();
            let banned = BANNED.iter().find(|w| {
                lower
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .any(|word| word == **w)
            });
            let candidate = if draft.len() > MAX_TITLE {
                Candidate::rejected(&id).reason(
                    "too_long",
                    format!("{} > {MAX_TITLE} characters", draft.len()),
                )
            } else if let Some(word) = banned {
                Candidate::rejected(&id).reason("banned_claim", format!("contains \"{word}\""))
            } else if !draft.starts_with(BRAND) {
                Candidate::rejected(&id)
                    .reason("brand_not_first", "the title must start with the brand")
            } else {
                allowed.push((id.clone(), draft.clone()));
                Candidate::kept(&id)
            };
            step.observe(candidate.attr("title", draft).attr("length", draft.len()));
        }
        step.finish();
    }

    // 4. Quality judge: search volume covered and readability (an LLM call, simulated). It
    // knows nothing of trademarks: a competitor's brand is just a high-volume keyword.
    let volume = |keyword: &str| match keyword {
        "apple macbook" => 90.0,
        "laptop stand" => 40.0,
        "macbook compatible" => 12.0,
        _ => 6.0,
    };
    let total: f64 = keywords.iter().map(|k| volume(k)).sum();
    let mut scored: Vec<(String, String, f64)> = Vec::new();
    {
        let mut step = flow.step("quality_judge", StepKind::Judge);
        for (id, title) in &allowed {
            let coverage = keywords
                .iter()
                .filter(|k| title.contains(*k))
                .map(|k| volume(k))
                .sum::<f64>()
                / total;
            let readability = 1.0 - (title.len() as f64 / MAX_TITLE as f64) * 0.3;
            let score = (0.7 * coverage + 0.3 * readability + rng.random_range(0.0..0.05)).min(1.0);
            scored.push((id.clone(), title.clone(), score));
            step.observe(
                Candidate::kept(id)
                    .score(score)
                    .attr("coverage", coverage)
                    .attr("title", title),
            );
        }
        step.finish();
    }

    // 5. Pick the best.
    scored.sort_by(|a, b| b.2.total_cmp(&a.2));
    let id = flow.id().to_string();
    {
        let mut step = flow.step("select_title", StepKind::Rank);
        for (rank, (draft, title, score)) in scored.iter().enumerate() {
            step.observe(
                common::ranked(rank, draft)
                    .score(*score)
                    .attr("title", title),
            );
        }
        step.finish();
    }
    match scored.first() {
        Some((_, title, _)) => {
            let title = title.clone();
            flow.succeed(json!({"title": title}));
            (id, title)
        }
        None => {
            flow.fail("every draft broke the title policy");
            (id, "-".into())
        }
    }
}

fn main() {
    let args = common::args("listing_optimisation", 1, true);
    let client = common::client();
    common::run_seeds(&client, &args, |seed| {
        let (id, title) = run(&client, seed, args.drift);
        (id, format!("chose: {title}"))
    });
}
