//! Which replica runs the managed processes: the one holding a PostgreSQL
//! advisory lock.
//!
//! The lock belongs to one database session, so it is held on a connection
//! of its own, outside the pool. When the leader dies, its connection closes
//! and PostgreSQL releases the lock; another replica's next attempt (every
//! [`RETRY`]) takes it. The leader checks its connection as often, and stands
//! down when it breaks: its lock may be someone else's by then. So at most one
//! replica runs the processes, give or take one check's overlap while a broken
//! connection goes unnoticed, and a dead leader's processes are back within a
//! few seconds on another replica.
//!
//! SQLite is one machine's file: the one process using it always leads.

use crate::db::Db;
use sqlx::Connection;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a follower tries to take the lock, and the leader checks it.
pub const RETRY: Duration = Duration::from_secs(1);

/// The advisory lock's number: calos's own, the same on every replica
/// (`pg_try_advisory_lock` takes any 64-bit key; this one spells "calosPM").
const LOCK_KEY: i64 = 0x6361_6c6f_7350_4d00;

/// Starts electing: the receiver holds `true` while this replica leads.
pub fn elect(db: &Db, shutdown: CancellationToken) -> watch::Receiver<bool> {
    match db {
        Db::Sqlite(_) => {
            let (leading, receiver) = watch::channel(true);
            // Held until shutdown: a dropped sender reads as "stand down".
            tokio::spawn(async move {
                shutdown.cancelled().await;
                drop(leading);
            });
            receiver
        }
        Db::Postgres(pool) => {
            let (leading, receiver) = watch::channel(false);
            tokio::spawn(campaign(pool.clone(), leading, shutdown));
            receiver
        }
    }
}

async fn campaign(pool: sqlx::PgPool, leading: watch::Sender<bool>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RETRY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One connection of its own, kept between attempts (a follower asks every
    // second; a new connection each time would churn PostgreSQL's backends).
    let mut session: Option<sqlx::PgConnection> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let leads = *leading.borrow();
        match attempt(&pool, &mut session, leads).await {
            Ok(now_leads) if now_leads != leads => {
                if now_leads {
                    tracing::info!("this replica leads: it runs the managed processes");
                }
                leading.send_replace(now_leads);
            }
            Ok(_) => {}
            Err(e) => {
                // The session is gone, and with it any lock it held.
                session = None;
                if leads {
                    tracing::warn!(error = %e, "lost the connection holding the process lock: standing down");
                    leading.send_replace(false);
                }
            }
        }
    }
    // Stand down before the connection closes, so processes stop here first.
    leading.send_replace(false);
    if let Some(held) = session {
        let _ = held.close().await;
    }
}

/// One round: the leader checks its session; a follower tries the lock.
/// Returns whether this replica leads after it.
async fn attempt(
    pool: &sqlx::PgPool,
    session: &mut Option<sqlx::PgConnection>,
    leads: bool,
) -> Result<bool, sqlx::Error> {
    let round = async {
        if session.is_none() {
            *session = Some(pool.acquire().await?.detach());
        }
        let Some(connection) = session.as_mut() else {
            return Ok(false);
        };
        if leads {
            connection.ping().await?;
            return Ok(true);
        }
        sqlx::query_scalar::<_, bool>("select pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(connection)
            .await
    };
    match tokio::time::timeout(RETRY * 2, round).await {
        Ok(outcome) => outcome,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}
