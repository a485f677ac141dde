//! Browser-facing protections of every route: state-changing requests from another site are
//! refused (cross-site request forgery; Leptos server functions have none of their own), and
//! every answer carries headers that keep it from being framed or sniffed.
//!
//! Sources: OWASP Cross-Site Request Forgery Prevention Cheat Sheet ("Fetch Metadata",
//! "Verifying Origin With Standard Headers"); OWASP ASVS 5.0 V3 (web frontend security).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::error::ApiError;

/// Middleware: a request that may change state (any method but `GET`, `HEAD`, `OPTIONS`),
/// authenticated by the session cookie rather than an `Authorization` header, sent by a
/// browser from another site, answers 403 `forbidden`. A browser says where a request comes
/// from in `Sec-Fetch-Site` (anything but `same-origin` or `none`, a typed URL, is another
/// site) or, when it sends no Fetch Metadata, in `Origin` (compared with `Host`). Clients
/// that are not browsers send neither and are not subject to forgery.
pub async fn refuse_cross_site_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    if !safe && !bearer && is_cross_site(request.headers()) {
        return ApiError::Forbidden(
            "a state-changing request from another site is refused (cross-site request \
             forgery protection); send it from this site's pages"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether the browser says the request comes from another site.
fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    // `Origin: scheme://host[:port]` (or `null`, from an opaque origin: another site).
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host.as_bytes());
    origin_host.is_none() || origin_host != host
}

/// Layers adding, where the handler set none, `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: same-origin`, and a `Content-Security-Policy` that forbids framing
/// (`frame-ancestors 'none'`), plugins and a foreign `<base>`.
pub fn response_headers() -> [SetResponseHeaderLayer<HeaderValue>; 3] {
    [
        SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static("frame-ancestors 'none'; base-uri 'self'; object-src 'none'"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn another_site_is_told_apart_from_this_one() {
        let host = ("host", "127.0.0.1:3000");
        for (cross, pairs) in [
            (true, vec![("sec-fetch-site", "cross-site"), host]),
            (true, vec![("sec-fetch-site", "same-site"), host]),
            (false, vec![("sec-fetch-site", "same-origin"), host]),
            (false, vec![("sec-fetch-site", "none"), host]),
            (true, vec![("origin", "https://evil.example"), host]),
            (true, vec![("origin", "null"), host]),
            (false, vec![("origin", "http://127.0.0.1:3000"), host]),
            (false, vec![host]),
        ] {
            assert_eq!(is_cross_site(&headers(&pairs)), cross, "{pairs:?}");
        }
    }
}
