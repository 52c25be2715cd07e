//! The ledger's tables: where they live and the queries on them.
//!
//! On PostgreSQL they are in calos's database. On SQLite they have a file of
//! their own beside it (`calos-usage.db` next to `calos.db`): SQLite has one
//! writer per file, so the ledger's steady batches then never queue behind
//! sign-ups, and the sign-in cache, which treats any write to the accounts
//! file as a possible account change, is not emptied by every batch.

use crate::db::{companion, Db, DbTarget, Exec};
use crate::usage::meter::Subject;
use crate::usage::record::UsageRecord;
use crate::{with_exec, with_pool};
use chrono::NaiveDate;
use std::collections::HashMap;

/// Where the ledger's tables are. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UsageStore {
    db: Db,
}

/// How `/api/usage` sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Model,
    Key,
    User,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "model" => Some(Self::Model),
            "key" => Some(Self::Key),
            "user" => Some(Self::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Model => "model",
            Self::Key => "key",
            Self::User => "user",
        }
    }

    /// The rollup column; a fixed name, never text from a request.
    fn column(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Model => "model",
            Self::Key => "key_id",
            Self::User => "user_id",
        }
    }
}

/// One group's sums.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageSum {
    /// The day, model, key id ('' for no key) or user id.
    pub group: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// What to sum: days `from..=to` (UTC, inclusive), one user's or everyone's.
#[derive(Debug, Clone)]
pub struct UsageQuery<'a> {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub user_id: Option<&'a str>,
    pub group_by: GroupBy,
}

/// A rollup row's key: day, user, key ('' for none), model.
type DailyKey = (String, String, String, String);

