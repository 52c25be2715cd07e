//! `/metrics` for Prometheus and friends: request counts and duration histograms
//! by route (the matched path, never the raw URI, so label sets stay bounded),
//! chat phases by provider and model, cache lookups, active streams, provider
//! queue depth and managed-process restarts, in the OpenMetrics text format.
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client). The
//! in-process HDR histograms in `metrics.rs` stay the source for the dashboard's
//! exact percentiles; these are the cumulative buckets scrapers need.

use crate::observability::timing::CacheStatus;
use dashmap::DashMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// The OpenMetrics content type `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChatLabels {
    pub provider: String,
    pub model: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub provider: String,
    pub model: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// Deployment names come from the config file (or are provider names), so
/// these series are bounded by configuration, not by clients.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub deployment: String,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The per-deployment series.
#[derive(Clone, Default)]
struct DeploymentSeries {
    attempts: Family<AttemptLabels, Counter>,
    in_flight: Family<DeploymentLabels, Gauge>,
    breaker_state: Family<DeploymentLabels, Gauge>,
    error_ratio: Family<DeploymentLabels, FloatGauge>,
    ttft_p50: Family<DeploymentLabels, FloatGauge>,
}

/// A deployment's attempt counters, kept by the deployment.
#[derive(Clone, Debug)]
pub struct AttemptCounters {
    pub ok: Counter,
    pub failed: Counter,
}

/// The OpenTelemetry GenAI attributes, as Prometheus spells them (dots become
/// underscores).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenAiLabels {
    pub gen_ai_provider_name: String,
    pub gen_ai_request_model: String,
    /// `input` or `output`; empty for the time to first token.
    pub gen_ai_token_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabels {
    pub process: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 100 µs to ~210 s in 22 doublings: covers a token check and a slow model.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 22))
}

/// The token-count buckets the GenAI conventions advise: powers of 4 from 1
/// to 4^13.
fn token_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 14))
}

/// The time-to-first-token buckets the GenAI conventions advise (seconds).
fn ttft_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

/// Every series calos exports. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Exporter {
    registry: Arc<Registry>,
    /// The GenAI metrics, under the names the OpenTelemetry semantic
    /// conventions give them (so without the `calos_` prefix).
    genai: Arc<Registry>,
    token_usage: Histograms<GenAiLabels>,
    time_to_first_token: Histograms<GenAiLabels>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    chat_requests: Family<ChatLabels, Counter>,
    chat_phases: Histograms<PhaseLabels>,
    active_streams: Gauge,
    queue_waiting: Family<ProviderLabels, Gauge>,
    queue_running: Family<ProviderLabels, Gauge>,
    process_restarts: Family<ProcessLabels, Counter>,
    deployments: DeploymentSeries,
    /// route → its (method, status) handles, found by `&str` without allocating.
    http_handles: Arc<DashMap<Box<str>, Vec<HttpHandles>>>,
    cache_hit: Counter,
    cache_miss: Counter,
    cache_bypass: Counter,
    cache_shared: Counter,
    /// The response cache's size: bytes charged and entries held.
    cache_bytes: Gauge,
    cache_entries: Gauge,
}

struct HttpHandles {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

/// Prometheus phase names, in [`crate::observability::metrics::PHASES`] order.
const CHAT_PHASES: [&str; 8] = [
    "auth",
    "database",
    "queue",
    "cache",
    "upstream_connect",
    "ttft",
    "llm",
    "total",
];

fn standard_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => crate::observability::metrics::OTHER,
    }
}

/// One chat series' exporter handles.
pub struct ChatSeries {
    provider: Box<str>,
    model: Box<str>,
    phases: [Histogram; 8],
    requests: Family<ChatLabels, Counter>,
    /// `gen_ai.client.token.usage` for input and output tokens.
    tokens: [Histogram; 2],
    /// `gen_ai.server.time_to_first_token`.
    ttft: Histogram,
}

