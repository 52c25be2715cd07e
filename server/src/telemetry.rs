//! Logging: `tracing` driven by `LOG_LEVEL` (error, warn, info, debug, trace) and
//! `LOG_FORMAT=json`, plus the access log.
//!
//! What is never logged: request headers (Authorization, cookies), bodies
//! (passwords, prompts), query strings (tokens pasted into URLs). User-supplied
//! text that must be logged goes through `Debug` formatting, which escapes CR/LF
//! and control characters, so a username cannot forge log lines (ASVS 16.4.1).

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::time::Instant;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `LOG_LEVEL` picks calos's verbosity; dependencies stay at `warn` unless
/// `RUST_LOG` (full `EnvFilter` syntax) says otherwise.
pub fn filter(level: &str) -> EnvFilter {
    if let Ok(directives) = std::env::var("RUST_LOG") {
        if let Ok(filter) = EnvFilter::try_new(directives) {
            return filter;
        }
    }
    let level = match level.trim().to_ascii_lowercase().as_str() {
        l @ ("error" | "warn" | "info" | "debug" | "trace") => l.to_string(),
        _ => "info".to_string(),
    };
    EnvFilter::new(format!("warn,server={level},calos={level},app={level}"))
}

/// Installs the global subscriber (stderr). Safe to call more than once.
pub fn init(level: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// One line per request: method, path (without the query), status, latency.
pub async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "server::access",
        %method,
        path = ?path,
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        client = ?peer,
        "request"
    );
    response
}
