//! `calos diag db`: how fast the configured database answers (`SELECT 1`, the
//! sign-in user lookup) and whether that lookup uses `idx_users_username`, by
//! the database's own plan (EXPLAIN), the original guide's psql `\timing` step done for
//! either backend. Read-only: it never migrates or writes.

use super::stats::{summarise, Summary};
use crate::cli::toolbox::ToolError;
use crate::config::StoreArgs;
use crate::db::users::FIND_BY_USERNAME_SQL;
use crate::db::{Db, DbTarget};
use app::verdict::tree::DATABASE_LIMIT_MS;
use clap::Args;
use serde::Serialize;
use sqlx::Row;
use std::time::Instant;

pub const INDEX: &str = "idx_users_username";

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Username to look up (need not exist; the plan is the same).
    #[arg(long = "lookup", default_value = "diag-probe")]
    pub lookup: String,
    /// Times to run each query.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub count: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbReport {
    pub backend: &'static str,
    pub target: String,
    pub connect_ms: f64,
    pub select_one: Option<Summary>,
    pub user_lookup: Option<Summary>,
    pub users: i64,
    pub index_exists: bool,
    /// The plan the database picks for the lookup.
    pub plan: Vec<String>,
    /// PostgreSQL only: the plan with sequential scans disabled (a tiny table is
    /// scanned even when the index is fine; this shows the index is usable).
    pub plan_without_seq_scan: Option<Vec<String>>,
    pub uses_index: bool,
    pub advice: String,
}

async fn sqlite_plan(pool: &sqlx::SqlitePool, lookup: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(&format!("explain query plan {FIND_BY_USERNAME_SQL}"))
        .bind(lookup)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>("detail").ok())
        .collect())
}

async fn postgres_plans(
    pool: &sqlx::PgPool,
    lookup: &str,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let explain = format!("explain {FIND_BY_USERNAME_SQL}");
    let lines = |rows: Vec<sqlx::postgres::PgRow>| -> Vec<String> {
        rows.iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect()
    };
    let chosen = lines(sqlx::query(&explain).bind(lookup).fetch_all(pool).await?);
    let mut tx = pool.begin().await?;
    sqlx::query("set local enable_seqscan = off")
        .execute(&mut *tx)
        .await?;
    let forced = lines(
        sqlx::query(&explain)
            .bind(lookup)
            .fetch_all(&mut *tx)
            .await?,
    );
    tx.rollback().await?;
    Ok((chosen, forced))
}

fn mentions_index(plan: &[String]) -> bool {
    plan.iter().any(|l| l.contains(INDEX))
}

/// Connects to the configured store and measures it.
pub async fn measure(args: &DbArgs) -> Result<DbReport, ToolError> {
    let target = args.store.target();
    if let DbTarget::SqliteFile(path) = &target {
        if !path.exists() {
            return Err(ToolError::Unreachable(format!(
                "no database at {} (start calos once to create it, or set DATABASE_URL)",
                path.display()
            )));
        }
    }
    let connecting = Instant::now();
    let db = Db::connect(&target, 2).await.map_err(|e| {
        ToolError::Unreachable(format!("cannot connect to {}: {e:#}", target.describe()))
    })?;
    let connect_ms = connecting.elapsed().as_secs_f64() * 1000.0;
    let result = measure_connected(args, &db, &target, connect_ms).await;
    db.close().await;
    result
}

