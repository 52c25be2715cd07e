//! Mission Control's live feed. Background tasks sample metrics every second,
//! check health every few seconds, forward log lines as they are written and
//! process changes as they happen, and publish each as one typed JSON message
//! (`{"type":"health"|"log"|"metrics"|"process",…}`) to every dashboard socket.
//! Every [`VERDICT_EVERY`] it judges the recent requests ([`verdict`]) and
//! sends the verdict when it changed. A socket starts from
//! [`Monitor::snapshot`] so a fresh page is never empty.
//!
//! Everything is bounded: the log ring, 15 minutes of samples, 24 hours of
//! per-minute health rollups, and the broadcast channel (a client that falls
//! behind it is dropped, not waited for).

pub mod chart;
pub mod health;
pub mod sample;
pub mod verdict;

use crate::db::Db;
use crate::llm::router::ModelRouter;
use crate::observability::logs::LogRing;
use crate::observability::metrics::Metrics;
use crate::observability::recent::Recent;
use crate::ops::processes::config::TargetSpec;
use crate::ops::processes::ProcessManager;
use app::wire::{
    ComponentKind, DeploymentTile, HealthStatus, MetricsSample, MonitorMessage as Message,
};
use health::{Board, Check};
use parking_lot::Mutex;
use sample::History;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Messages a socket may lag behind before it is dropped.
pub const CLIENT_BACKLOG: usize = 512;
/// Log lines sent in a snapshot.
const SNAPSHOT_LOG_LINES: usize = 200;
/// Most log lines sent to dashboards in one message.
const MAX_LOG_BATCH: usize = 256;

/// One message as a WebSocket text frame, encoded once and shared by every
/// socket. The shape is `app::wire::MonitorMessage`, which the dashboard parses.
fn encode(message: &Message) -> Arc<str> {
    // Plain data (strings, numbers, string-keyed maps) always serializes; an
    // empty frame is what the dashboard would skip anyway.
    serde_json::to_string(message).unwrap_or_default().into()
}

/// What the feed's producers read, handed over by whoever starts them (the
/// monitor depends on these parts, not on the HTTP state that holds them).
#[derive(Clone)]
pub struct Sources {
    pub metrics: Metrics,
    pub router: Arc<ModelRouter>,
    pub db: Db,
    pub logs: LogRing,
    pub processes: ProcessManager,
    /// Extra health-check targets from the config file.
    pub targets: Arc<Vec<TargetSpec>>,
    pub started: Instant,
    /// The usage ledger, for the top-users panel (absent: no panel data).
    pub usage: Option<crate::usage::Usage>,
    /// How often every component and deployment is health-checked.
    pub probe_every: Duration,
}

/// Shared by the tasks and the sockets. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    hub: broadcast::Sender<Arc<str>>,
    history: Arc<Mutex<History>>,
    board: Arc<Mutex<Board>>,
    /// The latest top-users list, for new sockets.
    top_users: Arc<Mutex<Vec<app::wire::TopUser>>>,
    /// The deployments as last sent, for new sockets.
    deployments: Arc<Mutex<Vec<DeploymentTile>>>,
    /// The cluster as last sent, when replicas share state.
    cluster: Arc<Mutex<Option<app::wire::ClusterView>>>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            hub: broadcast::channel(CLIENT_BACKLOG).0,
            history: Arc::default(),
            board: Arc::default(),
            top_users: Arc::default(),
            deployments: Arc::default(),
            cluster: Arc::default(),
        }
    }
}

impl Monitor {
    /// The kept samples, oldest first.
    pub fn samples(&self) -> Vec<MetricsSample> {
        self.history.lock().all()
    }

    /// The last second's sample and the requests of the kept 15 minutes
    /// (what this replica tells the others about itself).
    pub fn latest(&self) -> (Option<MetricsSample>, u64) {
        let history = self.history.lock();
        (history.latest().cloned(), history.requests())
    }

