//! One second of chat traffic as the dashboard charts it: requests/s, errors
//! by kind, latency percentiles per component, active streams, queue depth,
//! cache hit rate and requests per provider and model. Fifteen minutes of
//! samples are kept (900 points), so a fresh page starts with full charts.

use crate::observability::metrics::Interval;
use app::wire::{MetricsSample, ModelCount, Quantiles};
use std::collections::{BTreeMap, VecDeque};

/// Samples kept: 15 minutes at one per second.
pub const HISTORY: usize = 900;

/// Turns one interval into a sample; `secs` is the interval's length.
pub fn sample(
    interval: Interval,
    secs: f64,
    active_streams: i64,
    queue_depth: u64,
) -> MetricsSample {
    let total: u64 = interval.outcomes.values().sum();
    let errors: BTreeMap<String, u64> = interval
        .outcomes
        .into_iter()
        .filter(|(outcome, _)| *outcome != "ok")
        .map(|(outcome, n)| (outcome.to_string(), n))
        .collect();
    let failed: u64 = errors.values().sum();
    let ms = |micros: u64| micros as f64 / 1000.0;
    let latency = interval
        .phases
        .iter()
        .map(|(phase, h)| {
            (
                phase.to_string(),
                Quantiles {
                    p50: ms(h.value_at_quantile(0.50)),
                    p95: ms(h.value_at_quantile(0.95)),
                    p99: ms(h.value_at_quantile(0.99)),
                },
            )
        })
        .collect();
    MetricsSample {
        time: chrono::Utc::now().timestamp_millis(),
        requests_per_sec: if secs > 0.0 { total as f64 / secs } else { 0.0 },
        error_rate: if total > 0 {
            failed as f64 / total as f64
        } else {
            0.0
        },
        errors,
        latency,
        active_streams,
        queue_depth,
        cache_hit_rate: (interval.cache_lookups > 0)
            .then(|| interval.cache_hits as f64 / interval.cache_lookups as f64),
        by_model: interval
            .by_model
            .into_iter()
            .map(|((provider, model), requests)| ModelCount {
                provider: provider.to_string(),
                model: model.to_string(),
                requests,
            })
            .collect(),
        tokens: interval.tokens,
        // Filled in by the history, which knows the minute before.
        tokens_per_minute: interval.tokens,
    }
}

/// The last [`HISTORY`] samples.
#[derive(Default)]
pub struct History {
    samples: VecDeque<MetricsSample>,
}

impl History {
    /// Tokens in the last `seconds` samples.
    pub fn recent_tokens(&self, seconds: usize) -> u64 {
        self.samples
            .iter()
            .rev()
            .take(seconds)
            .map(|s| s.tokens)
            .sum()
    }

    pub fn push(&mut self, sample: MetricsSample) {
        if self.samples.len() == HISTORY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Requests in the kept samples (each covers about a second).
    pub fn requests(&self) -> u64 {
        self.samples
            .iter()
            .map(|s| s.requests_per_sec)
            .sum::<f64>()
            .round() as u64
    }

    pub fn latest(&self) -> Option<&MetricsSample> {
        self.samples.back()
    }

    pub fn all(&self) -> Vec<MetricsSample> {
        self.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::metrics::Metrics;
    use crate::observability::timing::{Breakdown, CacheStatus};

    #[test]
    fn a_second_of_traffic_becomes_rates_and_percentiles() {
        let metrics = Metrics::default();
        for i in 0..10 {
            let b = Breakdown {
                total: 100.0 + f64::from(i),
                ttft: Some(50.0),
                cache_status: if i < 4 {
                    CacheStatus::Hit
                } else {
                    CacheStatus::Miss
                },
                ..Default::default()
            };
            let outcome = if i == 9 { "upstream_timeout" } else { "ok" };
            metrics.record("ollama", "llama3.2", true, &b, outcome);
        }
        let s = sample(metrics.take_interval(), 2.0, 3, 1);
        assert_eq!(s.requests_per_sec, 5.0);
        assert_eq!(s.error_rate, 0.1);
        assert_eq!(s.errors.get("upstream_timeout"), Some(&1));
        assert_eq!(s.cache_hit_rate, Some(0.4));
        let total = s.latency.get("total").copied().unwrap_or_default();
        assert!((total.p50 - 104.0).abs() < 0.2, "{total:?}");
        assert!((total.p99 - 109.0).abs() < 0.2, "{total:?}");
        assert_eq!(s.by_model[0].requests, 10);
        assert_eq!((s.active_streams, s.queue_depth), (3, 1));
        // The interval was taken: the next second starts empty.
        let next = sample(metrics.take_interval(), 1.0, 0, 0);
        assert_eq!((next.requests_per_sec, next.error_rate), (0.0, 0.0));
    }

    #[test]
    fn history_keeps_fifteen_minutes() {
        let mut h = History::default();
        for _ in 0..HISTORY + 5 {
            h.push(sample(Interval::default(), 1.0, 0, 0));
        }
        assert_eq!(h.all().len(), HISTORY);
    }
}