async fn measure_connected(
    args: &DbArgs,
    db: &Db,
    target: &DbTarget,
    connect_ms: f64,
) -> Result<DbReport, ToolError> {
    let failed = |e: sqlx::Error| ToolError::Refused(format!("{}: {e}", target.describe()));
    let mut select_one = Vec::new();
    let mut lookups = Vec::new();
    for _ in 0..args.count.max(1) {
        select_one.push(db.ping().await.map_err(failed)?.as_secs_f64() * 1000.0);
        let started = Instant::now();
        crate::db::users::find_by_username(db, &args.lookup)
            .await
            .map_err(|e| {
                ToolError::Refused(format!(
                    "the user lookup failed on {} ({e}); has calos created its tables yet?",
                    target.describe()
                ))
            })?;
        lookups.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (users, index_exists, plan, forced) = match db {
        Db::Sqlite(pool) => {
            let users: i64 = sqlx::query_scalar("select count(*) from users")
                .fetch_one(pool)
                .await
                .map_err(failed)?;
            let exists: i64 = sqlx::query_scalar(
                "select count(*) from sqlite_master where type = 'index' and name = $1",
            )
            .bind(INDEX)
            .fetch_one(pool)
            .await
            .map_err(failed)?;
            (
                users,
                exists > 0,
                sqlite_plan(pool, &args.lookup).await.map_err(failed)?,
                None,
            )
        }
        Db::Postgres(pool) => {
            let users: i64 = sqlx::query_scalar("select count(*) from users")
                .fetch_one(pool)
                .await
                .map_err(failed)?;
            let exists: i64 = sqlx::query_scalar(
                "select count(*) from pg_indexes where tablename = 'users' and indexname = $1",
            )
            .bind(INDEX)
            .fetch_one(pool)
            .await
            .map_err(failed)?;
            let (chosen, forced) = postgres_plans(pool, &args.lookup).await.map_err(failed)?;
            (users, exists > 0, chosen, Some(forced))
        }
    };
    let uses_index = mentions_index(&plan) || forced.as_deref().is_some_and(mentions_index);
    let user_lookup = summarise(lookups);
    let slow = user_lookup.is_some_and(|s| s.avg > DATABASE_LIMIT_MS);
    let advice = match (index_exists, uses_index, slow) {
        (false, _, _) => format!(
            "{INDEX} is missing: every sign-in scans the table. Fix: CREATE INDEX IF NOT EXISTS {INDEX} ON users (lower(username));"
        ),
        (true, false, _) => format!("{INDEX} exists but the lookup does not use it: check the query matches the index expression lower(username)."),
        (true, true, true) => "The lookup uses its index but is slow (> 50 ms): the database host or its connection is the problem (latency, load, pool size), not the query.".into(),
        (true, true, false) if !mentions_index(&plan) => format!(
            "Fine: with {users} rows PostgreSQL prefers a sequential scan, and uses {INDEX} once scans are costlier (shown with enable_seqscan off)."
        ),
        (true, true, false) => format!("Fine: the lookup uses {INDEX} (expected < 20 ms)."),
    };
    Ok(DbReport {
        backend: db.backend(),
        target: target.describe(),
        connect_ms,
        select_one: summarise(select_one),
        user_lookup,
        users,
        index_exists,
        plan,
        plan_without_seq_scan: forced,
        uses_index,
        advice,
    })
}

pub fn render(r: &DbReport) -> String {
    let mut out = format!(
        "Database: {} ({}), {} users, connected in {:.1} ms\n",
        r.target, r.backend, r.users, r.connect_ms
    );
    out.push_str("  (ms)            min      avg      p50      max\n");
    for (name, s) in [("SELECT 1", &r.select_one), ("user lookup", &r.user_lookup)] {
        if let Some(s) = s {
            out.push_str(&format!(
                "  {name:<12}{:>9.2}{:>9.2}{:>9.2}{:>9.2}\n",
                s.min, s.avg, s.p50, s.max
            ));
        }
    }
    out.push_str("  plan:\n");
    for line in &r.plan {
        out.push_str(&format!("    {line}\n"));
    }
    if let Some(forced) = &r.plan_without_seq_scan {
        out.push_str("  plan with enable_seqscan = off:\n");
        for line in forced {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out.push_str(&format!(
        "  index {INDEX}: {}, used: {}\n  → {}\n",
        if r.index_exists { "present" } else { "MISSING" },
        if r.uses_index { "yes" } else { "NO" },
        r.advice
    ));
    out
}

pub async fn run(args: DbArgs) -> Result<(), ToolError> {
    let report = measure(&args).await?;
    super::print(&report, args.json, render)
}
