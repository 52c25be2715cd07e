//! Mission Control's cluster view: every replica says how it is doing, each
//! second, on a Redis channel, and listens to the others.
//!
//! A report carries the replica's name, its uptime and health, its last
//! second's figures and its new log lines (already redacted by the log ring,
//! at most [`MAX_LOG_LINES`] a second). Any replica's dashboard then shows one
//! tile per replica and the sums, and the other replicas' log lines in its
//! feed. A replica not heard from for [`DOWN_AFTER`] shows as down; one gone
//! for [`FORGET_AFTER`] is dropped. At most [`MAX_REPLICAS`] are kept, and a
//! report over [`MAX_REPORT_BYTES`] is ignored: whatever is published on the
//! channel, memory here stays bounded.

use crate::cluster::SharedState;
use crate::observability::logs::LogRing;
use crate::ops::monitor::Monitor;
use app::wire::{ClusterView, HealthStatus, LogLine, ReplicaTile};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often each replica reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Silence after which a replica shows as down.
pub const DOWN_AFTER: Duration = Duration::from_secs(5);
/// Silence after which a replica is no longer shown.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Replicas kept at most.
pub const MAX_REPLICAS: usize = 64;
/// A bigger report is not one of ours.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;
/// Log lines one report carries at most (the rest are counted, not sent).
pub const MAX_LOG_LINES: usize = 50;

/// What one replica tells the others, each second.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub replica: String,
    pub uptime_secs: u64,
    pub health: String,
    pub requests_per_sec: f64,
    pub requests_15m: u64,
    pub error_rate: f64,
    pub p95_ms: Option<f64>,
    pub active_streams: i64,
    #[serde(default)]
    pub logs: Vec<LogLine>,
}

struct Heard {
    report: Report,
    at: Instant,
}

/// The replicas heard from. Cheap to clone.
#[derive(Clone)]
pub struct Replicas {
    me: Arc<str>,
    heard: Arc<Mutex<BTreeMap<String, Heard>>>,
}

impl Replicas {
    pub fn new(me: Arc<str>) -> Self {
        Self {
            me,
            heard: Arc::default(),
        }
    }

    /// Keeps a report (without its log lines), evicting the replica heard
    /// from longest ago when [`MAX_REPLICAS`] are kept.
    pub fn record(&self, mut report: Report, at: Instant) {
        report.logs.clear();
        let mut heard = self.heard.lock();
        heard.retain(|_, h| at.saturating_duration_since(h.at) < FORGET_AFTER);
        if !heard.contains_key(&report.replica) && heard.len() >= MAX_REPLICAS {
            let oldest = heard
                .iter()
                .min_by_key(|(_, h)| h.at)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                heard.remove(&oldest);
            }
        }
        heard.insert(report.replica.clone(), Heard { report, at });
    }

    /// The tiles and sums as of `now`.
    pub fn view(&self, now: Instant) -> ClusterView {
        let heard = self.heard.lock();
        let mut replicas: Vec<ReplicaTile> = heard
            .values()
            .filter(|h| now.saturating_duration_since(h.at) < FORGET_AFTER)
            .map(|h| {
                let silent = now.saturating_duration_since(h.at);
                let r = &h.report;
                ReplicaTile {
                    name: r.replica.clone(),
                    this: *r.replica == *self.me,
                    status: if silent < DOWN_AFTER {
                        HealthStatus::Up
                    } else {
                        HealthStatus::Down
                    },
                    health: r.health.clone(),
                    last_seen_secs: (silent.as_secs_f64() * 10.0).round() / 10.0,
                    uptime_secs: r.uptime_secs,
                    requests_per_sec: r.requests_per_sec,
                    requests_15m: r.requests_15m,
                    error_rate: r.error_rate,
                    p95_ms: r.p95_ms,
                    active_streams: r.active_streams,
                }
            })
            .collect();
        drop(heard);
        // This replica first, then by name (the map's order).
        replicas.sort_by_key(|tile| !tile.this);
        let live = replicas.iter().filter(|t| t.status == HealthStatus::Up);
        let (requests_per_sec, requests_15m, up) = live.fold((0.0, 0, 0), |(rps, n, up), t| {
            (rps + t.requests_per_sec, n + t.requests_15m, up + 1)
        });
        let down = replicas.len() - up;
        ClusterView {
            replicas,
            requests_per_sec: (requests_per_sec * 10.0).round() / 10.0,
            requests_15m,
            up,
            down,
        }
    }
}

/// What the reporter reads.
pub struct Sources {
    pub shared: SharedState,
    pub monitor: Monitor,
    pub logs: LogRing,
    pub started: Instant,
    pub draining: CancellationToken,
}

