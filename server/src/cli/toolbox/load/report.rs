//! The load test's final report: one serialisable struct (`--json`) and its
//! text form, which keeps `ab`'s figures and the original guide's lines side by side.

use super::compare::LoadComparison;
use super::stats::{Dist, OpenLoopReport, Recorder, ServerReport, StreamReport};
use crate::cli::toolbox::render::banner;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// `"status 503"`, `"timeout"`, `"transport"`, `"stream error"` → count.
    pub failures: BTreeMap<String, u64>,
    /// One message per failure reason, to say why.
    pub failure_examples: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub url: String,
    pub model: String,
    pub stream: bool,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Concurrent users (closed loop) or accounts used (open loop).
    pub users: usize,
    pub requests_per_user: Option<u64>,
    pub warmup_excluded: u64,
    pub interrupted: bool,
    pub requests: RequestCounts,
    pub duration_secs: f64,
    /// Successful requests / duration.
    pub requests_per_sec: f64,
    /// ab: concurrency × duration / requests.
    pub time_per_request_ms: f64,
    /// ab: duration / requests ("across all concurrent requests").
    pub time_per_request_across_ms: f64,
    /// Latency of successful requests (open loop: from the scheduled send).
    pub latency: Option<Dist>,
    /// ab's table: `(percent, ms)`.
    pub served_within: Vec<(u8, f64)>,
    pub open_loop: Option<OpenLoopReport>,
    pub streaming: Option<StreamReport>,
    pub server: ServerReport,
    /// Against `--baseline`, when one was given.
    pub comparison: Option<LoadComparison>,
}

/// Summary header fields known before the run.
pub struct Setup {
    pub url: String,
    pub model: String,
    pub stream: bool,
    pub users: usize,
    pub requests_per_user: Option<u64>,
    pub rate: Option<f64>,
    pub warmup: u64,
}

impl LoadReport {
    pub fn build(setup: &Setup, recorder: &Recorder, interrupted: bool) -> Self {
        let secs = recorder.duration().as_secs_f64();
        let total = recorder.total();
        let concurrency = if setup.rate.is_some() {
            1
        } else {
            setup.users.max(1)
        };
        let per = |x: f64| if total > 0 { x / total as f64 } else { 0.0 };
        Self {
            url: setup.url.clone(),
            model: setup.model.clone(),
            stream: setup.stream,
            mode: if setup.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            users: setup.users,
            requests_per_user: setup.requests_per_user,
            warmup_excluded: setup.warmup,
            interrupted,
            requests: RequestCounts {
                total,
                ok: recorder.ok,
                failed: recorder.failed(),
                failures: recorder
                    .failures
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                failure_examples: recorder
                    .failure_samples
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            },
            duration_secs: secs,
            requests_per_sec: if secs > 0.0 {
                recorder.ok as f64 / secs
            } else {
                0.0
            },
            time_per_request_ms: per(concurrency as f64 * secs * 1000.0),
            time_per_request_across_ms: per(secs * 1000.0),
            latency: recorder.latency_dist(),
            served_within: recorder.ab_table(),
            open_loop: setup.rate.map(|r| recorder.open_loop_report(r)),
            streaming: setup.stream.then(|| recorder.stream_report()),
            server: recorder.server_report(),
            comparison: None,
        }
    }
}

fn dist_row(name: &str, d: &Option<Dist>) -> String {
    match d {
        Some(d) => format!(
            "  {name:<18}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}\n",
            d.mean, d.p50, d.p90, d.p95, d.p99, d.p999, d.min, d.max
        ),
        None => String::new(),
    }
}

const DIST_HEADER: &str =
    "  (ms)                  avg      p50      p90      p95      p99    p99.9      min      max\n";

