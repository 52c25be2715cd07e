//! Queries on `users`. Every query binds its inputs; lookups go through the
//! `lower(...)` expression indexes created by the migrations. Each takes an
//! [`Exec`]: `&Db`, or `&mut Tx` to run inside a caller's transaction.

use super::{is_unique_violation, violated_constraint, Db, Exec};
pub use super::{InsertError, Taken};
use crate::with_exec;
use app::wire::{Role, UserView};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    pub persistent: bool,
    pub session_epoch: i64,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        if self.role == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }

    pub fn view(&self) -> UserView {
        UserView {
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            username: self.username.clone(),
            role: self.role(),
        }
    }
}

/// A new account, validated by the caller.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub role: Role,
    pub persistent: bool,
}

pub(super) const COLUMNS: &str =
    "user_id, username, email, password_hash, role, persistent, session_epoch, created_at";

/// The unique index on `lower(email)` (both migrations name it so).
const EMAIL_INDEX: &str = "idx_users_email";

/// Creates the account; a username or email already in use (in any case) is
/// [`InsertError::Taken`].
pub async fn insert<'e>(
    ex: impl Into<Exec<'e>>,
    user: NewUser<'_>,
) -> Result<UserRow, InsertError> {
    let mut ex = ex.into();
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let sql = format!(
        "insert into users (user_id, username, email, password_hash, role, persistent, session_epoch, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, 0, $7, $7) returning {COLUMNS}"
    );
    let result = with_exec!(ex.reborrow(), exec => sqlx::query_as::<_, UserRow>(&sql)
        .bind(&id)
        .bind(user.username)
        .bind(user.email)
        .bind(user.password_hash)
        .bind(user.role.as_str())
        .bind(user.persistent)
        .bind(now)
        .fetch_one(exec)
        .await);
    match result {
        Ok(row) => Ok(row),
        Err(e) if is_unique_violation(&e) => {
            Err(InsertError::Taken(which_taken(ex, &e, &user).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Which of the account's unique values a violation is about. PostgreSQL
/// names the index in a field of its own; SQLite only in its message, so there
/// the username is looked up instead (the statement failed, the connection and
/// any transaction on it are still usable): in use, it was the username; not,
/// the email.
async fn which_taken(
    ex: Exec<'_>,
    e: &sqlx::Error,
    user: &NewUser<'_>,
) -> Result<Taken, sqlx::Error> {
    if let Some(constraint) = violated_constraint(e) {
        return Ok(if constraint == EMAIL_INDEX {
            Taken::Email
        } else {
            Taken::Username
        });
    }
    let username_in_use = find_by_username(ex, user.username).await?.is_some();
    Ok(if username_in_use || user.email.is_none() {
        Taken::Username
    } else {
        Taken::Email
    })
}

pub async fn find_by_id<'e>(
    ex: impl Into<Exec<'e>>,
    user_id: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from users where user_id = $1");
    with_exec!(ex.into(), exec => sqlx::query_as::<_, UserRow>(&sql).bind(user_id).fetch_optional(exec).await)
}

/// The lookup the original guide's `idx_users_username` lesson is about; `calos diag db`
/// checks its plan.
pub const FIND_BY_USERNAME_SQL: &str =
    "select user_id, username, email, password_hash, role, persistent, session_epoch, created_at from users where lower(username) = lower($1)";

pub async fn find_by_username<'e>(
    ex: impl Into<Exec<'e>>,
    username: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    with_exec!(ex.into(), exec => sqlx::query_as::<_, UserRow>(FIND_BY_USERNAME_SQL).bind(username).fetch_optional(exec).await)
}

pub async fn find_by_email<'e>(
    ex: impl Into<Exec<'e>>,
    email: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from users where lower(email) = lower($1)");
    with_exec!(ex.into(), exec => sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(exec).await)
}

/// A username, an email or a user id: whatever an operator typed.
pub async fn find_by_any<'e>(
    ex: impl Into<Exec<'e>>,
    key: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let mut ex = ex.into();
    if let Some(user) = find_by_id(ex.reborrow(), key).await? {
        return Ok(Some(user));
    }
    if key.contains('@') {
        return find_by_email(ex, key).await;
    }
    find_by_username(ex, key).await
}

pub async fn list<'e>(ex: impl Into<Exec<'e>>) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from users order by created_at, username");
    with_exec!(ex.into(), exec => sqlx::query_as::<_, UserRow>(&sql).fetch_all(exec).await)
}

pub async fn delete<'e>(ex: impl Into<Exec<'e>>, user_id: &str) -> Result<bool, sqlx::Error> {
    let done = with_exec!(ex.into(), exec => sqlx::query("delete from users where user_id = $1").bind(user_id).execute(exec).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Ends every session of the user: tokens issued in an older epoch stop working.
pub async fn bump_session_epoch<'e>(
    ex: impl Into<Exec<'e>>,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    with_exec!(ex.into(), exec => sqlx::query("update users set session_epoch = session_epoch + 1, updated_at = $2 where user_id = $1")
        .bind(user_id).bind(now).execute(exec).await.map(|_| ()))
}

/// Escapes `%`, `_` and `\` so a prefix matches literally in `like ... escape '\'`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Deletes non-persistent users whose username starts with `prefix` (case-insensitive)
/// in one write transaction of its own (on SQLite an IMMEDIATE one, which only
/// a pool can start), returning the usernames removed.
pub async fn prune(db: &Db, prefix: &str) -> Result<Vec<String>, sqlx::Error> {
    let pattern = like_prefix(prefix);
    let select = "select username from users where lower(username) like $1 escape '\\' and not persistent order by username";
    let delete = "delete from users where lower(username) like $1 escape '\\' and not persistent";
    match db {
        // IMMEDIATE takes the write lock up front, so the read-then-write below can
        // never fail with SQLITE_BUSY_SNAPSHOT halfway through.
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_with("begin immediate").await?;
            let names: Vec<String> = sqlx::query_scalar(select)
                .bind(&pattern)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(delete).bind(&pattern).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(names)
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let names: Vec<String> = sqlx::query_scalar(&format!("{select} for update"))
                .bind(&pattern)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(delete).bind(&pattern).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(names)
        }
    }
}

/// Renames the account (accounts made from an Ed25519 key or OAuth start with a
/// generated name). Only the username changes, so a violation is [`Taken::Username`].
pub async fn set_username<'e>(
    ex: impl Into<Exec<'e>>,
    user_id: &str,
    username: &str,
) -> Result<Option<UserRow>, InsertError> {
    let now = Utc::now();
    let sql = format!(
        "update users set username = $2, updated_at = $3 where user_id = $1 returning {COLUMNS}"
    );
    let result = with_exec!(ex.into(), exec => sqlx::query_as::<_, UserRow>(&sql).bind(user_id).bind(username).bind(now).fetch_optional(exec).await);
    result.map_err(|e| {
        if is_unique_violation(&e) {
            InsertError::Taken(Taken::Username)
        } else {
            InsertError::Db(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn prune_prefixes_match_literally() {
        assert_eq!(like_prefix("test-user-"), "test-user-%");
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
    }
}
