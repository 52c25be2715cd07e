//! In-process latency metrics: one HDR histogram per (provider, model, phase),
//! plus outcome counts, fed by every chat request's breakdown. Mission Control
//! and `/metrics` read [`Metrics::snapshot`].
//!
//! `hdrhistogram` (the reference HDR implementation's Rust port) records in
//! microseconds at 3 significant figures, so p99 of a 2 ms phase and of a 60 s
//! reply are both exact to 0.1 %; recording is a lock and an array increment.

use crate::observability::timing::Breakdown;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The phases kept as histograms, by their breakdown names.
pub const PHASES: &[&str] = &[
    "auth",
    "database",
    "queue",
    "cache",
    "upstreamConnect",
    "ttft",
    "llm",
    "total",
];

/// Largest recordable value: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

type Key = (String, String, &'static str);

#[derive(Default)]
struct Inner {
    histograms: BTreeMap<Key, Histogram<u64>>,
    outcomes: BTreeMap<(String, String, String), u64>,
}

/// What happened since the dashboard's last one-second sample: counts and
/// per-phase histograms across providers, swapped out by [`Metrics::take_interval`].
#[derive(Default)]
pub struct Interval {
    pub outcomes: BTreeMap<String, u64>,
    pub by_model: BTreeMap<(String, String), u64>,
    pub cache_hits: u64,
    pub cache_lookups: u64,
    pub phases: BTreeMap<&'static str, Histogram<u64>>,
}

#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
    interval: Arc<Mutex<Interval>>,
    /// The same requests as cumulative histograms and counters for `/metrics`.
    pub exporter: crate::observability::exporter::Exporter,
}

/// One histogram's summary, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub provider: String,
    pub model: String,
    pub phase: &'static str,
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    pub provider: String,
    pub model: String,
    pub outcome: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub latency: Vec<Series>,
    pub outcomes: Vec<Outcome>,
}

fn phase_value(b: &Breakdown, phase: &str) -> Option<f64> {
    match phase {
        "auth" => Some(b.auth),
        "database" => Some(b.database),
        "queue" => Some(b.queue),
        "cache" => Some(b.cache),
        "upstreamConnect" => b.upstream_connect,
        "ttft" => b.ttft,
        "llm" => b.llm,
        "total" => Some(b.total),
        _ => None,
    }
}

impl Metrics {
    pub fn record(&self, provider: &str, model: &str, breakdown: &Breakdown, outcome: &str) {
        self.exporter.chat(provider, model, breakdown, outcome);
        self.exporter.cache_lookup(breakdown.cache_status.as_str());
        self.record_interval(provider, model, breakdown, outcome);
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for phase in PHASES {
            let Some(ms) = phase_value(breakdown, phase) else {
                continue;
            };
            let key = (provider.to_string(), model.to_string(), *phase);
            let histogram = match inner.histograms.entry(key) {
                Entry::Occupied(e) => e.into_mut(),
                // The bounds are constants within hdrhistogram's range, so this succeeds.
                Entry::Vacant(v) => match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
                    Ok(h) => v.insert(h),
                    Err(_) => continue,
                },
            };
            let micros = (ms * 1000.0).round().clamp(1.0, MAX_MICROS as f64) as u64;
            let _ = histogram.record(micros);
        }
        *inner
            .outcomes
            .entry((provider.to_string(), model.to_string(), outcome.to_string()))
            .or_insert(0) += 1;
    }

    fn record_interval(&self, provider: &str, model: &str, b: &Breakdown, outcome: &str) {
        let Ok(mut interval) = self.interval.lock() else {
            return;
        };
        *interval.outcomes.entry(outcome.to_string()).or_default() += 1;
        *interval
            .by_model
            .entry((provider.to_string(), model.to_string()))
            .or_default() += 1;
        match b.cache_status {
            crate::observability::timing::CacheStatus::Hit => {
                interval.cache_hits += 1;
                interval.cache_lookups += 1;
            }
            crate::observability::timing::CacheStatus::Miss => interval.cache_lookups += 1,
            crate::observability::timing::CacheStatus::Bypass => {}
        }
        for phase in PHASES {
            let Some(ms) = phase_value(b, phase) else {
                continue;
            };
            let histogram = match interval.phases.entry(phase) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
                    Ok(h) => v.insert(h),
                    Err(_) => continue,
                },
            };
            let _ = histogram.record((ms * 1000.0).round().clamp(1.0, MAX_MICROS as f64) as u64);
        }
    }

    /// Everything recorded since the last call, and a fresh interval.
    pub fn take_interval(&self) -> Interval {
        self.interval
            .lock()
            .map(|mut i| std::mem::take(&mut *i))
            .unwrap_or_default()
    }

    pub fn snapshot(&self) -> Snapshot {
        let Ok(inner) = self.inner.lock() else {
            return Snapshot {
                latency: Vec::new(),
                outcomes: Vec::new(),
            };
        };
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency = inner
            .histograms
            .iter()
            .map(|((provider, model, phase), h)| Series {
                provider: provider.clone(),
                model: model.clone(),
                phase,
                count: h.len(),
                mean: (h.mean()).round() / 1000.0,
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            })
            .collect();
        let outcomes = inner
            .outcomes
            .iter()
            .map(|((provider, model, outcome), count)| Outcome {
                provider: provider.clone(),
                model: model.clone(),
                outcome: outcome.clone(),
                count: *count,
            })
            .collect();
        Snapshot { latency, outcomes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_per_provider_model_and_phase() {
        let metrics = Metrics::default();
        for i in 1..=100 {
            let b = Breakdown {
                auth: 0.5,
                total: i as f64,
                ttft: Some(10.0),
                ..Default::default()
            };
            metrics.record("ollama", "llama3.2", &b, "ok");
        }
        metrics.record(
            "sim",
            "sim",
            &Breakdown {
                total: 5.0,
                ..Default::default()
            },
            "provider_timeout",
        );
        let snap = metrics.snapshot();
        let total = snap
            .latency
            .iter()
            .find(|s| s.provider == "ollama" && s.phase == "total");
        let Some(total) = total else {
            panic!("no total series: {snap:?}")
        };
        // HDR reports values to 3 significant figures (within 0.1 %).
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert_eq!(total.count, 100);
        assert!(
            close(total.p50, 50.0) && close(total.p99, 99.0) && close(total.max, 100.0),
            "{total:?}"
        );
        assert!(
            snap.latency
                .iter()
                .all(|s| s.phase != "llm" || s.provider != "ollama"),
            "absent phases are not recorded"
        );
        assert!(snap
            .outcomes
            .iter()
            .any(|o| o.outcome == "provider_timeout" && o.count == 1));
    }
}
