//! Reads a streamed chat reply as it arrives and timestamps each event when it
//! is parsed (never per network read: one read can hold several events).
//! Understands both calos's events (`{"delta"}`, `{"done"}`, `{"error"}`) and
//! OpenAI's chunks (`choices[0].delta.content`, the usage chunk, `[DONE]`).

use super::figures::ServerFigures;
use crate::llm::lines::lines;
use futures::StreamExt;
use serde_json::Value;
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

fn classify(payload: &str) -> Event {
    if payload == "[DONE]" {
        return Event::Done;
    }
    let Ok(v) = serde_json::from_str::<Value>(payload) else {
        return Event::Error(format!("malformed event: {payload:.80}"));
    };
    if let Some(error) = v.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("stream error");
        return Event::Error(message.to_string());
    }
    let tokens = v
        .pointer("/usage/completion_tokens")
        .and_then(Value::as_u64)
        .map(|t| t as u32);
    let figures = v.get("timings").and_then(ServerFigures::from_timings);
    // calos: {"done":true,…}; OpenAI: the usage chunk has empty `choices`.
    if v.get("done").and_then(Value::as_bool) == Some(true) || tokens.is_some() {
        return Event::Final { tokens, figures };
    }
    let text = v.get("delta").and_then(Value::as_str).or_else(|| {
        v.pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
    });
    match text {
        Some(t) if !t.is_empty() => Event::Content,
        _ => Event::Empty,
    }
}

/// Reads `response`'s SSE body to the end.
pub async fn read_stream(response: reqwest::Response) -> StreamOutcome {
    let first = Arc::new(OnceLock::new());
    let seen = first.clone();
    let body = response.bytes_stream().map(move |chunk| {
        let _ = seen.set(Instant::now());
        chunk
    });
    let mut outcome = StreamOutcome::default();
    let mut finished = false;
    let mut events = std::pin::pin!(lines(body));
    while let Some(line) = events.next().await {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                outcome.error = Some(format!("stream broke: {e}"));
                break;
            }
        };
        let Some(payload) = line.strip_prefix("data:") else {
            continue; // blank separators, `: keep-alive` comments, `event:` lines
        };
        match classify(payload.trim()) {
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
}
