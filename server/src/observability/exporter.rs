//! `/metrics` for Prometheus and friends: request counts and duration histograms
//! by route (the matched path, never the raw URI, so label sets stay bounded),
//! chat phases by provider and model, cache lookups, active streams, provider
//! queue depth and managed-process restarts, in the OpenMetrics text format.
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client). The
//! in-process HDR histograms in `metrics.rs` stay the source for the dashboard's
//! exact percentiles; these are the cumulative buckets scrapers need.

use crate::observability::timing::Breakdown;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabels {
    pub process: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 100 µs to ~210 s in 22 doublings: covers a token check and a slow model.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 22))
}

/// Every series calos exports. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Exporter {
    registry: Arc<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    chat_requests: Family<ChatLabels, Counter>,
    chat_phases: Histograms<PhaseLabels>,
    cache_lookups: Family<CacheLabels, Counter>,
    active_streams: Gauge,
    queue_waiting: Family<ProviderLabels, Gauge>,
    queue_running: Family<ProviderLabels, Gauge>,
    process_restarts: Family<ProcessLabels, Counter>,
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
        Self {
            registry: Arc::new(registry),
            http_requests,
            http_duration,
            chat_requests,
            chat_phases,
            cache_lookups,
            active_streams,
            queue_waiting,
            queue_running,
            process_restarts,
        }
    }

    pub fn http(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn chat(&self, provider: &str, model: &str, b: &Breakdown, outcome: &str) {
        self.chat_requests
            .get_or_create(&ChatLabels {
                provider: provider.to_string(),
                model: model.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        let phases = [
            ("auth", Some(b.auth)),
            ("database", Some(b.database)),
            ("queue", Some(b.queue)),
            ("cache", Some(b.cache)),
            ("upstream_connect", b.upstream_connect),
            ("ttft", b.ttft),
            ("llm", b.llm),
            ("total", Some(b.total)),
        ];
        for (phase, ms) in phases {
            if let Some(ms) = ms {
                self.chat_phases
                    .get_or_create(&PhaseLabels {
                        provider: provider.to_string(),
                        model: model.to_string(),
                        phase: phase.to_string(),
                    })
                    .observe(ms / 1000.0);
            }
        }
    }

    pub fn cache_lookup(&self, result: &str) {
        self.cache_lookups
            .get_or_create(&CacheLabels {
                result: result.to_string(),
            })
            .inc();
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
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
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
        e.http("/api/llm/complete", "POST", 200, Duration::from_millis(12));
        e.chat(
            "ollama",
            "llama3.2",
            &Breakdown {
                total: 900.0,
                ttft: Some(200.0),
                llm: Some(890.0),
                ..Default::default()
            },
            "ok",
        );
        e.cache_lookup("miss");
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
        assert!(e.render().contains("calos_active_streams 0"));
    }
}
