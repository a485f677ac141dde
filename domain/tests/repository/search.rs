//! Full-text search over flows, and its paging in list order.

use flowtrail_domain::flows::{FlowFilters, StepPayloads, WriteMode};
use flowtrail_types::FlowRecord;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::fixture::{every_page, flow, fresh, ids, ingest_all, query, store};

#[tokio::test]
async fn full_text_search_finds_reason_texts_and_candidate_ids() {
    let f = fresh().await;
    let mut a = flow("competitor_selection", 10, &[]);
    a.steps[1].observations[0].reasons[0].text = Some("priced like a phone case".into());
    let mut b = flow("competitor_selection", 20, &[]);
    b.steps[1].observations[0].candidate_id = "B0LAMP0007".into();
    b.steps[1].observations[0].reasons[0].text = Some("too pricey".into());
    b.error = Some("judge timed out".into());
    ingest_all(&f, &[a.clone(), b.clone()]).await;
    let search = |text: &str| FlowFilters {
        text: Some(text.into()),
        ..query()
    };
    assert_eq!(
        ids(&f, &search("phone case")).await,
        vec![a.id],
        "reason text"
    );
    assert_eq!(
        ids(&f, &search("Phone")).await,
        vec![a.id],
        "case-insensitive"
    );
    assert_eq!(
        ids(&f, &search("B0LAMP")).await,
        vec![b.id],
        "candidate id prefix"
    );
    assert_eq!(ids(&f, &search("b0case0001")).await, vec![a.id]);
    assert_eq!(
        ids(&f, &search("timed out")).await,
        vec![b.id],
        "flow error"
    );
    assert_eq!(
        ids(&f, &search("price_out_of_range laptop")).await,
        vec![b.id, a.id],
        "every word must match"
    );
    assert!(ids(&f, &search("phone lamp")).await.is_empty());
    for hostile in [
        "\"",
        "* OR",
        "body:x",
        "NEAR(a b)",
        "a\" OR \"b",
        "((",
        "-",
        "'; --",
    ] {
        let page = f
            .services
            .metadata
            .list_flows(f.team, &search(hostile))
            .await;
        assert!(
            page.is_ok(),
            "{hostile:?} is text, never query syntax: {page:?}"
        );
    }
    assert!(
        ids(&f, &search("*")).await.is_empty(),
        "nothing searchable matches nothing"
    );
    // The document follows the newest version.
    let mut b2 = b.clone();
    b2.version = 2;
    b2.error = None;
    store(&f, &b2).await;
    assert!(ids(&f, &search("timed")).await.is_empty());
}

#[tokio::test]
async fn text_search_pages_in_list_order_whatever_the_start_times() {
    use flowtrail_domain::flows::FlowWrite;
    let f = fresh().await;
    let ms =
        |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    let base = 1_790_000_000_000_i64;
    // Start times within one second and across seconds, shared to the millisecond (the id
    // breaks the tie), before 1970, and past what the search index orders exactly (year 2500).
    let mut starts: Vec<i64> = (0..24).map(|i| base + (i * 7919) % 5000).collect();
    starts.extend([
        base,
        base,
        base + 1,
        -86_400_000,
        16_725_225_600_000,
        16_725_225_600_000,
    ]);
    let mut records: Vec<FlowRecord> = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            // Every third flow is in pipeline "other" and never mentions a phone case.
            let matching = i % 3 != 0;
            let mut record = flow(if matching { "phone" } else { "other" }, 0, &[]);
            record.started_at = ms(start);
            record.ended_at = None;
            if matching {
                record.steps[1].observations[0].reasons[0].text = Some("a phone case".into());
            }
            record
        })
        .collect();
    // Half in one batch (one statement numbers many documents of a bucket), half one by one.
    let none = StepPayloads::new();
    let writes: Vec<FlowWrite> = records[..15]
        .iter()
        .map(|flow| FlowWrite {
            team_id: f.team,
            flow,
            payloads: &none,
            mode: WriteMode::Replace,
            imported: false,
        })
        .collect();
    f.services.metadata.upsert_flows(&writes).await.unwrap();
    for record in &records[15..] {
        store(&f, record).await;
    }
    // New versions that move to other buckets, and one that stays in its own.
    for (i, shift) in [(1, 9_000), (2, -3_000), (4, 0)] {
        records[i].version = 2;
        records[i].started_at = ms(starts[i] + shift);
        store(&f, &records[i]).await;
    }
    let mut matching: Vec<&FlowRecord> = records.iter().filter(|r| r.pipeline == "phone").collect();
    matching.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.id)));
    let expected: Vec<Uuid> = matching.iter().map(|r| r.id).collect();
    assert_eq!(
        every_page(
            &f,
            FlowFilters {
                pipeline: Some("phone".into()),
                ..query()
            }
        )
        .await,
        expected,
        "the list without text"
    );
    for limit in [1, 2, 3, 7, 50] {
        let q = FlowFilters {
            text: Some("phone case".into()),
            limit,
            ..query()
        };
        assert_eq!(every_page(&f, q).await, expected, "limit {limit}");
    }
    // A time range cuts the same order; its bounds fall inside search buckets.
    let (since, until) = (base + 1_000, base + 3_500);
    let in_range: Vec<Uuid> = matching
        .iter()
        .filter(|r| r.started_at >= ms(since) && r.started_at < ms(until))
        .map(|r| r.id)
        .collect();
    assert!(in_range.len() >= 4, "{in_range:?}");
    for limit in [1, 3, 50] {
        let q = FlowFilters {
            text: Some("phone".into()),
            since: Some(ms(since)),
            until: Some(ms(until)),
            limit,
            ..query()
        };
        assert_eq!(every_page(&f, q).await, in_range, "range, limit {limit}");
    }
}

