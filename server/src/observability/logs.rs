//! The log feed's memory: a bounded ring of recent log lines (calos's own and
//! the managed processes' output) that Mission Control reads.
//!
//! Pushing is cheap because it happens on every request (the access log and the
//! `[Performance]` line): the ring keeps the raw entry, and the cleaning that
//! makes a line safe to show (credentials redacted, control characters escaped,
//! the time formatted) happens only when someone reads it. With no dashboard
//! open, a line costs one allocation and a lock, not a JSON encoding.

use super::redact::{clean, escape_controls};
use app::wire::LogLine;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Lines kept; older ones fall off.
pub const CAPACITY: usize = 5_000;
/// Longest line kept, in characters.
const MAX_LINE_CHARS: usize = 4_096;
/// Longest request id shown, in characters.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// One pushed line as it arrived: nothing formatted, nothing cleaned yet.
#[derive(Debug)]
pub struct Entry {
    seq: u64,
    at: SystemTime,
    level: &'static str,
    source: Source,
    request_id: Option<Box<str>>,
    message: Box<str>,
}

#[derive(Debug)]
enum Source {
    /// One of calos's own events and the module that logged it.
    Calos { target: &'static str },
    /// A managed process's output (`process:<name>`).
    Process(Box<str>),
}

impl Entry {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The line as Mission Control shows it: redacted, escaped, bounded.
    pub fn to_line(&self) -> LogLine {
        let mut message = clean(&self.message).into_owned();
        if message.chars().count() > MAX_LINE_CHARS {
            message = message.chars().take(MAX_LINE_CHARS).collect::<String>() + "…";
        }
        let (source, target) = match &self.source {
            Source::Calos { target } => (
                "calos".to_string(),
                Some(escape_controls(target).into_owned()),
            ),
            Source::Process(name) => (name.to_string(), None),
        };
        LogLine {
            seq: self.seq,
            time: chrono::DateTime::<chrono::Utc>::from(self.at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level: self.level.to_string(),
            source,
            target,
            // Request ids are ours (UUIDs) or a client's X-Request-Id: escaped
            // and bounded like any text from outside.
            request_id: self.request_id.as_deref().map(|id| {
                escape_controls(&id.chars().take(MAX_REQUEST_ID_CHARS).collect::<String>())
                    .into_owned()
            }),
            message,
        }
    }
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Arc<Entry>>,
    next_seq: u64,
}

/// Cheap to clone; every clone is the same ring.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Ring>>,
    live: broadcast::Sender<Arc<Entry>>,
}

impl Default for LogRing {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            // Subscribers that fall this far behind lose lines (and are told so).
            live: broadcast::channel(1024).0,
        }
    }
}

/// The process's ring: calos's own tracing events land here (see
/// `telemetry`), and the server hands it to Mission Control.
pub fn global() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(LogRing::default)
}

impl LogRing {
    /// A managed process's output line.
    pub fn push(&self, level: &str, source: &str, message: &str) {
        self.push_entry(
            level_name(level),
            Source::Process(source.into()),
            None,
            message.into(),
        );
    }

    /// One of calos's own events, with the module that logged it and the
    /// request it belongs to.
    pub fn push_event(
        &self,
        level: &'static str,
        target: &'static str,
        request_id: Option<Box<str>>,
        message: Box<str>,
    ) {
        self.push_entry(level, Source::Calos { target }, request_id, message);
    }

    fn push_entry(
        &self,
        level: &'static str,
        source: Source,
        request_id: Option<Box<str>>,
        message: Box<str>,
    ) {
        let at = SystemTime::now();
        let mut ring = self.inner.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() == CAPACITY {
            ring.lines.pop_front();
        }
        let entry = Arc::new(Entry {
            seq,
            at,
            level,
            source,
            request_id,
            message,
        });
        ring.lines.push_back(entry.clone());
        drop(ring);
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(entry);
        }
    }

    /// New entries as they are pushed; [`Entry::to_line`] formats one.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.live.subscribe()
    }

    /// Up to `limit` most recent lines with `seq >= after`, oldest first.
    pub fn recent(&self, after: u64, limit: usize) -> Vec<LogLine> {
        let newer: Vec<Arc<Entry>> = {
            let ring = self.inner.lock();
            let first = ring.lines.partition_point(|e| e.seq < after);
            let skip = first.max(ring.lines.len().saturating_sub(limit));
            ring.lines.iter().skip(skip).cloned().collect()
        };
        // Formatted outside the lock: pushes never wait for a reader.
        newer.iter().map(|entry| entry.to_line()).collect()
    }
}

/// Process output carries its level as text; the ring keeps the five names.
fn level_name(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "error" => "error",
        "warn" | "warning" => "warn",
        "debug" => "debug",
        "trace" => "trace",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cleaned_when_read() {
        let ring = LogRing::default();
        ring.push("info", "worker", "login password=hunter2\r\nforged");
        let line = &ring.recent(0, 1)[0];
        assert_eq!(line.message, "login password=[redacted]\\r\\nforged");
    }

    #[test]
    fn the_ring_is_bounded_and_sequenced() {
        let ring = LogRing::default();
        for i in 0..CAPACITY + 10 {
            ring.push("info", "calos", &format!("line {i}"));
        }
        let all = ring.recent(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].seq, 10);
        let last = ring.recent(0, 2);
        assert_eq!(
            last.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![CAPACITY as u64 + 8, CAPACITY as u64 + 9]
        );
        assert_eq!(ring.recent(CAPACITY as u64 + 9, 10).len(), 1);
    }
}
