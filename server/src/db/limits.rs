//! Queries on `user_limits` (a key's limits are columns of its `api_keys` row).

use super::{Db, Exec};
use crate::usage::limits::Limits;
use crate::with_exec;
use chrono::Utc;

#[derive(sqlx::FromRow)]
struct LimitColumns {
    rpm: Option<i64>,
    tpm: Option<i64>,
    budget_tokens: Option<i64>,
    budget_period: Option<String>,
}

impl LimitColumns {
    fn limits(&self) -> Limits {
        Limits::from_columns(
            self.rpm,
            self.tpm,
            self.budget_tokens,
            self.budget_period.as_deref(),
        )
    }
}

pub(crate) fn columns(
    limits: &Limits,
) -> (Option<i64>, Option<i64>, Option<i64>, Option<&'static str>) {
    (
        limits.rpm.map(i64::from),
        limits.tpm.map(i64::from),
        limits
            .budget
            .map(|b| i64::try_from(b.tokens).unwrap_or(i64::MAX)),
        limits.budget.map(|b| b.period.as_str()),
    )
}

/// A user's limits (no row: none).
pub async fn for_user(db: &Db, user_id: &str) -> Result<Limits, sqlx::Error> {
    let row = with_exec!(Exec::from(db), exec => sqlx::query_as::<_, LimitColumns>(
        "select cast(rpm as bigint) as rpm, cast(tpm as bigint) as tpm, \
         cast(budget_tokens as bigint) as budget_tokens, budget_period \
         from user_limits where user_id = $1")
        .bind(user_id)
        .fetch_optional(exec)
        .await)?;
    Ok(row.map(|r| r.limits()).unwrap_or_default())
}

/// Replaces a user's limits; `false` when there is no such user.
pub async fn set_for_user(db: &Db, user_id: &str, limits: &Limits) -> Result<bool, sqlx::Error> {
    let exists = with_exec!(Exec::from(db), exec => sqlx::query_scalar::<_, String>(
        "select user_id from users where user_id = $1")
        .bind(user_id)
        .fetch_optional(exec)
        .await)?;
    if exists.is_none() {
        return Ok(false);
    }
    let (rpm, tpm, budget_tokens, budget_period) = columns(limits);
    with_exec!(Exec::from(db), exec => sqlx::query(
        "insert into user_limits (user_id, rpm, tpm, budget_tokens, budget_period, updated_at) \
         values ($1, $2, $3, $4, $5, $6) \
         on conflict (user_id) do update set rpm = excluded.rpm, tpm = excluded.tpm, \
         budget_tokens = excluded.budget_tokens, budget_period = excluded.budget_period, \
         updated_at = excluded.updated_at")
        .bind(user_id)
        .bind(rpm)
        .bind(tpm)
        .bind(budget_tokens)
        .bind(budget_period)
        .bind(Utc::now())
        .execute(exec)
        .await
        .map(|_| true))
}