#[tokio::test]
async fn words_inside_chinese_japanese_and_thai_text_are_found() {
    let f = fresh().await;
    let mut chinese = flow("categorization", 10, &[]);
    chinese.steps[1].reasoning = Some("候选商品的价格超出范围".into());
    let mut japanese = flow("categorization", 20, &[]);
    japanese.steps[1].observations[0].reasons[0].text = Some("価格が範囲外です".into());
    let mut thai = flow("categorization", 30, &[]);
    thai.steps[2].reasoning = Some("ราคาสูงเกินไป".into());
    ingest_all(&f, &[chinese.clone(), japanese.clone(), thai.clone()]).await;
    let search = |text: &str| FlowFilters {
        text: Some(text.into()),
        ..query()
    };
    for (words, expected) in [
        ("价格", vec![chinese.id]),
        ("超出范围", vec![chinese.id]),
        ("候选", vec![chinese.id]),
        ("价格超出", vec![chinese.id]),
        ("范围外", vec![]),
        ("範囲", vec![japanese.id]),
        ("価格", vec![japanese.id]),
        ("ราคา", vec![thai.id]),
        ("价格 categorization", vec![chinese.id]),
    ] {
        assert_eq!(ids(&f, &search(words)).await, expected, "{words}");
    }
}

#[tokio::test]
async fn every_candidate_id_of_a_large_step_is_found_and_an_index_in_part_says_so() {
    use flowtrail_types::Verdict;
    let f = fresh().await;
    let postgres =
        flowtrail_test_support::engines::scale_engine("FLOWTRAIL_TEST_DATABASE_URL").is_some();
    // Issue #14, item 6: 3,000 observations in one step; only ids 1–293 were found.
    let mut big = flow("big_step", 10, &[]);
    big.steps[1].observations = (0..3000)
        .map(|i| {
            crate::fixture::observation(
                &format!("B0BIG{i:05}"),
                Verdict::Rejected,
                Some("price_out_of_range"),
            )
        })
        .collect();
    // Text past what PostgreSQL's index keeps of one flow (100,000 characters).
    for seq in [0, 2] {
        big.steps[seq].reasoning = Some(format!("{} needle", "filler ".repeat(9_000)));
    }
    let small = flow("big_step", 20, &[]);
    ingest_all(&f, &[big.clone(), small.clone()]).await;
    let search = |text: &str| FlowFilters {
        text: Some(text.into()),
        ..query()
    };
    // Ids mixing unspaced scripts with letters or digits (found by a new-user pass).
    for (k, id) in ["候补3", "型号X200", "abc候补", "東京2020"]
        .into_iter()
        .enumerate()
    {
        big.steps[1].observations[k].candidate_id = id.into();
    }
    big.version = 2;
    ingest_all(&f, &[big.clone()]).await;
    for id in ["候补3", "型号X200", "abc候补", "東京2020"] {
        assert_eq!(ids(&f, &search(id)).await, vec![big.id], "{id}");
    }
    for id in ["B0BIG00293", "B0BIG00294", "B0BIG02999"] {
        assert_eq!(ids(&f, &search(id)).await, vec![big.id], "{id}");
        let journey = flowtrail_domain::analysis::journey(&f.services, f.team, big.id, id)
            .await
            .unwrap();
        assert!(journey.is_some(), "{id}: its journey too");
    }
    let page = f
        .services
        .metadata
        .list_flows(f.team, &search("B0BIG02999"))
        .await
        .unwrap();
    if postgres {
        assert_eq!(
            page.search_complete,
            Some(false),
            "the big flow was indexed in part"
        );
    } else {
        assert_eq!(page.search_complete, Some(true));
        assert_eq!(ids(&f, &search("needle")).await, vec![big.id]);
    }
    // Without q, nothing to say; with filters leaving out the big flow, the answer is complete.
    let plain = f
        .services
        .metadata
        .list_flows(f.team, &query())
        .await
        .unwrap();
    assert_eq!(plain.search_complete, None);
    let later = FlowFilters {
        since: Some(small.started_at),
        ..search("laptop")
    };
    let page = f
        .services
        .metadata
        .list_flows(f.team, &later)
        .await
        .unwrap();
    assert_eq!(page.search_complete, Some(true));
}
