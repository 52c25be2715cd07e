//! Mission Control's feed: the messages on the dashboard's WebSocket
//! (`/api/monitor/ws`) and everything they carry, which is also what
//! `GET /api/monitor/processes`, `GET /api/monitor/logs` and
//! `GET /api/monitor/verdict` return. The server
//! builds these and the WASM dashboard reads them, so both sides agree on every
//! field name by construction.
//!
//! These are answers, not requests: unknown fields are accepted, so a page
//! still loaded from an older build keeps working against a newer server.

use crate::verdict::{Change, Components, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One WebSocket text frame: `{"type":"health"|"log"|"metrics"|"process"|…,…}`.
/// A socket starts with one of each (the snapshot), then live ones follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MonitorMessage {
    /// Every component; history is full in the snapshot, the current minute live.
    Health { components: Vec<ComponentHealth> },
    /// Recent lines in the snapshot, then each new line as it is written.
    Log { lines: Vec<LogLine> },
    /// Fifteen minutes of samples in the snapshot, then one per second.
    Metrics { samples: Vec<MetricsSample> },
    /// Every managed process, sent again whenever one changes.
    Process { processes: Vec<ProcessView> },
    /// Today's (UTC) heaviest users by tokens, every few seconds.
    Usage {
        #[serde(rename = "topUsers")]
        top_users: Vec<TopUser>,
    },
    /// Every deployment's state, sent again whenever one changes.
    Deployments { deployments: Vec<DeploymentTile> },
    /// What changed: the last 15 minutes against the hour before, checked
    /// every few seconds and sent when it changes. (Boxed: it is ten times
    /// the size of the other messages.)
    Verdict { verdict: Box<WindowVerdict> },
    /// Every replica of the service, each second (only when replicas share
    /// state through Redis).
    Cluster { cluster: ClusterView },
}

/// The whole service as one replica's Mission Control sees it
/// (`GET /api/monitor/cluster`): one tile per replica, heard from over
/// Redis, and the sums.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// This replica first, then the others by name.
    pub replicas: Vec<ReplicaTile>,
    /// Requests per second over the replicas that are up.
    pub requests_per_sec: f64,
    /// Requests in the last 15 minutes over the replicas that are up.
    pub requests_15m: u64,
    pub up: usize,
    pub down: usize,
}

/// One replica's tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReplicaTile {
    pub name: String,
    /// The replica serving this page.
    pub this: bool,
    /// Down: not heard from for 5 seconds.
    pub status: HealthStatus,
    /// What the replica says of itself: `ok`, `degraded` (a component is
    /// down) or `draining` (shutting down).
    pub health: String,
    /// Seconds since its last report.
    pub last_seen_secs: f64,
    pub uptime_secs: u64,
    pub requests_per_sec: f64,
    pub requests_15m: u64,
    pub error_rate: f64,
    /// p95 of whole requests in its last second, when it had any.
    pub p95_ms: Option<f64>,
    pub active_streams: i64,
}

/// Mission Control's verdict over the server's recent chat requests (cache
/// hits and failures left out): the decision tree over the last
/// `currentMinutes`, and those minutes against the `baselineMinutes` before
/// them, by the same rank test `calos perf --baseline` uses
/// (`GET /api/monitor/verdict`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowVerdict {
    /// Length of the current window (the last 15 minutes).
    pub current_minutes: u32,
    /// Length of the baseline window just before it (the hour before).
    pub baseline_minutes: u32,
    /// Requests the current window holds (a sample of at most 256 a minute).
    pub current_samples: usize,
    /// Requests the baseline window holds.
    pub baseline_samples: usize,
    /// The current window's most frequent model (empty with no requests).
    pub model: String,
    /// The current window's median of every component, in ms (network is
    /// 0: the server cannot see it).
    pub current: Components,
    /// The decision tree over those medians.
    pub verdict: Verdict,
    /// The current window against the baseline; `null` until both have
    /// requests.
    pub change: Option<Change>,
}

