//! The conversation tables and the queries on them. Every query that reaches
//! a conversation names its owner too, so one account can never read or
//! change another's; the service turns "not yours" into "not found".

use crate::db::{companion, Db, DbTarget, Exec};
use crate::{with_exec, with_pool};

/// Where conversations are kept. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ConversationStore {
    db: Db,
}

/// A conversation's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub conversation_id: String,
    pub user_id: String,
    pub title: String,
    pub untitled: bool,
    pub model: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub message_count: i64,
    pub bytes: i64,
}

/// A message's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub message_id: String,
    pub seq: i64,
    pub role: String,
    pub content: String,
    pub status: String,
    pub error_code: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub timings: Option<String>,
    pub request_id: Option<String>,
    pub created_at_ms: i64,
}

/// A message to store.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// Made by the caller (UUIDv7), so a reply can name its row before it is written.
    pub message_id: String,
    pub role: String,
    pub content: String,
    pub status: &'static str,
    pub error_code: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// The breakdown, as JSON.
    pub timings: Option<String>,
    pub request_id: Option<String>,
}

/// A page of the list: before which id, how many, whose title contains what.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub before: Option<&'a str>,
    pub limit: i64,
    pub title_contains: Option<&'a str>,
}

const CONVERSATION_COLUMNS: &str = "conversation_id, user_id, title, untitled, model, \
     created_at_ms, updated_at_ms, message_count, bytes";

const MESSAGE_COLUMNS: &str = "message_id, seq, role, content, status, error_code, model, \
     provider, prompt_tokens, completion_tokens, timings, request_id, created_at_ms";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `text` for a `like … escape '\'` pattern that matches it literally.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The conversation tables on SQLite (their own file).
async fn migrate(pool: sqlx::SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations/sqlite-conversations")
        .run(&pool)
        .await
}

impl ConversationStore {
    /// The store for a calos whose accounts are in `main` (reached at
    /// `target`): `main` on PostgreSQL, `calos-conversations.db` on SQLite.
    pub async fn open(target: &DbTarget, main: &Db, max_connections: u32) -> anyhow::Result<Self> {
        let db = companion::open(target, main, "conversations", max_connections, migrate).await?;
        Ok(Self { db })
    }

    /// A store in memory (tests).
    pub async fn in_memory() -> anyhow::Result<Self> {
        Ok(Self {
            db: companion::in_memory("conversations", migrate).await?,
        })
    }

    /// Whether the tables share the accounts' database (PostgreSQL), where
    /// foreign keys delete a conversation with its account.
    pub fn beside_accounts(&self, accounts: &Db) -> bool {
        matches!((&self.db, accounts), (Db::Postgres(_), Db::Postgres(_)))
    }

