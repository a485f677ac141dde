//! Product categorisation, simulated: put a new product in the right leaf of a ~200-category
//! taxonomy — LLM attribute extraction → taxonomy retrieval → required-attribute rules → LLM
//! classifier → choose.
//!
//! It goes wrong on every third seed (`seed % 3 == 1`) or with `--drift`: attribute extraction
//! misses the product's `material`, the rules then eliminate "Laptop Stands" (which requires
//! it) for `missing_attribute`, and the classifier picks the best of what is left — "Phone
//! Stands". Flow Trail shows the right category rejected in the rules step, and why.
//!
//! ```text
//! FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=ftk_… \
//!   cargo run -p flowtrail-sdk --example product_categorisation -- --seed 4 --runs 3
//! ```

use std::collections::BTreeMap;
mod common;

use flowtrail_sdk::{Candidate, Client, StepKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// A leaf of the taxonomy: its path, the words that suggest it, and the attributes a product
/// must have to be filed there.
struct Category {
    id: String,
    path: String,
    words: Vec<&'static str>,
    requires: Vec<&'static str>,
}

fn taxonomy(rng: &mut StdRng) -> Vec<Category> {
    let named: &[(&str, &[&str], &[&str])] = &[
        (
            "Computers > Accessories > Laptop Stands",
            &["laptop", "stand", "riser", "desks"],
            &["material", "max_screen_inches"],
        ),
        (
            "Phones > Accessories > Phone Stands",
            &["phone", "stand", "holder", "desks"],
            &["max_screen_inches"],
        ),
        (
            "Phones > Accessories > Cases",
            &["phone", "case", "cover"],
            &["device_model"],
        ),
        (
            "Office > Desk Organisers",
            &["desk", "organiser", "tray"],
            &["material"],
        ),
        (
            "Computers > Monitors > Monitor Arms",
            &["monitor", "arm", "stand", "desk"],
            &["vesa", "material"],
        ),
        (
            "Music > Instruments > Music Stands",
            &["music", "stand", "sheet"],
            &["material"],
        ),
        (
            "Kitchen > Tablet Stands",
            &["tablet", "stand", "kitchen"],
            &["max_screen_inches"],
        ),
    ];
    let mut categories: Vec<Category> = named
        .iter()
        .enumerate()
        .map(|(i, (path, words, requires))| Category {
            id: format!("CAT{i:04}"),
            path: path.to_string(),
            words: words.to_vec(),
            requires: requires.to_vec(),
        })
        .collect();
    // The long tail: generic leaves that share a word or two with anything.
    let pool = [
        "desk", "stand", "light", "cable", "bag", "garden", "toy", "lamp", "book", "frame",
    ];
    for i in categories.len()..200 {
        let a = pool[rng.random_range(0..pool.len())];
        let b = pool[(pool.iter().position(|w| *w == a).unwrap_or(0)
            + rng.random_range(1..pool.len()))
            % pool.len()];
        categories.push(Category {
            id: format!("CAT{i:04}"),
            path: format!("Home > Misc > {a} {b} {i}"),
            words: vec![a, b],
            requires: vec!["colour"],
        });
    }
    categories
}

fn run(client: &Client, seed: u64, drift: bool) -> (String, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let drifted = drift || seed % 3 == 1;
    let title = "Lumina adjustable aluminium laptop stand for desks, fits 10-17 inch notebooks";
    let mut flow = client
        .flow("product_categorisation")
        .input(json!({"sku": "LUM-STAND-01", "title": title}))
        .tag("catalog", "eu")
        .tag("seed", seed.to_string());

    // 1. Attribute extraction (an LLM call, simulated).
    let mut attributes = BTreeMap::from([
        ("max_screen_inches", json!(17)),
        ("colour", json!("silver")),
    ]);
    if !drifted {
        attributes.insert("material", json!("aluminium"));
    }
    {
        let mut step = flow.step("extract_attributes", StepKind::Generate);
        step.input(json!({"title": title}))
            .output(json!(attributes))
            .reasoning(if drifted {
                "Extracted size and colour; material not stated explicitly"
            } else {
                "Extracted size, colour and material from the title"
            });
        step.finish();
    }

    // 2. Retrieval: categories sharing a word with the title.
    let categories = taxonomy(&mut rng);
    let lower = title.to_lowercase();
    let title_words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    let overlap = |c: &Category| c.words.iter().filter(|w| title_words.contains(w)).count();
    let retrieved: Vec<&Category> = categories.iter().filter(|c| overlap(c) > 0).collect();
    {
        let mut step = flow.step("taxonomy_search", StepKind::Retrieve);
        step.candidates_in(categories.len() as u64)
            .candidates_out(retrieved.len() as u64)
            .reasoning("Leaves sharing at least one word with the title");
        step.finish();
    }

    // 3. Rules: a category's required attributes must have been extracted.
    let mut eligible = Vec::new();
    {
        let mut step = flow.step("attribute_rules", StepKind::Filter);
        step.reasoning("A product is filed only where every required attribute is known");
        for category in &retrieved {
            let missing: Vec<&str> = category
                .requires
                .iter()
                .copied()
                .filter(|a| !attributes.contains_key(a))
                .collect();
            let candidate = if missing.is_empty() {
                eligible.push(*category);
                Candidate::kept(&category.id)
            } else {
                Candidate::rejected(&category.id).reason(
                    "missing_attribute",
                    format!("requires {} (not extracted)", missing.join(", ")),
                )
            };
            step.observe(candidate.attr("path", &category.path));
        }
        step.finish();
    }

    // 4. Classifier (an LLM call, simulated): shared words, a prior for the well-known
    // leaves over the long tail, and noise.
    let mut scored: Vec<(&Category, f64)> = eligible
        .iter()
        .map(|c| {
            let prior = if c.path.starts_with("Home > Misc") {
                0.0
            } else {
                0.2
            };
            let score = 0.25 * overlap(c) as f64 + prior + rng.random_range(0.0..0.1);
            (*c, score.min(1.0))
        })
        .collect();
    {
        let mut step = flow.step("llm_classifier", StepKind::Judge);
        for (category, score) in &scored {
            step.observe(
                Candidate::kept(&category.id)
                    .score(*score)
                    .attr("path", &category.path),
            );
        }
        step.finish();
    }

    // 5. Choose.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let id = flow.id().to_string();
    {
        let mut step = flow.step("choose_category", StepKind::Rank);
        for (rank, (category, score)) in scored.iter().enumerate() {
            step.observe(
                common::ranked(rank, &category.id)
                    .score(*score)
                    .attr("path", &category.path),
            );
        }
        step.finish();
    }
    match scored.first() {
        Some((category, _)) => {
            let path = category.path.clone();
            flow.succeed(json!({"category": category.id, "path": path}));
            (id, path)
        }
        None => {
            flow.fail("no category accepts this product");
            (id, "-".into())
        }
    }
}

fn main() {
    let args = common::args("product_categorisation", 1, true);
    let client = common::client();
    common::run_seeds(&client, &args, |seed| {
        let (id, path) = run(&client, seed, args.drift);
        (id, format!("filed under: {path}"))
    });
}
