//! The per-request timing breakdown: how the server sends it (the `timings`
//! object of a reply, the stream's `done` event) and how clients read it, and
//! its W3C `Server-Timing` rendering. What each figure means is in
//! `docs/metrics.md`.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// Where the response cache stood for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Streaming requests are never served from cache.
    #[default]
    Bypass,
    /// Not in the cache, but the same user's identical request was already
    /// on its way upstream: this one waited for that answer and shared it.
    Shared,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
            Self::Shared => "shared",
        }
    }
}

/// The provider's own account of its time, when it gives one; reported beside
/// calos's figures, never mixed into them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTimings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_ms: Option<f64>,
    /// Output tokens per second as the provider measured it (Ollama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
}

/// Milliseconds per phase, monotonic clock. Phases that did not happen (no
/// upstream call on a cache hit) are absent, not zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    pub auth: f64,
    pub database: f64,
    pub queue: f64,
    pub cache: f64,
    #[serde(default)]
    pub cache_status: CacheStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_connect: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<f64>,
    pub total: f64,
    /// Upstream attempts (1 = no retry; 0 = no upstream call).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamTimings>,
    /// The deployment that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The fallback model that answered, when the one asked for could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Every upstream attempt, in order (the last one answered, unless the
    /// request failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<Attempt>,
}

/// One upstream attempt of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub deployment: String,
    /// The model asked of it (the fallback's, when it stood in).
    pub model: String,
    /// `ok`, or the error code it failed with (`queue_full` when its queue
    /// had no room).
    pub outcome: String,
    /// From asking for the deployment's slot (its queue wait included) to
    /// the first token, or to the failure.
    pub ms: f64,
}

/// A duration as milliseconds rounded to the microsecond.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Breakdown {
    /// W3C Server-Timing. `complete` false: only the phases known before the
    /// first byte of a stream (browsers ignore Server-Timing trailers).
    pub fn server_timing(&self, complete: bool) -> String {
        let mut out = String::with_capacity(160);
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "auth;dur={:.3}, db;dur={:.3}, queue;dur={:.3}, cache;dur={:.3};desc=\"{}\"",
            self.auth,
            self.database,
            self.queue,
            self.cache,
            self.cache_status.as_str()
        );
        if let Some(c) = self.upstream_connect {
            let _ = write!(out, ", upstream;dur={c:.3}");
        }
        if let Some(t) = self.ttft {
            let _ = write!(out, ", llm_ttft;dur={t:.3}");
        }
        if complete {
            if let Some(l) = self.llm {
                let _ = write!(out, ", llm;dur={l:.3}");
            }
            let _ = write!(out, ", total;dur={:.3}", self.total);
        }
        if let Some(d) = &self.deployment {
            let _ = write!(out, ", deployment;desc=\"{}\"", quoted(d));
        }
        if let Some(f) = &self.fallback {
            let _ = write!(out, ", fallback;desc=\"{}\"", quoted(f));
        }
        // One attempt is the common case, already named by `deployment`.
        if self.tried.len() > 1 {
            for (i, a) in self.tried.iter().enumerate() {
                let _ = write!(
                    out,
                    ", try{};dur={:.3};desc=\"{} {}\"",
                    i + 1,
                    a.ms,
                    quoted(&a.deployment),
                    quoted(&a.outcome)
                );
            }
        }
        out
    }
}

/// A name made safe inside a quoted Server-Timing `desc`: quotes, backslashes
/// and anything that is not printable ASCII become `_`.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_uses_w3c_syntax_and_holds_back_late_phases_for_streams() {
        let b = Breakdown {
            auth: 0.5,
            database: 1.25,
            cache_status: CacheStatus::Miss,
            upstream_connect: Some(2.0),
            ttft: Some(100.0),
            llm: Some(900.0),
            total: 905.0,
            attempts: 1,
            ..Default::default()
        };
        let head = b.server_timing(false);
        assert!(
            head.starts_with(
                "auth;dur=0.500, db;dur=1.250, queue;dur=0.000, cache;dur=0.000;desc=\"miss\""
            ),
            "{head}"
        );
        assert!(head.contains("llm_ttft;dur=100.000") && !head.contains("total"));
        assert!(b
            .server_timing(true)
            .ends_with("llm;dur=900.000, total;dur=905.000"));
    }

    #[test]
    fn a_breakdown_reads_back_what_it_wrote() {
        let b = Breakdown {
            auth: 0.25,
            total: 3.5,
            cache_status: CacheStatus::Hit,
            upstream: Some(UpstreamTimings {
                eval_ms: Some(7.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = serde_json::to_string(&b).unwrap_or_default();
        assert!(
            json.contains(r#""cacheStatus":"hit""#) && !json.contains("ttft"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Breakdown>(&json).ok(), Some(b));
    }
}
