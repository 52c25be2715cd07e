//! Reads a streamed chat reply as it arrives and timestamps each event when it
//! is decoded (never per network read: one read can hold several events, and
//! `app::sse` frames them).
//! Understands both calos's events (`{"delta"}`, `{"done"}`, `{"error"}`) and
//! OpenAI's chunks (`choices[0].delta.content`, the usage chunk, `[DONE]`).

use super::figures::ServerFigures;
use futures::StreamExt;
use serde::Deserialize;
use std::borrow::Cow;
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

/// The fields the toolbox reads from either API's events and answers; serde
/// skips everything else without building a tree (this runs per event under load).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Payload<'a> {
    /// calos: `{"delta":"…"}`.
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
    /// calos: `{"done":true,…}`.
    done: bool,
    /// OpenAI: `choices[0].delta.content`.
    choices: Vec<Choice<'a>>,
    pub usage: Option<UsageTokens>,
    pub timings: Option<ServerFigures>,
    error: Option<ErrorBody<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsageTokens {
    pub completion_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

impl Payload<'_> {
    pub fn completion_tokens(&self) -> Option<u32> {
        self.usage.as_ref().and_then(|u| u.completion_tokens)
    }

    pub fn figures(&self) -> Option<ServerFigures> {
        self.timings.filter(ServerFigures::is_complete)
    }
}

fn classify(payload: &str) -> Event {
    if payload == "[DONE]" {
        return Event::Done;
    }
    let v: Payload = match serde_json::from_str(payload) {
        Ok(v) => v,
        Err(_) => return Event::Error(format!("malformed event: {payload:.80}")),
    };
    if let Some(error) = &v.error {
        let message = error.message.as_deref().unwrap_or("stream error");
        return Event::Error(message.to_string());
    }
    let tokens = v.completion_tokens();
    // calos: {"done":true,…}; OpenAI: the usage chunk has empty `choices`.
    if v.done || tokens.is_some() {
        return Event::Final {
            tokens,
            figures: v.figures(),
        };
    }
    let text = v.delta.as_deref().or_else(|| {
        v.choices
            .first()
            .and_then(|c| c.delta.as_ref())
            .and_then(|d| d.content.as_deref())
    });
    match text {
        Some(t) if !t.is_empty() => Event::Content,
        _ => Event::Empty,
    }
}

/// Reads an SSE body to the end.
pub async fn read_stream<S, E>(body: S) -> StreamOutcome
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
        match classify(data.trim()) {
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

    #[test]
    fn both_apis_events_are_classified() {
        assert_eq!(classify(r#"{"delta":"Hi"}"#), Event::Content);
        assert_eq!(classify(r#"{"delta":""}"#), Event::Empty);
        assert_eq!(
            classify(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#),
            Event::Content
        );
        assert_eq!(
            classify(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            Event::Empty
        );
        assert_eq!(classify("[DONE]"), Event::Done);
        let Event::Final { tokens, figures } = classify(
            r#"{"done":true,"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10},"timings":{"auth":1,"database":2,"queue":0,"cache":0,"total":9}}"#,
        ) else {
            panic!("not final")
        };
        assert_eq!(tokens, Some(7));
        assert_eq!(figures.and_then(|f| f.total), Some(9.0));
        assert_eq!(
            classify(r#"{"choices":[],"usage":{"completion_tokens":4}}"#),
            Event::Final {
                tokens: Some(4),
                figures: None
            }
        );
        assert!(
            matches!(classify(r#"{"error":{"message":"boom"}}"#), Event::Error(m) if m == "boom")
        );
        assert!(matches!(classify("{not json"), Event::Error(_)));
    }

    #[tokio::test]
    async fn a_stream_split_across_reads_with_keep_alives_is_read_whole() {
        let pieces = [
            ": keep-alive\r\n\r\ndata: {\"del",
            "ta\":\"Hi\"}\n\ndata: {\"done\":true,\"usage\":{\"completion_tokens\":1}}\n",
            "\n",
        ];
        let body =
            futures::stream::iter(pieces.map(|p| Ok::<_, std::io::Error>(bytes::Bytes::from(p))));
        let outcome = read_stream(body).await;
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.content_at.len(), 1);
        assert_eq!(outcome.completion_tokens, Some(1));
        assert!(outcome.first_byte.is_some());
    }
}
