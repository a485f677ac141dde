//! The flows list: filters that combine, and cursor paging.

use flowtrail_domain::flows::{FlowFilters, Share};
use flowtrail_types::{FlowStatus, StepKind};

use crate::fixture::{at, every_page, flow, fresh, ids, query, store};

#[tokio::test]
async fn list_filters_combine_and_match_what_was_sent() {
    let f = fresh().await;
    let a = flow(
        "competitor_selection",
        10,
        &[("env", "prod"), ("seller", "S1")],
    );
    let b = flow("competitor_selection", 20, &[("env", "dev")]);
    let mut c = flow("categorization", 30, &[("env", "prod")]);
    c.status = FlowStatus::Failed;
    c.steps[1].candidates_out = Some(4900); // eliminates only 2 %
    c.steps[1].name = "category_gate".into();
    c.steps[1].reasoning = Some("checks the taxonomy".into());
    for record in [&a, &b, &c] {
        store(&f, record).await;
    }

    assert_eq!(
        ids(&f, &query()).await,
        vec![c.id, b.id, a.id],
        "newest first"
    );
    let by_pipeline = FlowFilters {
        pipeline: Some("competitor_selection".into()),
        ..query()
    };
    assert_eq!(ids(&f, &by_pipeline).await, vec![b.id, a.id]);
    let failed = FlowFilters {
        status: Some(FlowStatus::Failed),
        ..query()
    };
    assert_eq!(ids(&f, &failed).await, vec![c.id]);
    let tagged = FlowFilters {
        tags: vec![
            ("env".into(), "prod".into()),
            ("seller".into(), "S1".into()),
        ],
        ..query()
    };
    assert_eq!(ids(&f, &tagged).await, vec![a.id]);
    let window = FlowFilters {
        since: Some(at(15)),
        until: Some(at(30)),
        ..query()
    };
    assert_eq!(
        ids(&f, &window).await,
        vec![b.id],
        "since inclusive, until exclusive"
    );
    let text = FlowFilters {
        text: Some("TAXONOMY".into()),
        ..query()
    };
    assert_eq!(
        ids(&f, &text).await,
        vec![c.id],
        "case-insensitive text in reasoning"
    );
    let reason_code = FlowFilters {
        text: Some("price_out_of_range".into()),
        ..query()
    };
    assert_eq!(ids(&f, &reason_code).await.len(), 3, "text in reason codes");
    let literal = FlowFilters {
        text: Some("100%_".into()),
        ..query()
    };
    assert!(
        ids(&f, &literal).await.is_empty(),
        "punctuation is neither a wildcard nor an operator"
    );
    let drastic = FlowFilters {
        step_kind: Some(StepKind::Filter),
        min_eliminated: Share::from_ppm(900_000),
        ..query()
    };
    assert_eq!(ids(&f, &drastic).await, vec![b.id, a.id]);
    let ranks = FlowFilters {
        step_kind: Some(StepKind::Rank),
        min_eliminated: Share::from_ppm(500_000),
        ..query()
    };
    assert!(ids(&f, &ranks).await.is_empty());
}

#[tokio::test]
async fn cursor_pagination_returns_every_flow_exactly_once() {
    let f = fresh().await;
    let mut sent = Vec::new();
    for i in 0..23 {
        // Pairs share a start time, so the id breaks ties.
        let record = flow("p", i / 2, &[]);
        store(&f, &record).await;
        sent.push(record.id);
    }
    let q = FlowFilters {
        limit: 5,
        ..query()
    };
    let seen = every_page(&f, q).await;
    let mut expected = sent.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(seen.len(), 23);
}

#[tokio::test]
async fn the_list_and_the_flow_page_name_the_same_largest_drop() {
    use flowtrail_types::Elimination;
    let f = fresh().await;
    // 1,000 → 500 eliminates more candidates; 10 → 1 a larger share: the share decides.
    let mut shares = flow("competitor_selection", 10, &[]);
    shares.steps = vec![
        crate::fixture::step(0, "coarse_filter", StepKind::Filter, (1_000, 500)),
        crate::fixture::step(1, "judge", StepKind::Judge, (10, 1)),
    ];
    // The same share twice: the larger count, then the earlier step.
    let mut ties = flow("competitor_selection", 20, &[]);
    ties.steps = vec![
        crate::fixture::step(0, "small", StepKind::Filter, (10, 5)),
        crate::fixture::step(1, "large", StepKind::Filter, (1_000, 500)),
        crate::fixture::step(2, "large_again", StepKind::Filter, (1_000, 500)),
    ];
    // Nothing eliminated: no largest drop at all.
    let mut none = flow("competitor_selection", 30, &[]);
    none.steps = vec![crate::fixture::step(
        0,
        "keep_all",
        StepKind::Filter,
        (7, 7),
    )];
    for record in [&shares, &ties, &none] {
        store(&f, record).await;
    }
    let page = f
        .services
        .metadata
        .list_flows(f.team, &query())
        .await
        .unwrap();
    for (record, expected) in [(&shares, Some(1)), (&ties, Some(1)), (&none, None)] {
        let listed = page.flows.iter().find(|flow| flow.id == record.id).unwrap();
        let detail = f
            .services
            .metadata
            .get_flow(f.team, record.id)
            .await
            .unwrap()
            .unwrap();
        let on_page = Elimination::largest_of_summaries(&detail.steps);
        let seq = |e: &Option<Elimination>| e.as_ref().map(|e| e.seq);
        assert_eq!(seq(&listed.largest_elimination), expected, "the list");
        assert_eq!(seq(&on_page), expected, "the flow page");
        assert_eq!(listed.largest_elimination, on_page);
    }
}

#[tokio::test]
async fn a_share_threshold_includes_its_own_value_exactly() {
    let f = fresh().await;
    // (candidates in, out, the threshold that is exactly its share)
    let cases = [
        (100, 93, "0.07"),
        (100, 86, "0.14"),
        (100, 72, "0.28"),
        (100, 45, "0.55"),
        (200, 186, "0.07"),
        (3, 2, "33.3333%"),
        (1 << 53, 0, "1"),
        ((1 << 53) - 1, (1 << 52) - 1, "0.5"),
    ];
    let mut stored = Vec::new();
    for (n, (candidates_in, candidates_out, _)) in cases.iter().enumerate() {
        let mut record = flow("thresholds", n as i64, &[]);
        record.steps = vec![crate::fixture::step(
            0,
            "gate",
            StepKind::Filter,
            (*candidates_in, *candidates_out),
        )];
        store(&f, &record).await;
        stored.push(record.id);
    }
    for (n, (candidates_in, candidates_out, share)) in cases.iter().enumerate() {
        let share = Share::parse(share).unwrap();
        let expected: Vec<_> = cases
            .iter()
            .enumerate()
            .filter(|(_, (i, o, _))| share.is_reached_by(i - o, *i))
            .map(|(m, _)| stored[m])
            .rev()
            .collect();
        assert!(
            expected.contains(&stored[n]),
            "{candidates_in} → {candidates_out} reaches its own share"
        );
        let q = FlowFilters {
            step_kind: Some(StepKind::Filter),
            min_eliminated: Some(share),
            pipeline: Some("thresholds".into()),
            ..query()
        };
        assert_eq!(ids(&f, &q).await, expected, "share {share}");
    }
    // Just above its value, a step is not returned.
    let above = FlowFilters {
        min_eliminated: Share::from_ppm(70_001),
        pipeline: Some("thresholds".into()),
        ..query()
    };
    assert!(!ids(&f, &above).await.contains(&stored[0]));
}
