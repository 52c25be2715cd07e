//! The per-request timing breakdown and its `Server-Timing` rendering.
//!
//! Definitions (all monotonic, milliseconds; see shared/design/METRICS.md):
//! - `auth`: verifying the token's signature and claims.
//! - `database`: loading the account the token names.
//! - `queue`: waiting for a slot at the provider (per-provider concurrency limit).
//! - `cache`: looking up the response cache (`cacheStatus` hit / miss / bypass).
//! - `upstreamConnect`: upstream request sent → upstream response headers.
//! - `ttft`: upstream request sent → first non-empty token (retries included).
//! - `llm`: upstream request sent → upstream answer complete.
//! - `total`: request received by calos → last byte of the answer produced.
//!
//! `total − (auth + database + queue + cache + llm)` is calos's own overhead;
//! the client's total minus `total` is the network.

use crate::llm::types::UpstreamTimings;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Streaming requests are never served from cache.
    #[default]
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    pub auth: f64,
    pub database: f64,
    pub queue: f64,
    pub cache: f64,
    pub cache_status: CacheStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_connect: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<f64>,
    pub total: f64,
    /// Upstream attempts (1 = no retry).
    pub attempts: u32,
    /// The provider's own account of its time, when it gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamTimings>,
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Breakdown {
    /// W3C Server-Timing. `complete` false: only the phases known before the
    /// first byte of a stream (browsers ignore Server-Timing trailers).
    pub fn server_timing(&self, complete: bool) -> String {
        let mut parts = vec![
            format!("auth;dur={:.3}", self.auth),
            format!("db;dur={:.3}", self.database),
            format!("queue;dur={:.3}", self.queue),
            format!(
                "cache;dur={:.3};desc=\"{}\"",
                self.cache,
                self.cache_status.as_str()
            ),
        ];
        if let Some(c) = self.upstream_connect {
            parts.push(format!("upstream;dur={c:.3}"));
        }
        if let Some(t) = self.ttft {
            parts.push(format!("llm_ttft;dur={t:.3}"));
        }
        if complete {
            if let Some(l) = self.llm {
                parts.push(format!("llm;dur={l:.3}"));
            }
            parts.push(format!("total;dur={:.3}", self.total));
        }
        parts.join(", ")
    }
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
}