impl ChatSeries {
    /// Observes the phases that happened (milliseconds, phase order).
    pub fn observe(&self, values: &[Option<f64>; 8]) {
        for (histogram, value) in self.phases.iter().zip(values) {
            if let Some(ms) = value {
                histogram.observe(ms / 1000.0);
            }
        }
        if let Some(ms) = values[5] {
            self.ttft.observe(ms / 1000.0);
        }
    }

    /// A request's tokens (none are observed for a request that spent none,
    /// such as a cache hit or a refusal).
    pub fn observe_tokens(&self, input: u64, output: u64) {
        if input + output == 0 {
            return;
        }
        self.tokens[0].observe(input as f64);
        self.tokens[1].observe(output as f64);
    }

    /// The request counter for one outcome of this series (kept by the caller).
    pub fn outcome(&self, outcome: &str) -> Counter {
        self.requests
            .get_or_create(&ChatLabels {
                provider: self.provider.to_string(),
                model: self.model.to_string(),
                outcome: outcome.to_string(),
            })
            .clone()
    }
}

impl Default for Exporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Exporter {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("calos");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route, method and status",
            http_requests.clone(),
        );
        let http_duration: Histograms<RouteLabels> =
            Family::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head, by matched route",
            http_duration.clone(),
        );
        let chat_requests = Family::<ChatLabels, Counter>::default();
        registry.register(
            "chat_requests",
            "Chat requests by provider, model and outcome (ok or an error code)",
            chat_requests.clone(),
        );
        let chat_phases: Histograms<PhaseLabels> =
            Family::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register(
            "chat_phase_seconds",
            "Chat request phases (auth, database, queue, cache, upstream_connect, ttft, llm, total)",
            chat_phases.clone(),
        );
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Response cache lookups by result (hit, miss, bypass)",
            cache_lookups.clone(),
        );
        let active_streams = Gauge::default();
        registry.register(
            "active_streams",
            "Streamed chat replies open right now",
            active_streams.clone(),
        );
        let queue_waiting = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "queue_waiting",
            "Requests waiting for a provider slot",
            queue_waiting.clone(),
        );
        let queue_running = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "queue_running",
            "Requests holding a provider slot",
            queue_running.clone(),
        );
        let process_restarts = Family::<ProcessLabels, Counter>::default();
        registry.register(
            "process_restarts",
            "Restarts of managed processes",
            process_restarts.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "cache_bytes",
            "Bytes the response cache holds (each entry charged at least its share)",
            cache_bytes.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Replies the response cache holds",
            cache_entries.clone(),
        );
        let cache_counter = |result: &str| {
            cache_lookups
                .get_or_create(&CacheLabels {
                    result: result.into(),
                })
                .clone()
        };
        let (cache_hit, cache_miss, cache_bypass, cache_shared) = (
            cache_counter("hit"),
            cache_counter("miss"),
            cache_counter("bypass"),
            cache_counter("shared"),
        );
        // OpenTelemetry semantic conventions v1.37.0, GenAI client and server
        // metrics (status: development). Token usage is a histogram in
        // `{token}` by `gen_ai.token.type`; time to first token in seconds.
        let mut genai = Registry::default();
        let token_usage: Histograms<GenAiLabels> =
            Family::new_with_constructor(token_buckets as fn() -> Histogram);
        genai.register(
            "gen_ai_client_token_usage",
            "Tokens a chat request spent at its provider (gen_ai.client.token.usage, unit {token})",
            token_usage.clone(),
        );
        let time_to_first_token: Histograms<GenAiLabels> =
            Family::new_with_constructor(ttft_buckets as fn() -> Histogram);
        genai.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from sending a chat request upstream to its first token (gen_ai.server.time_to_first_token)",
            prometheus_client::registry::Unit::Seconds,
            time_to_first_token.clone(),
        );
        let deployments = DeploymentSeries::default();
        registry.register(
            "deployment_attempts",
            "Upstream attempts by deployment and outcome (ok: a first token; failed: an error before or during the reply)",
            deployments.attempts.clone(),
        );
        registry.register(
            "deployment_in_flight",
            "Requests at a deployment now, queued ones included",
            deployments.in_flight.clone(),
        );
        registry.register(
            "deployment_breaker_state",
            "A deployment's circuit breaker: 0 closed, 1 half-open, 2 open",
            deployments.breaker_state.clone(),
        );
        registry.register(
            "deployment_error_ratio",
            "Failed outcomes' share of a deployment's recent outcomes in the breaker's window (a reply that fails after its first token counts once each way)",
            deployments.error_ratio.clone(),
        );
        registry.register_with_unit(
            "deployment_ttft_p50",
            "Median time to first token of a deployment's last 64 answers",
            prometheus_client::registry::Unit::Seconds,
            deployments.ttft_p50.clone(),
        );
        Self {
            deployments,
            registry: Arc::new(registry),
            genai: Arc::new(genai),
            token_usage,
            time_to_first_token,
            http_requests,
            http_duration,
            chat_requests,
            chat_phases,
            active_streams,
            queue_waiting,
            queue_running,
            process_restarts,
            http_handles: Arc::default(),
            cache_hit,
            cache_shared,
            cache_miss,
            cache_bypass,
            cache_bytes,
            cache_entries,
        }
    }

    /// Counts and times one answered request. `route` is a matched route
    /// pattern (bounded by the router); a method outside the standard ones is
    /// counted as `OTHER`, since clients can invent them.
    pub fn http(&self, route: &str, method: &axum::http::Method, status: u16, took: Duration) {
        let method = standard_method(method);
        let handles = self.http_handles.get(route).and_then(|by_route| {
            by_route
                .iter()
                .find(|h| h.method == method && h.status == status)
                .map(|h| (h.requests.clone(), h.duration.clone()))
        });
        let (requests, duration) = match handles {
            Some(handles) => handles,
            None => {
                let made = HttpHandles {
                    method,
                    status,
                    requests: self
                        .http_requests
                        .get_or_create(&HttpLabels {
                            route: route.to_string(),
                            method: method.to_string(),
                            status: status.to_string(),
                        })
                        .clone(),
                    duration: self
                        .http_duration
                        .get_or_create(&RouteLabels {
                            route: route.to_string(),
                            method: method.to_string(),
                        })
                        .clone(),
                };
                let handles = (made.requests.clone(), made.duration.clone());
                self.http_handles
                    .entry(route.into())
                    .or_default()
                    .push(made);
                handles
            }
        };
        requests.inc();
        duration.observe(took.as_secs_f64());
    }

    /// The handles of one (provider, model) chat series, made once so that
    /// recording a request allocates no label strings.
    pub fn chat_series(&self, provider: &str, model: &str) -> ChatSeries {
        let phases = CHAT_PHASES.map(|phase| {
            self.chat_phases
                .get_or_create(&PhaseLabels {
                    provider: provider.to_string(),
                    model: model.to_string(),
                    phase: phase.to_string(),
                })
                .clone()
        });
        let genai = |family: &Histograms<GenAiLabels>, token_type: &str| {
            family
                .get_or_create(&GenAiLabels {
                    gen_ai_provider_name: provider.to_string(),
                    gen_ai_request_model: model.to_string(),
                    gen_ai_token_type: token_type.to_string(),
                })
                .clone()
        };
        ChatSeries {
            provider: provider.into(),
            model: model.into(),
            phases,
            requests: self.chat_requests.clone(),
            tokens: [
                genai(&self.token_usage, "input"),
                genai(&self.token_usage, "output"),
            ],
            ttft: genai(&self.time_to_first_token, ""),
        }
    }

    pub fn cache_lookup(&self, status: CacheStatus) {
        match status {
            CacheStatus::Hit => &self.cache_hit,
            CacheStatus::Miss => &self.cache_miss,
            CacheStatus::Bypass => &self.cache_bypass,
            CacheStatus::Shared => &self.cache_shared,
        }
        .inc();
    }

    /// The response cache's size now.
    pub fn cache_size(&self, bytes: u64, entries: u64) {
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// A streamed reply opened; the gauge goes down when the guard drops.
    pub fn stream_opened(&self) -> StreamGuard {
        self.active_streams.inc();
        StreamGuard(self.active_streams.clone())
    }

    pub fn active_streams(&self) -> i64 {
        self.active_streams.get()
    }

    pub fn queue(&self, provider: &str, waiting: usize, running: usize) {
        let labels = ProviderLabels {
            provider: provider.to_string(),
        };
        self.queue_waiting
            .get_or_create(&labels)
            .set(waiting as i64);
        self.queue_running
            .get_or_create(&labels)
            .set(running as i64);
    }

    /// The counters a deployment adds its attempts to.
    pub fn attempt_counters(&self, deployment: &str) -> AttemptCounters {
        let counter = |outcome| {
            self.deployments
                .attempts
                .get_or_create(&AttemptLabels {
                    deployment: deployment.to_string(),
                    outcome,
                })
                .clone()
        };
        AttemptCounters {
            ok: counter("ok"),
            failed: counter("failed"),
        }
    }

    /// A deployment's state now (set as `/metrics` is read).
    pub fn deployment(&self, view: &crate::llm::deployment::DeploymentView) {
        use crate::llm::breaker::BreakerState;
        let labels = DeploymentLabels {
            deployment: view.name.clone(),
        };
        let d = &self.deployments;
        d.in_flight
            .get_or_create(&labels)
            .set(view.in_flight as i64);
        d.breaker_state
            .get_or_create(&labels)
            .set(match view.breaker.state {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            });
        d.error_ratio
            .get_or_create(&labels)
            .set(view.breaker.error_rate);
        if let Some(p50) = view.p50_ttft_ms {
            d.ttft_p50.get_or_create(&labels).set(p50 / 1000.0);
        }
    }

    pub fn process_restarted(&self, name: &str) {
        self.process_restarts
            .get_or_create(&ProcessLabels {
                process: name.to_string(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.genai);
        let _ = encode_eof(&mut out);
        out
    }
}

/// Decrements the active-streams gauge when the stream ends, however it ends.
pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_series_with_labels() {
        let e = Exporter::new();
        e.http(
            "/api/llm/complete",
            &axum::http::Method::POST,
            200,
            Duration::from_millis(12),
        );
        let series = e.chat_series("ollama", "llama3.2");
        series.observe(&[
            None,
            None,
            None,
            None,
            None,
            Some(200.0),
            Some(890.0),
            Some(900.0),
        ]);
        series.outcome("ok").inc();
        e.cache_lookup(CacheStatus::Miss);
        let guard = e.stream_opened();
        e.queue("ollama", 2, 5);
        e.process_restarted("ollama");
        let text = e.render();
        for needle in [
            r#"calos_http_requests_total{route="/api/llm/complete",method="POST",status="200"} 1"#,
            r#"calos_chat_requests_total{provider="ollama",model="llama3.2",outcome="ok"} 1"#,
            r#"calos_chat_phase_seconds_count{provider="ollama",model="llama3.2",phase="ttft"} 1"#,
            r#"calos_cache_lookups_total{result="miss"} 1"#,
            "calos_active_streams 1",
            r#"calos_queue_waiting{provider="ollama"} 2"#,
            r#"calos_process_restarts_total{process="ollama"} 1"#,
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        drop(guard);
        let invented = axum::http::Method::from_bytes(b"BREW").unwrap_or_default();
        e.http("/api/health", &invented, 405, Duration::from_millis(1));
        assert!(e.render().contains(
            r#"calos_http_requests_total{route="/api/health",method="other",status="405"} 1"#
        ));
        assert!(e.render().contains("calos_active_streams 0"));
    }
}
