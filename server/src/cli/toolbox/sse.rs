//! Reads a streamed chat reply as it arrives and timestamps each event when it
//! is decoded (never per network read: one read can hold several events, and
//! `app::sse` frames them).
//! Reads calos's events as the wire [`CompleteEvent`] (`{"delta"}`, `{"done"}`,
//! `{"error"}`) and OpenAI's as the wire [`StreamData`] (chunks, the usage
//! chunk, `[DONE]`), the same types the server writes and reads upstream.

use super::client::ChatApi;
use super::figures::ServerFigures;
use app::wire::{CompleteEvent, StreamData};
use futures::StreamExt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Everything the toolbox learns from one stream.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    /// The first body byte (TTFB; headers and keep-alives count, content need not).
    pub first_byte: Option<Instant>,
    /// When each event with non-empty content was parsed.
    pub content_at: Vec<Instant>,
    /// `usage.completion_tokens` from the final event, when the server sent it.
    pub completion_tokens: Option<u32>,
    /// The server's breakdown from the final event (calos only).
    pub figures: Option<ServerFigures>,
    /// An error event, a malformed event or a cut-off stream.
    pub error: Option<String>,
}

/// What one `data:` payload means.
#[derive(Debug, PartialEq)]
enum Event {
    Content,
    Empty,
    Final {
        tokens: Option<u32>,
        figures: Option<ServerFigures>,
    },
    Done,
    Error(String),
}

fn content(text: Option<&str>) -> Event {
    match text {
        Some(t) if !t.is_empty() => Event::Content,
        _ => Event::Empty,
    }
}

fn classify(api: ChatApi, payload: &str) -> Event {
    let malformed = |_| Event::Error(format!("malformed event: {payload:.80}"));
    match api {
        ChatApi::Calos => match CompleteEvent::parse(payload) {
            Ok(CompleteEvent::Delta { delta }) => content(Some(&delta)),
            Ok(CompleteEvent::Done(done)) => Event::Final {
                tokens: Some(done.usage.completion_tokens),
                figures: Some(ServerFigures::from_timings(&done.timings)),
            },
            Ok(CompleteEvent::Error { error }) => Event::Error(error.message),
            // calos's API ends with its `done` event; a `[DONE]` is tolerated.
            Err(_) if payload == app::sse::DONE => Event::Done,
            Err(e) => malformed(e),
        },
        ChatApi::Openai => match StreamData::parse(payload) {
            Ok(StreamData::Done) => Event::Done,
            Ok(StreamData::Error(error)) if error.message.is_empty() => {
                Event::Error("stream error".into())
            }
            Ok(StreamData::Error(error)) => Event::Error(error.message),
            // The usage chunk (empty `choices`) is the last one before `[DONE]`;
            // calos's carries its breakdown too.
            Ok(StreamData::Chunk(chunk)) => match chunk.usage {
                Some(usage) => Event::Final {
                    tokens: Some(usage.completion_tokens),
                    figures: chunk.timings.as_ref().map(ServerFigures::from_timings),
                },
                None => content(chunk.content()),
            },
            Err(e) => malformed(e),
        },
    }
}

/// Reads an SSE body to the end.
pub async fn read_stream<S, E>(api: ChatApi, body: S) -> StreamOutcome
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let first = Arc::new(OnceLock::new());
    let seen = first.clone();
    let body = body.map(move |chunk| {
        let _ = seen.set(Instant::now());
        chunk
    });
    let mut outcome = StreamOutcome::default();
    let mut finished = false;
    let mut events = std::pin::pin!(app::sse::decode(body));
    while let Some(data) = events.next().await {
        let data = match data {
            Ok(data) => data,
            Err(e) => {
                outcome.error = Some(format!("stream broke: {e}"));
                break;
            }
        };
        match classify(api, data.trim()) {
            Event::Content => outcome.content_at.push(Instant::now()),
            Event::Empty => {}
            Event::Final { tokens, figures } => {
                outcome.completion_tokens = tokens.or(outcome.completion_tokens);
                outcome.figures = figures.or(outcome.figures);
                finished = true;
            }
            Event::Done => finished = true,
            Event::Error(message) => {
                outcome.error = Some(message);
                break;
            }
        }
    }
    if !finished && outcome.error.is_none() {
        outcome.error = Some("the stream ended before its final event".into());
    }
    outcome.first_byte = first.get().copied();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = r#"{"done":true,"model":"m","provider":"p","timings":{"attempts":1,"auth":1,"cache":0,"cacheStatus":"miss","database":2,"queue":0,"total":9},"usage":{"completion_tokens":7,"prompt_tokens":3,"total_tokens":10}}"#;

    #[test]
    fn calos_events_are_classified() {
        let calos = |payload| classify(ChatApi::Calos, payload);
        assert_eq!(calos(r#"{"delta":"Hi"}"#), Event::Content);
        assert_eq!(calos(r#"{"delta":""}"#), Event::Empty);
        let Event::Final { tokens, figures } = calos(DONE) else {
            panic!("not final")
        };
        assert_eq!(tokens, Some(7));
        assert_eq!(figures.and_then(|f| f.total), Some(9.0));
        assert!(matches!(
            calos(r#"{"error":{"code":"upstream_timeout","message":"boom"}}"#),
            Event::Error(m) if m == "boom"
        ));
        assert!(matches!(calos("{not json"), Event::Error(_)));
        assert!(matches!(calos(r#"{"choices":[]}"#), Event::Error(_)));
    }

    #[test]
    fn openai_chunks_are_classified() {
        let openai = |payload| classify(ChatApi::Openai, payload);
        assert_eq!(
            openai(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#),
            Event::Content
        );
        assert_eq!(
            openai(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            Event::Empty
        );
        assert_eq!(openai("[DONE]"), Event::Done);
        assert_eq!(
            openai(
                r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}"#
            ),
            Event::Final {
                tokens: Some(4),
                figures: None
            }
        );
        let with_timings = r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5},"timings":{"auth":1,"database":2,"queue":0,"cache":0,"total":9}}"#;
        let Event::Final { figures, .. } = openai(with_timings) else {
            panic!("not final")
        };
        assert_eq!(figures.map(|f| f.database), Some(2.0));
        assert!(
            matches!(openai(r#"{"error":{"message":"boom"}}"#), Event::Error(m) if m == "boom")
        );
        assert!(matches!(openai("{not json"), Event::Error(_)));
    }

    #[tokio::test]
    async fn a_stream_split_across_reads_with_keep_alives_is_read_whole() {
        let pieces = [
            ": keep-alive\r\n\r\ndata: {\"del".to_string(),
            format!("ta\":\"Hi\"}}\n\ndata: {DONE}\n"),
            "\n".to_string(),
        ];
        let body =
            futures::stream::iter(pieces.map(|p| Ok::<_, std::io::Error>(bytes::Bytes::from(p))));
        let outcome = read_stream(ChatApi::Calos, body).await;
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.content_at.len(), 1);
        assert_eq!(outcome.completion_tokens, Some(7));
        assert!(outcome.first_byte.is_some());
    }
}
