//! Health of everything calos depends on, checked every few seconds: the
//! server itself, the database, each configured provider, each managed
//! process with a health URL, and any `[[target]]` (HTTP or TCP). Each keeps a
//! status history of per-minute rollups for 24 hours, like Uptime Kuma.

use app::wire::{ComponentHealth, ComponentKind, HealthRollup, HealthStatus};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Rollups kept: one per minute for a day.
pub const ROLLUPS: usize = 24 * 60;
/// One check's time limit.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: HealthStatus,
    pub latency: Duration,
    pub message: String,
}

struct Tracked {
    component: ComponentHealth,
    rollups: VecDeque<HealthRollup>,
}

/// The health of every component, and its history.
#[derive(Default)]
pub struct Board {
    tracked: Vec<Tracked>,
}

impl Board {
    /// Records a check at `now_secs` (Unix seconds); true when the status changed.
    pub fn record(&mut self, name: &str, kind: ComponentKind, check: Check, now_secs: i64) -> bool {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let index = match self.tracked.iter().position(|t| t.component.name == name) {
            Some(i) => i,
            None => {
                self.tracked.push(Tracked {
                    component: ComponentHealth {
                        name: name.to_string(),
                        kind,
                        status: check.status,
                        latency_ms: 0.0,
                        message: String::new(),
                        last_change: now.clone(),
                        history: Vec::new(),
                    },
                    rollups: VecDeque::new(),
                });
                self.tracked.len() - 1
            }
        };
        let t = &mut self.tracked[index];
        let changed = t.component.status != check.status;
        if changed {
            t.component.last_change = now;
        }
        let latency_ms = check.latency.as_secs_f64() * 1000.0;
        t.component.status = check.status;
        t.component.latency_ms = latency_ms;
        t.component.message = check.message;
        let minute = now_secs - now_secs.rem_euclid(60);
        match t.rollups.back_mut() {
            Some(r) if r.minute == minute => {
                r.avg_latency_ms =
                    (r.avg_latency_ms * f64::from(r.checks) + latency_ms) / f64::from(r.checks + 1);
                r.checks += 1;
                r.up += u32::from(check.status == HealthStatus::Up);
            }
            _ => {
                if t.rollups.len() == ROLLUPS {
                    t.rollups.pop_front();
                }
                t.rollups.push_back(HealthRollup {
                    minute,
                    checks: 1,
                    up: u32::from(check.status == HealthStatus::Up),
                    avg_latency_ms: latency_ms,
                });
            }
        }
        changed
    }

    /// Every component; `full` includes the whole history, else the current minute.
    pub fn components(&self, full: bool) -> Vec<ComponentHealth> {
        self.tracked
            .iter()
            .map(|t| {
                let mut c = t.component.clone();
                c.history = if full {
                    t.rollups.iter().copied().collect()
                } else {
                    t.rollups.back().copied().into_iter().collect()
                };
                c
            })
            .collect()
    }
}

/// `GET url` answered 2xx within the time limit.
pub async fn http(client: &reqwest::Client, url: &str) -> Check {
    let started = Instant::now();
    let result = client.get(url).timeout(CHECK_TIMEOUT).send().await;
    let latency = started.elapsed();
    match result {
        Ok(r) if r.status().is_success() => Check {
            status: HealthStatus::Up,
            latency,
            message: format!("HTTP {}", r.status().as_u16()),
        },
        Ok(r) => Check {
            status: HealthStatus::Down,
            latency,
            message: format!("HTTP {}", r.status().as_u16()),
        },
        Err(e) => Check {
            status: HealthStatus::Down,
            latency,
            message: e.to_string(),
        },
    }
}

/// Runs `probe` within the time limit and times it: up when it succeeds
/// (`describe` words the success), down with the error or the timeout.
pub async fn timed<T, E: std::fmt::Display>(
    probe: impl std::future::Future<Output = Result<T, E>>,
    describe: impl FnOnce(&T) -> String,
) -> Check {
    let started = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    verdict(started, &result, describe)
}

/// The check a probe's outcome makes: `result` is what it answered within
/// the time limit (`Err`: no answer in time), `started` when it began.
pub fn verdict<T, E: std::fmt::Display>(
    started: Instant,
    result: &Result<Result<T, E>, tokio::time::error::Elapsed>,
    describe: impl FnOnce(&T) -> String,
) -> Check {
    let latency = started.elapsed();
    let (status, message) = match result {
        Ok(Ok(value)) => (HealthStatus::Up, describe(value)),
        Ok(Err(e)) => (HealthStatus::Down, e.to_string()),
        Err(_) => (
            HealthStatus::Down,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        ),
    };
    Check {
        status,
        latency,
        message,
    }
}

/// `tcp://host:port` accepts a connection within the time limit.
pub async fn tcp(address: &str) -> Check {
    timed(tokio::net::TcpStream::connect(address), |_| {
        "accepting connections".into()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: HealthStatus, ms: u64) -> Check {
        Check {
            status,
            latency: Duration::from_millis(ms),
            message: String::new(),
        }
    }

    #[test]
    fn checks_roll_up_per_minute_and_changes_are_noticed() {
        let mut board = Board::default();
        let t0 = 1_800_000_000; // a whole minute
        assert!(!board.record(
            "db",
            ComponentKind::Database,
            check(HealthStatus::Up, 10),
            t0
        ));
        assert!(!board.record(
            "db",
            ComponentKind::Database,
            check(HealthStatus::Up, 20),
            t0 + 30
        ));
        assert!(board.record(
            "db",
            ComponentKind::Database,
            check(HealthStatus::Down, 30),
            t0 + 61
        ));
        let c = &board.components(true)[0];
        assert_eq!(c.status, HealthStatus::Down);
        assert_eq!(c.history.len(), 2);
        assert_eq!((c.history[0].checks, c.history[0].up), (2, 2));
        assert!((c.history[0].avg_latency_ms - 15.0).abs() < 1e-9);
        assert_eq!((c.history[1].checks, c.history[1].up), (1, 0));
        assert_eq!(board.components(false)[0].history.len(), 1);
    }

    #[test]
    fn a_day_of_minutes_is_kept() {
        let mut board = Board::default();
        for m in 0..(ROLLUPS as i64 + 10) {
            board.record(
                "x",
                ComponentKind::Target,
                check(HealthStatus::Up, 1),
                m * 60,
            );
        }
        assert_eq!(board.components(true)[0].history.len(), ROLLUPS);
    }
}
