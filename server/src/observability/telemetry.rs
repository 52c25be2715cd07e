//! Logging: `tracing` driven by `LOG_LEVEL` (error, warn, info, debug, trace) and
//! `LOG_FORMAT=json`. The access log is HTTP middleware (`http::middleware`).
//!
//! What is never logged: request headers (Authorization, cookies), bodies
//! (passwords, prompts), query strings (tokens pasted into URLs). User-supplied
//! text that must be logged goes through `Debug` formatting, which escapes CR/LF
//! and control characters, so a username cannot forge log lines (ASVS 16.4.1).

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
