//! In-process chat metrics: one recording path that feeds the HDR histograms
//! (exact percentiles for Mission Control and `/api/monitor/metrics`) and the
//! Prometheus exporter (`/metrics`), from every chat request's breakdown, and
//! the recent requests Mission Control's verdict reads ([`Recent`]).
//!
//! Bounded by construction. A model name comes from the client, so it only
//! becomes a label value when the router knows it (an exact routing rule) or a
//! provider answered it successfully; every other name is counted under
//! [`OTHER`]. The number of (provider, model) series is capped
//! (`CALOS_METRICS_MAX_SERIES`); past the cap new names go to `other` too. Each
//! series keeps its histograms at two significant figures (1 %), which keeps a
//! series near 100 KiB however long calos runs.
//!
//! Cheap on the hot path: series are found in a sharded map by `&str` (no
//! allocation once a series exists), each series has its own lock, and the
//! dashboard's one-second interval is striped across a few locks by thread,
//! so no lock is shared by every request.

use crate::observability::exporter::{ChatSeries, Exporter};
use crate::observability::recent::{Recent, Sample};
use crate::observability::timing::{Breakdown, CacheStatus};
use dashmap::DashMap;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The phases kept as histograms, by their breakdown names.
pub const PHASES: [&str; 8] = [
    "auth",
    "database",
    "queue",
    "cache",
    "upstreamConnect",
    "ttft",
    "llm",
    "total",
];

/// The label value for every model name that is not worth a series of its own.
pub const OTHER: &str = "other";

/// Default cap on (provider, model) series.
pub const DEFAULT_MAX_SERIES: usize = 100;

/// Largest recordable value: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// Stripes of the one-second interval: enough that the runtime's worker
/// threads rarely meet on one lock.
const STRIPES: usize = 8;

fn phase_values(b: &Breakdown) -> [Option<f64>; 8] {
    [
        Some(b.auth),
        Some(b.database),
        Some(b.queue),
        Some(b.cache),
        b.upstream_connect,
        b.ttft,
        b.llm,
        Some(b.total),
    ]
}

fn micros(ms: f64) -> u64 {
    (ms * 1000.0).round().clamp(1.0, MAX_MICROS as f64) as u64
}

/// An empty histogram that grows to the values it sees (so a phase that only
/// ever takes microseconds stays a few KiB).
#[expect(
    clippy::expect_used,
    reason = "2 and 3 significant figures are within hdrhistogram's 0..=5"
)]
fn histogram(significant_figures: u8) -> Histogram<u64> {
    Histogram::new(significant_figures).expect("valid precision")
}

/// One (provider, model) pair: its cumulative histograms, its outcome counts,
/// and the exporter's handles for the same series.
struct Series {
    provider: Arc<str>,
    model: Arc<str>,
    exported: ChatSeries,
    state: Mutex<SeriesState>,
}

struct SeriesState {
    phases: [Histogram<u64>; 8],
    /// Outcome codes are `'static` (`ok` or an error code); few per series.
    outcomes: Vec<(&'static str, u64, Counter)>,
}

impl Series {
    fn new(provider: &str, model: &str, exporter: &Exporter) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            exported: exporter.chat_series(provider, model),
            state: Mutex::new(SeriesState {
                phases: std::array::from_fn(|_| histogram(2)),
                outcomes: Vec::new(),
            }),
        }
    }

    fn record(&self, values: &[Option<f64>; 8], outcome: &'static str) {
        self.exported.observe(values);
        let mut state = self.state.lock();
        for (histogram, value) in state.phases.iter_mut().zip(values) {
            if let Some(ms) = value {
                // Values are clamped into the histogram's range.
                let _ = histogram.record(micros(*ms));
            }
        }
        match state.outcomes.iter_mut().find(|(o, ..)| *o == outcome) {
            Some((_, count, counter)) => {
                *count += 1;
                counter.inc();
            }
            None => {
                let counter = self.exported.outcome(outcome);
                counter.inc();
                state.outcomes.push((outcome, 1, counter));
            }
        }
    }
}

