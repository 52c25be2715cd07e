//! Turns request outcomes into the report: HDR histograms (3 significant
//! figures, microseconds) for every latency, counts by failure reason, and the
//! server's own breakdown aggregated from the responses' timings.
//!
//! Percentiles are HdrHistogram's `value_at_quantile`: the smallest recorded
//! value (within 0.1%) that at least that fraction of samples do not exceed.

use super::engine::{Failure, Shot};
use crate::cli::toolbox::baseline::{Reservoir, MAX_SAVED_RUNS};
use app::verdict::Components;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest latency a histogram holds: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;
/// A send this far behind its schedule counts as late: tokio's timer ticks every
/// millisecond, so up to ~1 ms of lateness is the clock, not the generator.
pub const LATE_AFTER: Duration = Duration::from_millis(2);
/// Points kept for the latency-over-time plot.
const MAX_TIMELINE: usize = 200_000;

// The bounds are constants inside hdrhistogram's range (it only refuses
// low < 1, high < 2 * low, or sigfig > 5), so construction cannot fail.
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let micros = (d.as_micros() as u64).clamp(1, MAX_MICROS);
    let _ = h.record(micros);
}

fn record_ms(h: &mut Histogram<u64>, ms: f64) {
    record(h, Duration::from_secs_f64((ms / 1000.0).max(0.0)));
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Dist {
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    #[serde(rename = "p99_9")]
    pub p999: f64,
    pub max: f64,
}

fn dist(h: &Histogram<u64>) -> Option<Dist> {
    if h.is_empty() {
        return None;
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    let q = |quantile: f64| ms(h.value_at_quantile(quantile));
    Some(Dist {
        count: h.len(),
        mean: h.mean() / 1000.0,
        std: h.stdev() / 1000.0,
        min: ms(h.min()),
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: ms(h.max()),
    })
}

/// Server-side phases, each a distribution.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerReport {
    /// Responses that carried the server's timings.
    pub responses: u64,
    pub auth: Option<Dist>,
    pub database: Option<Dist>,
    pub queue: Option<Dist>,
    pub cache: Option<Dist>,
    pub upstream_connect: Option<Dist>,
    pub ttft: Option<Dist>,
    pub llm: Option<Dist>,
    pub total: Option<Dist>,
    /// Client latency − server total, per request.
    pub network: Option<Dist>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamReport {
    /// First content event − send.
    pub ttft: Option<Dist>,
    /// First body byte − send.
    pub ttfb: Option<Dist>,
    /// Gaps between consecutive content events, pooled.
    pub itl: Option<Dist>,
    /// (E2E − TTFT) / (output tokens − 1), per request.
    pub tpot: Option<Dist>,
    /// 1 / TPOT per request, in tokens per second (mean over requests).
    pub output_tokens_per_sec_per_request: Option<f64>,
    pub output_tokens: u64,
    /// Output tokens of successful requests / duration.
    pub output_token_throughput: f64,
    /// Requests whose usage count differs from the content events counted.
    pub token_count_mismatches: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenLoopReport {
    pub scheduled_rate: f64,
    pub achieved_send_rate: f64,
    /// Sends more than [`LATE_AFTER`] (2 ms) after their scheduled time.
    pub late_sends: u64,
    pub max_lateness_ms: f64,
    /// Latency from the actual send (what a closed-loop tool would report).
    pub service_time: Option<Dist>,
}

/// Collects shots as they arrive.
pub struct Recorder {
    started: Instant,
    first_send: Option<Instant>,
    last_done: Option<Instant>,
    pub ok: u64,
    pub failures: BTreeMap<Failure, u64>,
    pub failure_samples: BTreeMap<Failure, String>,
    pub latency: Histogram<u64>,
    service: Histogram<u64>,
    ttfb: Histogram<u64>,
    ttft: Histogram<u64>,
    itl: Histogram<u64>,
    tpot: Histogram<u64>,
    tokens_per_sec_sum: f64,
    tokens_per_sec_n: u64,
    output_tokens: u64,
    mismatches: u64,
    late_sends: u64,
    max_lateness: Duration,
    server_responses: u64,
    server: [Histogram<u64>; 9],
    /// Requests' components (from the server's figures), for `--save` and
    /// `--baseline`: a bounded uniform sample.
    pub components: Reservoir,
    /// `(seconds since start, latency ms, ok)` for the plot.
    pub timeline: Vec<(f64, f64, bool)>,
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            first_send: None,
            last_done: None,
            ok: 0,
            failures: BTreeMap::new(),
            failure_samples: BTreeMap::new(),
            latency: histogram(),
            service: histogram(),
            ttfb: histogram(),
            ttft: histogram(),
            itl: histogram(),
            tpot: histogram(),
            tokens_per_sec_sum: 0.0,
            tokens_per_sec_n: 0,
            output_tokens: 0,
            mismatches: 0,
            late_sends: 0,
            max_lateness: Duration::ZERO,
            server_responses: 0,
            server: std::array::from_fn(|_| histogram()),
            components: Reservoir::new(MAX_SAVED_RUNS),
            timeline: Vec::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.ok + self.failures.values().sum::<u64>()
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn add(&mut self, shot: Shot) {
        self.first_send = Some(self.first_send.map_or(shot.sent, |f| f.min(shot.sent)));
        self.last_done = Some(self.last_done.map_or(shot.done, |l| l.max(shot.done)));
        let lateness = shot.sent.saturating_duration_since(shot.scheduled);
        if lateness > LATE_AFTER {
            self.late_sends += 1;
        }
        self.max_lateness = self.max_lateness.max(lateness);
        let latency = shot.done.duration_since(shot.scheduled);
        if self.timeline.len() < MAX_TIMELINE {
            self.timeline.push((
                shot.scheduled
                    .saturating_duration_since(self.started)
                    .as_secs_f64(),
                latency.as_secs_f64() * 1000.0,
                shot.result.is_ok(),
            ));
        }
        let answer = match shot.result {
            Ok(answer) => answer,
            Err((failure, message)) => {
                *self.failures.entry(failure.clone()).or_default() += 1;
                self.failure_samples.entry(failure).or_insert(message);
                return;
            }
        };
        self.ok += 1;
        record(&mut self.latency, latency);
        record(&mut self.service, shot.done.duration_since(shot.sent));
        if let Some(first) = answer.first_byte {
            record(&mut self.ttfb, first.saturating_duration_since(shot.sent));
        }
        if let Some(&first) = answer.content_at.first() {
            let ttft = first.saturating_duration_since(shot.sent);
            record(&mut self.ttft, ttft);
            for pair in answer.content_at.windows(2) {
                record(&mut self.itl, pair[1].saturating_duration_since(pair[0]));
            }
            let events = answer.content_at.len() as u32;
            let tokens = answer.completion_tokens.unwrap_or(events);
            if answer.completion_tokens.is_some_and(|t| t != events) {
                self.mismatches += 1;
            }
            self.output_tokens += u64::from(tokens);
            let e2e = answer
                .content_at
                .last()
                .map_or(ttft, |l| l.saturating_duration_since(shot.sent));
            if tokens > 1 {
                let tpot = (e2e - ttft) / (tokens - 1);
                record(&mut self.tpot, tpot);
                if tpot > Duration::ZERO {
                    self.tokens_per_sec_sum += 1.0 / tpot.as_secs_f64();
                    self.tokens_per_sec_n += 1;
                }
            }
        } else if let Some(tokens) = answer.completion_tokens {
            self.output_tokens += u64::from(tokens);
        }
        if let Some(f) = answer.figures {
            self.server_responses += 1;
            let client_total = shot.done.duration_since(shot.sent).as_secs_f64() * 1000.0;
            self.components.offer(Components::from_breakdown(
                &f.as_breakdown(client_total),
                Some(client_total),
            ));
            let values = [
                Some(f.auth),
                Some(f.database),
                Some(f.queue),
                Some(f.cache),
                f.upstream_connect,
                f.ttft,
                f.llm,
                f.total,
                f.total.map(|t| {
                    (shot.done.duration_since(shot.sent).as_secs_f64() * 1000.0 - t).max(0.0)
                }),
            ];
            for (h, v) in self.server.iter_mut().zip(values) {
                if let Some(v) = v {
                    record_ms(h, v);
                }
            }
        }
    }

    /// Successful requests per second so far (for the progress line).
    pub fn rate(&self, now: Instant) -> f64 {
        let secs = self
            .first_send
            .map_or(0.0, |f| now.saturating_duration_since(f).as_secs_f64());
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// First send → last answer.
    pub fn duration(&self) -> Duration {
        match (self.first_send, self.last_done) {
            (Some(f), Some(l)) => l.saturating_duration_since(f),
            _ => Duration::ZERO,
        }
    }

    pub fn latency_dist(&self) -> Option<Dist> {
        dist(&self.latency)
    }

    pub fn server_report(&self) -> ServerReport {
        let d = |i: usize| dist(&self.server[i]);
        ServerReport {
            responses: self.server_responses,
            auth: d(0),
            database: d(1),
            queue: d(2),
            cache: d(3),
            upstream_connect: d(4),
            ttft: d(5),
            llm: d(6),
            total: d(7),
            network: d(8),
        }
    }

    pub fn stream_report(&self) -> StreamReport {
        let secs = self.duration().as_secs_f64();
        StreamReport {
            ttft: dist(&self.ttft),
            ttfb: dist(&self.ttfb),
            itl: dist(&self.itl),
            tpot: dist(&self.tpot),
            output_tokens_per_sec_per_request: (self.tokens_per_sec_n > 0)
                .then(|| self.tokens_per_sec_sum / self.tokens_per_sec_n as f64),
            output_tokens: self.output_tokens,
            output_token_throughput: if secs > 0.0 {
                self.output_tokens as f64 / secs
            } else {
                0.0
            },
            token_count_mismatches: self.mismatches,
        }
    }

    pub fn open_loop_report(&self, scheduled_rate: f64) -> OpenLoopReport {
        let sends = self.total();
        let span = self.timeline.iter().map(|p| p.0).fold(0.0_f64, f64::max);
        OpenLoopReport {
            scheduled_rate,
            achieved_send_rate: if span > 0.0 {
                (sends.saturating_sub(1)) as f64 / span
            } else {
                0.0
            },
            late_sends: self.late_sends,
            max_lateness_ms: self.max_lateness.as_secs_f64() * 1000.0,
            service_time: dist(&self.service),
        }
    }

    /// ab's "Percentage of the requests served within a certain time".
    pub fn ab_table(&self) -> Vec<(u8, f64)> {
        if self.latency.is_empty() {
            return Vec::new();
        }
        [50u8, 66, 75, 80, 90, 95, 98, 99, 100]
            .into_iter()
            .map(|p| {
                let micros = if p == 100 {
                    self.latency.max()
                } else {
                    self.latency.value_at_quantile(f64::from(p) / 100.0)
                };
                (p, micros as f64 / 1000.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::Answer;
    use super::*;

    fn shot(start: Instant, offset_ms: u64, latency_ms: u64) -> Shot {
        let sent = start + Duration::from_millis(offset_ms);
        Shot {
            scheduled: sent,
            sent,
            done: sent + Duration::from_millis(latency_ms),
            result: Ok(Answer::default()),
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let start = Instant::now();
        let mut r = Recorder::new(start);
        for ms in 1..=1000 {
            r.add(shot(start, ms, ms));
        }
        let Some(d) = r.latency_dist() else {
            panic!("empty")
        };
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 0.001;
        assert!(close(d.p50, 500.0), "{d:?}");
        assert!(close(d.p90, 900.0), "{d:?}");
        assert!(close(d.p99, 990.0), "{d:?}");
        assert!(close(d.min, 1.0) && close(d.max, 1000.0), "{d:?}");
        assert!(close(d.mean, 500.5), "{d:?}");
        assert_eq!(r.ab_table().last().map(|p| p.0), Some(100));
    }

    #[test]
    fn failures_count_by_reason_and_stay_out_of_latency() {
        let start = Instant::now();
        let mut r = Recorder::new(start);
        r.add(shot(start, 0, 10));
        let sent = start;
        for failure in [Failure::Status(503), Failure::Status(503), Failure::Timeout] {
            r.add(Shot {
                scheduled: sent,
                sent,
                done: sent + Duration::from_secs(5),
                result: Err((failure, "x".into())),
            });
        }
        assert_eq!((r.total(), r.ok, r.failed()), (4, 1, 3));
        assert_eq!(r.failures.get(&Failure::Status(503)), Some(&2));
        assert_eq!(r.latency.len(), 1);
    }

    #[test]
    fn streaming_figures_follow_the_definitions() {
        let start = Instant::now();
        let mut r = Recorder::new(start);
        let sent = start;
        // TTFT 100 ms, then 4 more events 50 ms apart: E2E 300 ms, 5 tokens.
        let content_at = (0..5)
            .map(|i| sent + Duration::from_millis(100 + 50 * i))
            .collect();
        r.add(Shot {
            scheduled: sent,
            sent,
            done: sent + Duration::from_millis(310),
            result: Ok(Answer {
                first_byte: Some(sent + Duration::from_millis(5)),
                content_at,
                completion_tokens: Some(5),
                figures: None,
            }),
        });
        let s = r.stream_report();
        let near = |d: Option<Dist>, v: f64| d.is_some_and(|d| (d.p50 - v).abs() < 0.1);
        assert!(near(s.ttft, 100.0), "{s:?}");
        assert!(near(s.itl, 50.0), "{s:?}");
        assert!(near(s.tpot, 50.0), "(300-100)/(5-1): {s:?}");
        assert_eq!((s.output_tokens, s.token_count_mismatches), (5, 0));
    }

    #[test]
    fn late_open_loop_sends_are_counted_and_latency_starts_at_the_schedule() {
        let start = Instant::now();
        let mut r = Recorder::new(start);
        r.add(Shot {
            scheduled: start,
            sent: start + Duration::from_millis(20),
            done: start + Duration::from_millis(30),
            result: Ok(Answer::default()),
        });
        let o = r.open_loop_report(10.0);
        assert_eq!(o.late_sends, 1);
        assert!(r.latency_dist().is_some_and(|d| (d.p50 - 30.0).abs() < 0.1));
        assert!(o.service_time.is_some_and(|d| (d.p50 - 10.0).abs() < 0.1));
    }
}
