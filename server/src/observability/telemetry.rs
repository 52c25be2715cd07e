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
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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

/// Installs the global subscriber: stderr per `LOG_LEVEL`/`LOG_FORMAT`, and
/// Mission Control's log feed (calos's info and above, dependencies' warnings).
/// Safe to call more than once.
pub fn init(level: &str, format: LogFormat) {
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let stderr = match format {
        LogFormat::Json => stderr.json().flatten_event(true).boxed(),
        LogFormat::Text => stderr.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter(level)))
        .with(
            crate::observability::feed::FeedLayer
                .with_filter(crate::observability::feed::feed_filter()),
        )
        .try_init();
}

/// Only the log feed (tests, which keep stderr quiet).
pub fn init_feed_only() {
    let _ = tracing_subscriber::registry()
        .with(
            crate::observability::feed::FeedLayer
                .with_filter(crate::observability::feed::feed_filter()),
        )
        .try_init();
}

/// When a request arrived and its id: the start of every timing breakdown.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    pub started: Instant,
}

/// A caller-supplied `X-Request-Id` is kept when it is short and plain (so it
/// can be correlated end to end); anything else is replaced by a fresh UUID.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Stamps the request (id, arrival instant), returns the id as `X-Request-Id`,
/// and writes one access-log line: method, path (without the query), status,
/// latency.
pub async fn access_log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestContext {
        id: id.clone(),
        started,
    });
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let mut response = next.run(req).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "server::access",
        request_id = %id,
        %method,
        path = ?path,
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        client = ?peer,
        "request"
    );
    response
}
