//! A circuit breaker for one deployment, so a dead or overloaded upstream
//! costs nothing: it opens after `consecutive` failures in a row, or when the
//! failure rate over the recent window passes `failure_rate`, or for exactly
//! as long as the upstream's `Retry-After` asks. While open the deployment is
//! skipped without an attempt. Once the cooldown has passed, one request is let
//! through as a probe (half-open): its success closes the breaker, its failure
//! opens it again.
//!
//! Time is passed in, so the state machine is tested without sleeping.

use super::error::ProviderError;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Outcomes remembered for the failure rate, at most (older ones fall out of
/// the window anyway; this bounds memory under any load).
const MAX_OUTCOMES: usize = 512;

/// A `Retry-After` longer than this is cut to it: an upstream cannot take a
/// deployment out for an hour by a typo.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Failures in a row that open it.
    pub consecutive: u32,
    /// The share of failed requests in the window that opens it (0–1].
    pub failure_rate: f64,
    /// Requests the window must hold before the rate counts.
    pub min_requests: u32,
    /// How far back the failure rate looks.
    pub window: Duration,
    /// How long it stays open before a probe is let through.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive: 5,
            failure_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(5),
        }
    }
}

/// The three states, as Mission Control and `/metrics` show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

/// What the breaker lets a request do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Pass,
    /// The one request let through to test a deployment that was open.
    Probe,
    /// Open (or a probe is already out): skip this deployment until then.
    Skip { until: Instant },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    consecutive: u32,
    outcomes: VecDeque<(Instant, bool)>,
    /// Why it last opened, for the dashboard and the error a client gets.
    why: String,
    /// The failure that opened it, told to a client that has nowhere else
    /// to go (it names the fix, such as starting Ollama).
    last_error: Option<ProviderError>,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