    /// `degraded` when a component is down, else `ok`.
    pub fn overall_health(&self) -> &'static str {
        let down = self
            .board
            .lock()
            .components(false)
            .iter()
            .any(|c| c.status == HealthStatus::Down);
        if down {
            "degraded"
        } else {
            "ok"
        }
    }

    /// Shows `view` on every dashboard (and to new ones).
    pub fn show_cluster(&self, view: app::wire::ClusterView) {
        self.publish(&Message::Cluster {
            cluster: view.clone(),
        });
        *self.cluster.lock() = Some(view);
    }

    /// The cluster as last shown; `None` for a replica that runs alone.
    pub fn cluster(&self) -> Option<app::wire::ClusterView> {
        self.cluster.lock().clone()
    }

    /// Other replicas' log lines, for the dashboards' feed only (this
    /// replica's ring keeps its own).
    pub fn show_remote_logs(&self, lines: Vec<app::wire::LogLine>) {
        if !lines.is_empty() {
            self.publish(&Message::Log { lines });
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.hub.subscribe()
    }

    fn publish(&self, message: &Message) {
        let _ = self.hub.send(encode(message));
    }

    /// What a new socket is sent first: one message of each type (the
    /// verdict judged afresh, not the last one published, so a page opened
    /// right after a burst of chats shows them).
    pub fn snapshot(
        &self,
        logs: &LogRing,
        processes: &ProcessManager,
        recent: &Recent,
    ) -> Vec<Arc<str>> {
        let components = self.board.lock().components(true);
        let samples = self.history.lock().all();
        [
            Message::Health { components },
            Message::Log {
                lines: logs.recent(0, SNAPSHOT_LOG_LINES),
            },
            Message::Metrics { samples },
            Message::Process {
                processes: processes.list(),
            },
            Message::Usage {
                top_users: self.top_users.lock().clone(),
            },
            Message::Deployments {
                deployments: self.deployments.lock().clone(),
            },
            Message::Verdict {
                verdict: Box::new(verdict::dashboard_verdict(
                    recent,
                    chrono::Utc::now().timestamp(),
                )),
            },
        ]
        .iter()
        .chain(
            self.cluster()
                .map(|cluster| Message::Cluster { cluster })
                .as_ref(),
        )
        .map(encode)
        .collect()
    }

    /// Starts the producers; they end with `shutdown`.
    pub fn start(&self, state: Sources, shutdown: CancellationToken) {
        tokio::spawn(self.clone().sample_metrics(state.clone(), shutdown.clone()));
        tokio::spawn(self.clone().check_health(state.clone(), shutdown.clone()));
        tokio::spawn(self.clone().forward_logs(state.clone(), shutdown.clone()));
        tokio::spawn(self.clone().rank_users(state.clone(), shutdown.clone()));
        tokio::spawn(self.clone().judge(state.clone(), shutdown.clone()));
        tokio::spawn(self.clone().watch_processes(state, shutdown));
    }

    /// Every [`TOP_USERS_EVERY`], today's heaviest users from the ledger's
    /// rollup (one indexed query; rows for the day, not per request).
    async fn rank_users(self, state: Sources, shutdown: CancellationToken) {
        let Some(usage) = state.usage.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(TOP_USERS_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match top_users(&usage, &state.db).await {
                Ok(top) => {
                    if *self.top_users.lock() != top {
                        *self.top_users.lock() = top.clone();
                        self.publish(&Message::Usage { top_users: top });
                    }
                }
                Err(e) => tracing::debug!(error = %e, "top users: ledger unavailable"),
            }
        }
    }

    /// Every [`VERDICT_EVERY`], the verdict over the recent requests, sent
    /// when it differs from the last one sent (a quiet server sends nothing
    /// until a minute rolls out of a window).
    async fn judge(self, state: Sources, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(VERDICT_EVERY);
        let mut last = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            // Up to 19 200 requests' rank tests: off the runtime's threads.
            let recent = state.metrics.recent().clone();
            let now = chrono::Utc::now().timestamp();
            let Ok(judged) =
                tokio::task::spawn_blocking(move || verdict::dashboard_verdict(&recent, now)).await
            else {
                continue;
            };
            if last.as_ref() != Some(&judged) {
                self.publish(&Message::Verdict {
                    verdict: Box::new(judged.clone()),
                });
                last = Some(judged);
            }
        }
    }

    async fn sample_metrics(self, state: Sources, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let metrics = &state.metrics;
            let queue_depth = state
                .router
                .deployments()
                .map(|d| d.queue.waiting() as u64)
                .sum();
            let mut s = sample::sample(
                metrics.take_interval(),
                last.elapsed().as_secs_f64(),
                metrics.exporter().active_streams(),
                queue_depth,
            );
            last = Instant::now();
            s.tokens_per_minute = s.tokens + self.history.lock().recent_tokens(59);
            self.history.lock().push(s.clone());
            self.publish(&Message::Metrics { samples: vec![s] });
            let deployments = deployment_tiles(&state.router);
            if *self.deployments.lock() != deployments {
                *self.deployments.lock() = deployments.clone();
                self.publish(&Message::Deployments { deployments });
            }
        }
    }

    async fn check_health(self, state: Sources, shutdown: CancellationToken) {
        let client = reqwest::Client::new();
        let mut tick = tokio::time::interval(state.probe_every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let checks = probe_all(&state, &client).await;
            let now = chrono::Utc::now().timestamp();
            let components = {
                let mut board = self.board.lock();
                for (name, kind, check) in checks {
                    if board.record(&name, kind, check.clone(), now) {
                        tracing::warn!(component = %name, status = ?check.status, "health changed: {}", check.message);
                    }
                }
                board.components(false)
            };
            self.publish(&Message::Health { components });
        }
    }

    /// Forwards new log lines to the open dashboards, a batch per wake-up.
    /// Lines are formatted only while someone is watching: with no dashboard
    /// open, the feed costs the request path nothing but the ring push.
    async fn forward_logs(self, state: Sources, shutdown: CancellationToken) {
        let mut entries = state.logs.subscribe();
        loop {
            let first = tokio::select! {
                entry = entries.recv() => entry,
                _ = shutdown.cancelled() => return,
            };
            let first = match first {
                Ok(entry) => entry,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_LOG_BATCH {
                match entries.try_recv() {
                    Ok(entry) => batch.push(entry),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            if self.hub.receiver_count() == 0 {
                continue;
            }
            let lines = batch.iter().map(|entry| entry.to_line()).collect();
            self.publish(&Message::Log { lines });
        }
    }

    async fn watch_processes(self, state: Sources, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let processes = state.processes.list();
            // Uptime ticks every second; publish on any other change.
            let key: Vec<_> = processes
                .iter()
                .map(|p| (p.name.clone(), p.status, p.pid, p.restarts))
                .collect();
            if key != last {
                last = key;
                self.publish(&Message::Process { processes });
            }
        }
    }
}

/// How often the verdict is judged again.
const VERDICT_EVERY: Duration = Duration::from_secs(10);
/// How often the top-users panel is refreshed.
const TOP_USERS_EVERY: Duration = Duration::from_secs(5);
/// Users the panel shows.
const TOP_USERS: usize = 5;

/// Today's (UTC) heaviest users by tokens, with their names.
/// Checks every component at once: each check has its own time limit, so a
/// round takes as long as the slowest check, not the sum of them (ten dead
/// targets would otherwise hold the board back twenty seconds).
async fn probe_all(
    state: &Sources,
    client: &reqwest::Client,
) -> Vec<(String, ComponentKind, Check)> {
    type Probe<'a> = futures::future::BoxFuture<'a, (String, ComponentKind, Check)>;
    let server = Check {
        status: HealthStatus::Up,
        latency: Duration::ZERO,
        message: format!("up {} s", state.started.elapsed().as_secs()),
    };
    let backend = state.db.backend();
    let mut probes: Vec<Probe<'_>> = vec![
        Box::pin(async move { ("server".to_string(), ComponentKind::Server, server) }),
        Box::pin(async move {
            let check = health::timed(state.db.ping(), |_| backend.into()).await;
            ("database".to_string(), ComponentKind::Database, check)
        }),
    ];
    for deployment in state.router.deployments() {
        let provider = &deployment.provider;
        if matches!(provider, crate::llm::Provider::Unconfigured { .. }) {
            continue;
        }
        probes.push(Box::pin(async move {
            let started = Instant::now();
            let answer = tokio::time::timeout(health::CHECK_TIMEOUT, provider.models()).await;
            // A deployment that cannot be reached is taken out before a
            // request finds out the slow way; a request probes it back in.
            // Any answer, even an error, means it is there.
            let reachable = !matches!(
                answer,
                Err(_) | Ok(Err(crate::llm::error::ProviderError::Unreachable { .. }))
            );
            deployment.probed(reachable, Instant::now());
            let check = health::verdict(started, &answer, |models| {
                format!("{} models", models.len())
            });
            (deployment.name.clone(), ComponentKind::Provider, check)
        }));
    }
    for process in state.processes.list() {
        if let Some(url) = process.health.clone() {
            probes.push(Box::pin(async move {
                (
                    process.name.clone(),
                    ComponentKind::Process,
                    health::http(client, &url).await,
                )
            }));
        }
    }
    for target in state.targets.iter() {
        probes.push(Box::pin(async move {
            let check = match target.url.strip_prefix("tcp://") {
                Some(address) => health::tcp(address).await,
                None => health::http(client, &target.url).await,
            };
            (target.name.clone(), ComponentKind::Target, check)
        }));
    }
    futures::future::join_all(probes).await
}

