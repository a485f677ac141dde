//! `GET /api/v1/events`: Server-Sent Events, one `flow` event per flow of the caller's team as
//! it becomes queryable, whichever server or worker stored it.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::auth::Reader;
use super::extract::ApiQuery;
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::ErrorBody;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(events))
}

/// Optional filter of the event stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct EventFilter {
    /// Only flows of this pipeline.
    pipeline: Option<String>,
}

/// One event of the stream, as an SSE parser reads it (the OpenAPI document's shape of the
/// stream; the wire format is `text/event-stream`, WHATWG HTML § 9.2).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the stream; never built
pub(crate) struct ServerSentEvent {
    /// `ready` (first, data `{}`), `flow` (data: a FlowSummary as JSON) or `lagged` (data:
    /// how many events this reader missed).
    #[schema(pattern = "^(ready|flow|lagged)$")]
    event: String,
    /// The event's data: JSON text.
    data: String,
    /// The flow id, on `flow` events.
    id: Option<String>,
    /// Milliseconds a client waits before it reconnects.
    retry: Option<u64>,
}

/// Flows as they land, as Server-Sent Events.
///
/// First a `ready` event (the subscription is live), then one `flow` event per stored flow
/// of the caller's team: `id` is the flow id, `data` the flow's summary as in
/// `GET /api/v1/flows`. A `lagged` event (data: how many were missed) tells a slow reader to
/// refresh the list. Comments keep idle connections open. The stream ends when the server
/// shuts down; clients reconnect after the `retry` of the `ready` event (3 s).
#[utoipa::path(
    get, path = "/api/v1/events", tag = "query",
    params(EventFilter),
    responses(
        (status = 200, description = "`text/event-stream`: `ready`, then `flow` events whose data is a FlowSummary", content_type = "text/event-stream", body = ServerSentEvent),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    Reader(caller): Reader,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let team = caller.team_id;
    let pipeline = filter.pipeline;
    let landed = BroadcastStream::new(state.services.events.subscribe()).filter_map(move |item| {
        let event = match item {
            Ok(landed) if landed.team_id != team => None,
            Ok(landed)
                if pipeline
                    .as_deref()
                    .is_some_and(|wanted| wanted != landed.flow.pipeline) =>
            {
                None
            }
            Ok(landed) => Event::default()
                .event("flow")
                .id(landed.flow.id.to_string())
                .json_data(&landed.flow)
                .ok(),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Some(Event::default().event("lagged").data(missed.to_string()))
            }
        };
        std::future::ready(event.map(Ok))
    });
    let ready = Event::default()
        .event("ready")
        .retry(Duration::from_secs(3))
        .data("{}");
    // The stream ends when the server shuts down (the client reconnects after `retry`).
    let events = stream::once(std::future::ready(Ok(ready)))
        .chain(landed)
        .take_until(state.closed());
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
