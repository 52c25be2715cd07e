//! Queries on `users`. Every query binds its inputs; lookups go through the
//! `lower(...)` expression indexes created by the migrations.

use super::identities::Identity;
use super::Db;
use crate::with_pool;
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

/// Which unique value an insert collided with.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
    /// The sign-in identity (an Ed25519 key, an OAuth subject) already has an account.
    Identity,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("{0:?} already taken")]
    Taken(Taken),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn insert(db: &Db, user: NewUser<'_>) -> Result<UserRow, InsertError> {
    insert_with_identity(db, user, None).await
}

/// Creates the account and, in the same transaction, the sign-in identity it is
/// for, so there is never an account nobody can sign in to, nor two accounts for
/// one identity (the identity's primary key decides a race: [`Taken::Identity`]).
pub async fn insert_with_identity(
    db: &Db,
    user: NewUser<'_>,
    identity: Option<&Identity<'_>>,
) -> Result<UserRow, InsertError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let sql = format!(
        "insert into users (user_id, username, email, password_hash, role, persistent, session_epoch, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, 0, $7, $7) returning {COLUMNS}"
    );
    let result = with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        let row = sqlx::query_as::<_, UserRow>(&sql)
            .bind(&id)
            .bind(user.username)
            .bind(user.email)
            .bind(user.password_hash)
            .bind(user.role.as_str())
            .bind(user.persistent)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(identity) = identity {
            let mut query = sqlx::query(identity.insert_sql()).bind(&row.user_id).bind(now);
            for value in identity.values() {
                query = query.bind(value);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    }.await);
    result.map_err(|e| match unique_violation(&e) {
        Some(which) => InsertError::Taken(which),
        None => InsertError::Db(e),
    })
}

/// Maps a unique-constraint violation to the value that collided: the one place
/// that knows how each backend names it (PostgreSQL: the index as constraint;
/// SQLite: the indexed expression in the message).
pub(super) fn unique_violation(e: &sqlx::Error) -> Option<Taken> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    let named = db.constraint().unwrap_or_default().to_string() + db.message();
    Some(if named.contains("identities") {
        Taken::Identity
    } else if named.contains("email") {
        Taken::Email
    } else {
        Taken::Username
    })
}

pub async fn find_by_id(db: &Db, user_id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from users where user_id = $1");
    with_pool!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(user_id).fetch_optional(pool).await)
}

/// The lookup the original guide's `idx_users_username` lesson is about; `calos diag db`
/// checks its plan.
pub const FIND_BY_USERNAME_SQL: &str =
    "select user_id, username, email, password_hash, role, persistent, session_epoch, created_at from users where lower(username) = lower($1)";

pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    with_pool!(db, pool => sqlx::query_as::<_, UserRow>(FIND_BY_USERNAME_SQL).bind(username).fetch_optional(pool).await)
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from users where lower(email) = lower($1)");
    with_pool!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(pool).await)
}

/// A username, an email or a user id: whatever an operator typed.
pub async fn find_by_any(db: &Db, key: &str) -> Result<Option<UserRow>, sqlx::Error> {
    if let Some(user) = find_by_id(db, key).await? {
        return Ok(Some(user));
    }
    if key.contains('@') {
        return find_by_email(db, key).await;
    }
    find_by_username(db, key).await
}

pub async fn list(db: &Db) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from users order by created_at, username");
    with_pool!(db, pool => sqlx::query_as::<_, UserRow>(&sql).fetch_all(pool).await)
}

pub async fn delete(db: &Db, user_id: &str) -> Result<bool, sqlx::Error> {
    let done = with_pool!(db, pool => sqlx::query("delete from users where user_id = $1").bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Ends every session of the user: tokens issued in an older epoch stop working.
pub async fn bump_session_epoch(db: &Db, user_id: &str) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    with_pool!(db, pool => sqlx::query("update users set session_epoch = session_epoch + 1, updated_at = $2 where user_id = $1")
        .bind(user_id).bind(now).execute(pool).await.map(|_| ()))
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
/// in one write transaction, returning the usernames removed.
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
/// generated name).
pub async fn set_username(
    db: &Db,
    user_id: &str,
    username: &str,
) -> Result<Option<UserRow>, InsertError> {
    let now = Utc::now();
    let sql = format!(
        "update users set username = $2, updated_at = $3 where user_id = $1 returning {COLUMNS}"
    );
    let result = with_pool!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(user_id).bind(username).bind(now).fetch_optional(pool).await);
    result.map_err(|e| match unique_violation(&e) {
        Some(which) => InsertError::Taken(which),
        None => InsertError::Db(e),
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
