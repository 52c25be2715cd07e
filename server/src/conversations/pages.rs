//! The chat page's first render reads conversations through this: the
//! app's [`HistoryReader`], answered by the service (the signed-in user's
//! own conversations only).

use super::Conversations;
use app::history::HistoryReader;
use app::wire::{ConversationDetail, ConversationView};
use futures::future::BoxFuture;

impl HistoryReader for Conversations {
    fn recent(
        &self,
        user_id: String,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<ConversationView>, String>> {
        let conversations = self.clone();
        Box::pin(async move {
            conversations
                .list(&user_id, None, limit, None)
                .await
                .map(|page| page.conversations)
                .map_err(|e| e.to_string())
        })
    }

    fn open(
        &self,
        user_id: String,
        id: String,
    ) -> BoxFuture<'static, Result<Option<ConversationDetail>, String>> {
        let conversations = self.clone();
        Box::pin(async move {
            match conversations.detail(&user_id, &id).await {
                Ok(detail) => Ok(Some(detail)),
                Err(super::ConversationError::NotFound) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
