//! One deployment: a provider at an address serving a model, with its own
//! queue, weight, circuit breaker and recent figures. A `[[deployment]]` in
//! the config file makes one; each provider configured by environment is one
//! too (implicit, serving whatever the routing rules send it).

use super::breaker::{Admission, Breaker, BreakerView};
use super::error::ProviderError;
use super::queue::ProviderQueue;
use super::Provider;
use crate::observability::exporter::AttemptCounters;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// First-token times kept for the median the dashboard shows.
const TTFT_SAMPLES: usize = 64;

#[derive(Debug)]
pub struct Deployment {
    /// Unique; labels metrics and names the deployment in replies and logs.
    pub name: String,
    /// The model clients ask for (`None`: an implicit provider deployment).
    pub model: Option<String>,
    /// The model name sent upstream, when it differs from the one asked for.
    pub upstream_model: Option<String>,
    pub provider: Provider,
    pub queue: ProviderQueue,
    pub weight: u32,
    pub breaker: Breaker,
    in_flight: AtomicUsize,
    /// Background health probes failed in a row.
    probe_failures: AtomicU32,
    ttfts: Mutex<VecDeque<f64>>,
    /// Where its attempts are counted for `/metrics`, once the service is built.
    counters: OnceLock<AttemptCounters>,
}

/// What the dashboard and `/metrics` show of a deployment.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    pub name: String,
    pub model: Option<String>,
    pub provider: String,
    pub address: String,
    pub weight: u32,
    pub in_flight: usize,
    pub breaker: BreakerView,
    pub p50_ttft_ms: Option<f64>,
}

impl Deployment {
    pub fn new(
        name: String,
        model: Option<String>,
        upstream_model: Option<String>,
        provider: Provider,
        queue: ProviderQueue,
        weight: u32,
        breaker: Breaker,
    ) -> Self {
        Self {
            name,
            model,
            upstream_model,
            provider,
            queue,
            weight: weight.max(1),
            breaker,
            in_flight: AtomicUsize::new(0),
            probe_failures: AtomicU32::new(0),
            ttfts: Mutex::new(VecDeque::with_capacity(TTFT_SAMPLES)),
            counters: OnceLock::new(),
        }
    }

    /// Counts its attempts in these from now on.
    pub fn count_in(&self, counters: AttemptCounters) {
        let _ = self.counters.set(counters);
    }

    /// Requests sent to it and not yet finished (queued ones included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes a place for one request, if the breaker lets it through (see
    /// [`Ticket`]); otherwise says until when it is skipped.
    pub(crate) fn ticket(self: &Arc<Self>, now: Instant) -> Result<Ticket, Instant> {
        let probe = match self.breaker.admit(now) {
            Admission::Pass => false,
            Admission::Probe => true,
            Admission::Skip { until } => return Err(until),
        };
        Ok(self.ticket_unchecked(probe))
    }

    /// A place for a retry the breaker is not asked about: the same request
    /// trying its last deployment again after waiting as it was told.
    pub(crate) fn ticket_unchecked(self: &Arc<Self>, probe: bool) -> Ticket {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ticket {
            deployment: self.clone(),
            probe,
            settled: false,
        }
    }

    /// A background health probe's verdict: `reachable` false when it could
    /// not connect or got no answer in time. Two such in a row open the
    /// breaker of a `[[deployment]]` (one slow probe is not an outage, and a
    /// provider set by environment is judged by its requests alone: it is
    /// often the only one, and its own error names the fix).
    pub fn probed(&self, reachable: bool, now: Instant) {
        if reachable {
            self.probe_failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= 2 && self.model.is_some() {
            self.breaker.trip(now, "health probe failed twice in a row");
        }
    }

    fn record_ttft(&self, ttft: Duration) {
        let mut samples = self.ttfts.lock();
        if samples.len() == TTFT_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(ttft.as_secs_f64() * 1000.0);
    }

    pub fn view(&self, now: Instant) -> DeploymentView {
        let p50_ttft_ms = {
            let mut sorted: Vec<f64> = self.ttfts.lock().iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            sorted.get(sorted.len() / 2).copied()
        };
        DeploymentView {
            name: self.name.clone(),
            model: self.model.clone(),
            provider: self.provider.name().to_string(),
            address: self.provider.address(),
            weight: self.weight,
            in_flight: self.in_flight(),
            breaker: self.breaker.view(now),
            p50_ttft_ms,
        }
    }
}

/// Whether a failure is the request's own doing (a 400, 413 or 422: the
/// upstream refused what was asked), so that no other deployment would
/// answer it differently. Everything else moves the request on.
pub fn request_at_fault(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Status {
            status: 400 | 413 | 422,
            ..
        }
    )
}

/// Whether a failure says the deployment is unwell, and so counts against
/// its breaker: not the request's fault, not a model it lacks (a provider
/// serving many models must not be shut for one missing), and not a reply
/// that ran past the request's own total time limit.
pub fn counts_against(error: &ProviderError) -> bool {
    !request_at_fault(error)
        && !matches!(
            error,
            ProviderError::ModelNotFound { .. }
                | ProviderError::Timeout {
                    phase: "the whole reply",
                    ..
                }
        )
}

/// One request's place at a deployment: counted in its in-flight figure
/// until dropped, and, when it is the breaker's probe, handing the probe on
/// if it ends with no verdict (the client left).
#[derive(Debug)]
pub struct Ticket {
    deployment: Arc<Deployment>,
    probe: bool,
    settled: bool,
}

impl Ticket {
    pub fn deployment(&self) -> &Arc<Deployment> {
        &self.deployment
    }

    /// The first token arrived (or the reply ended without one, cleanly).
    pub fn succeeded(&mut self, ttft: Option<Duration>) {
        self.settled = true;
        self.deployment
            .breaker
            .succeeded(Instant::now(), self.probe);
        if let Some(c) = self.deployment.counters.get() {
            c.ok.inc();
        }
        if let Some(ttft) = ttft {
            self.deployment.record_ttft(ttft);
        }
    }

    /// The attempt failed, before or after its first token.
    pub fn failed(&mut self, error: &ProviderError) {
        if let Some(c) = self.deployment.counters.get() {
            c.failed.inc();
        }
        if counts_against(error) {
            self.settled = true;
            let retry_after = match error {
                ProviderError::Status {
                    status: 429 | 503, ..
                } => error.retry_after().map(Duration::from_secs),
                _ => None,
            };
            self.deployment
                .breaker
                .failed(Instant::now(), retry_after, error, self.probe);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.deployment.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.probe && !self.settled {
            self.deployment.breaker.release_probe();
        }
    }
}
