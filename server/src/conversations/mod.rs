//! Conversations kept by the server: a person's chats with their messages,
//! each reply with its model, tokens and timing breakdown.
//!
//! [`Conversations`] is what the HTTP routes call: the owner-only CRUD, the
//! export, and the two halves of a chat turn: [`Conversations::begin_turn`]
//! stores the new messages and returns the history to send, and
//! [`reply::ReplyRecorder`] stores the reply as far as it got. Another
//! account's conversation is "not found", never "forbidden", so ids reveal
//! nothing. Every stored thing is bounded per user (conversations, messages
//! per conversation, bytes).

pub mod context;
pub mod export;
mod pages;
pub mod reply;
pub mod store;
pub mod title;
mod views;

use crate::llm::types::ChatMessage;
use app::wire::{
    ConversationDetail, ConversationList, ConversationTurn, ConversationView, MessageStatus,
    MAX_PAGE,
};
use context::Window;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{ConversationStore, NewMessage, Page};

/// What one account may keep.
#[derive(Debug, Clone, Copy)]
pub struct ConversationLimits {
    pub per_user: u64,
    pub messages_per_conversation: u64,
    /// UTF-8 bytes of message text, over all the account's conversations.
    pub bytes_per_user: u64,
    /// What of a history goes to the model.
    pub window: Window,
}

