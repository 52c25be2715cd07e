//! Conversations kept by the server: what `/api/conversations` takes and
//! returns, and what a chat reply says about the conversation it continued.
//! Each stored reply keeps its model, its tokens and its timing breakdown, so
//! history shows where the time went as the live reply did.

use super::Breakdown;
use serde::{Deserialize, Serialize};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The most conversations one page of `GET /api/conversations` holds.
pub const MAX_PAGE: usize = 100;

/// `POST /api/conversations`: both fields optional. Without a title, the
/// first message names the conversation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateConversationRequest {
    /// 1-200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The model new messages go to unless a request names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// `PATCH /api/conversations/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenameConversationRequest {
    /// 1-200 characters.
    pub title: String,
}

/// A conversation without its messages (the list's row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    /// The model its last reply came from, or the one it was made with.
    pub model: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC: the last message or rename.
    pub updated_at: String,
    pub message_count: u64,
}

/// How a stored message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Whole.
    #[default]
    Complete,
    /// The user stopped the reply (or went away); `content` is what had arrived.
    Stopped,
    /// The provider failed; `content` is what had arrived, `errorCode` says why.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "complete" => Some(Self::Complete),
            "stopped" => Some(Self::Stopped),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub status: MessageStatus,
    /// The API's error code, for a failed reply.
    pub error_code: Option<String>,
    /// The model and provider that answered (replies only).
    pub model: Option<String>,
    pub provider: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// The reply's timing breakdown, as its request reported it.
    pub timings: Option<Breakdown>,
    /// The request that wrote it (its `X-Request-Id`).
    pub request_id: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `GET /api/conversations/{id}`: the conversation and its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub messages: Vec<MessageView>,
}

/// `GET /api/conversations`: newest first. Pages are cut by creation, which
/// never changes, so a list read while chats go on neither repeats nor skips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
    /// Pass as `before` for the next page; `null` on the last one.
    pub next_before: Option<String>,
}

/// What a chat reply with a `conversationId` adds: where it was stored and
/// how much history went to the model. Fields are in alphabetical order,
/// as every object in a chat reply is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationTurn {
    /// The oldest stored messages left out because the history was longer
    /// than the model's context (the system prompt is always kept); 0 normally.
    pub history_dropped: u32,
    /// Stored messages sent to the model with this request.
    pub history_sent: u32,
    /// The conversation's id.
    pub id: String,
    /// The stored reply's id.
    pub message_id: String,
}
