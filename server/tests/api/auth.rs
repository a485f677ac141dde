//! Who may do what: API key scopes, query validation, dashboard pages without a session.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;

use crate::app::{FLOW_ID, app, error_code, flow_json};

#[tokio::test]
async fn keys_are_checked_for_scope_and_queries_for_validity() {
    let app = app().await;
    let read_only = app
        .services
        .create_api_key("default", "reader", Scope::Read)
        .await
        .unwrap();
    let request = Request::post("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {read_only}"))
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "forbidden"
    );

    let ingest_only = app
        .services
        .create_api_key("default", "pipeline", Scope::Ingest)
        .await
        .unwrap();
    let request = Request::get("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {ingest_only}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::FORBIDDEN);
    let anonymous = Request::get("/api/v1/flows").body(Body::empty()).unwrap();
    assert_eq!(app.call(anonymous).await.0, StatusCode::UNAUTHORIZED);

    for (query, field) in [
        ("status=done", "status"),
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("tag=novalue", "tag"),
        ("step_kind=sieve", "step_kind"),
        ("min_eliminated=1.5", "min_eliminated"),
        ("cursor=garbage", "cursor"),
    ] {
        let (status, body) = app.get_json(&format!("/api/v1/flows?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let (status, _) = app
        .get_json("/api/v1/flows?pipeline=p&status=failed&tag=env:prod&tag=a:b&since=2026-11-21T00:00:00Z&step_kind=filter&min_eliminated=0.9&limit=500&q=x")
        .await;
    assert_eq!(status, StatusCode::OK);

    for uri in [
        "/api/v1/flows/not-a-uuid",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99/steps/1/observations",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99/steps/x/observations",
    ] {
        let (status, body) = app.get_json(uri).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn dashboard_pages_send_visitors_without_a_session_to_sign_in() {
    let app = app().await;
    for path in ["/", "/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11?step=2"] {
        let (status, headers, _) = app
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            headers[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/login?next=%2F")
        );
    }
    let (status, _, body) = app
        .call(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Sign in to Flow Trail"));
    assert!(html.contains("type=\"password\""));
    assert!(
        html.contains("/pkg/flowtrail.js"),
        "hydration script is linked"
    );
}

#[tokio::test]
async fn sign_in_refuses_plainly_redirects_only_locally_and_only_from_this_site() {
    use flowtrail_app::api::Login;
    use flowtrail_domain::accounts::Role;
    use leptos::server_fn::ServerFn;
    let app = app().await;
    // One account per part: each has its own sign-in bucket (5 attempts, then one per 12 s).
    for n in 1..=4 {
        app.services
            .create_user(
                &format!("m{n}@example.org"),
                "correct horse",
                "default",
                Role::Member,
            )
            .await
            .unwrap();
    }
    let login = |body: &str, extra: &[(&'static str, &'static str)]| {
        let mut request = Request::post(Login::PATH)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "127.0.0.1:3000");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.body(Body::from(body.to_string())).unwrap()
    };
    // A wrong password is the caller's doing: 401, never 500.
    let (status, _, body) = app
        .call(login(
            "email=m1%40example.org&password=wrong",
            &[("accept", "application/json")],
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("Wrong e-mail or password."));
    // Without JavaScript the browser follows Leptos' redirect back to the form: no 4xx there.
    let (status, _, _) = app
        .call(login(
            "email=m1%40example.org&password=wrong",
            &[("accept", "text/html")],
        ))
        .await;
    assert!(status.is_redirection(), "{status}");
    // Arguments the server function cannot read are the caller's doing: 400, not 500.
    for body in ["", "email=m1%40example.org", "email=a&email=b&password=x"] {
        let (status, _, _) = app.call(login(body, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    }
    // `next` may only name a path of this site: `/\host` is another site to a browser.
    for (next, expected) in [
        ("%2F%5Cexample.org%2Fx", "/"),
        ("%2F%2Fexample.org", "/"),
        ("%2Fflows%3Fq%3Da", "/flows?q=a"),
    ] {
        let (_, headers, _) = app
            .call(login(
                &format!("email=m2%40example.org&password=correct+horse&next={next}"),
                &[],
            ))
            .await;
        assert_eq!(headers[header::LOCATION], expected, "next={next}");
    }
    // A sign-in form posted from another site is refused; this site's is not.
    for (headers, status) in [
        (
            vec![("sec-fetch-site", "cross-site")],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("origin", "https://evil.example")],
            StatusCode::FORBIDDEN,
        ),
        (vec![("origin", "http://127.0.0.1:3000")], StatusCode::OK),
        (vec![("sec-fetch-site", "same-origin")], StatusCode::OK),
    ] {
        let (got, _, body) = app
            .call(login(
                "email=m3%40example.org&password=correct+horse",
                &headers,
            ))
            .await;
        assert_eq!(
            got,
            status,
            "{headers:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // Guessing is throttled per address, known or not, alike: a burst of 5, then 429.
    for email in ["m4%40example.org", "nobody%40example.org"] {
        let statuses: Vec<StatusCode> = futures::future::join_all(
            (0..6).map(|_| app.call(login(&format!("email={email}&password=guess"), &[]))),
        )
        .await
        .into_iter()
        .map(|(status, _, _)| status)
        .collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
                .count(),
            1,
            "{email}: {statuses:?}"
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::UNAUTHORIZED)
                .count(),
            5,
            "{email}: {statuses:?}"
        );
    }
    let (status, headers, _) = app
        .call(login("email=m4%40example.org&password=correct+horse", &[]))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "no lockout, but a wait"
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    // An API call with a key carries no ambient credential: its origin does not matter.
    let request = app
        .post(())
        .header("origin", "https://evil.example")
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);
    // Every answer says not to be framed or sniffed.
    let (_, headers, _) = app
        .call(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn over_https_the_session_cookie_is_host_prefixed_and_hsts_is_sent() {
    use flowtrail_app::api::Login;
    use flowtrail_domain::accounts::Role;
    use leptos::server_fn::ServerFn;
    for secure in [false, true] {
        let app = crate::app::app_with(|config| config.secure_cookies = secure).await;
        app.services
            .create_user("s@example.org", "correct horse", "default", Role::Member)
            .await
            .unwrap();
        let request = Request::post(Login::PATH)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("email=s%40example.org&password=correct+horse"))
            .unwrap();
        let (_, headers, _) = app.call(request).await;
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
        assert_eq!(
            cookie.starts_with("__Host-flowtrail_session="),
            secure,
            "{cookie}"
        );
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
        assert_eq!(
            headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
            secure
        );
    }
}

#[tokio::test]
async fn pages_carry_a_script_policy_with_a_fresh_nonce_per_answer() {
    let app = app().await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let (status, headers, body) = app
            .call(Request::get("/login").body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK);
        let policy = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        let nonce = policy
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no nonce in {policy}"))
            .to_string();
        assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
        assert!(!policy.contains("'unsafe-eval'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(
            !policy.contains("script-src 'self' 'unsafe-inline'"),
            "{policy}"
        );
        let html = String::from_utf8(body).unwrap();
        // Every script of the page carries the nonce.
        let scripts = html.matches("<script").count();
        assert!(scripts > 0, "{html}");
        assert_eq!(
            html.matches(&format!("nonce=\"{nonce}\"")).count(),
            scripts,
            "{html}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a nonce is used once");
    // An API answer keeps the strict default.
    let (_, headers, _) = app.get("/api/v1/flows").await;
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
    );
}
