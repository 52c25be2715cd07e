//! The one Server-Sent Events encoder: every stream calos serves
//! (`/api/llm/complete`'s events, `/v1`'s chunks and `[DONE]`) is typed
//! `app::wire` values turned into SSE here, with the same keep-alives and
//! proxy headers. Decoding is `app::sse`'s.

use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::convert::Infallible;

pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// One event whose `data` is `value` as compact JSON.
pub fn event<T: Serialize>(value: &T) -> Event {
    Event::default().json_data(value).unwrap_or_else(|e| {
        // Wire types serialise infallibly; if one ever does not, the client
        // sees a comment rather than a torn stream, and the cause is logged.
        tracing::error!(error = %e, "an SSE event could not be serialised");
        Event::default().comment("unserialisable event")
    })
}

/// `data: [DONE]`, the end of an OpenAI-style stream.
pub fn done() -> Event {
    Event::default().data(app::sse::DONE)
}

/// The streamed response: `events` as they come, keep-alive comments while
/// idle, and headers so proxies relay each event as it is written.
/// `server_timing`: the phases known before the first byte.
pub fn respond<S>(events: S, server_timing: &str) -> Response
where
    S: Stream<Item = Event> + Send + 'static,
{
    let mut response = Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(value) = HeaderValue::from_str(server_timing) {
        headers.insert(SERVER_TIMING, value);
    }
    response
}

/// Sets `Server-Timing` on a whole (non-streamed) answer.
pub fn server_timing(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::wire::{CompleteEvent, Usage};

    async fn body_of(events: Vec<Event>) -> String {
        let response = respond(futures::stream::iter(events), "auth;dur=1.000");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        assert_eq!(response.headers()["server-timing"], "auth;dur=1.000");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn typed_events_go_out_as_compact_json_data_lines() {
        let body = body_of(vec![
            event(&CompleteEvent::delta("a\nb")),
            event(&CompleteEvent::error("c", "m")),
            done(),
        ])
        .await;
        assert_eq!(
            body,
            "data: {\"delta\":\"a\\nb\"}\n\ndata: {\"error\":{\"code\":\"c\",\"message\":\"m\"}}\n\ndata: [DONE]\n\n"
        );
    }

    #[tokio::test]
    async fn what_the_encoder_writes_the_decoder_reads_back() {
        let sent = vec![
            CompleteEvent::delta("x"),
            CompleteEvent::done("m".into(), "p".into(), Usage::new(1, 2), Default::default()),
        ];
        let body = body_of(sent.iter().map(event).collect()).await;
        let chunks = futures::stream::iter([Ok::<_, Infallible>(body.into_bytes())]);
        let read: Vec<CompleteEvent> = app::sse::decode(chunks)
            .filter_map(|d| async move { d.ok().and_then(|d| CompleteEvent::parse(&d).ok()) })
            .collect()
            .await;
        assert_eq!(read, sent);
    }
}
