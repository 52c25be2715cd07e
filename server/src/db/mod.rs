//! The database: an embedded SQLite file by default, PostgreSQL when
//! `DATABASE_URL=postgres://…`.
//!
//! Queries are written once in portable SQL (numbered `$1` parameters work in
//! both) and run through [`with_pool!`], which expands the same code for each
//! backend's pool. The dialect differences live in the two migration folders and
//! in the connection setup below, nowhere else.
//!
//! Query functions take an [`Exec`]: `&Db` (any free pooled connection) or
//! `&mut Tx` (one transaction), so a service can run several in one
//! transaction ([`Db::begin`]). [`with_exec!`] expands a query for each of the
//! four. A unique-constraint violation is recognised by its error code
//! ([`is_unique_violation`]) and reported as [`InsertError::Taken`].

pub mod api_keys;
pub mod companion;
pub mod identities;
pub mod invites;
pub mod limits;
pub mod users;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How long a request waits for a pooled connection before it gets a 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a PostgreSQL statement may run: a query stuck behind a lock or
/// a runaway plan is cancelled (SQLSTATE 57014, a 503 like any unavailable
/// database) instead of holding a pooled connection, and the request, forever.
/// calos's own queries take milliseconds.
const STATEMENT_TIMEOUT: &str = "10s";
/// Idle connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long startup waits for the first connection. Requests give up after
/// [`ACQUIRE_TIMEOUT`] so a client gets a quick 503; a server starting on a
/// busy machine (creating the file, switching it to WAL) deserves patience.
const FIRST_CONNECTION_PATIENCE: Duration = Duration::from_secs(30);
/// How long SQLite waits on a locked database before reporting busy.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds. The body is
/// type-checked once per backend, so it must be valid for both.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Where a query runs: a pool (each query on any free connection) or one
/// borrowed connection, such as an open transaction's.
pub enum Exec<'a> {
    SqlitePool(&'a SqlitePool),
    Sqlite(&'a mut SqliteConnection),
    PostgresPool(&'a PgPool),
    Postgres(&'a mut PgConnection),
}

impl Exec<'_> {
    /// The same executor for one more query, leaving `self` usable afterwards.
    pub fn reborrow(&mut self) -> Exec<'_> {
        match self {
            Exec::SqlitePool(pool) => Exec::SqlitePool(pool),
            Exec::Sqlite(conn) => Exec::Sqlite(conn),
            Exec::PostgresPool(pool) => Exec::PostgresPool(pool),
            Exec::Postgres(conn) => Exec::Postgres(conn),
        }
    }
}

impl<'a> From<&'a Db> for Exec<'a> {
    fn from(db: &'a Db) -> Self {
        match db {
            Db::Sqlite(pool) => Exec::SqlitePool(pool),
            Db::Postgres(pool) => Exec::PostgresPool(pool),
        }
    }
}

impl<'a> From<&'a mut Tx> for Exec<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        match tx {
            Tx::Sqlite(tx) => Exec::Sqlite(tx),
            Tx::Postgres(tx) => Exec::Postgres(tx),
        }
    }
}

/// Runs `$body` with `$exec` bound to whichever executor (pool or connection,
/// either backend) `$ex` holds: four expansions, so it must be valid for all.
#[macro_export]
macro_rules! with_exec {
    ($ex:expr, $exec:ident => $body:expr) => {
        match $ex {
            $crate::db::Exec::SqlitePool($exec) => $body,
            $crate::db::Exec::Sqlite($exec) => $body,
            $crate::db::Exec::PostgresPool($exec) => $body,
            $crate::db::Exec::Postgres($exec) => $body,
        }
    };
}

/// An open transaction on either backend. Dropped without [`Tx::commit`], it
/// rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

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

