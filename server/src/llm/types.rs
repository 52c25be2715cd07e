//! The provider-neutral shapes of a chat: what goes up, what comes back.

use serde::{Deserialize, Serialize};

/// One message of a conversation, as every provider takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A validated chat request, ready for a provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatParams {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The request's trace (empty when not traced): where the model call's
    /// span is recorded, and the `traceparent` sent upstream. Not part of
    /// what is asked, so not part of the cache key.
    #[serde(skip)]
    pub trace: crate::observability::otel::TraceHandle,
}

/// Token counts: part of the wire contract (`app::wire`).
pub use app::wire::Usage;

pub use app::wire::UpstreamTimings;

/// One piece of a provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Text to append (may be empty: role-only deltas, keep-alives).
    Delta(String),
    Usage(Usage),
    Timings(UpstreamTimings),
}

pub fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1_000_000.0
}
