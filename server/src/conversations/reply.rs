//! Storing a reply as far as it got.
//!
//! A [`ReplyRecorder`] goes with one chat turn. A whole reply is stored as
//! `complete`; a failed one as `failed` with its error code and whatever text
//! had arrived. A streamed reply whose client went away (the Stop button
//! aborts the request) never reaches either: the recorder is dropped with the
//! response body, and then stores what the client was sent as `stopped`.
//! Each fills the row reserved for the reply when its turn began (empty and
//! `stopped` until then), so a late write lands in its place, or nowhere when
//! the reply was regenerated meanwhile.

use super::store::NewMessage;
use super::{Conversations, Turn};
use app::wire::{Breakdown, MessageStatus, Usage};

/// One turn's reply, being recorded.
pub struct ReplyRecorder {
    conversations: Conversations,
    conversation_id: String,
    reply_id: String,
    request_id: String,
    model: String,
    provider: String,
    text: String,
    /// Set once stored, so that dropping it stores nothing more.
    stored: bool,
}

/// How the reply ended and what it cost.
pub struct Ending<'a> {
    pub status: MessageStatus,
    pub error_code: Option<&'a str>,
    pub usage: Option<Usage>,
    pub timings: Option<&'a Breakdown>,
}

impl ReplyRecorder {
    pub fn new(
        conversations: &Conversations,
        turn: &Turn,
        request_id: &str,
        model: &str,
        provider: &str,
    ) -> Self {
        Self {
            conversations: conversations.clone(),
            conversation_id: turn.conversation_id.clone(),
            reply_id: turn.reply_id.clone(),
            request_id: request_id.to_string(),
            model: model.to_string(),
            provider: provider.to_string(),
            text: String::new(),
            stored: false,
        }
    }

    /// The provider that answered, once known.
    pub fn set_provider(&mut self, provider: &str) {
        self.provider = provider.to_string();
    }

    /// Text the client was sent.
    pub fn push(&mut self, delta: &str) {
        self.text.push_str(delta);
    }

    /// The whole text, for a reply that came in one piece.
    pub fn set_text(&mut self, text: String) {
        self.text = text;
    }

    /// Stores the reply. A failure to store is logged, not the client's
    /// problem: the reply itself was delivered. The write runs as a task of
    /// its own, so a request cancelled meanwhile (its client hung up) cannot
    /// abort it halfway and lose the reply.
    pub async fn finish(mut self, ending: Ending<'_>) {
        self.stored = true;
        let message = self.message(ending);
        let conversations = self.conversations.clone();
        let conversation_id = self.conversation_id.clone();
        let write =
            tokio::spawn(async move { store(&conversations, &conversation_id, message).await });
        let _ = write.await;
    }

    fn message(&mut self, ending: Ending<'_>) -> NewMessage {
        let as_i64 = |n: u32| Some(i64::from(n));
        NewMessage {
            message_id: self.reply_id.clone(),
            role: "assistant".into(),
            content: std::mem::take(&mut self.text),
            status: ending.status.as_str(),
            error_code: ending.error_code.map(str::to_string),
            model: Some(self.model.clone()),
            provider: (!self.provider.is_empty()).then(|| self.provider.clone()),
            prompt_tokens: ending.usage.and_then(|u| as_i64(u.prompt_tokens)),
            completion_tokens: ending.usage.and_then(|u| as_i64(u.completion_tokens)),
            timings: ending.timings.and_then(|t| serde_json::to_string(t).ok()),
            request_id: Some(self.request_id.clone()),
        }
    }
}

/// Fills the row reserved for the reply when its turn began.
async fn store(conversations: &Conversations, conversation_id: &str, message: NewMessage) {
    match conversations
        .store()
        .fill_reply(conversation_id, &message)
        .await
    {
        Ok(true) => {}
        // Regenerated or deleted while it answered: the row is gone, and
        // with it any reason to keep this reply.
        Ok(false) => {
            tracing::debug!(conversation_id, request_id = ?message.request_id, "a reply's place was gone when it ended; not stored")
        }
        Err(e) => {
            tracing::warn!(conversation_id, request_id = ?message.request_id, error = %e, "a reply could not be stored in its conversation")
        }
    }
}

impl Drop for ReplyRecorder {
    fn drop(&mut self) {
        if self.stored {
            return;
        }
        let message = self.message(Ending {
            status: MessageStatus::Stopped,
            error_code: None,
            usage: None,
            timings: None,
        });
        let conversations = self.conversations.clone();
        let conversation_id = std::mem::take(&mut self.conversation_id);
        // Dropped with a response body, inside the runtime; outside it (a
        // test tearing down) there is nothing left to store into.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { store(&conversations, &conversation_id, message).await });
        }
    }
}
