//! OpenTelemetry trace export (`docs/tracing.md`): with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, every HTTP request becomes a trace —
//! a SERVER span, child spans for auth, database, queue and cache built from
//! the instants the timing breakdown measures anyway, and a GenAI CLIENT span
//! for the model call, whose id goes upstream in `traceparent`. Without it
//! nothing is recorded and the request path pays one branch.
//!
//! Why no OpenTelemetry SDK: calos builds its spans after the fact from
//! times it already measures, so the SDK's live-span machinery would go
//! unused, while its batch processor runs on a thread of its own that needs
//! reqwest's blocking client and keeps its drop count to itself. The wire
//! types are the OpenTelemetry project's own (`opentelemetry-proto`); the
//! batching, bounds and POST are [`export`].

pub mod config;
pub mod export;
pub mod genai;
pub mod layer;
pub mod propagation;
pub mod request;
pub mod span;

pub use config::OtelArgs;
pub use request::{RequestTrace, TraceHandle};

use export::{ExportStats, Exporter};
use propagation::TraceId;
use span::SpanRecord;
use std::sync::Arc;
use std::time::Duration;

/// The semantic conventions calos's spans follow (HTTP and GenAI).
pub const SEMCONV_VERSION: &str = "1.37.0";
/// The same, as the schema URL OTLP carries.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.37.0";

/// How long shutdown waits for the last spans to reach the collector.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Tracing on (an exporter) or off (nothing). Cheap to clone.
#[derive(Clone, Default)]
pub struct Tracing {
    exporter: Option<Arc<Exporter>>,
    /// Prompts and replies go on the model span (`--otel-capture-content`).
    capture_content: bool,
}

impl Tracing {
    /// Starts the exporter when an endpoint is configured; a bad endpoint
    /// stops startup with a message naming the variable.
    pub fn start(args: &OtelArgs) -> anyhow::Result<Self> {
        let Some(settings) = args.settings()? else {
            return Ok(Self::default());
        };
        tracing::info!(
            collector = %crate::llm::http::without_credentials(settings.url.as_str()),
            service = %settings.service_name,
            semconv = SEMCONV_VERSION,
            capture_content = args.capture_content,
            "exporting traces over OTLP/HTTP"
        );
        Ok(Self {
            exporter: Some(Arc::new(Exporter::start(settings)?)),
            capture_content: args.capture_content,
        })
    }

    pub fn is_on(&self) -> bool {
        self.exporter.is_some()
    }

    pub fn captures_content(&self) -> bool {
        self.capture_content
    }

    /// Queues a finished request's spans (or drops them, counted).
    pub fn submit(&self, trace: TraceId, spans: Vec<SpanRecord>) {
        if let Some(exporter) = &self.exporter {
            exporter.submit(trace, spans);
        }
    }

    pub fn stats(&self) -> Option<ExportStats> {
        self.exporter.as_ref().map(|e| e.stats())
    }

    /// `router` with the server-span layer outermost, when tracing is on;
    /// unchanged otherwise.
    pub fn wrap(&self, router: axum::Router) -> axum::Router {
        if !self.is_on() {
            return router;
        }
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            layer::trace_requests,
        ))
    }

    /// Sends what is queued, waiting at most [`SHUTDOWN_FLUSH`].
    pub async fn shutdown(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.shutdown(SHUTDOWN_FLUSH).await;
        }
    }
}