pub fn render(r: &LoadReport) -> String {
    let mut out = String::from("\n");
    out.push_str(&banner("Load Test Results"));
    let shape = match (r.mode, r.requests_per_user) {
        ("closed", Some(n)) => format!("closed loop, {} users × {n} requests", r.users),
        _ => format!(
            "open loop at {:.1} req/s over {} account(s)",
            r.open_loop.as_ref().map_or(0.0, |o| o.scheduled_rate),
            r.users.max(1)
        ),
    };
    out.push_str(&format!(
        "\nPOST {}  model {}  {}  {}\n",
        r.url,
        r.model,
        if r.stream { "streamed" } else { "not streamed" },
        shape
    ));
    if r.warmup_excluded > 0 {
        out.push_str(&format!(
            "Warm-up: {} request(s) sent first and excluded from every figure below.\n",
            r.warmup_excluded
        ));
    }
    if r.interrupted {
        out.push_str("Interrupted: the figures cover the requests answered before the stop.\n");
    }
    let c = &r.requests;
    let pct = |n: u64| {
        if c.total > 0 {
            100.0 * n as f64 / c.total as f64
        } else {
            0.0
        }
    };
    out.push_str(&format!("\nTotal Requests:  {}\n", c.total));
    out.push_str(&format!("Successes:       {} ({:.1}%)\n", c.ok, pct(c.ok)));
    out.push_str(&format!(
        "Failures:        {} ({:.1}%)\n",
        c.failed,
        pct(c.failed)
    ));
    for (reason, n) in &c.failures {
        let example = c.failure_examples.get(reason).cloned().unwrap_or_default();
        out.push_str(&format!("  {reason:<14} {n:>7}  e.g. {example:.120}\n"));
    }
    out.push_str(&format!(
        "\nTime taken for tests:   {:.3} seconds\n",
        r.duration_secs
    ));
    out.push_str(&format!(
        "Requests per second:    {:.2} [#/sec] (mean)\n",
        r.requests_per_sec
    ));
    out.push_str(&format!(
        "Time per request:       {:.3} [ms] (mean)\n",
        r.time_per_request_ms
    ));
    out.push_str(&format!(
        "Time per request:       {:.3} [ms] (mean, across all concurrent requests)\n",
        r.time_per_request_across_ms
    ));
    if let Some(o) = &r.open_loop {
        out.push_str(&format!(
            "Scheduled rate:         {:.1} req/s; achieved send rate {:.1} req/s; {} late send(s) (> 2 ms), latest {:.1} ms\n",
            o.scheduled_rate, o.achieved_send_rate, o.late_sends, o.max_lateness_ms
        ));
    }
    out.push_str("\nLatency of successful requests");
    out.push_str(if r.open_loop.is_some() {
        " (from the scheduled send: corrected for coordinated omission)\n"
    } else {
        "\n"
    });
    out.push_str(DIST_HEADER);
    out.push_str(&dist_row("latency", &r.latency));
    if let Some(o) = &r.open_loop {
        out.push_str(&dist_row("from actual send", &o.service_time));
    }
    if let Some(s) = &r.streaming {
        out.push_str("\nStreaming (TTFT = first non-empty content event; ITL = gaps between events; TPOT = (E2E − TTFT)/(tokens − 1))\n");
        out.push_str(DIST_HEADER);
        out.push_str(&dist_row("TTFB", &s.ttfb));
        out.push_str(&dist_row("TTFT", &s.ttft));
        out.push_str(&dist_row("ITL", &s.itl));
        out.push_str(&dist_row("TPOT", &s.tpot));
        if let Some(tps) = s.output_tokens_per_sec_per_request {
            out.push_str(&format!("  output tokens/s per request (mean): {tps:.1}\n"));
        }
        out.push_str(&format!(
            "  output tokens: {}; throughput {:.1} tokens/s{}\n",
            s.output_tokens,
            s.output_token_throughput,
            if s.token_count_mismatches > 0 {
                format!(
                    "; {} request(s) where usage ≠ events counted",
                    s.token_count_mismatches
                )
            } else {
                String::new()
            }
        ));
    }
    let sv = &r.server;
    if sv.responses > 0 {
        out.push_str(&format!(
            "\nServer's own account ({} responses with timings)\n",
            sv.responses
        ));
        out.push_str(DIST_HEADER);
        out.push_str(&dist_row("auth", &sv.auth));
        out.push_str(&dist_row("database", &sv.database));
        out.push_str(&dist_row("queue", &sv.queue));
        out.push_str(&dist_row("cache", &sv.cache));
        out.push_str(&dist_row("upstream connect", &sv.upstream_connect));
        out.push_str(&dist_row("LLM TTFT", &sv.ttft));
        out.push_str(&dist_row("LLM", &sv.llm));
        out.push_str(&dist_row("server total", &sv.total));
        out.push_str(&dist_row("network (c − s)", &sv.network));
    }
    if !r.served_within.is_empty() {
        out.push_str("\nPercentage of the requests served within a certain time (ms)\n");
        for (p, ms) in &r.served_within {
            let tail = if *p == 100 { " (longest request)" } else { "" };
            out.push_str(&format!("  {p:>3}%  {ms:>8.1}{tail}\n"));
        }
    }
    if let Some(comparison) = &r.comparison {
        out.push_str(&super::compare::render(comparison));
    }
    out
}
