//! `POST /api/llm/complete`: the request and its limits (replies and stream
//! events are in `stream`, the `/v1` shapes in `openai`).

use serde::{Deserialize, Serialize};

/// One message in `POST /api/llm/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatMessageIn {
    #[cfg_attr(feature = "openapi", schema(pattern = "^(system|user|assistant)$"))]
    pub role: String,
    #[cfg_attr(feature = "openapi", schema(max_length = 32768))]
    pub content: String,
}

/// `POST /api/llm/complete`. Unknown fields (an `api_base`, say) are rejected:
/// the upstream is chosen by the server's routing rules only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// 1-128 letters, digits and `. _ : / - @` (surrounding spaces are trimmed).
    pub model: String,
    /// 1-256 messages. With a `conversationId`, only the new ones (the stored
    /// history is sent for you); none with `regenerate`.
    #[cfg_attr(feature = "openapi", schema(max_items = 256))]
    pub messages: Vec<ChatMessageIn>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// 0-2.
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 32768))]
    pub max_tokens: Option<u32>,
    #[serde(default, rename = "includeTimings")]
    pub include_timings: bool,
    /// One of the caller's conversations: the messages are added to it, its
    /// stored history goes to the model before them, and the reply is stored.
    /// Absent: stateless, as always.
    #[serde(
        default,
        rename = "conversationId",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_id: Option<String>,
    /// With `conversationId` and no messages: answer the conversation's last
    /// user message again, replacing the reply after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regenerate: bool,
}

/// Chat request limits, checked before any upstream call (documented in the README).
pub const MAX_MESSAGES: usize = 256;
pub const MAX_MESSAGE_CHARS: usize = 32 * 1024;
pub const MAX_TOTAL_CHARS: usize = 256 * 1024;
pub const MAX_OUTPUT_TOKENS: u32 = 32_768;
pub const MAX_MODEL_NAME: usize = 128;
