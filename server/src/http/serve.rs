//! The HTTP server loop (HTTP/1.1 and HTTP/2 over TCP, one task per connection, hyper), with
//! the time limits that keep a slow client from holding connections open for ever — the
//! "slow HTTP" denial of service (slowloris: a request head sent a byte at a time; slow
//! POST: a body that stalls), OWASP's Denial of Service cheat sheet. `axum::serve` sets no
//! read timeout at all.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// How slowly a client may send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTimeouts {
    /// A new connection's first byte, and then each whole request head (request line and
    /// headers) of HTTP/1.1, must arrive within this long, or the connection is closed
    /// without an answer (hyper's `header_read_timeout`; an idle keep-alive connection is
    /// closed after it too).
    pub head: Duration,
    /// A request body may not stall longer than this between two of its chunks; a handler
    /// reading it then fails as for any unreadable body (400 `malformed_json`, "the request
    /// body could not be read").
    pub body_idle: Duration,
}

impl Default for ReadTimeouts {
    /// 30 s for each (hyper's default for the head).
    fn default() -> Self {
        ReadTimeouts {
            head: Duration::from_secs(30),
            body_idle: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits
/// for the requests in progress (the caller bounds that wait). Each request carries its
/// client's address as [`ConnectInfo<SocketAddr>`], as `into_make_service_with_connect_info`
/// gives it. An error accepting a connection (out of file descriptors) is logged and
/// retried after 100 ms, as `axum::serve` does after 1 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    timeouts: ReadTimeouts,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.head);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are written whole: no Nagle delay on the last segment.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body_idle = timeouts.body_idle;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(|body| Body::new(TimeoutBody::new(body_idle, body)));
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let (builder, watcher, head) = (builder.clone(), graceful.watcher(), timeouts.head);
        tokio::spawn(async move {
            // hyper's head timeout starts at a request's first byte: a client that connects
            // and sends nothing would hold its connection for ever. It gets as long for its
            // first byte.
            let mut first = [0u8; 1];
            match tokio::time::timeout(head, stream.peek(&mut first)).await {
                Ok(Ok(read)) if read > 0 => {}
                _ => return,
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, %peer, "connection closed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
