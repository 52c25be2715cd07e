//! The last hour and a quarter of chat requests, as the verdict reads them:
//! each answered request's [`Components`] and model, kept per minute, for
//! Mission Control's "what changed" (the last 15 minutes against the hour
//! before, `ops::monitor::verdict`).
//!
//! Bounded by construction: at most [`KEEP_MINUTES`] minutes, and at most
//! [`PER_MINUTE`] requests in each, drawn uniformly from however many the
//! minute had ([`Reservoir`]), so a busy minute costs what a quiet one does
//! and the verdict's rank tests stay cheap. Model names are the metrics'
//! series labels, already bounded (`observability::metrics`).
//!
//! Times are passed in (Unix seconds), so tests can move the clock.

use crate::observability::reservoir::Reservoir;
use app::verdict::Components;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// Minutes kept: the dashboard's 15-minute window and the hour before it.
pub const KEEP_MINUTES: i64 = 75;
/// Requests kept per minute: enough for a rank test to see a few
/// milliseconds' shift, few enough that comparing 75 minutes takes little.
pub const PER_MINUTE: usize = 256;

/// One answered request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub components: Components,
    /// The model's metrics label (`other` past the series cap).
    pub model: Arc<str>,
}

/// One minute's requests.
#[derive(Debug, Clone)]
struct Minute {
    /// Unix time / 60.
    index: i64,
    requests: Reservoir<Sample>,
}

/// The store. Cheap to clone (one shared handle). One short lock per
/// request: a draw and a copy of 100 bytes, far less than the request.
#[derive(Clone, Default)]
pub struct Recent {
    minutes: Arc<Mutex<VecDeque<Minute>>>,
}

/// The minute a Unix time falls in.
pub fn minute_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(60)
}

impl Recent {
    /// Keeps `sample` as a request answered at `now` (Unix seconds), and
    /// forgets minutes older than [`KEEP_MINUTES`].
    pub fn record(&self, sample: Sample, now: i64) {
        let minute = minute_of(now);
        let mut minutes = self.minutes.lock();
        // Requests finish nearly in order, so this is nearly always the
        // newest minute; a late one still goes to its own minute.
        let at = minutes.partition_point(|m| m.index < minute);
        match minutes.get_mut(at) {
            Some(m) if m.index == minute => m.requests.offer(sample),
            _ => minutes.insert(at, Self::minute(minute, sample)),
        }
        let newest = minutes.back().map_or(minute, |m| m.index);
        while minutes
            .front()
            .is_some_and(|m| m.index <= newest - KEEP_MINUTES)
        {
            minutes.pop_front();
        }
    }

    fn minute(index: i64, sample: Sample) -> Minute {
        let mut requests = Reservoir::new(PER_MINUTE);
        requests.offer(sample);
        Minute { index, requests }
    }

    /// The kept requests of minutes `from..to` (minute indices, `to` excluded).
    pub fn between(&self, from: i64, to: i64) -> Vec<Sample> {
        self.minutes
            .lock()
            .iter()
            .filter(|m| (from..to).contains(&m.index))
            .flat_map(|m| m.requests.runs().iter().cloned())
            .collect()
    }

    /// How many requests are held in all: at most
    /// `KEEP_MINUTES × PER_MINUTE`.
    pub fn held(&self) -> usize {
        self.minutes
            .lock()
            .iter()
            .map(|m| m.requests.runs().len())
            .sum()
    }

    /// How many minutes are held.
    pub fn minutes(&self) -> usize {
        self.minutes.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(total: f64) -> Sample {
        Sample {
            components: Components {
                total,
                ..Default::default()
            },
            model: "m".into(),
        }
    }

    #[test]
    fn memory_is_bounded_however_many_requests_come() {
        let recent = Recent::default();
        let start = 1_800_000_000;
        // 100 000 requests over 200 minutes, 500 a minute.
        for i in 0..100_000 {
            recent.record(sample(f64::from(i)), start + i64::from(i) * 60 / 500);
        }
        assert_eq!(recent.minutes(), KEEP_MINUTES as usize);
        assert_eq!(recent.held(), KEEP_MINUTES as usize * PER_MINUTE);
        // And a single busy minute keeps only its share.
        let busy = Recent::default();
        for i in 0..100_000 {
            busy.record(sample(f64::from(i)), start);
        }
        assert_eq!((busy.minutes(), busy.held()), (1, PER_MINUTE));
    }

    #[test]
    fn requests_are_split_by_the_minute_they_finished_in() {
        let recent = Recent::default();
        let t0 = 60 * 30_000_000;
        recent.record(sample(1.0), t0);
        recent.record(sample(2.0), t0 + 59);
        recent.record(sample(3.0), t0 + 60);
        recent.record(sample(4.0), t0 + 125);
        let m = minute_of(t0);
        let totals = |from, to| -> Vec<f64> {
            recent
                .between(from, to)
                .iter()
                .map(|s| s.components.total)
                .collect()
        };
        assert_eq!(totals(m, m + 1), [1.0, 2.0]);
        assert_eq!(totals(m + 1, m + 3), [3.0, 4.0]);
        assert_eq!(totals(m, m + 3).len(), 4);
        // A late arrival for a kept minute goes to that minute.
        recent.record(sample(5.0), t0 + 30);
        assert_eq!(totals(m, m + 1), [1.0, 2.0, 5.0]);
    }

    #[test]
    fn minutes_older_than_the_window_are_forgotten() {
        let recent = Recent::default();
        let t0 = 60 * 30_000_000;
        recent.record(sample(1.0), t0);
        recent.record(sample(2.0), t0 + 60 * (KEEP_MINUTES - 1));
        assert_eq!(recent.held(), 2);
        recent.record(sample(3.0), t0 + 60 * KEEP_MINUTES);
        assert_eq!(recent.held(), 2, "the first minute is 75 minutes old");
        // A request from before everything kept is not kept either.
        recent.record(sample(4.0), t0);
        assert_eq!(recent.held(), 2);
    }
}
