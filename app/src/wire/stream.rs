//! `POST /api/llm/complete`'s replies: the whole answer (`stream:false`) and
//! the events of a streamed one (`data: {"delta"}` per token, then
//! `{"done":true,…}` or `{"error"}`).
//!
//! Field order is the bytes calos has always sent: the replies used to be built
//! with `serde_json::json!`, whose maps sort their keys, so fields are declared
//! alphabetically and nested objects go out sorted too ([`sorted`]). Clients
//! that diff or grep the raw output see no change.

use super::{Breakdown, Usage};
use serde::{Deserialize, Serialize, Serializer};

/// Serialises a nested value with its keys sorted, as `json!` did (one small
/// allocation, once per reply or final event).
pub fn sorted<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

fn sorted_some<T: Serialize, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => sorted(v, s),
        None => s.serialize_none(),
    }
}

/// `stream:false`: the whole answer; `timings` only when asked for
/// (`includeTimings` or `X-Timing-Detail`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteResponse {
    /// Where the exchange was stored (only with a `conversationId`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_some"
    )]
    pub conversation: Option<super::ConversationTurn>,
    pub model: String,
    pub provider: String,
    pub success: bool,
    pub text: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_some"
    )]
    pub timings: Option<Breakdown>,
    #[serde(serialize_with = "sorted")]
    pub usage: Usage,
}

/// One event of a streamed answer: the `data` of one SSE event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum CompleteEvent {
    /// `{"delta":"…"}`: text to append.
    Delta { delta: String },
    /// `{"done":true,…}`: the last event of a good stream.
    Done(Box<StreamDone>),
    /// `{"error":{"code","message"}}`: the provider failed mid-way; last event.
    Error { error: StreamError },
}

/// The final event: usage and the full breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamDone {
    /// Where the exchange was stored (only with a `conversationId`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_some"
    )]
    pub conversation: Option<super::ConversationTurn>,
    /// Always `true` (tells this event from a delta in untyped clients).
    pub done: bool,
    pub model: String,
    pub provider: String,
    #[serde(serialize_with = "sorted")]
    pub timings: Breakdown,
    #[serde(serialize_with = "sorted")]
    pub usage: Usage,
}

/// What went wrong after the stream had started (the API's error code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamError {
    pub code: String,
    pub message: String,
}

impl CompleteEvent {
    pub fn delta(text: impl Into<String>) -> Self {
        Self::Delta { delta: text.into() }
    }

    pub fn done(model: String, provider: String, usage: Usage, timings: Breakdown) -> Self {
        Self::Done(Box::new(StreamDone {
            conversation: None,
            done: true,
            model,
            provider,
            timings,
            usage,
        }))
    }

    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Error {
            error: StreamError {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    /// Reads one event's `data`.
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CacheStatus;
    use serde_json::json;

    fn breakdown() -> Breakdown {
        Breakdown {
            auth: 0.5,
            database: 1.0,
            cache_status: CacheStatus::Miss,
            ttft: Some(3.0),
            llm: Some(9.0),
            total: 10.0,
            attempts: 1,
            ..Default::default()
        }
    }

    fn text(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }

    /// The bytes the handlers sent when they built these with `json!`.
    #[test]
    fn events_are_byte_for_byte_what_json_macro_built() {
        let (usage, b) = (Usage::new(3, 5), breakdown());
        assert_eq!(
            text(&CompleteEvent::delta("Hi \"you\"")),
            json!({ "delta": "Hi \"you\"" }).to_string()
        );
        assert_eq!(
            text(&CompleteEvent::done(
                "m".into(),
                "p".into(),
                usage,
                b.clone()
            )),
            json!({ "done": true, "model": "m", "provider": "p", "usage": usage, "timings": b })
                .to_string()
        );
        assert_eq!(
            text(&CompleteEvent::error("model_not_found", "no")),
            json!({ "error": { "code": "model_not_found", "message": "no" } }).to_string()
        );
        let mut whole = CompleteResponse {
            conversation: None,
            model: "m".into(),
            provider: "p".into(),
            success: true,
            text: "t".into(),
            timings: None,
            usage,
        };
        let mut old =
            json!({ "success": true, "text": "t", "model": "m", "provider": "p", "usage": usage });
        assert_eq!(text(&whole), old.to_string());
        whole.timings = Some(b.clone());
        old["timings"] = json!(b);
        assert_eq!(text(&whole), old.to_string());
    }

    #[test]
    fn events_read_back_as_what_was_sent() {
        for event in [
            CompleteEvent::delta(""),
            CompleteEvent::done("m".into(), "p".into(), Usage::new(1, 2), breakdown()),
            CompleteEvent::error("upstream_timeout", "slow"),
        ] {
            assert_eq!(CompleteEvent::parse(&text(&event)).ok(), Some(event));
        }
        assert!(CompleteEvent::parse("{not json").is_err());
        assert!(CompleteEvent::parse(r#"{"other":1}"#).is_err());
    }
}