    pub async fn create(
        &self,
        user_id: &str,
        title: &str,
        untitled: bool,
        model: Option<&str>,
    ) -> Result<ConversationRow, sqlx::Error> {
        let row = ConversationRow {
            conversation_id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_string(),
            title: title.to_string(),
            untitled,
            model: model.map(str::to_string),
            created_at_ms: now_ms(),
            updated_at_ms: now_ms(),
            message_count: 0,
            bytes: 0,
        };
        with_pool!(&self.db, pool => sqlx::query(
            "insert into conversations (conversation_id, user_id, title, untitled, model, created_at_ms, updated_at_ms) \
             values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&row.conversation_id)
            .bind(&row.user_id)
            .bind(&row.title)
            .bind(row.untitled)
            .bind(&row.model)
            .bind(row.created_at_ms)
            .bind(row.updated_at_ms)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(row)
    }

    /// The user's conversations and the bytes their messages hold.
    pub async fn footprint(&self, user_id: &str) -> Result<(i64, i64), sqlx::Error> {
        with_pool!(&self.db, pool => sqlx::query_as::<_, (i64, i64)>(
            "select count(*), cast(coalesce(sum(bytes), 0) as bigint) from conversations where user_id = $1")
            .bind(user_id)
            .fetch_one(pool)
            .await)
    }

    /// The user's conversations, newest first (by creation: ids are UUIDv7).
    pub async fn list(
        &self,
        user_id: &str,
        page: Page<'_>,
    ) -> Result<Vec<ConversationRow>, sqlx::Error> {
        // Fixed fragments only; the values are bound.
        let mut sql =
            format!("select {CONVERSATION_COLUMNS} from conversations where user_id = $1");
        let mut n = 1;
        if page.before.is_some() {
            n += 1;
            sql.push_str(&format!(" and conversation_id < ${n}"));
        }
        let pattern = page.title_contains.map(like_escaped);
        if pattern.is_some() {
            n += 1;
            sql.push_str(&format!(" and lower(title) like ${n} escape '\\'"));
        }
        sql.push_str(&format!(" order by conversation_id desc limit ${}", n + 1));
        with_pool!(&self.db, pool => {
            let mut q = sqlx::query_as::<_, ConversationRow>(&sql).bind(user_id);
            if let Some(before) = page.before {
                q = q.bind(before);
            }
            if let Some(pattern) = &pattern {
                q = q.bind(pattern);
            }
            q.bind(page.limit).fetch_all(pool).await
        })
    }

    pub async fn get(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<ConversationRow>, sqlx::Error> {
        let sql = format!(
            "select {CONVERSATION_COLUMNS} from conversations where conversation_id = $1 and user_id = $2"
        );
        with_pool!(&self.db, pool => sqlx::query_as::<_, ConversationRow>(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(pool)
            .await)
    }

    /// A conversation's messages, oldest first (the caller checked the owner).
    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<MessageRow>, sqlx::Error> {
        let sql = format!(
            "select {MESSAGE_COLUMNS} from conversation_messages where conversation_id = $1 order by seq"
        );
        with_pool!(&self.db, pool => sqlx::query_as::<_, MessageRow>(&sql)
            .bind(conversation_id)
            .fetch_all(pool)
            .await)
    }

    /// What goes to the model, oldest first: the role and text of every
    /// message but failed or empty ones. Only the two columns, as this runs
    /// on every turn and a long conversation's other columns (the timing
    /// breakdowns above all) cost more to read than the text.
    pub async fn history(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        with_pool!(&self.db, pool => sqlx::query_as::<_, (String, String)>(
            "select role, content from conversation_messages \
             where conversation_id = $1 and status <> $2 and content <> $3 order by seq")
            .bind(conversation_id)
            .bind("failed")
            .bind("")
            .fetch_all(pool)
            .await)
    }

    /// Renames the user's conversation; `None` when it is not theirs.
    pub async fn rename(
        &self,
        user_id: &str,
        id: &str,
        title: &str,
    ) -> Result<Option<ConversationRow>, sqlx::Error> {
        let changed = with_pool!(&self.db, pool => sqlx::query(
            "update conversations set title = $1, untitled = $2, updated_at_ms = $3 \
             where conversation_id = $4 and user_id = $5")
            .bind(title)
            .bind(false)
            .bind(now_ms())
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        if changed == 0 {
            return Ok(None);
        }
        self.get(user_id, id).await
    }

    /// Deletes the user's conversation and its messages; false when it is not theirs.
    pub async fn delete(&self, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let mut ex = Exec::from(&mut tx);
        let owned = with_exec!(ex.reborrow(), exec => sqlx::query(
            "delete from conversations where conversation_id = $1 and user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?
            > 0;
        if owned {
            // Also done by the foreign key's cascade; said here so that it
            // does not depend on SQLite's `foreign_keys` pragma.
            with_exec!(ex.reborrow(), exec => sqlx::query(
                "delete from conversation_messages where conversation_id = $1")
                .bind(id)
                .execute(exec)
                .await
                .map(|done| done.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(owned)
    }

    /// Adds `messages` at the end of the conversation, in one transaction with
    /// its count, size and update time; a new `title` replaces an untitled
    /// one, a `model` becomes the conversation's.
    pub async fn append(
        &self,
        conversation_id: &str,
        messages: &[NewMessage],
        title: Option<&str>,
        model: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let mut ex = Exec::from(&mut tx);
        for message in messages {
            let bytes = as_i64(message.content.len());
            let seq = with_exec!(ex.reborrow(), exec => sqlx::query_as::<_, (i64,)>(
                "update conversations set message_count = message_count + 1, bytes = bytes + $1, \
                 updated_at_ms = $2 where conversation_id = $3 returning message_count")
                .bind(bytes)
                .bind(now)
                .bind(conversation_id)
                .fetch_one(exec)
                .await)?
            .0;
            with_exec!(ex.reborrow(), exec => sqlx::query(
                "insert into conversation_messages (message_id, conversation_id, seq, role, content, bytes, \
                 status, error_code, model, provider, prompt_tokens, completion_tokens, timings, request_id, created_at_ms) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
                .bind(&message.message_id)
                .bind(conversation_id)
                .bind(seq)
                .bind(&message.role)
                .bind(&message.content)
                .bind(bytes)
                .bind(message.status)
                .bind(&message.error_code)
                .bind(&message.model)
                .bind(&message.provider)
                .bind(message.prompt_tokens)
                .bind(message.completion_tokens)
                .bind(&message.timings)
                .bind(&message.request_id)
                .bind(now)
                .execute(exec)
                .await
                .map(|done| done.rows_affected()))?;
        }
        if let Some(title) = title {
            with_exec!(ex.reborrow(), exec => sqlx::query(
                "update conversations set title = $1, untitled = $2 where conversation_id = $3 and untitled = $4")
                .bind(title)
                .bind(false)
                .bind(conversation_id)
                .bind(true)
                .execute(exec)
                .await
                .map(|done| done.rows_affected()))?;
        }
        if let Some(model) = model {
            with_exec!(ex.reborrow(), exec => sqlx::query(
                "update conversations set model = $1 where conversation_id = $2")
                .bind(model)
                .bind(conversation_id)
                .execute(exec)
                .await
                .map(|done| done.rows_affected()))?;
        }
        tx.commit().await
    }

    /// Writes a reply into the row reserved for it when its turn began;
    /// false when that row is gone (the reply was regenerated or the
    /// conversation deleted meanwhile), and then nothing changes.
    pub async fn fill_reply(
        &self,
        conversation_id: &str,
        reply: &NewMessage,
    ) -> Result<bool, sqlx::Error> {
        let bytes = as_i64(reply.content.len());
        let mut tx = self.db.begin().await?;
        let mut ex = Exec::from(&mut tx);
        // The conversation's row first, in the order every writer takes them.
        with_exec!(ex.reborrow(), exec => sqlx::query(
            "update conversations set bytes = bytes + $1, updated_at_ms = $2 where conversation_id = $3")
            .bind(bytes)
            .bind(now_ms())
            .bind(conversation_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        let filled = with_exec!(ex.reborrow(), exec => sqlx::query(
            "update conversation_messages set content = $1, bytes = $2, status = $3, error_code = $4, \
             model = $5, provider = $6, prompt_tokens = $7, completion_tokens = $8, timings = $9, \
             request_id = $10 where message_id = $11 and conversation_id = $12")
            .bind(&reply.content)
            .bind(bytes)
            .bind(reply.status)
            .bind(&reply.error_code)
            .bind(&reply.model)
            .bind(&reply.provider)
            .bind(reply.prompt_tokens)
            .bind(reply.completion_tokens)
            .bind(&reply.timings)
            .bind(&reply.request_id)
            .bind(&reply.message_id)
            .bind(conversation_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        if filled == 0 {
            // Dropped uncommitted: rolled back, the size unchanged.
            drop(tx);
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes the messages after the conversation's last user message (the
    /// reply being regenerated), with its count and size.
    pub async fn drop_after_last_user_message(
        &self,
        conversation_id: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let mut ex = Exec::from(&mut tx);
        // The conversation's row first, as every writer takes it: on
        // PostgreSQL this waits for an append in flight, so the recount
        // below sees its rows.
        with_exec!(ex.reborrow(), exec => sqlx::query(
            "update conversations set updated_at_ms = $1 where conversation_id = $2")
            .bind(now_ms())
            .bind(conversation_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        // No user message: `seq > null` deletes nothing.
        with_exec!(ex.reborrow(), exec => sqlx::query(
            "delete from conversation_messages where conversation_id = $1 and seq > \
             (select max(seq) from conversation_messages where conversation_id = $1 and role = 'user')")
            .bind(conversation_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        with_exec!(ex.reborrow(), exec => sqlx::query(
            "update conversations set \
             message_count = (select count(*) from conversation_messages where conversation_id = $1), \
             bytes = (select coalesce(sum(bytes), 0) from conversation_messages where conversation_id = $1) \
             where conversation_id = $1")
            .bind(conversation_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await
    }

    /// Deletes every conversation of an account (being deleted); returns how many.
    pub async fn forget_user(&self, user_id: &str) -> Result<u64, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let mut ex = Exec::from(&mut tx);
        with_exec!(ex.reborrow(), exec => sqlx::query(
            "delete from conversation_messages where conversation_id in \
             (select conversation_id from conversations where user_id = $1)")
            .bind(user_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        let gone = with_exec!(ex.reborrow(), exec => sqlx::query(
            "delete from conversations where user_id = $1")
            .bind(user_id)
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Every user who has conversations (for the sweep of deleted accounts').
    pub async fn owners(&self) -> Result<Vec<String>, sqlx::Error> {
        with_pool!(&self.db, pool => sqlx::query_as::<_, (String,)>(
            "select distinct user_id from conversations")
            .fetch_all(pool)
            .await)
        .map(|rows| rows.into_iter().map(|(id,)| id).collect())
    }

    /// Messages stored in all, for tests and the bound checks.
    pub async fn message_total(&self) -> Result<i64, sqlx::Error> {
        with_pool!(&self.db, pool => sqlx::query_as::<_, (i64,)>(
            "select count(*) from conversation_messages")
            .fetch_one(pool)
            .await)
        .map(|(n,)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_search_matches_wildcards_literally() {
        assert_eq!(like_escaped("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_escaped("Rust"), "%rust%");
    }

    fn say(role: &str, content: &str) -> NewMessage {
        NewMessage {
            message_id: uuid::Uuid::now_v7().to_string(),
            role: role.into(),
            content: content.into(),
            status: "complete",
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn messages_keep_their_order_count_and_size_and_only_the_owner_reaches_them() {
        let store = ConversationStore::in_memory().await.unwrap();
        let c = store
            .create("alice", "New chat", true, Some("m"))
            .await
            .unwrap();
        store
            .append(
                &c.conversation_id,
                &[say("user", "héllo")],
                Some("héllo"),
                None,
            )
            .await
            .unwrap();
        store
            .append(
                &c.conversation_id,
                &[say("assistant", "hi")],
                Some("ignored"),
                Some("m2"),
            )
            .await
            .unwrap();
        let row = store
            .get("alice", &c.conversation_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.message_count, row.bytes), (2, 8));
        assert_eq!(row.title, "héllo", "only an untitled conversation is named");
        assert_eq!(row.model.as_deref(), Some("m2"));
        assert!(store
            .get("bob", &c.conversation_id)
            .await
            .unwrap()
            .is_none());
        assert!(!store.delete("bob", &c.conversation_id).await.unwrap());
        let seqs: Vec<i64> = store
            .messages(&c.conversation_id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2]);
        store
            .drop_after_last_user_message(&c.conversation_id)
            .await
            .unwrap();
        let row = store
            .get("alice", &c.conversation_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.message_count, row.bytes), (1, 6));
        assert_eq!(store.footprint("alice").await.unwrap(), (1, 6));
        assert!(store.delete("alice", &c.conversation_id).await.unwrap());
        assert_eq!(store.message_total().await.unwrap(), 0);
    }
}
