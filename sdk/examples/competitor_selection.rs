//! Competitor selection, simulated: given a seller's product, find the best competitor in a
//! catalog — LLM keywords → catalog search → price/rating filter → LLM relevance → rank/select.
//!
//! Some seeds make the keyword step drift ("stand" → phone stands and cases), and the judge
//! is then fooled by the shared keyword: the run picks a phone case as the competitor of a
//! laptop stand. Flow Trail shows which step went wrong.
//!
//! ```text
//! FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=ftk_… \
//!   cargo run -p flowtrail-sdk --example competitor_selection -- --seed 7 --runs 3
//! ```

mod common;

use flowtrail_sdk::{Candidate, Client, StepKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

#[derive(Debug, Clone)]
struct Product {
    id: String,
    title: String,
    category: &'static str,
    price: f64,
    rating: f64,
    reviews: u32,
}

const SELLER_PRICE: f64 = 45.0;

const KINDS: &[(&str, &[&str], f64)] = &[
    (
        "Laptop Stands",
        &[
            "Adjustable Aluminium Laptop Stand",
            "Ergonomic Laptop Riser",
            "Foldable Laptop Stand for Desk",
            "Ventilated Notebook Stand",
        ],
        42.0,
    ),
    (
        "Cell Phone Cases",
        &[
            "Phone Case with Kickstand",
            "Rugged Phone Stand Case",
            "Slim Phone Case Stand Grip",
        ],
        12.0,
    ),
    (
        "Phone Stands",
        &["Adjustable Phone Stand", "Desk Phone Holder Stand"],
        18.0,
    ),
    (
        "Monitor Arms",
        &["Single Monitor Arm Stand", "Gas Spring Monitor Mount"],
        75.0,
    ),
    (
        "Tablet Stands",
        &["Tablet Stand Holder", "Adjustable iPad Stand"],
        25.0,
    ),
    (
        "Laptop Sleeves",
        &["Laptop Sleeve 14 inch", "Water-resistant Laptop Bag"],
        22.0,
    ),
];

fn catalog(rng: &mut StdRng) -> Vec<Product> {
    let mut products = Vec::new();
    for (k, (category, titles, base)) in KINDS.iter().enumerate() {
        for i in 0..100 {
            let title = titles[i % titles.len()];
            let price = (base * rng.random_range(0.35..2.4f64) * 100.0).round() / 100.0;
            products.push(Product {
                id: format!("B0{}{:06}", (b'A' + k as u8) as char, i),
                title: format!("{title} {}", ["Pro", "Lite", "Max", "Plus", "Go"][i % 5]),
                category,
                price,
                rating: (rng.random_range(3.0..5.0f64) * 10.0).round() / 10.0,
                reviews: rng.random_range(3..12_000),
            });
        }
    }
    products
}

fn run(client: &Client, seed: u64) -> (String, String, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let products = catalog(&mut rng);
    // One seed in three drifts: the keywords lose "laptop" and the judge trusts keywords.
    let drift = seed % 3 == 1;

    let mut flow = client
        .flow("competitor_selection")
        .input(json!({
            "asin": "B0STAND42",
            "title": "Adjustable aluminium laptop stand",
            "category": "Laptop Stands",
            "price": SELLER_PRICE,
        }))
        .tag("seller", "B0SELLER01")
        .tag("env", "example")
        .tag("seed", seed.to_string());

    // 1. LLM keyword generation.
    let keywords: Vec<&str> = if drift {
        vec!["stand", "adjustable", "phone stand", "holder"]
    } else {
        vec!["laptop stand", "laptop riser", "adjustable", "aluminium"]
    };
    {
        let mut step = flow.step("keyword_generation", StepKind::Generate);
        step.input(json!({"title": "Adjustable aluminium laptop stand", "model": "sim-llm-1"}))
            .output(json!({ "keywords": keywords }))
            .reasoning(if drift {
                "Generalised the title to its function: things that stand and adjust."
            } else {
                "Kept the product type (laptop stand) and its distinctive material."
            });
        step.finish();
    }

    // 2. Catalog search: everything whose title shares a keyword word.
    let words: Vec<String> = keywords
        .iter()
        .flat_map(|k| k.split(' '))
        .map(str::to_lowercase)
        .collect();
    let matches = |p: &Product| {
        let title = p.title.to_lowercase();
        words.iter().filter(|w| title.contains(w.as_str())).count()
    };
    let retrieved: Vec<&Product> = products.iter().filter(|p| matches(p) > 0).collect();
    {
        let mut step = flow.step("catalog_search", StepKind::Retrieve);
        // Retrieval creates candidates: the keywords go in, the matching products come out.
        step.candidates_in(keywords.len() as u64)
            .input(json!({"keywords": keywords, "limit": 1000}))
            .output(json!({"found": retrieved.len()}))
            .reasoning(format!(
                "Matched {} of {} catalog products on any keyword.",
                retrieved.len(),
                products.len()
            ));
        for p in &retrieved {
            step.observe(
                Candidate::kept(&p.id)
                    .score(matches(p) as f64 / words.len() as f64)
                    .attr("title", &p.title)
                    .attr("category", p.category)
                    .attr("price", p.price)
                    .attr("rating", p.rating),
            );
        }
        step.finish();
    }

    // 3. Price and rating filter (the category filter was forgotten: the bug to find).
    let (low, high) = (SELLER_PRICE * 0.5, SELLER_PRICE * 2.0);
    let mut passed = Vec::new();
    {
        let mut step = flow.step("price_and_rating_filter", StepKind::Filter);
        step.input(json!({"min_price": low, "max_price": high, "min_rating": 4.0}));
        for p in &retrieved {
            let base = Candidate::rejected(&p.id)
                .attr("title", &p.title)
                .attr("category", p.category)
                .attr("price", p.price)
                .attr("rating", p.rating);
            if p.price < low {
                step.observe(base.reason(
                    "price_out_of_range",
                    format!("{:.2} is below 0.5x of {SELLER_PRICE:.2}", p.price),
                ));
            } else if p.price > high {
                step.observe(base.reason(
                    "price_out_of_range",
                    format!("{:.2} is above 2x of {SELLER_PRICE:.2}", p.price),
                ));
            } else if p.rating < 4.0 {
                step.observe(base.reason(
                    "rating_below_threshold",
                    format!("rating {:.1} is below 4.0", p.rating),
                ));
            } else {
                step.observe(
                    Candidate::kept(&p.id)
                        .attr("title", &p.title)
                        .attr("category", p.category)
                        .attr("price", p.price)
                        .attr("rating", p.rating),
                );
                passed.push(*p);
            }
        }
        step.output(json!({"kept": passed.len()}))
            .reasoning("Kept candidates within 0.5x-2x of the seller's price with rating >= 4.0");
        step.finish();
    }

    // 4. LLM relevance judgement.
    let mut relevant = Vec::new();
    {
        let mut step = flow.step("llm_relevance", StepKind::Judge);
        step.input(json!({"model": "sim-llm-1", "threshold": 0.6, "candidates": passed.len()}));
        for p in &passed {
            let same_type = p.category == "Laptop Stands";
            // A drifted judge scores by keyword overlap; a sound one by product type.
            let score: f64 = if drift {
                0.45 + 0.5 * (matches(p) as f64 / words.len() as f64) + rng.random_range(0.0..0.2)
            } else if same_type {
                rng.random_range(0.7..0.98)
            } else {
                rng.random_range(0.05..0.4)
            };
            let score = score.min(0.99);
            let candidate = if score >= 0.6 {
                relevant.push((*p, score));
                Candidate::kept(&p.id).reason(
                    "relevant",
                    format!("judged a {} comparable to a laptop stand", p.category),
                )
            } else {
                Candidate::rejected(&p.id).reason(
                    "not_same_product_type",
                    format!("a {} is not a laptop stand", p.category),
                )
            };
            step.observe(
                candidate
                    .score(score)
                    .attr("title", &p.title)
                    .attr("category", p.category),
            );
        }
        step.output(json!({"relevant": relevant.len()}))
            .reasoning(if drift {
                "Scored candidates by how many of the generated keywords describe them."
            } else {
                "Asked whether each candidate is the same kind of product as a laptop stand."
            });
        step.finish();
    }

    // 5. Rank and select.
    relevant.sort_by(|a, b| {
        let rank = |(p, s): &(&Product, f64)| s * (p.reviews as f64).ln_1p();
        rank(b).total_cmp(&rank(a))
    });
    let selected = relevant.first().map(|(p, _)| (*p).clone());
    {
        let mut step = flow.step("rank_and_select", StepKind::Rank);
        step.input(json!({"formula": "relevance * ln(1 + reviews)"}));
        for (i, (p, score)) in relevant.iter().enumerate() {
            let c = if i == 0 {
                Candidate::selected(&p.id)
            } else {
                Candidate::kept(&p.id)
            };
            step.observe(
                c.score(score * (p.reviews as f64).ln_1p())
                    .attr("rank", i + 1)
                    .attr("title", &p.title)
                    .attr("category", p.category)
                    .attr("reviews", p.reviews),
            );
        }
        step.output(json!({"selected": selected.as_ref().map(|p| &p.id)}))
            .reasoning("Ranked relevant candidates by relevance weighted by review volume; picked the top one.");
        step.finish();
    }

    let id = flow.id().to_string();
    match selected {
        Some(p) => {
            flow.succeed(json!({"selected": p.id, "title": p.title, "category": p.category}));
            (id, p.id, format!("{} ({})", p.title, p.category))
        }
        None => {
            flow.fail("no relevant competitor found");
            (id, "-".into(), "nothing".into())
        }
    }
}

fn main() {
    let args = common::args(
        "competitor_selection",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        false,
    );
    let client = common::client();
    common::run_seeds(&client, &args, |seed| {
        let (id, product, what) = run(&client, seed);
        (id, format!("selected {product}: {what}"))
    });
}
