//! The log feed's memory: a bounded ring of recent log lines (calos's own and
//! the managed processes' output) that Mission Control reads. Lines are cleaned
//! on the way in: control characters escaped (a process cannot repaint an
//! operator's terminal or page) and credentials redacted.

use app::wire::LogLine;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// Lines kept; older ones fall off.
pub const CAPACITY: usize = 5_000;
/// Longest line kept, in characters.
const MAX_LINE_CHARS: usize = 4_096;

#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    next_seq: u64,
}

/// Cheap to clone; every clone is the same ring.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Ring>>,
    live: broadcast::Sender<LogLine>,
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

/// Words after which the rest of a token is a secret.
const SECRET_MARKERS: [&str; 6] = [
    "bearer ",
    "password=",
    "password:",
    "token=",
    "api_key=",
    "secret=",
];

/// Replaces credentials with `[redacted]`: whatever follows a marker up to the
/// next space, and OpenAI-style `sk-…` keys.
pub fn redact(line: &str) -> String {
    let mut out = line.to_string();
    for marker in SECRET_MARKERS {
        let mut from = 0;
        while let Some(at) = out[from..].to_ascii_lowercase().find(marker) {
            let start = from + at + marker.len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .map_or(out.len(), |e| start + e);
            if end > start {
                out.replace_range(start..end, "[redacted]");
            }
            from = start + "[redacted]".len().min(out.len() - start);
        }
    }
    out.split(' ')
        .map(|word| {
            if word.starts_with("sk-") && word.len() > 20 {
                "[redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escapes control characters (ANSI escapes, NUL, CR…) except tab.
pub fn escape_controls(line: &str) -> String {
    line.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() && c != '\t' {
                Box::new(c.escape_default())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

impl LogRing {
    /// A managed process's output line.
    pub fn push(&self, level: &str, source: &str, message: &str) {
        self.push_line(level, source, None, None, message);
    }

    /// One of calos's own events, with the module that logged it and the
    /// request it belongs to.
    pub fn push_event(&self, level: &str, target: &str, request_id: Option<&str>, message: &str) {
        self.push_line(level, "calos", Some(target), request_id, message);
    }

    fn push_line(
        &self,
        level: &str,
        source: &str,
        target: Option<&str>,
        request_id: Option<&str>,
        message: &str,
    ) {
        let mut message = escape_controls(&redact(message));
        if message.chars().count() > MAX_LINE_CHARS {
            message = message.chars().take(MAX_LINE_CHARS).collect::<String>() + "…";
        }
        let mut ring = self.inner.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() == CAPACITY {
            ring.lines.pop_front();
        }
        let line = LogLine {
            seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level: level.to_string(),
            source: source.to_string(),
            target: target.map(escape_controls),
            // Request ids are ours (UUIDs) or a client's X-Request-Id: escaped
            // and bounded like any text from outside.
            request_id: request_id
                .map(|id| escape_controls(&id.chars().take(128).collect::<String>())),
            message,
        };
        ring.lines.push_back(line.clone());
        drop(ring);
        // No subscribers is fine.
        let _ = self.live.send(line);
    }

    /// New lines as they are pushed.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.live.subscribe()
    }

    /// Up to `limit` most recent lines with `seq >= after`, oldest first.
    pub fn recent(&self, after: u64, limit: usize) -> Vec<LogLine> {
        let ring = self.inner.lock();
        let newer: Vec<&LogLine> = ring.lines.iter().filter(|l| l.seq >= after).collect();
        newer[newer.len().saturating_sub(limit)..]
            .iter()
            .map(|l| (*l).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_controls_escaped() {
        assert_eq!(
            redact("Authorization: Bearer eyJhbGciOi.x.y sent"),
            "Authorization: Bearer [redacted] sent"
        );
        assert_eq!(
            redact("login password=hunter2 ok"),
            "login password=[redacted] ok"
        );
        assert_eq!(
            redact("key sk-abcdefghijklmnopqrstuvwxyz done"),
            "key [redacted] done"
        );
        assert_eq!(escape_controls("red\u{1b}[31m\r\n"), "red\\u{1b}[31m\\r\\n");
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