/// Starts reporting and listening; both end with `shutdown`.
pub fn start(replicas: Replicas, sources: Sources, shutdown: CancellationToken) {
    tokio::spawn(listen(
        replicas.clone(),
        sources.shared.clone(),
        sources.monitor.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(report(replicas, sources, shutdown));
}

fn channel(shared: &SharedState) -> String {
    shared.key("cluster")
}

/// Each second: this replica's report, to Redis and to its own view; then
/// the view to this replica's dashboards.
async fn report(replicas: Replicas, sources: Sources, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut new_lines = sources.logs.subscribe();
    let channel = channel(&sources.shared);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let mut logs = Vec::new();
        loop {
            match new_lines.try_recv() {
                Ok(entry) if logs.len() < MAX_LOG_LINES => logs.push(entry.to_line()),
                Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        let (latest, requests_15m) = sources.monitor.latest();
        let health = if sources.draining.is_cancelled() {
            "draining"
        } else {
            sources.monitor.overall_health()
        };
        let report = Report {
            replica: replicas.me.to_string(),
            uptime_secs: sources.started.elapsed().as_secs(),
            health: health.into(),
            requests_per_sec: latest.as_ref().map_or(0.0, |s| s.requests_per_sec),
            requests_15m,
            error_rate: latest.as_ref().map_or(0.0, |s| s.error_rate),
            p95_ms: latest
                .as_ref()
                .and_then(|s| s.latency.get("total"))
                .map(|q| q.p95),
            active_streams: latest.as_ref().map_or(0, |s| s.active_streams),
            logs,
        };
        if let Ok(json) = serde_json::to_string(&report) {
            let channel = channel.clone();
            // Failures are logged by the shared state; this replica's own
            // view goes on.
            let _ = sources
                .shared
                .run(|mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(json)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
        }
        replicas.record(report, Instant::now());
        sources.monitor.show_cluster(replicas.view(Instant::now()));
    }
}

/// Hears the other replicas' reports; reconnects after Redis comes back.
async fn listen(
    replicas: Replicas,
    shared: SharedState,
    monitor: Monitor,
    shutdown: CancellationToken,
) {
    let channel = channel(&shared);
    loop {
        let subscribed = async {
            let mut pubsub = shared.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            outcome = tokio::time::timeout(Duration::from_secs(5), subscribed) => outcome,
            _ = shutdown.cancelled() => return,
        };
        if let Ok(Ok(pubsub)) = pubsub {
            let mut messages = pubsub.into_on_message();
            loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    _ = shutdown.cancelled() => return,
                };
                let Some(message) = message else { break };
                let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                if payload.len() > MAX_REPORT_BYTES {
                    continue;
                }
                let Ok(mut report) = serde_json::from_slice::<Report>(&payload) else {
                    continue;
                };
                if *report.replica == *replicas.me {
                    continue;
                }
                let lines: Vec<LogLine> = std::mem::take(&mut report.logs)
                    .into_iter()
                    .take(MAX_LOG_LINES)
                    .map(|mut line| {
                        line.source = format!("{} · {}", report.replica, line.source);
                        line
                    })
                    .collect();
                monitor.show_remote_logs(lines);
                replicas.record(report, Instant::now());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str) -> Report {
        Report {
            replica: name.into(),
            uptime_secs: 1,
            health: "ok".into(),
            requests_per_sec: 2.0,
            requests_15m: 10,
            error_rate: 0.0,
            p95_ms: None,
            active_streams: 0,
            logs: Vec::new(),
        }
    }

    #[test]
    fn silent_replicas_turn_down_then_vanish_and_the_count_is_bounded() {
        let replicas = Replicas::new("a".into());
        let start = Instant::now();
        replicas.record(report("a"), start);
        replicas.record(report("b"), start);
        let view = replicas.view(start + Duration::from_secs(1));
        assert_eq!((view.up, view.down, view.requests_15m), (2, 0, 20));
        assert!(view.replicas[0].this);
        replicas.record(report("a"), start + DOWN_AFTER);
        let view = replicas.view(start + DOWN_AFTER + Duration::from_millis(10));
        let b = view.replicas.iter().find(|t| t.name == "b").unwrap();
        assert_eq!(b.status, HealthStatus::Down);
        assert_eq!((view.up, view.down, view.requests_15m), (1, 1, 10));
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        replicas.record(report("a"), later);
        assert_eq!(replicas.view(later).replicas.len(), 1);

        for n in 0..(MAX_REPLICAS * 3) {
            replicas.record(
                report(&format!("r{n}")),
                later + Duration::from_millis(n as u64),
            );
        }
        assert_eq!(replicas.view(later).replicas.len(), MAX_REPLICAS);
    }
}