/// What happened since the dashboard's last one-second sample: counts and
/// per-phase histograms across providers, swapped out by [`Metrics::take_interval`].
#[derive(Default)]
pub struct Interval {
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Tokens spent at providers.
    pub tokens: u64,
    pub by_model: BTreeMap<(Arc<str>, Arc<str>), u64>,
    pub cache_hits: u64,
    pub cache_lookups: u64,
    pub phases: BTreeMap<&'static str, Histogram<u64>>,
}

impl Interval {
    fn record(
        &mut self,
        series: &Series,
        values: &[Option<f64>; 8],
        b: &Breakdown,
        outcome: &'static str,
    ) {
        *self.outcomes.entry(outcome).or_default() += 1;
        match self
            .by_model
            .get_mut(&(series.provider.clone(), series.model.clone()))
        {
            Some(count) => *count += 1,
            None => {
                self.by_model
                    .insert((series.provider.clone(), series.model.clone()), 1);
            }
        }
        match b.cache_status {
            CacheStatus::Hit => {
                self.cache_hits += 1;
                self.cache_lookups += 1;
            }
            // A shared answer was a miss that cost no upstream call.
            CacheStatus::Miss | CacheStatus::Shared => self.cache_lookups += 1,
            CacheStatus::Bypass => {}
        }
        for (phase, value) in PHASES.iter().zip(values) {
            if let Some(ms) = value {
                let histogram = self.phases.entry(phase).or_insert_with(|| histogram(3));
                let _ = histogram.record(micros(*ms));
            }
        }
    }

    fn merge(&mut self, other: Interval) {
        for (outcome, n) in other.outcomes {
            *self.outcomes.entry(outcome).or_default() += n;
        }
        for (key, n) in other.by_model {
            *self.by_model.entry(key).or_default() += n;
        }
        self.cache_hits += other.cache_hits;
        self.cache_lookups += other.cache_lookups;
        self.tokens += other.tokens;
        for (phase, h) in other.phases {
            match self.phases.get_mut(phase) {
                // Both auto-resize at the same precision, so adding succeeds.
                Some(mine) => {
                    let _ = mine.add(&h);
                }
                None => {
                    self.phases.insert(phase, h);
                }
            }
        }
    }
}

struct Inner {
    /// provider → model → series. Providers are few; models are capped.
    series: DashMap<Box<str>, DashMap<Box<str>, Arc<Series>>>,
    count: AtomicUsize,
    max_series: usize,
    intervals: [Mutex<Interval>; STRIPES],
    exporter: Exporter,
    recent: Recent,
}

/// The metrics service. Cheap to clone (one shared handle).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SERIES, Exporter::new())
    }
}

/// One histogram's summary, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesSummary {
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

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Outcome {
    pub provider: String,
    pub model: String,
    pub outcome: String,
    pub count: u64,
}

/// `GET /api/monitor/latency`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub latency: Vec<SeriesSummary>,
    pub outcomes: Vec<Outcome>,
}

