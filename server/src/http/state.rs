//! The state every handler can ask for, piece by piece, through `FromRef`.
//!
//! axum clones the state into every `from_fn_with_state` layer's service on
//! every request, so [`AppState`] is one pointer to the shared [`Services`]: a
//! clone is one atomic increment, not one per field (profiling showed the field
//! by field clone and drop at about 15 % of a chat request's CPU).

use crate::auth::AuthService;
use crate::db::Db;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

/// The shared [`Services`]; handlers take the piece they need with `State<T>`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// `State<T>` for each piece: a clone of that piece only.
macro_rules! pieces {
    ($($field:ident: $type:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $type {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        })*
    };
}

pieces! {
    leptos: LeptosOptions,
    db: Db,
    database_probe: crate::http::routes::DatabaseProbe,
    auth: AuthService,
    keys: crate::auth::api_keys::ApiKeys,
    oauth: crate::auth::oauth::OAuthService,
    chat: crate::chat::ChatService,
    conversations: crate::conversations::Conversations,
    metrics: crate::observability::metrics::Metrics,
    trusted_proxies: crate::http::client_ip::TrustedProxies,
    metrics_token: crate::http::operator::MetricsToken,
    bots: crate::http::routes::BotGuard,
    logs: crate::observability::logs::LogRing,
    processes: crate::ops::processes::ProcessManager,
    monitor: crate::ops::monitor::Monitor,
    targets: Arc<Vec<crate::ops::processes::config::TargetSpec>>,
    runtime: Runtime,
    tracing: crate::observability::otel::Tracing,
}

/// Everything a request may need, built once per server.
pub struct Services {
    /// Leptos site settings: where the compiled site lives, the bundle's name.
    pub leptos: LeptosOptions,
    /// The account store (SQLite or PostgreSQL).
    pub db: Db,
    /// The health check's database probe (shared by concurrent checks).
    pub database_probe: crate::http::routes::DatabaseProbe,
    /// Registration, sign-in, sign-out and token checks.
    pub auth: AuthService,
    /// API keys: made by signed-in people, accepted for chat.
    pub keys: crate::auth::api_keys::ApiKeys,
    /// Sign-in through Google, GitHub or Apple.
    pub oauth: crate::auth::oauth::OAuthService,
    /// Chat: routing, cache, queues, upstream calls.
    pub chat: crate::chat::ChatService,
    /// Stored conversations (chat history), owner-only.
    pub conversations: crate::conversations::Conversations,
    /// Chat and HTTP metrics: HDR histograms and the Prometheus exporter.
    pub metrics: crate::observability::metrics::Metrics,
    /// Proxies whose `X-Forwarded-For` names the client (`ClientIp`).
    pub trusted_proxies: crate::http::client_ip::TrustedProxies,
    /// Lets a remote scraper see `/metrics` and the detailed health report.
    pub metrics_token: crate::http::operator::MetricsToken,
    /// Per-IP throttle for unauthenticated chat callers.
    pub bots: crate::http::routes::BotGuard,
    /// Recent log lines for Mission Control (managed processes' output).
    pub logs: crate::observability::logs::LogRing,
    /// The processes declared in the config file.
    pub processes: crate::ops::processes::ProcessManager,
    /// Mission Control's live feed.
    pub monitor: crate::ops::monitor::Monitor,
    /// Extra health-check targets from the config file.
    pub targets: std::sync::Arc<Vec<crate::ops::processes::config::TargetSpec>>,
    /// Process facts reported by health checks and used for cookies.
    pub runtime: Runtime,
    /// OpenTelemetry trace export (off unless an OTLP endpoint is set).
    pub tracing: crate::observability::otel::Tracing,
}

#[derive(Clone, Debug)]
pub struct Runtime {
    pub started: Instant,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub cookie_secure: bool,
    /// How long a client has to send a whole request body (`bounded_body`).
    pub body_read_timeout: std::time::Duration,
    /// This replica's name, when it runs as one of several (`X-Calos-Replica`).
    pub replica: Option<std::sync::Arc<str>>,
    /// Cancelled when shutdown begins: `/api/health` then answers 503
    /// `draining` so balancers stop sending new requests here.
    pub draining: tokio_util::sync::CancellationToken,
}

impl Runtime {
    pub fn replica_header(&self) -> Option<axum::http::HeaderValue> {
        self.replica
            .as_deref()
            .and_then(|name| axum::http::HeaderValue::from_str(name).ok())
    }
}
