//! Queries on `api_keys`. Keys are found by the SHA-256 of their secret, and
//! listed and revoked only together with their owner's id, so one account can
//! never reach another's keys.

use super::{Db, Exec};
use crate::usage::limits::Limits;
use crate::with_exec;
use chrono::{DateTime, Utc};

/// A key as its owner sees it (no secret, no hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub key_id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    /// Globs, one per line; `None`: every model.
    pub models: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub budget_tokens: Option<i64>,
    pub budget_period: Option<String>,
}

impl KeyRow {
    pub fn limits(&self) -> Limits {
        Limits::from_columns(
            self.rpm,
            self.tpm,
            self.budget_tokens,
            self.budget_period.as_deref(),
        )
    }
}

// The limits are read as bigint: PostgreSQL's `integer` is not an i64.
const KEY_COLUMNS: &str =
    "key_id, user_id, name, prefix, models, expires_at, created_at, last_used_at, \
     cast(rpm as bigint) as rpm, cast(tpm as bigint) as tpm, \
     cast(budget_tokens as bigint) as budget_tokens, budget_period";

/// A new key; the caller made the secret and hashed it.
pub struct NewKey<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
    pub models: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub limits: Limits,
}

pub async fn insert(db: &Db, key: NewKey<'_>) -> Result<KeyRow, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let (rpm, tpm, budget_tokens, budget_period) = super::limits::columns(&key.limits);
    with_exec!(Exec::from(db), exec => sqlx::query(
        "insert into api_keys (key_id, user_id, name, prefix, secret_hash, models, expires_at, created_at, \
         rpm, tpm, budget_tokens, budget_period) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(&id)
        .bind(key.user_id)
        .bind(key.name)
        .bind(key.prefix)
        .bind(key.secret_hash)
        .bind(key.models)
        .bind(key.expires_at)
        .bind(now)
        .bind(rpm)
        .bind(tpm)
        .bind(budget_tokens)
        .bind(budget_period)
        .execute(exec)
        .await
        .map(|_| ()))?;
    Ok(KeyRow {
        key_id: id,
        user_id: key.user_id.to_string(),
        name: key.name.to_string(),
        prefix: key.prefix.to_string(),
        models: key.models.map(str::to_string),
        expires_at: key.expires_at,
        created_at: now,
        last_used_at: None,
        rpm,
        tpm,
        budget_tokens,
        budget_period: budget_period.map(str::to_string),
    })
}

pub async fn count_for_user(db: &Db, user_id: &str) -> Result<i64, sqlx::Error> {
    with_exec!(Exec::from(db), exec => sqlx::query_scalar::<_, i64>(
        "select count(*) from api_keys where user_id = $1")
        .bind(user_id)
        .fetch_one(exec)
        .await)
}

/// The account's keys, newest first.
pub async fn list_for_user(db: &Db, user_id: &str) -> Result<Vec<KeyRow>, sqlx::Error> {
    let sql = format!(
        "select {KEY_COLUMNS} from api_keys where user_id = $1 order by created_at desc, key_id"
    );
    with_exec!(Exec::from(db), exec => sqlx::query_as::<_, KeyRow>(&sql)
        .bind(user_id)
        .fetch_all(exec)
        .await)
}

/// The key behind a secret's hash.
pub async fn find_by_hash(db: &Db, secret_hash: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    let sql = format!("select {KEY_COLUMNS} from api_keys where secret_hash = $1");
    with_exec!(Exec::from(db), exec => sqlx::query_as::<_, KeyRow>(&sql)
        .bind(secret_hash)
        .fetch_optional(exec)
        .await)
}

/// Any account's key by id (the operator's CLI).
pub async fn find_by_id(db: &Db, key_id: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    let sql = format!("select {KEY_COLUMNS} from api_keys where key_id = $1");
    with_exec!(Exec::from(db), exec => sqlx::query_as::<_, KeyRow>(&sql)
        .bind(key_id)
        .fetch_optional(exec)
        .await)
}

/// Deletes the owner's key; its secret's hash when there was one (so a cache
/// keyed by it can forget it), `None` when the owner has no such key.
pub async fn delete(db: &Db, user_id: &str, key_id: &str) -> Result<Option<String>, sqlx::Error> {
    with_exec!(Exec::from(db), exec => sqlx::query_scalar::<_, String>(
        "delete from api_keys where key_id = $1 and user_id = $2 returning secret_hash")
        .bind(key_id)
        .bind(user_id)
        .fetch_optional(exec)
        .await)
}

/// Records that the key was used (at most about once a minute per key: see
/// `auth::api_keys`).
pub async fn touch(db: &Db, key_id: &str, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    with_exec!(Exec::from(db), exec => sqlx::query(
        "update api_keys set last_used_at = $1 where key_id = $2")
        .bind(at)
        .bind(key_id)
        .execute(exec)
        .await
        .map(|_| ()))
}