/// One deployment as Mission Control shows it (`GET /api/monitor/deployments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeploymentTile {
    pub name: String,
    /// The model it serves (`null`: a provider set by environment, serving
    /// whatever the routing rules send it).
    pub model: Option<String>,
    pub provider: String,
    pub weight: u32,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    /// Seconds until an open breaker lets a probe through.
    pub open_for_secs: Option<f64>,
    /// Why the breaker opened (empty while closed).
    pub why: String,
    pub in_flight: u64,
    /// Failed share of its attempts in the breaker's window (0–1).
    pub error_rate: f64,
    /// Median time to first token of its last 64 answers.
    pub p50_ttft_ms: Option<f64>,
}

/// One of the day's heaviest users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TopUser {
    pub user_id: String,
    /// `null` when the account is gone.
    pub username: Option<String>,
    pub requests: u64,
    pub total_tokens: u64,
}

/// A health check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Up,
    Down,
}

impl HealthStatus {
    /// The JSON spelling, for the page's CSS classes and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// What kind of thing a health component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    Server,
    Database,
    Provider,
    Process,
    Target,
}

impl ComponentKind {
    /// The JSON spelling, for the page's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Database => "database",
            Self::Provider => "provider",
            Self::Process => "process",
            Self::Target => "target",
        }
    }
}

/// One minute of a component's checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HealthRollup {
    /// Unix time of the minute's start, in seconds.
    pub minute: i64,
    pub checks: u32,
    pub up: u32,
    pub avg_latency_ms: f64,
}

/// One component's health: the last check and its per-minute history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ComponentHealth {
    pub name: String,
    pub kind: ComponentKind,
    pub status: HealthStatus,
    pub latency_ms: f64,
    pub message: String,
    /// RFC 3339 time the status last changed.
    pub last_change: String,
    /// Per-minute rollups, oldest first (full in snapshots, the current minute live).
    pub history: Vec<HealthRollup>,
}

/// One line of the log feed (calos's own events and managed processes' output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Increases by one per line, so a client can ask for what it has not seen.
    pub seq: u64,
    /// RFC 3339 wall-clock time.
    pub time: String,
    pub level: String,
    /// `calos` or `process:<name>`.
    pub source: String,
    /// calos's own events: the module that logged (`server::chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The request the event belongs to, when it names one (`X-Request-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub message: String,
}

/// Latency percentiles of one phase, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Requests one (provider, model) answered in a sample's second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelCount {
    pub provider: String,
    pub model: String,
    pub requests: u64,
}

/// One second of chat traffic, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricsSample {
    /// Unix time of the sample, in milliseconds.
    pub time: i64,
    pub requests_per_sec: f64,
    /// Failed requests / all requests in this second (0 with no requests).
    pub error_rate: f64,
    /// Error code → count (rate_limited, upstream_timeout, …).
    pub errors: BTreeMap<String, u64>,
    /// Phase (auth, database, queue, ttft, llm, total, …) → quantiles in ms.
    pub latency: BTreeMap<String, Quantiles>,
    pub active_streams: i64,
    pub queue_depth: u64,
    /// Hits / lookups; `null` when there were no lookups.
    pub cache_hit_rate: Option<f64>,
    pub by_model: Vec<ModelCount>,
    /// Tokens spent at providers over the last 60 seconds.
    #[serde(default)]
    pub tokens_per_minute: u64,
    /// Tokens spent at providers in this second.
    #[serde(default)]
    pub tokens: u64,
}

/// Where a managed process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ProcessStatus {
    Starting,
    Running,
    /// Waiting out the backoff before a restart.
    Restarting,
    /// Ended by itself and not to be restarted (policy), or never started.
    Exited,
    /// Stopped by an order or by shutdown.
    Stopped,
    /// Restarted too often too quickly: no more automatic restarts.
    CrashLoop,
    /// Another replica runs it; this one takes over if that one stops.
    Standby,
}

impl ProcessStatus {
    /// The JSON spelling, for the page's CSS classes and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
            Self::Stopped => "stopped",
            Self::CrashLoop => "crash-loop",
            Self::Standby => "standby",
        }
    }
}

