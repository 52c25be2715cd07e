//! The usage ledger's writer: requests hand their row to a bounded queue and
//! go on; one task writes what has queued up, in batches, off the request
//! path. Handing a row over is a `try_send` (no lock held, no await), which is
//! what keeps the ledger out of a chat's latency.
//!
//! Bounds and losses, stated:
//! - the queue holds at most `capacity` rows; when the database is down or
//!   slower than the traffic for that long, further rows are dropped, counted
//!   (`calos_usage_rows_dropped_total`) and logged, rather than holding
//!   memory without end or slowing chat;
//! - a failed batch is kept and retried with backoff (rows queue meanwhile);
//! - on a graceful shutdown the server first stops taking requests, then
//!   [`Ledger::close`] writes everything queued: no row is lost.
//!
//! The same task prunes rows older than the retention once a day; the daily
//! rollup keeps their sums.

use crate::usage::record::UsageRecord;
use crate::usage::store::UsageStore;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the writer batches and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct LedgerConfig {
    /// Rows queued at most.
    pub capacity: usize,
    /// Rows written in one transaction at most.
    pub batch_max: usize,
    /// How long the writer lets rows gather after the first of a batch.
    pub linger: Duration,
    /// Rows older than this many days are pruned; 0 keeps them all.
    pub retention_days: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            capacity: 50_000,
            batch_max: 1_000,
            linger: Duration::from_millis(50),
            retention_days: 90,
        }
    }
}

/// How often rows past the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How many times a batch is retried once shutdown has begun.
const RETRIES_AT_SHUTDOWN: u32 = 3;

/// Hands rows to the writer. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    queue: mpsc::Sender<UsageRecord>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    /// When a drop was last logged (one warning a second at most).
    warned: Mutex<Option<Instant>>,
}

impl Ledger {
    /// Starts the writer on the current runtime.
    pub fn start(store: UsageStore, config: LedgerConfig) -> Self {
        let (queue, rows) = mpsc::channel(config.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write_rows(
            store,
            config,
            rows,
            counters.clone(),
            stop.clone(),
        ));
        Self {
            queue,
            counters,
            stop,
            writer: Arc::new(Mutex::new(Some(writer))),
        }
    }

    /// Queues a row; never waits.
    pub fn record(&self, row: UsageRecord) {
        if self.queue.try_send(row).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let mut warned = self.counters.warned.lock();
            if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                *warned = Some(Instant::now());
                tracing::warn!(
                    dropped,
                    "usage ledger queue full: rows dropped (the database is down or too slow)"
                );
            }
        }
    }

    /// Rows written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Rows dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Rows waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Writes every queued row and stops the writer. Call once requests have
    /// stopped; rows recorded after it are dropped.
    pub async fn close(&self) {
        self.stop.cancel();
        let writer = self.writer.lock().take();
        if let Some(writer) = writer {
            if let Err(e) = writer.await {
                tracing::error!(error = %e, "usage ledger writer failed");
            }
        }
    }
}

async fn write_rows(
    store: UsageStore,
    config: LedgerConfig,
    mut rows: mpsc::Receiver<UsageRecord>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(config.batch_max);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = prune.tick() => prune_old(&store, config.retention_days).await,
            got = rows.recv_many(&mut batch, config.batch_max) => {
                if got == 0 {
                    break;
                }
                // Let a batch gather, unless it is full or calos is stopping.
                if batch.len() < config.batch_max {
                    tokio::select! {
                        _ = tokio::time::sleep(config.linger) => {}
                        _ = stop.cancelled() => {}
                    }
                    while batch.len() < config.batch_max {
                        match rows.try_recv() {
                            Ok(row) => batch.push(row),
                            Err(_) => break,
                        }
                    }
                }
                write_batch(&store, &mut batch, &counters, &stop).await;
            }
        }
    }
    // Shutdown: nothing new arrives; write what is queued.
    rows.close();
    while rows.recv_many(&mut batch, config.batch_max).await > 0 {
        write_batch(&store, &mut batch, &counters, &stop).await;
    }
}

/// Writes the batch, retrying with backoff until it is written (or, once
/// stopping, a few times, then reporting the rows lost).
async fn write_batch(
    store: &UsageStore,
    batch: &mut Vec<UsageRecord>,
    counters: &Counters,
    stop: &CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0;
    loop {
        match store.insert(batch).await {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) => {
                failures += 1;
                if stop.is_cancelled() && failures > RETRIES_AT_SHUTDOWN {
                    tracing::error!(error = %e, rows = batch.len(), "usage ledger: rows lost at shutdown, the database did not take them");
                    counters
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    return;
                }
                tracing::warn!(error = %e, rows = batch.len(), retry_in = ?backoff, "usage ledger: batch not written; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn prune_old(store: &UsageStore, retention_days: u32) {
    if retention_days == 0 {
        return;
    }
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days));
    match store.prune(cutoff.timestamp_millis()).await {
        Ok(0) => {}
        Ok(gone) => tracing::info!(rows = gone, retention_days, "usage ledger: pruned old rows"),
        Err(e) => tracing::warn!(error = %e, "usage ledger: pruning failed; will try tomorrow"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::Tokens;

    fn row(n: usize) -> UsageRecord {
        UsageRecord {
            at: chrono::Utc::now(),
            request_id: format!("r{n}"),
            user_id: "u".into(),
            key_id: None,
            model: "m".into(),
            provider: "mock".into(),
            upstream_model: None,
            status: 200,
            error_code: None,
            tokens: Tokens {
                prompt: 1,
                completion: 2,
                estimated: false,
            },
            ttft_ms: None,
            total_ms: 1.0,
            cache: "off",
        }
    }

    #[tokio::test]
    async fn closing_writes_every_queued_row() {
        let store = UsageStore::in_memory().await.unwrap();
        let ledger = Ledger::start(
            store.clone(),
            LedgerConfig {
                linger: Duration::from_secs(60),
                ..LedgerConfig::default()
            },
        );
        for n in 0..2_500 {
            ledger.record(row(n));
        }
        ledger.close().await;
        assert_eq!(store.count().await.unwrap(), 2_500);
        assert_eq!(ledger.written(), 2_500);
        assert_eq!(ledger.dropped(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_growing() {
        let store = UsageStore::in_memory().await.unwrap();
        // Hold the only connection: the writer cannot write, rows queue up.
        let Some(held) = (match store.db() {
            crate::db::Db::Sqlite(pool) => Some(pool.acquire().await.unwrap()),
            crate::db::Db::Postgres(_) => None,
        }) else {
            unreachable!("an in-memory store is SQLite")
        };
        let ledger = Ledger::start(
            store.clone(),
            LedgerConfig {
                capacity: 10,
                batch_max: 5,
                linger: Duration::ZERO,
                retention_days: 0,
            },
        );
        for n in 0..100 {
            ledger.record(row(n));
        }
        assert!(ledger.queued() <= 10);
        // At most the queue plus the batch in the writer's hands are kept.
        assert!(
            ledger.dropped() >= 100 - 10 - 5,
            "dropped {}",
            ledger.dropped()
        );
        drop(held);
        ledger.close().await;
        assert_eq!(store.count().await.unwrap() as u64 + ledger.dropped(), 100);
    }
}
