//! The one Server-Sent Events encoder: every stream calos serves
//! (`/api/llm/complete`'s events, `/v1`'s chunks and `[DONE]`) is typed
//! `app::wire` values turned into SSE here, with the same keep-alives and
//! proxy headers. Decoding is `app::sse`'s.

use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;

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

/// Ends a streamed response as an error: hyper then closes the connection
/// without the chunked body's last chunk, so the client sees a broken stream,
/// not an answer that merely stopped.
#[derive(Debug, thiserror::Error)]
#[error("the client stopped reading; the stream was cut")]
pub struct StreamCut;

/// The streamed response: `events` as they come, keep-alive comments while
/// idle, and headers so proxies relay each event as it is written.
/// `server_timing`: the phases known before the first byte.
pub fn respond<S>(events: S, server_timing: &str) -> Response
where
    S: Stream<Item = Result<Event, StreamCut>> + Send + 'static,
{
    let mut response = Sse::new(events)
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
    use futures::StreamExt;
    use std::convert::Infallible;

    async fn body_of(events: Vec<Event>) -> String {
        let response = respond(
            futures::stream::iter(events.into_iter().map(Ok)),
            "auth;dur=1.000",
        );
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
    async fn a_cut_stream_is_an_error_not_an_end() {
        let events = futures::stream::iter([Ok(event(&CompleteEvent::delta("x"))), Err(StreamCut)]);
        let body = respond(events, "").into_body();
        let read = axum::body::to_bytes(body, usize::MAX).await;
        assert!(
            read.is_err(),
            "the body ends in an error, so hyper aborts the response"
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