thread_local! {
    /// This thread's interval stripe, handed out round-robin.
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl Metrics {
    /// At most `max_series` (provider, model) series besides each provider's
    /// `other`; both sinks (histograms and `exporter`) record every request.
    pub fn new(max_series: usize, exporter: Exporter) -> Self {
        Self {
            inner: Arc::new(Inner {
                series: DashMap::new(),
                count: AtomicUsize::new(0),
                max_series,
                intervals: std::array::from_fn(|_| Mutex::new(Interval::default())),
                exporter,
                recent: Recent::default(),
            }),
        }
    }

    /// The Prometheus side, for `/metrics`, HTTP and process counters.
    pub fn exporter(&self) -> &Exporter {
        &self.inner.exporter
    }

    /// The last 75 minutes of answered requests, for Mission Control's verdict.
    pub fn recent(&self) -> &Recent {
        &self.inner.recent
    }

    /// Records the tokens one chat request spent, in the same (bounded)
    /// series as its timings.
    pub fn record_tokens(
        &self,
        provider: &str,
        model: &str,
        tokens: &crate::usage::record::Tokens,
    ) {
        if tokens.total() == 0 {
            return;
        }
        // A request that spent tokens was answered: it deserves a series.
        let series = self.series_for(provider, model, true);
        series
            .exported
            .observe_tokens(tokens.prompt, tokens.completion);
        let stripe = STRIPE.with(|s| *s);
        self.inner.intervals[stripe].lock().tokens += tokens.total();
    }

    /// Records one chat request. `known`: the router knows this model by name,
    /// so it may have a series of its own even when the request failed.
    pub fn record(
        &self,
        provider: &str,
        model: &str,
        known: bool,
        breakdown: &Breakdown,
        outcome: &'static str,
    ) {
        let deserves_series = known || outcome == "ok";
        let series = self.series_for(provider, model, deserves_series);
        let values = phase_values(breakdown);
        series.record(&values, outcome);
        self.inner.exporter.cache_lookup(breakdown.cache_status);
        let stripe = STRIPE.with(|s| *s);
        self.inner.intervals[stripe]
            .lock()
            .record(&series, &values, breakdown, outcome);
        // The verdict judges the model path, so it reads only answered
        // requests that took it: a cache hit's half a millisecond would pull
        // every median down whenever the cache gets busier (and a verdict of
        // "faster" that is really "more hits"), and a failed request's
        // phases stop wherever it failed. Seen from the server, so no
        // client total: network is 0.
        if outcome == "ok" && !matches!(breakdown.cache_status, CacheStatus::Hit) {
            let sample = Sample {
                components: app::verdict::Components::from_breakdown(breakdown, None),
                model: series.model.clone(),
            };
            self.inner
                .recent
                .record(sample, chrono::Utc::now().timestamp());
        }
    }

    /// The series for this pair: its own when it exists or may be created,
    /// else the provider's `other`.
    fn series_for(&self, provider: &str, model: &str, may_create: bool) -> Arc<Series> {
        if let Some(models) = self.inner.series.get(provider) {
            if let Some(series) = models.get(model) {
                return series.clone();
            }
        }
        let label = if may_create && self.reserve() {
            model
        } else {
            OTHER
        };
        let models = self
            .inner
            .series
            .entry(provider.into())
            .or_default()
            .downgrade();
        let entry = models.entry(label.into());
        let existed = matches!(entry, dashmap::mapref::entry::Entry::Occupied(_));
        let series = entry
            .or_insert_with(|| Arc::new(Series::new(provider, label, &self.inner.exporter)))
            .clone();
        if existed && label == model {
            // Another request created it first: give the reservation back.
            self.inner.count.fetch_sub(1, Ordering::Relaxed);
        }
        series
    }

    /// Takes one slot under the series cap, if any is left.
    fn reserve(&self) -> bool {
        self.inner
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.inner.max_series).then_some(n + 1)
            })
            .is_ok()
    }

    /// How many (provider, model) series exist, `other` included.
    pub fn series_count(&self) -> usize {
        self.inner.series.iter().map(|models| models.len()).sum()
    }

    /// Everything recorded since the last call, and a fresh interval.
    pub fn take_interval(&self) -> Interval {
        let mut all = Interval::default();
        for stripe in &self.inner.intervals {
            let taken = std::mem::take(&mut *stripe.lock());
            all.merge(taken);
        }
        all
    }

    pub fn snapshot(&self) -> Snapshot {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let mut latency = Vec::new();
        let mut outcomes = Vec::new();
        for models in self.inner.series.iter() {
            for series in models.iter() {
                let state = series.state.lock();
                for (phase, h) in PHASES.iter().zip(&state.phases) {
                    if h.is_empty() {
                        continue;
                    }
                    latency.push(SeriesSummary {
                        provider: series.provider.to_string(),
                        model: series.model.to_string(),
                        phase,
                        count: h.len(),
                        mean: h.mean().round() / 1000.0,
                        p50: ms(h.value_at_quantile(0.50)),
                        p90: ms(h.value_at_quantile(0.90)),
                        p99: ms(h.value_at_quantile(0.99)),
                        max: ms(h.max()),
                    });
                }
                outcomes.extend(state.outcomes.iter().map(|(outcome, count, _)| Outcome {
                    provider: series.provider.to_string(),
                    model: series.model.to_string(),
                    outcome: outcome.to_string(),
                    count: *count,
                }));
            }
        }
        latency.sort_by(|a, b| {
            (&a.provider, &a.model, a.phase).cmp(&(&b.provider, &b.model, b.phase))
        });
        outcomes.sort_by(|a, b| {
            (&a.provider, &a.model, &a.outcome).cmp(&(&b.provider, &b.model, &b.outcome))
        });
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
            metrics.record("ollama", "llama3.2", false, &b, "ok");
        }
        metrics.record(
            "sim",
            "sim",
            true,
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
        // Two significant figures: within 1 %.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
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
            .any(|o| o.outcome == "provider_timeout" && o.model == "sim" && o.count == 1));
    }

    #[test]
    fn failed_unknown_models_share_one_series_named_other() {
        let metrics = Metrics::default();
        let b = Breakdown {
            total: 3.0,
            ..Default::default()
        };
        for i in 0..1_000 {
            metrics.record(
                "ollama",
                &format!("no-such-model-{i}"),
                false,
                &b,
                "model_not_found",
            );
        }
        assert_eq!(metrics.series_count(), 1);
        let snap = metrics.snapshot();
        assert!(
            snap.outcomes.iter().all(|o| o.model == OTHER),
            "{:?}",
            snap.outcomes
        );
        assert_eq!(snap.outcomes.first().map(|o| o.count), Some(1_000));
        // A known model keeps its own series even when it fails.
        metrics.record("ollama", "llama3.2", true, &b, "provider_timeout");
        assert_eq!(metrics.series_count(), 2);
    }

    #[test]
    fn the_series_cap_holds_even_for_models_that_answer() {
        let metrics = Metrics::new(3, Exporter::new());
        let b = Breakdown::default();
        for i in 0..50 {
            metrics.record("compat", &format!("model-{i}"), false, &b, "ok");
        }
        // Three named series, then `other`.
        assert_eq!(metrics.series_count(), 4);
        let text = metrics.exporter().render();
        let models: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.split("model=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(models.len(), 4, "{models:?}");
        assert!(models.contains(OTHER));
    }

    #[test]
    fn only_answered_requests_that_reached_the_model_are_kept_for_the_verdict() {
        let metrics = Metrics::default();
        let answered = Breakdown {
            database: 3.0,
            total: 40.0,
            cache_status: CacheStatus::Miss,
            ..Default::default()
        };
        let hit = Breakdown {
            cache_status: CacheStatus::Hit,
            ..answered.clone()
        };
        metrics.record("sim", "sim", true, &answered, "ok");
        metrics.record("sim", "sim", true, &hit, "ok");
        metrics.record("sim", "sim", true, &answered, "provider_timeout");
        let now = chrono::Utc::now().timestamp();
        let kept = metrics.recent().between(i64::MIN, i64::MAX);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].components.database, 3.0);
        assert_eq!((kept[0].components.network, &*kept[0].model), (0.0, "sim"));
        assert!(!metrics
            .recent()
            .between(crate::observability::recent::minute_of(now) - 1, i64::MAX)
            .is_empty());
    }

    #[test]
    fn the_interval_sums_every_stripe_and_starts_afresh() {
        let metrics = Metrics::default();
        let b = Breakdown {
            total: 2.0,
            cache_status: CacheStatus::Hit,
            ..Default::default()
        };
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        metrics.record("sim", "sim", true, &b, "ok");
                    }
                });
            }
        });
        let interval = metrics.take_interval();
        assert_eq!(interval.outcomes.get("ok"), Some(&100));
        assert_eq!((interval.cache_hits, interval.cache_lookups), (100, 100));
        assert_eq!(interval.phases.get("total").map(|h| h.len()), Some(100));
        assert!(metrics.take_interval().outcomes.is_empty());
    }
}
