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
    // No colour codes: the redactor escapes ESC like every control character,
    // so that no logged value can drive a terminal.
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(CleanStderr);
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

/// stderr, one cleaned line at a time: the formatter (text or JSON) writes
/// each event once into a [`CleanLine`], which redacts and escapes it
/// ([`super::redact::clean`]) when dropped. An event's own newline ends it;
/// any other CR or LF came from a logged value and is escaped, so no value can
/// forge a line.
pub struct CleanStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CleanStderr {
    type Writer = CleanLine;

    fn make_writer(&'a self) -> Self::Writer {
        CleanLine(Vec::with_capacity(256))
    }
}

pub struct CleanLine(Vec<u8>);

impl std::io::Write for CleanLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for CleanLine {
    fn drop(&mut self) {
        use std::io::Write;
        if self.0.is_empty() {
            return;
        }
        let line = clean_event(&self.0);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// One formatted event, cleaned, with exactly one newline at its end.
fn clean_event(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let mut line = super::redact::clean(body).into_owned();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::clean_event;

    #[test]
    fn stderr_lines_are_redacted_and_cannot_be_forged() {
        assert_eq!(
            clean_event(b"INFO login user=\"a\r\nINFO forged\" password=hunter2\n"),
            "INFO login user=\"a\\r\\nINFO forged\" password=[redacted]\n"
        );
        assert_eq!(
            clean_event(br#"{"level":"INFO","token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}"#),
            "{\"level\":\"INFO\",\"token\":\"[redacted]\"}\n"
        );
    }
}