/// What the dashboard shows of a breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerView {
    pub state: BreakerState,
    /// Until it may be probed, while open.
    pub open_for: Option<Duration>,
    /// Failed share of the requests in the window (0 with none).
    pub error_rate: f64,
    pub why: String,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                consecutive: 0,
                outcomes: VecDeque::new(),
                why: String::new(),
                last_error: None,
            }),
        }
    }

    /// Whether a request could be sent now, without taking the probe: used
    /// to choose among deployments before committing to one.
    pub fn available(&self, now: Instant) -> bool {
        match self.inner.lock().phase {
            Phase::Closed | Phase::HalfOpen { probing: false } => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { probing: true } => false,
        }
    }

    /// Commits a request to this deployment: passes, takes the probe, or skips.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut inner = self.inner.lock();
        match inner.phase {
            Phase::Closed => Admission::Pass,
            Phase::Open { until } if now < until => Admission::Skip { until },
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                inner.phase = Phase::HalfOpen { probing: true };
                Admission::Probe
            }
            Phase::HalfOpen { probing: true } => Admission::Skip { until: now },
        }
    }

    /// The earliest time it may take a request again, if it is skipping now.
    pub fn skipping_until(&self, now: Instant) -> Option<Instant> {
        match self.inner.lock().phase {
            Phase::Open { until } if now < until => Some(until),
            Phase::HalfOpen { probing: true } => Some(now),
            _ => None,
        }
    }

    /// A request succeeded. Only the probe closes a breaker that is not
    /// closed: a request already under way when it opened says nothing of
    /// what made it open (and must not cut a `Retry-After` short).
    pub fn succeeded(&self, now: Instant, probe: bool) {
        let mut inner = self.inner.lock();
        self.remember(&mut inner, now, true);
        match inner.phase {
            Phase::Closed => inner.consecutive = 0,
            Phase::HalfOpen { .. } if probe => {
                inner.phase = Phase::Closed;
                inner.consecutive = 0;
                inner.outcomes.clear();
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => {}
        }
    }

    /// Counts a failure; `retry_after` (a 429 or 503 that said how long)
    /// opens the breaker for exactly that long. While it is open or being
    /// probed, only the probe's failure (or a longer `Retry-After`) changes
    /// it: the failures of requests already under way when it opened are
    /// counted, not acted on.
    pub fn failed(
        &self,
        now: Instant,
        retry_after: Option<Duration>,
        error: &ProviderError,
        probe: bool,
    ) {
        let why = error.code();
        let mut inner = self.inner.lock();
        inner.consecutive = inner.consecutive.saturating_add(1);
        self.remember(&mut inner, now, false);
        let stale = match inner.phase {
            Phase::Closed => false,
            Phase::HalfOpen { .. } => !probe,
            Phase::Open { .. } => true,
        };
        if stale && retry_after.is_none() {
            return;
        }
        let open_for = if let Some(wait) = retry_after {
            Some((
                wait.min(MAX_RETRY_AFTER),
                format!("{why}; the upstream asked for {} s", wait.as_secs()),
            ))
        } else if matches!(inner.phase, Phase::HalfOpen { .. }) {
            Some((self.settings.cooldown, format!("{why}; the probe failed")))
        } else if inner.consecutive >= self.settings.consecutive {
            Some((
                self.settings.cooldown,
                format!("{why}; {} failures in a row", inner.consecutive),
            ))
        } else {
            let (total, failed) = Self::tally(&inner);
            let over_rate = total >= self.settings.min_requests as usize
                && failed as f64 / total as f64 >= self.settings.failure_rate;
            over_rate.then(|| {
                (
                    self.settings.cooldown,
                    format!("{why}; {failed} of the last {total} requests failed"),
                )
            })
        };
        if let Some((wait, reason)) = open_for {
            // A longer wait than the one already set wins; a shorter one
            // does not end it early.
            let until = now + wait;
            match inner.phase {
                Phase::Open { until: later } if later >= until => return,
                Phase::HalfOpen { probing: true } if !probe => return,
                _ => inner.phase = Phase::Open { until },
            }
            inner.why = reason;
            inner.last_error = Some(error.clone());
        }
    }

    /// The failure that opened it, while it is skipping requests.
    pub fn last_error(&self, now: Instant) -> Option<ProviderError> {
        let inner = self.inner.lock();
        match inner.phase {
            Phase::Open { until } if now < until => inner.last_error.clone(),
            Phase::HalfOpen { probing: true } => inner.last_error.clone(),
            _ => None,
        }
    }

    /// The probe ended with no verdict (the client hung up, its queue was
    /// full): the next request may probe instead.
    pub fn release_probe(&self) {
        let mut inner = self.inner.lock();
        if inner.phase == (Phase::HalfOpen { probing: true }) {
            inner.phase = Phase::HalfOpen { probing: false };
        }
    }

    /// Opens it from outside (a failed health probe), unless it is open already.
    pub fn trip(&self, now: Instant, why: &str) {
        let mut inner = self.inner.lock();
        if inner.phase == Phase::Closed {
            inner.phase = Phase::Open {
                until: now + self.settings.cooldown,
            };
            inner.why = why.to_string();
            inner.last_error = None;
        }
    }

    pub fn view(&self, now: Instant) -> BreakerView {
        let mut inner = self.inner.lock();
        Self::forget_old(&mut inner, now, self.settings.window);
        let (total, failed) = Self::tally(&inner);
        let (state, open_for) = match inner.phase {
            Phase::Closed => (BreakerState::Closed, None),
            Phase::Open { until } if now < until => (BreakerState::Open, Some(until - now)),
            Phase::Open { .. } | Phase::HalfOpen { .. } => (BreakerState::HalfOpen, None),
        };
        BreakerView {
            state,
            open_for,
            error_rate: if total == 0 {
                0.0
            } else {
                failed as f64 / total as f64
            },
            why: if state == BreakerState::Closed {
                String::new()
            } else {
                inner.why.clone()
            },
        }
    }

    fn remember(&self, inner: &mut Inner, now: Instant, ok: bool) {
        Self::forget_old(inner, now, self.settings.window);
        if inner.outcomes.len() == MAX_OUTCOMES {
            inner.outcomes.pop_front();
        }
        inner.outcomes.push_back((now, ok));
    }

    fn forget_old(inner: &mut Inner, now: Instant, window: Duration) {
        while let Some(&(at, _)) = inner.outcomes.front() {
            if now.saturating_duration_since(at) <= window {
                break;
            }
            inner.outcomes.pop_front();
        }
    }

    fn tally(inner: &Inner) -> (usize, usize) {
        let failed = inner.outcomes.iter().filter(|(_, ok)| !ok).count();
        (inner.outcomes.len(), failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> ProviderError {
        ProviderError::Unreachable {
            provider: "ollama".into(),
            address: "http://127.0.0.1:1".into(),
            detail: "connection refused".into(),
            hint: "start it".into(),
        }
    }

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            consecutive: 3,
            failure_rate: 0.5,
            min_requests: 6,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        })
    }

    #[test]
    fn consecutive_failures_open_it_and_the_cooldown_lets_one_probe_through() {
        let (b, t0) = (breaker(), Instant::now());
        for _ in 0..2 {
            b.failed(t0, None, &down(), false);
        }
        assert_eq!(b.admit(t0), Admission::Pass, "two failures are not three");
        b.failed(t0, None, &down(), false);
        let until = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(t0), Admission::Skip { until });
        assert!(!b.available(t0 + Duration::from_secs(4)));
        let later = t0 + Duration::from_secs(5);
        assert!(b.available(later));
        assert_eq!(b.admit(later), Admission::Probe);
        assert_eq!(
            b.admit(later),
            Admission::Skip { until: later },
            "one probe at a time"
        );
        assert_eq!(b.view(later).state, BreakerState::HalfOpen);
        b.succeeded(later, true);
        assert_eq!(b.admit(later), Admission::Pass);
        assert_eq!(b.view(later).state, BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_cooldown() {
        let (b, t0) = (breaker(), Instant::now());
        b.trip(t0, "health probe failed");
        let later = t0 + Duration::from_secs(6);
        assert_eq!(b.admit(later), Admission::Probe);
        b.failed(later, None, &down(), true);
        assert_eq!(
            b.admit(later),
            Admission::Skip {
                until: later + Duration::from_secs(5)
            }
        );
        assert!(b.view(later).why.contains("probe failed"));
    }

    #[test]
    fn a_probe_that_ends_without_a_verdict_hands_the_probe_on() {
        let (b, t0) = (breaker(), Instant::now());
        b.trip(t0, "x");
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(later), Admission::Probe);
        b.release_probe();
        assert_eq!(b.admit(later), Admission::Probe);
    }

    #[test]
    fn retry_after_opens_it_for_exactly_that_long() {
        let (b, t0) = (breaker(), Instant::now());
        b.failed(t0, Some(Duration::from_secs(2)), &down(), false);
        assert!(!b.available(t0 + Duration::from_millis(1999)));
        assert!(b.available(t0 + Duration::from_secs(2)));
        b.failed(t0, Some(Duration::from_secs(3600)), &down(), false);
        assert_eq!(b.skipping_until(t0), Some(t0 + MAX_RETRY_AFTER));
    }

    #[test]
    fn the_failure_rate_opens_it_only_with_enough_requests_in_the_window() {
        let (b, t0) = (breaker(), Instant::now());
        // ok, fail, ok, fail, ok: never three in a row, 2 of 5 < min requests.
        for (i, ok) in [true, false, true, false, true].into_iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64);
            if ok {
                b.succeeded(at, false)
            } else {
                b.failed(at, None, &down(), false)
            }
        }
        assert_eq!(b.admit(t0), Admission::Pass);
        b.failed(t0 + Duration::from_millis(6), None, &down(), false);
        assert!(
            matches!(b.admit(t0), Admission::Skip { .. }),
            "3 of 6 failed: {:?}",
            b.view(t0)
        );
        // Outcomes older than the window no longer count.
        let (b, t0) = (breaker(), Instant::now());
        for i in 0..5 {
            b.failed(t0, None, &down(), false);
            b.succeeded(t0 + Duration::from_millis(i), false);
            b.succeeded(t0 + Duration::from_millis(i), false);
        }
        assert_eq!(b.admit(t0), Admission::Pass, "1 in 3 failed");
        let much_later = t0 + Duration::from_secs(60);
        b.failed(much_later, None, &down(), false);
        assert_eq!(b.admit(much_later), Admission::Pass);
        assert!(b.view(much_later).error_rate > 0.99);
    }

    #[test]
    fn requests_under_way_when_it_opened_neither_close_it_nor_push_it_out() {
        let (b, t0) = (breaker(), Instant::now());
        b.failed(t0, Some(Duration::from_secs(60)), &down(), false);
        let until = t0 + Duration::from_secs(60);
        b.succeeded(t0 + Duration::from_secs(1), false);
        assert_eq!(
            b.skipping_until(t0 + Duration::from_secs(1)),
            Some(until),
            "a late success does not close it"
        );
        b.failed(t0 + Duration::from_secs(2), None, &down(), false);
        assert_eq!(
            b.skipping_until(t0 + Duration::from_secs(2)),
            Some(until),
            "a late failure does not move it"
        );
        // Half-open: a late failure is not the probe's.
        let (b, t0) = (breaker(), Instant::now());
        b.trip(t0, "x");
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(later), Admission::Probe);
        b.failed(later, None, &down(), false);
        assert_eq!(b.view(later).state, BreakerState::HalfOpen);
        b.succeeded(later, true);
        assert_eq!(b.view(later).state, BreakerState::Closed);
    }

    #[test]
    fn memory_is_bounded_however_many_requests_arrive() {
        let (b, t0) = (breaker(), Instant::now());
        for _ in 0..10 * MAX_OUTCOMES {
            b.succeeded(t0, false);
        }
        assert_eq!(b.inner.lock().outcomes.len(), MAX_OUTCOMES);
    }
}
