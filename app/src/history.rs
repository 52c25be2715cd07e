//! The conversations a chat page opens with, rendered on the server so the
//! list and the open conversation's messages are there before (and without)
//! the WASM.
//!
//! The app cannot reach the database itself: the server puts a
//! [`HistorySource`] into each page request's extensions, and the
//! [`chat_history`] server function reads the signed-in user's conversations
//! through it. The result is serialised into the page for hydration.

use crate::wire::{ConversationDetail, ConversationView};
use leptos::prelude::*;

/// What the chat page starts with: the newest conversations, and the one the
/// address names (`/c/{id}`), with its messages.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatStart {
    pub conversations: Vec<ConversationView>,
    /// `None` on `/`, or when the id is not one of the user's conversations.
    pub open: Option<ConversationDetail>,
    /// The address named a conversation the user does not have.
    pub not_found: bool,
}

/// The server's reader of stored conversations (only ever the user's own).
#[cfg(feature = "ssr")]
pub trait HistoryReader: Send + Sync + 'static {
    /// The user's newest conversations, at most `limit`.
    fn recent(
        &self,
        user_id: String,
        limit: usize,
    ) -> futures::future::BoxFuture<'static, Result<Vec<ConversationView>, String>>;
    /// One of the user's conversations with its messages; `None` when it is
    /// not theirs or does not exist.
    fn open(
        &self,
        user_id: String,
        id: String,
    ) -> futures::future::BoxFuture<'static, Result<Option<ConversationDetail>, String>>;
}

/// [`HistoryReader`], inserted by the server into each page request.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct HistorySource(pub std::sync::Arc<dyn HistoryReader>);

/// How many conversations the sidebar starts with (more load on scroll).
pub const SIDEBAR_PAGE: usize = 50;

/// The signed-in user's conversations and the open one (`id`), for the chat
/// page's first render. Nobody signed in: an empty history.
#[server(endpoint = "session/chat_history")]
pub async fn chat_history(id: Option<String>) -> Result<ChatStart, ServerFnError> {
    let parts = use_context::<http::request::Parts>();
    let Some(parts) = parts else {
        return Ok(ChatStart::default());
    };
    let (Some(user), Some(source)) = (
        parts.extensions.get::<crate::session::SessionUser>(),
        parts.extensions.get::<HistorySource>(),
    ) else {
        return Ok(ChatStart::default());
    };
    let user_id = user.0.user_id.clone();
    let conversations = source
        .0
        .recent(user_id.clone(), SIDEBAR_PAGE)
        .await
        .map_err(ServerFnError::new)?;
    let mut history = ChatStart {
        conversations,
        ..Default::default()
    };
    if let Some(id) = id.filter(|id| !id.is_empty()) {
        history.open = source
            .0
            .open(user_id, id)
            .await
            .map_err(ServerFnError::new)?;
        history.not_found = history.open.is_none();
    }
    Ok(history)
}
