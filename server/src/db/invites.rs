//! Queries on `invites`: single-use, expiring invitations to create an account.
//! The secret itself is never stored, only its SHA-256 (`token_hash`), so
//! every lookup is by hash. Expiry is Unix seconds, compared as numbers.

use super::{Db, Exec};
use crate::with_exec;
use chrono::{DateTime, Utc};

/// One invite, as the dashboard lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub invite_id: String,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: i64,
    pub used_at: Option<DateTime<Utc>>,
    /// The username of the account it created, while that account exists.
    pub used_by: Option<String>,
}

/// A new invite: the caller made the secret and hashed it.
pub struct NewInvite<'a> {
    pub token_hash: &'a str,
    pub created_by: Option<&'a str>,
    pub note: Option<&'a str>,
    pub expires_at: i64,
}

const LIST_SQL: &str =
    "select i.invite_id, i.note, i.created_at, i.expires_at, i.used_at, u.username as used_by \
     from invites i left join users u on u.user_id = i.used_by";

pub async fn insert(db: &Db, invite: NewInvite<'_>) -> Result<InviteRow, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    with_exec!(Exec::from(db), exec => sqlx::query(
        "insert into invites (invite_id, token_hash, created_by, note, created_at, expires_at) \
         values ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(invite.token_hash)
        .bind(invite.created_by)
        .bind(invite.note)
        .bind(now)
        .bind(invite.expires_at)
        .execute(exec)
        .await
        .map(|_| ()))?;
    Ok(InviteRow {
        invite_id: id,
        note: invite.note.map(str::to_string),
        created_at: now,
        expires_at: invite.expires_at,
        used_at: None,
        used_by: None,
    })
}

/// Invites that could still create an account at `now`.
pub async fn count_open(db: &Db, now: i64) -> Result<i64, sqlx::Error> {
    with_exec!(Exec::from(db), exec => sqlx::query_scalar::<_, i64>(
        "select count(*) from invites where used_at is null and expires_at > $1")
        .bind(now)
        .fetch_one(exec)
        .await)
}

/// The newest `limit` invites, open, used and expired alike.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<InviteRow>, sqlx::Error> {
    let sql = format!("{LIST_SQL} order by i.created_at desc, i.invite_id limit $1");
    with_exec!(Exec::from(db), exec => sqlx::query_as::<_, InviteRow>(&sql)
        .bind(limit)
        .fetch_all(exec)
        .await)
}

/// Marks the invite behind `token_hash` used by `user_id`, if it is still open
/// at `now`. Run in the transaction that creates the account: `false` means
/// the invite was unknown, used, revoked or expired, and the caller rolls back.
/// The `used_at is null` guard makes two concurrent redemptions settle on one.
pub async fn redeem<'e>(
    ex: impl Into<Exec<'e>>,
    token_hash: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = with_exec!(ex.into(), exec => sqlx::query(
        "update invites set used_at = $1, used_by = $2 \
         where token_hash = $3 and used_at is null and expires_at > $4")
        .bind(now)
        .bind(user_id)
        .bind(token_hash)
        .bind(now.timestamp())
        .execute(exec)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Whether the invite behind `token_hash` could still be redeemed at `now`:
/// checked before the (slow) password hash, so a bad link fails fast.
pub async fn is_open(db: &Db, token_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    with_exec!(Exec::from(db), exec => sqlx::query_scalar::<_, i64>(
        "select count(*) from invites where token_hash = $1 and used_at is null and expires_at > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_one(exec)
        .await
        .map(|n| n > 0))
}

/// Withdraws an unused invite; `false` when there is no such unused invite.
pub async fn revoke(db: &Db, invite_id: &str) -> Result<bool, sqlx::Error> {
    let done = with_exec!(Exec::from(db), exec => sqlx::query(
        "delete from invites where invite_id = $1 and used_at is null")
        .bind(invite_id)
        .execute(exec)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Forgets invites that expired unused before `before`: they can never be
/// redeemed, and the table must not grow with every link nobody followed.
/// Used invites stay, as the record of who let which account in.
pub async fn prune_expired(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    with_exec!(Exec::from(db), exec => sqlx::query(
        "delete from invites where used_at is null and expires_at <= $1")
        .bind(before)
        .execute(exec)
        .await
        .map(|r| r.rows_affected()))
}
