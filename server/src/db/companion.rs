//! Companion databases: tables that live beside the accounts, in a file of
//! their own on SQLite.
//!
//! SQLite has one writer per file, and the sign-in cache treats any write to
//! the accounts file as a possible account change (it watches the file's
//! write-ahead log). Tables written on every chat (the usage ledger, stored
//! conversations) therefore get their own file next to `calos.db`
//! (`calos-usage.db`, `calos-conversations.db`): their writes never queue
//! behind sign-ups, nor empty that cache. On PostgreSQL they are in calos's
//! database, where foreign keys tie them to their accounts.

use super::{Db, DbTarget};
use anyhow::Context;
use std::path::Path;

/// Opens the companion `suffix` (`usage`, `conversations`) of the accounts
/// database `main`, reached at `target`: `main` itself on PostgreSQL, a
/// sibling file on SQLite, an in-memory database beside an in-memory one.
/// `migrate` brings a SQLite companion's tables up to date.
pub async fn open<F, Fut>(
    target: &DbTarget,
    main: &Db,
    suffix: &str,
    max_connections: u32,
    migrate: F,
) -> anyhow::Result<Db>
where
    F: FnOnce(sqlx::SqlitePool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    let file = match (target, main) {
        (_, Db::Postgres(_)) => return Ok(main.clone()),
        (DbTarget::SqliteFile(file), Db::Sqlite(_)) => file.clone(),
        (DbTarget::Url(url), Db::Sqlite(_)) => {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                .context("parsing the SQLite DATABASE_URL")?;
            let file = options.get_filename();
            if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
                return in_memory(suffix, migrate).await;
            }
            file.to_path_buf()
        }
    };
    let sibling = file.with_file_name(sibling_name(&file, suffix));
    let db = Db::connect(&DbTarget::SqliteFile(sibling), max_connections).await?;
    if let Db::Sqlite(pool) = &db {
        migrate(pool.clone())
            .await
            .with_context(|| format!("running the {suffix} database's migrations"))?;
    }
    Ok(db)
}

/// A companion in memory (tests, and a calos whose accounts are in memory).
pub async fn in_memory<F, Fut>(suffix: &str, migrate: F) -> anyhow::Result<Db>
where
    F: FnOnce(sqlx::SqlitePool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    // One connection that never closes: each in-memory connection is a
    // database of its own, gone when it closes.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await?;
    migrate(pool.clone())
        .await
        .with_context(|| format!("running the {suffix} database's migrations"))?;
    Ok(Db::Sqlite(pool))
}

/// `calos.db` → `calos-usage.db`.
pub fn sibling_name(file: &Path, suffix: &str) -> std::ffi::OsString {
    let stem = file
        .file_stem()
        .map_or_else(|| "calos".into(), |s| s.to_string_lossy().into_owned());
    format!("{stem}-{suffix}.db").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_companion_file_is_named_after_the_accounts_file() {
        assert_eq!(
            sibling_name(Path::new("/data/calos.db"), "conversations"),
            "calos-conversations.db"
        );
        assert_eq!(sibling_name(Path::new("x"), "usage"), "x-usage.db");
    }
}