/// When a managed process is restarted after it ends; also the `restart` key
/// of a `[[process]]` table in the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    #[default]
    OnFailure,
    Never,
}

/// What Mission Control shows of one managed process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProcessView {
    pub name: String,
    pub command: String,
    pub status: ProcessStatus,
    pub pid: Option<u32>,
    pub uptime_secs: Option<f64>,
    /// Automatic restarts after the process ended.
    pub restarts: u32,
    pub last_exit_code: Option<i32>,
    /// Why it last failed to start or ended, in words.
    pub last_error: Option<String>,
    pub health: Option<String>,
    pub restart: RestartPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn sample() -> MetricsSample {
        MetricsSample {
            time: 1_800_000_000_000,
            requests_per_sec: 5.0,
            error_rate: 0.1,
            errors: BTreeMap::from([("upstream_timeout".into(), 1)]),
            latency: BTreeMap::from([(
                "total".into(),
                Quantiles {
                    p50: 104.0,
                    p95: 108.5,
                    p99: 109.0,
                },
            )]),
            active_streams: 3,
            queue_depth: 1,
            cache_hit_rate: None,
            by_model: vec![ModelCount {
                provider: "sim".into(),
                model: "sim".into(),
                requests: 10,
            }],
            tokens_per_minute: 480,
            tokens: 8,
        }
    }

    fn every_kind() -> Vec<MonitorMessage> {
        vec![
            MonitorMessage::Health {
                components: vec![ComponentHealth {
                    name: "server".into(),
                    kind: ComponentKind::Server,
                    status: HealthStatus::Up,
                    latency_ms: 0.0,
                    message: "up 3 s".into(),
                    last_change: "2027-01-15T08:00:00Z".into(),
                    history: vec![HealthRollup {
                        minute: 1_800_000_000,
                        checks: 2,
                        up: 2,
                        avg_latency_ms: 1.5,
                    }],
                }],
            },
            MonitorMessage::Log {
                lines: vec![LogLine {
                    seq: 7,
                    time: "2027-01-15T08:00:00.123Z".into(),
                    level: "info".into(),
                    source: "calos".into(),
                    target: Some("server::chat".into()),
                    request_id: Some("req-1".into()),
                    message: "[Performance] total 104 ms".into(),
                }],
            },
            MonitorMessage::Metrics {
                samples: vec![sample()],
            },
            MonitorMessage::Process {
                processes: vec![ProcessView {
                    name: "flaky".into(),
                    command: "sh -c exit 1".into(),
                    status: ProcessStatus::CrashLoop,
                    pid: None,
                    uptime_secs: None,
                    restarts: 10,
                    last_exit_code: Some(1),
                    last_error: Some("exited with 1".into()),
                    health: None,
                    restart: RestartPolicy::OnFailure,
                }],
            },
            MonitorMessage::Usage {
                top_users: vec![TopUser {
                    user_id: "u-1".into(),
                    username: Some("ada".into()),
                    requests: 12,
                    total_tokens: 960,
                }],
            },
            MonitorMessage::Verdict {
                verdict: Box::new(WindowVerdict {
                    current_minutes: 15,
                    baseline_minutes: 60,
                    current_samples: 3,
                    baseline_samples: 0,
                    model: "sim".into(),
                    current: Components {
                        database: 2.0,
                        total: 40.0,
                        ..Default::default()
                    },
                    verdict: crate::verdict::decide(&Components::default(), "sim"),
                    change: None,
                }),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in every_kind() {
            let text = serde_json::to_string(&message).unwrap();
            let back: MonitorMessage = serde_json::from_str(&text).unwrap();
            assert_eq!(back, message, "{text}");
        }
    }

    /// The names the dashboard (and end2end/tests/dashboard.spec.ts through
    /// it) relies on: the tag, each list's key, and the camelCase fields.
    #[test]
    fn tags_and_field_names_are_the_feeds() {
        let json: Vec<Value> = every_kind()
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect();
        let tags: Vec<&str> = json.iter().filter_map(|v| v["type"].as_str()).collect();
        assert_eq!(
            tags,
            ["health", "log", "metrics", "process", "usage", "verdict"]
        );
        let verdict = &json[5]["verdict"];
        for key in [
            "currentMinutes",
            "baselineMinutes",
            "currentSamples",
            "baselineSamples",
            "model",
            "current",
            "verdict",
            "change",
        ] {
            assert!(verdict.get(key).is_some(), "{key} missing: {verdict}");
        }
        assert_eq!(verdict["current"]["firstToken"], 0.0);
        assert_eq!(verdict["verdict"]["culprit"], "none");
        assert_eq!(
            json[4]["topUsers"][0],
            json!({"userId": "u-1", "username": "ada", "requests": 12, "totalTokens": 960})
        );

        assert_eq!(
            json[0]["components"][0],
            json!({
                "name": "server", "kind": "server", "status": "up", "latencyMs": 0.0,
                "message": "up 3 s", "lastChange": "2027-01-15T08:00:00Z",
                "history": [{"minute": 1_800_000_000, "checks": 2, "up": 2, "avgLatencyMs": 1.5}],
            })
        );
        assert_eq!(
            json[1]["lines"][0],
            json!({
                "seq": 7, "time": "2027-01-15T08:00:00.123Z", "level": "info", "source": "calos",
                "target": "server::chat", "requestId": "req-1", "message": "[Performance] total 104 ms",
            })
        );
        assert_eq!(
            json[2]["samples"][0],
            json!({
                "time": 1_800_000_000_000_i64, "requestsPerSec": 5.0, "errorRate": 0.1,
                "errors": {"upstream_timeout": 1},
                "latency": {"total": {"p50": 104.0, "p95": 108.5, "p99": 109.0}},
                "activeStreams": 3, "queueDepth": 1, "cacheHitRate": null,
                "byModel": [{"provider": "sim", "model": "sim", "requests": 10}],
                "tokensPerMinute": 480, "tokens": 8,
            })
        );
        assert_eq!(
            json[3]["processes"][0],
            json!({
                "name": "flaky", "command": "sh -c exit 1", "status": "crash-loop", "pid": null,
                "uptimeSecs": null, "restarts": 10, "lastExitCode": 1,
                "lastError": "exited with 1", "health": null, "restart": "on-failure",
            })
        );
    }

    /// A process line has neither target nor request id: both keys are left
    /// out, and a line without them still reads.
    #[test]
    fn absent_log_fields_are_omitted_and_optional() {
        let line: LogLine = serde_json::from_value(json!({
            "seq": 1, "time": "t", "level": "warn", "source": "process:ollama", "message": "m",
        }))
        .unwrap();
        assert_eq!(
            (line.target.as_deref(), line.request_id.as_deref()),
            (None, None)
        );
        let back = serde_json::to_value(&line).unwrap();
        assert!(back.get("target").is_none() && back.get("requestId").is_none());
    }

    #[test]
    fn as_str_is_the_json_spelling() {
        let spelled = |v: Value| v.as_str().map(str::to_owned).unwrap_or_default();
        for s in [HealthStatus::Up, HealthStatus::Down] {
            assert_eq!(spelled(serde_json::to_value(s).unwrap()), s.as_str());
        }
        for k in [
            ComponentKind::Server,
            ComponentKind::Database,
            ComponentKind::Provider,
            ComponentKind::Process,
            ComponentKind::Target,
        ] {
            assert_eq!(spelled(serde_json::to_value(k).unwrap()), k.as_str());
        }
        for s in [
            ProcessStatus::Starting,
            ProcessStatus::Running,
            ProcessStatus::Restarting,
            ProcessStatus::Exited,
            ProcessStatus::Stopped,
            ProcessStatus::CrashLoop,
            ProcessStatus::Standby,
        ] {
            assert_eq!(spelled(serde_json::to_value(s).unwrap()), s.as_str());
        }
    }
}