/// A unique-constraint violation, by the backend's error code (SQLite's
/// extended codes 2067 UNIQUE and 1555 PRIMARY KEY, PostgreSQL's SQLSTATE
/// 23505), never by the wording of its message.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The constraint a violation names, where the backend reports it as a field
/// (PostgreSQL; SQLite only writes it into the message).
pub(crate) fn violated_constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// What to connect to, resolved from `DATABASE_URL` and `CALOS_DATA_DIR`.
#[derive(Clone, Debug)]
pub enum DbTarget {
    SqliteFile(std::path::PathBuf),
    Url(String),
}

impl DbTarget {
    /// `DATABASE_URL` wins when set; otherwise `calos.db` in the data directory.
    pub fn resolve(database_url: Option<&str>, data_dir: &Path) -> Self {
        match database_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Self::Url(url.to_string()),
            None => Self::SqliteFile(data_dir.join("calos.db")),
        }
    }

    /// A description safe to log: no password from the URL.
    pub fn describe(&self) -> String {
        match self {
            Self::SqliteFile(path) => format!("sqlite:{}", path.display()),
            Self::Url(url) => redact_url(url),
        }
    }
}

fn redact_url(url: &str) -> String {
    // scheme://user:password@host/db → scheme://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<database url>".into();
    };
    match rest.split_once('@') {
        Some((creds, host)) => {
            let user = creds.split(':').next().unwrap_or("");
            let masked = if creds.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}")
        }
        None => url.to_string(),
    }
}

impl Db {
    pub async fn connect(target: &DbTarget, max_connections: u32) -> anyhow::Result<Self> {
        match target {
            DbTarget::SqliteFile(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating data directory {}", dir.display()))?;
                }
                Self::connect_sqlite(SqliteConnectOptions::new().filename(path), max_connections)
                    .await
            }
            DbTarget::Url(url) if url.starts_with("sqlite:") => {
                let options = SqliteConnectOptions::from_str(url)
                    .context("parsing the SQLite DATABASE_URL")?;
                Self::connect_sqlite(options, max_connections).await
            }
            DbTarget::Url(url)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                let mut options = PgConnectOptions::from_str(url)
                    .with_context(|| format!("parsing {}", redact_url(url)))?;
                // A URL that sets its own (`?options=-c statement_timeout=60s`) wins.
                if !url.contains("statement_timeout") {
                    options = options.options([("statement_timeout", STATEMENT_TIMEOUT)]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .idle_timeout(IDLE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("connecting to {}", redact_url(url)))?;
                Ok(Self::Postgres(pool))
            }
            DbTarget::Url(_) => {
                anyhow::bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
            }
        }
    }

    async fn connect_sqlite(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> anyhow::Result<Self> {
        // sqlx does not switch to WAL by itself: readers then never block the writer.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(IDLE_TIMEOUT)
            .connect_lazy_with(options);
        let started = std::time::Instant::now();
        loop {
            match pool.acquire().await {
                Ok(_) => break,
                Err(sqlx::Error::PoolTimedOut) if started.elapsed() < FIRST_CONNECTION_PATIENCE => {
                }
                Err(e) => return Err(e).context("opening the SQLite database"),
            }
        }
        Ok(Self::Sqlite(pool))
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await,
            Self::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
        }
        .context("running database migrations")
    }

    /// Starts a transaction; queries given `&mut` it run inside it.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// `SELECT 1`, timed; used by health checks and `calos diag db`.
    pub async fn ping(&self) -> Result<Duration, sqlx::Error> {
        let started = Instant::now();
        with_pool!(self, pool => sqlx::query("select 1").execute(pool).await.map(|_| ()))?;
        Ok(started.elapsed())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_logged_without_their_password() {
        assert_eq!(
            redact_url("postgres://calos:s3cret@db:5432/calos"),
            "postgres://calos:***@db:5432/calos"
        );
        assert_eq!(
            redact_url("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
    }

    #[test]
    fn data_dir_is_the_default_store() {
        let target = DbTarget::resolve(None, Path::new("/tmp/x"));
        assert!(matches!(target, DbTarget::SqliteFile(p) if p.ends_with("calos.db")));
        let target = DbTarget::resolve(Some("  "), Path::new("/tmp/x"));
        assert!(matches!(target, DbTarget::SqliteFile(_)));
    }
}