/// Every usable deployment as the dashboard shows it. In-flight counts and error
/// rates move with traffic, so this is sent when it changes, at most once a
/// second.
pub fn deployment_tiles(router: &ModelRouter) -> Vec<DeploymentTile> {
    let now = Instant::now();
    router
        .deployments()
        // A provider without its key is not a deployment anyone can use.
        .filter(|d| !matches!(d.provider, crate::llm::Provider::Unconfigured { .. }))
        .map(|d| {
            let view = d.view(now);
            DeploymentTile {
                name: view.name,
                model: view.model,
                provider: view.provider,
                weight: view.weight,
                state: view.breaker.state.as_str().to_string(),
                open_for_secs: view.breaker.open_for.map(|d| d.as_secs_f64().ceil()),
                why: view.breaker.why,
                in_flight: view.in_flight as u64,
                error_rate: (view.breaker.error_rate * 1000.0).round() / 1000.0,
                p50_ttft_ms: view.p50_ttft_ms.map(|t| (t * 10.0).round() / 10.0),
            }
        })
        .collect()
}

async fn top_users(
    usage: &crate::usage::Usage,
    db: &Db,
) -> Result<Vec<app::wire::TopUser>, sqlx::Error> {
    let today = chrono::Utc::now().date_naive();
    let mut sums = usage
        .store()
        .summary(&crate::usage::store::UsageQuery {
            from: today,
            to: today,
            user_id: None,
            group_by: crate::usage::store::GroupBy::User,
        })
        .await?;
    sums.sort_by_key(|s| std::cmp::Reverse(s.prompt_tokens + s.completion_tokens));
    sums.truncate(TOP_USERS);
    let mut top = Vec::with_capacity(sums.len());
    for sum in sums {
        let username = crate::db::users::find_by_id(db, &sum.group)
            .await?
            .map(|u| u.username);
        top.push(app::wire::TopUser {
            username,
            requests: sum.requests.max(0) as u64,
            total_tokens: (sum.prompt_tokens + sum.completion_tokens).max(0) as u64,
            user_id: sum.group,
        });
    }
    Ok(top)
}
