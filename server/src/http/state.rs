//! The state every handler can ask for, piece by piece, through `FromRef`.

use crate::auth::AuthService;
use crate::db::Db;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::time::Instant;

#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos site settings: where the compiled site lives, the bundle's name.
    pub leptos: LeptosOptions,
    /// The account store (SQLite or PostgreSQL).
    pub db: Db,
    /// Registration, sign-in, sign-out and token checks.
    pub auth: AuthService,
    /// Sign-in through Google, GitHub or Apple.
    pub oauth: crate::auth::oauth::OAuthService,
    /// Chat: routing, cache, queues, upstream calls.
    pub chat: crate::chat::ChatService,
    /// Chat and HTTP metrics: HDR histograms and the Prometheus exporter.
    pub metrics: crate::observability::metrics::Metrics,
    /// Proxies whose `X-Forwarded-For` names the client (`ClientIp`).
    pub trusted_proxies: crate::http::client_ip::TrustedProxies,
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
}

#[derive(Clone, Debug)]
pub struct Runtime {
    pub started: Instant,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub cookie_secure: bool,
    /// How long a client has to send a whole request body (`bounded_body`).
    pub body_read_timeout: std::time::Duration,
}