impl Default for ConversationLimits {
    fn default() -> Self {
        Self {
            per_user: 1_000,
            messages_per_conversation: 1_000,
            bytes_per_user: 50 * 1024 * 1024,
            window: Window {
                max_chars: 128 * 1024,
                max_messages: app::wire::MAX_MESSAGES,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// Not one of the caller's conversations (or no such thing).
    #[error("There is no conversation with that id.")]
    NotFound,
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// A per-user limit is reached.
    #[error("{message}")]
    Full { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    store: ConversationStore,
    limits: Arc<ConversationLimits>,
}

/// A chat turn begun: where its reply goes and what history the model gets.
#[derive(Debug, Clone)]
pub struct Turn {
    pub conversation_id: String,
    /// The reply's id, made now so the stream's last event can name it.
    pub reply_id: String,
    /// What goes to the model: the stored history, fitted to the window.
    pub history: Vec<ChatMessage>,
    pub dropped: usize,
    /// What reading and writing the conversation cost (part of the request's
    /// database time).
    pub database: Duration,
}

impl Turn {
    /// What the reply says about it.
    pub fn wire(&self) -> ConversationTurn {
        ConversationTurn {
            history_dropped: u32::try_from(self.dropped).unwrap_or(u32::MAX),
            history_sent: u32::try_from(self.history.len()).unwrap_or(u32::MAX),
            id: self.conversation_id.clone(),
            message_id: self.reply_id.clone(),
        }
    }
}

/// Ids are UUIDs; anything else cannot name a conversation (and is not
/// worth a query).
fn well_formed(id: &str) -> Result<(), ConversationError> {
    uuid::Uuid::try_parse(id)
        .map(|_| ())
        .map_err(|_| ConversationError::NotFound)
}

/// A title a person gave, cleaned, or the error that says what a title is.
fn given_title(title: &str) -> Result<String, ConversationError> {
    title::clean(title).ok_or_else(|| ConversationError::Invalid {
        code: "invalid_title",
        field: "title",
        message: format!(
            "A title is 1-{} characters, without control characters.",
            app::wire::MAX_TITLE_CHARS
        ),
    })
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Conversations {
    pub fn new(store: ConversationStore, limits: ConversationLimits) -> Self {
        Self {
            store,
            limits: Arc::new(limits),
        }
    }

    pub fn store(&self) -> &ConversationStore {
        &self.store
    }

    pub fn limits(&self) -> &ConversationLimits {
        &self.limits
    }

    /// A page of the user's conversations, newest first.
    pub async fn list(
        &self,
        user_id: &str,
        before: Option<&str>,
        limit: usize,
        title_contains: Option<&str>,
    ) -> Result<ConversationList, ConversationError> {
        if let Some(before) = before {
            uuid::Uuid::try_parse(before).map_err(|_| ConversationError::Invalid {
                code: "invalid_cursor",
                field: "before",
                message: "`before` must be a conversation id from a previous page.".into(),
            })?;
        }
        let limit = limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let page = Page {
            before,
            limit: i64::try_from(limit + 1).unwrap_or(i64::MAX),
            title_contains: title_contains.map(str::trim).filter(|q| !q.is_empty()),
        };
        let mut rows = self.store.list(user_id, page).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_before = more
            .then(|| rows.last().map(|r| r.conversation_id.clone()))
            .flatten();
        Ok(ConversationList {
            conversations: rows.iter().map(views::conversation).collect(),
            next_before,
        })
    }

    pub async fn create(
        &self,
        user_id: &str,
        title: Option<&str>,
        model: Option<&str>,
    ) -> Result<ConversationView, ConversationError> {
        let title = title.map(given_title).transpose()?;
        if let Some(model) = model {
            crate::chat::validation::validate_model_name(model).map_err(|e| {
                ConversationError::Invalid {
                    code: "invalid_model",
                    field: "model",
                    message: e.to_string(),
                }
            })?;
        }
        let (count, _) = self.store.footprint(user_id).await?;
        if u64::try_from(count).unwrap_or(u64::MAX) >= self.limits.per_user {
            return Err(ConversationError::Full {
                code: "too_many_conversations",
                message: format!(
                    "This account has {count} conversations, the most it may keep; delete some to start another."
                ),
            });
        }
        let row = self
            .store
            .create(
                user_id,
                title.as_deref().unwrap_or(title::PLACEHOLDER),
                title.is_none(),
                model.map(str::trim),
            )
            .await?;
        Ok(views::conversation(&row))
    }

    pub async fn detail(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<ConversationDetail, ConversationError> {
        well_formed(id)?;
        let row = self
            .store
            .get(user_id, id)
            .await?
            .ok_or(ConversationError::NotFound)?;
        let messages = self.store.messages(id).await?;
        Ok(ConversationDetail {
            conversation: views::conversation(&row),
            messages: messages.iter().map(views::message).collect(),
        })
    }

    pub async fn rename(
        &self,
        user_id: &str,
        id: &str,
        title: &str,
    ) -> Result<ConversationView, ConversationError> {
        well_formed(id)?;
        let title = given_title(title)?;
        let row = self
            .store
            .rename(user_id, id, &title)
            .await?
            .ok_or(ConversationError::NotFound)?;
        Ok(views::conversation(&row))
    }

    pub async fn delete(&self, user_id: &str, id: &str) -> Result<(), ConversationError> {
        well_formed(id)?;
        if self.store.delete(user_id, id).await? {
            Ok(())
        } else {
            Err(ConversationError::NotFound)
        }
    }

    /// Stores the turn's new messages (or, to regenerate, drops the reply
    /// after the last user message) and returns the history to send.
    pub async fn begin_turn(
        &self,
        user_id: &str,
        id: &str,
        new: Vec<ChatMessage>,
        regenerate: bool,
        model: &str,
    ) -> Result<Turn, ConversationError> {
        let started = Instant::now();
        well_formed(id)?;
        let row = self
            .store
            .get(user_id, id)
            .await?
            .ok_or(ConversationError::NotFound)?;
        // The reply's row is reserved now, empty, so that it keeps its place
        // whenever it is written: a reply stopped by its client is stored
        // as the request ends, which may be after the next turn began.
        let reply_id = new_id();
        let reserved = NewMessage {
            message_id: reply_id.clone(),
            role: "assistant".into(),
            status: MessageStatus::Stopped.as_str(),
            model: Some(model.to_string()),
            ..Default::default()
        };
        let mut reply_reserved = false;
        if regenerate {
            if !new.is_empty() {
                return Err(ConversationError::Invalid {
                    code: "invalid_request",
                    field: "messages",
                    message:
                        "`regenerate` answers the stored history again: send no messages with it."
                            .into(),
                });
            }
            self.store.drop_after_last_user_message(id).await?;
        } else {
            self.check_room(user_id, &row, &new).await?;
            let title = row
                .untitled
                .then(|| new.iter().find(|m| m.role == "user"))
                .flatten()
                .map(|m| title::from_first_message(&m.content));
            let mut stored: Vec<NewMessage> = new
                .iter()
                .map(|m| NewMessage {
                    message_id: new_id(),
                    role: m.role.clone(),
                    content: m.content.clone(),
                    status: "complete",
                    ..Default::default()
                })
                .collect();
            // With a user message among them there is something to answer:
            // the reply's row goes in the same transaction.
            if new.iter().any(|m| m.role == "user") {
                stored.push(reserved.clone());
                reply_reserved = true;
            }
            self.store
                .append(id, &stored, title.as_deref(), Some(model))
                .await?;
        }
        let history: Vec<ChatMessage> = self
            .store
            .history(id)
            .await?
            .into_iter()
            .map(|(role, content)| ChatMessage { role, content })
            .collect();
        if !history.iter().any(|m| m.role == "user") {
            return Err(ConversationError::Invalid {
                code: "nothing_to_answer",
                field: "messages",
                message: "The conversation has no user message to answer yet.".into(),
            });
        }
        if !reply_reserved {
            self.store
                .append(id, std::slice::from_ref(&reserved), None, None)
                .await?;
        }
        let fitted = context::fit(history, self.limits.window);
        Ok(Turn {
            conversation_id: id.to_string(),
            reply_id,
            history: fitted.messages,
            dropped: fitted.dropped,
            database: started.elapsed(),
        })
    }

    /// Refuses messages that would take the conversation or the account
    /// past its limits (the reply to come counts as one message).
    async fn check_room(
        &self,
        user_id: &str,
        row: &store::ConversationRow,
        new: &[ChatMessage],
    ) -> Result<(), ConversationError> {
        let limit = self.limits.messages_per_conversation;
        let after = u64::try_from(row.message_count).unwrap_or(u64::MAX) + new.len() as u64 + 1;
        if after > limit {
            return Err(ConversationError::Full {
                code: "conversation_full",
                message: format!(
                    "This conversation holds {} messages; it may hold {limit}. Start a new conversation.",
                    row.message_count
                ),
            });
        }
        let (_, bytes) = self.store.footprint(user_id).await?;
        let adding: u64 = new.iter().map(|m| m.content.len() as u64).sum();
        let used = u64::try_from(bytes).unwrap_or(u64::MAX);
        if used.saturating_add(adding) > self.limits.bytes_per_user {
            return Err(ConversationError::Full {
                code: "storage_full",
                message: format!(
                    "This account's conversations hold {used} bytes of its {} allowed; delete some to go on.",
                    self.limits.bytes_per_user
                ),
            });
        }
        Ok(())
    }

    /// Deletes an account's conversations (the account is being deleted; on
    /// PostgreSQL the foreign key does it as well).
    pub async fn forget_user(&self, user_id: &str) -> Result<u64, sqlx::Error> {
        self.store.forget_user(user_id).await
    }

    /// On SQLite, where no foreign key ties a conversation to its account:
    /// deletes the conversations of accounts that no longer exist (deleted
    /// while calos was not running, or with `sqlite3`). Returns how many went.
    pub async fn sweep_orphans(&self, accounts: &crate::db::Db) -> anyhow::Result<u64> {
        if self.store.beside_accounts(accounts) {
            return Ok(0);
        }
        let mut gone = 0;
        for owner in self.store.owners().await? {
            if crate::db::users::find_by_id(accounts, &owner)
                .await?
                .is_none()
            {
                gone += self.store.forget_user(&owner).await?;
            }
        }
        Ok(gone)
    }
}
