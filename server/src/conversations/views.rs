//! Rows as the API shows them.

use super::store::{ConversationRow, MessageRow};
use app::wire::{ConversationView, MessageStatus, MessageView};

/// Unix milliseconds as RFC 3339, UTC, to the millisecond.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn unsigned(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

pub fn conversation(row: &ConversationRow) -> ConversationView {
    ConversationView {
        id: row.conversation_id.clone(),
        title: row.title.clone(),
        model: row.model.clone(),
        created_at: rfc3339(row.created_at_ms),
        updated_at: rfc3339(row.updated_at_ms),
        message_count: u64::try_from(row.message_count).unwrap_or(0),
    }
}

pub fn message(row: &MessageRow) -> MessageView {
    MessageView {
        id: row.message_id.clone(),
        role: row.role.clone(),
        content: row.content.clone(),
        status: MessageStatus::parse(&row.status).unwrap_or_default(),
        error_code: row.error_code.clone(),
        model: row.model.clone(),
        provider: row.provider.clone(),
        prompt_tokens: unsigned(row.prompt_tokens),
        completion_tokens: unsigned(row.completion_tokens),
        // Written by calos from a `Breakdown`; one that no longer parses
        // (a future field removed) is shown without timings, not as an error.
        timings: row
            .timings
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok()),
        request_id: row.request_id.clone(),
        created_at: rfc3339(row.created_at_ms),
    }
}