/// A rollup row's increments: requests, errors, prompt and completion tokens.
#[derive(Default)]
struct DailyDelta {
    requests: i64,
    errors: i64,
    prompt: i64,
    completion: i64,
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl UsageStore {
    /// The ledger for a calos whose accounts are in `main` (reached at
    /// `target`), its tables made or brought up to date.
    pub async fn open(target: &DbTarget, main: &Db, max_connections: u32) -> anyhow::Result<Self> {
        let db = companion::open(target, main, "usage", max_connections, migrate).await?;
        Ok(Self { db })
    }

    /// A ledger in memory (tests, and a calos whose accounts are in memory).
    pub async fn in_memory() -> anyhow::Result<Self> {
        Ok(Self {
            db: companion::in_memory("usage", migrate).await?,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Writes a batch of rows and adds them to the daily rollup, in one
    /// transaction: the rows and their sums never disagree.
    pub async fn insert(&self, rows: &[UsageRecord]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut daily: HashMap<DailyKey, DailyDelta> = HashMap::new();
        let mut tx = self.db.begin().await?;
        for row in rows {
            let mut ex = Exec::from(&mut tx);
            with_exec!(ex.reborrow(), exec => sqlx::query(
                "insert into usage_events (at_ms, request_id, user_id, key_id, model, provider, upstream_model, \
                 status, error_code, prompt_tokens, completion_tokens, estimated, ttft_ms, total_ms, cache) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
                .bind(row.at.timestamp_millis())
                .bind(&row.request_id)
                .bind(&row.user_id)
                .bind(&row.key_id)
                .bind(&row.model)
                .bind(&row.provider)
                .bind(&row.upstream_model)
                .bind(i32::from(row.status))
                .bind(&row.error_code)
                .bind(as_i64(row.tokens.prompt))
                .bind(as_i64(row.tokens.completion))
                .bind(row.tokens.estimated)
                .bind(row.ttft_ms)
                .bind(row.total_ms)
                .bind(row.cache)
                .execute(exec)
                .await
                .map(|_| ()))?;
            let delta = daily
                .entry((
                    row.at.format("%Y-%m-%d").to_string(),
                    row.user_id.clone(),
                    row.key_id.clone().unwrap_or_default(),
                    row.model.clone(),
                ))
                .or_default();
            delta.requests += 1;
            delta.errors += i64::from(row.error_code.is_some());
            delta.prompt += as_i64(row.tokens.prompt);
            delta.completion += as_i64(row.tokens.completion);
        }
        for ((day, user_id, key_id, model), delta) in daily {
            let mut ex = Exec::from(&mut tx);
            with_exec!(ex.reborrow(), exec => sqlx::query(
                "insert into usage_daily (day, user_id, key_id, model, requests, errors, prompt_tokens, completion_tokens) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) \
                 on conflict (day, user_id, key_id, model) do update set \
                 requests = usage_daily.requests + excluded.requests, \
                 errors = usage_daily.errors + excluded.errors, \
                 prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
                 completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens")
                .bind(&day)
                .bind(&user_id)
                .bind(&key_id)
                .bind(&model)
                .bind(delta.requests)
                .bind(delta.errors)
                .bind(delta.prompt)
                .bind(delta.completion)
                .execute(exec)
                .await
                .map(|_| ()))?;
        }
        tx.commit().await
    }

    /// Tokens a user or key spent from `since` on (`None`: ever).
    pub async fn spent_since(
        &self,
        subject: &Subject<'_>,
        since: Option<NaiveDate>,
    ) -> Result<u64, sqlx::Error> {
        let (column, id) = match subject {
            Subject::User(id) => ("user_id", *id),
            Subject::Key(id) => ("key_id", *id),
        };
        let since = since.map_or_else(
            || "0000-00-00".to_string(),
            |d| d.format("%Y-%m-%d").to_string(),
        );
        let sql = format!(
            "select cast(coalesce(sum(prompt_tokens + completion_tokens), 0) as bigint) \
             from usage_daily where {column} = $1 and day >= $2"
        );
        let spent = with_pool!(&self.db, pool => sqlx::query_scalar::<_, i64>(&sql)
            .bind(id)
            .bind(since)
            .fetch_one(pool)
            .await)?;
        Ok(spent.max(0) as u64)
    }

    /// Sums per group, in the group's order.
    pub async fn summary(&self, query: &UsageQuery<'_>) -> Result<Vec<UsageSum>, sqlx::Error> {
        let column = query.group_by.column();
        let mine = if query.user_id.is_some() {
            "and user_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "select {column} as \"group\", \
             cast(sum(requests) as bigint) as requests, cast(sum(errors) as bigint) as errors, \
             cast(sum(prompt_tokens) as bigint) as prompt_tokens, \
             cast(sum(completion_tokens) as bigint) as completion_tokens \
             from usage_daily where day >= $1 and day <= $2 {mine} \
             group by {column} order by {column} limit {MAX_GROUPS}"
        );
        let (from, to) = (
            query.from.format("%Y-%m-%d").to_string(),
            query.to.format("%Y-%m-%d").to_string(),
        );
        with_pool!(&self.db, pool => {
            let mut q = sqlx::query_as::<_, UsageSum>(&sql).bind(&from).bind(&to);
            if let Some(user_id) = query.user_id {
                q = q.bind(user_id);
            }
            q.fetch_all(pool).await
        })
    }

    /// Deletes rows older than `before_ms` (Unix milliseconds), a bounded
    /// number at a time so that a long backlog never holds a lock for long;
    /// the rollup keeps their sums. Returns how many went.
    pub async fn prune(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let mut gone = 0;
        loop {
            let deleted = with_pool!(&self.db, pool => sqlx::query(
                "delete from usage_events where id in \
                 (select id from usage_events where at_ms < $1 order by id limit 5000)")
                .bind(before_ms)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()))?;
            gone += deleted;
            if deleted < 5000 {
                return Ok(gone);
            }
        }
    }

    /// Rows in the ledger (for tests and `calos diag`).
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        with_pool!(&self.db, pool => sqlx::query_scalar::<_, i64>("select count(*) from usage_events")
            .fetch_one(pool)
            .await)
    }
}

/// The most groups one summary returns (a year of days, hundreds of models).
pub const MAX_GROUPS: usize = 1000;

/// `calos.db` → `calos-usage.db`.
/// The ledger's own tables on SQLite.
async fn migrate(pool: sqlx::SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations/sqlite-usage")
        .run(&pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::Tokens;
    use chrono::{DateTime, Utc};

    pub(crate) fn row(
        at: &str,
        user: &str,
        key: Option<&str>,
        model: &str,
        tokens: (u64, u64),
    ) -> UsageRecord {
        UsageRecord {
            at: DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&Utc),
            request_id: uuid::Uuid::new_v4().to_string(),
            user_id: user.into(),
            key_id: key.map(str::to_string),
            model: model.into(),
            provider: "mock".into(),
            upstream_model: Some(model.into()),
            status: 200,
            error_code: None,
            tokens: Tokens {
                prompt: tokens.0,
                completion: tokens.1,
                estimated: false,
            },
            ttft_ms: Some(1.5),
            total_ms: 3.0,
            cache: "miss",
        }
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[tokio::test]
    async fn batches_roll_up_by_day_and_sum_by_any_group() {
        let store = UsageStore::in_memory().await.unwrap();
        store
            .insert(&[
                row("2026-12-03T23:59:00Z", "u1", None, "a", (5, 10)),
                row("2026-12-04T00:01:00Z", "u1", Some("k1"), "a", (5, 20)),
                row("2026-12-04T08:00:00Z", "u1", Some("k1"), "b", (5, 1)),
            ])
            .await
            .unwrap();
        let mut failed = row("2026-12-04T09:00:00Z", "u2", None, "a", (0, 0));
        failed.error_code = Some("provider_unavailable".into());
        store.insert(&[failed]).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 4);

        let query = |user, group_by| UsageQuery {
            from: day("2026-12-01"),
            to: day("2026-12-31"),
            user_id: user,
            group_by,
        };
        let by_day = store
            .summary(&query(Some("u1"), GroupBy::Day))
            .await
            .unwrap();
        let days: Vec<_> = by_day
            .iter()
            .map(|s| (s.group.as_str(), s.requests, s.completion_tokens))
            .collect();
        assert_eq!(days, [("2026-12-03", 1, 10), ("2026-12-04", 2, 21)]);
        let by_key = store
            .summary(&query(Some("u1"), GroupBy::Key))
            .await
            .unwrap();
        assert_eq!(
            by_key.iter().map(|s| s.group.as_str()).collect::<Vec<_>>(),
            ["", "k1"]
        );
        let by_user = store.summary(&query(None, GroupBy::User)).await.unwrap();
        assert_eq!(by_user[1].group, "u2");
        assert_eq!(by_user[1].errors, 1);

        let today = Some(day("2026-12-04"));
        assert_eq!(
            store
                .spent_since(&Subject::User("u1"), today)
                .await
                .unwrap(),
            31
        );
        assert_eq!(
            store.spent_since(&Subject::User("u1"), None).await.unwrap(),
            46
        );
        assert_eq!(
            store.spent_since(&Subject::Key("k1"), today).await.unwrap(),
            31
        );
        assert_eq!(
            store
                .spent_since(&Subject::User("nobody"), None)
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn pruning_drops_old_rows_but_not_their_sums() {
        let store = UsageStore::in_memory().await.unwrap();
        store
            .insert(&[
                row("2026-01-01T00:00:00Z", "u", None, "a", (1, 1)),
                row("2026-12-04T00:00:00Z", "u", None, "a", (1, 1)),
            ])
            .await
            .unwrap();
        let cutoff = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(store.prune(cutoff).await.unwrap(), 1);
        assert_eq!(store.count().await.unwrap(), 1);
        assert_eq!(
            store.spent_since(&Subject::User("u"), None).await.unwrap(),
            4
        );
    }
}
