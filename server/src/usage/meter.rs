//! The in-memory fast path of limits: per-minute windows for `rpm` and `tpm`,
//! and each budget's tokens spent this period.
//!
//! Budgets are kept in the database (the ledger's daily rollup): a subject's
//! spent tokens are read from it on first use, then counted here as requests
//! finish, and read again every [`SPENT_REFRESH`] so that several replicas
//! sharing one database converge on one figure. Per-minute windows live only
//! here: a minute is over before a database round trip would pay off.
//!
//! With shared state (`REDIS_URL`) the windows and spend live in Redis
//! instead ([`crate::usage::shared_counts`]), so limits hold across replicas;
//! while Redis is unreachable the failure policy decides: `open` falls back
//! to the in-memory counts here, `closed` refuses limited requests.
//!
//! Known slack, by design: requests admitted at the same moment all see the
//! same room (so a limit can be overshot by the requests in flight), and a
//! budget read from the database misses the rows still waiting in the ledger's
//! batch (at most one flush interval of traffic).

use crate::cluster::{FailurePolicy, SharedState, Unavailable};
use crate::usage::limits::{Budget, Limits, Period};
use crate::usage::shared_counts::SharedCounts;
use crate::usage::store::UsageStore;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Subjects (users and keys) with a window or a budget remembered at most:
/// about 100 bytes each.
const MAX_SUBJECTS: u64 = 200_000;
/// A window idle for two minutes has nothing left to say.
const WINDOW_IDLE: Duration = Duration::from_secs(120);
/// How long a budget's spent figure is trusted before it is read again.
pub const SPENT_REFRESH: Duration = Duration::from_secs(30);

/// Who a limit belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    User(&'a str),
    Key(&'a str),
}

impl Subject<'_> {
    pub(crate) fn cache_key(&self) -> String {
        match self {
            Subject::User(id) => format!("u:{id}"),
            Subject::Key(id) => format!("k:{id}"),
        }
    }

    /// How the refusal names it.
    pub fn noun(&self) -> &'static str {
        match self {
            Subject::User(_) => "account",
            Subject::Key(_) => "API key",
        }
    }
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this {noun}'s limit of {limit} {unit} per minute is reached; retry in {retry_after_secs} s")]
    Rate {
        noun: &'static str,
        unit: &'static str,
        limit: u32,
        retry_after_secs: u64,
    },
    #[error("this {noun}'s token budget ({limit} per {period}) is spent ({spent} used)")]
    Budget {
        noun: &'static str,
        limit: u64,
        spent: u64,
        period: &'static str,
        retry_after_secs: u64,
    },
    #[error("limits cannot be checked while the shared state (Redis) is unreachable; retry in {retry_after_secs} s")]
    Unavailable { retry_after_secs: u64 },
}

impl Refusal {
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refusal::Rate {
                retry_after_secs, ..
            }
            | Refusal::Budget {
                retry_after_secs, ..
            }
            | Refusal::Unavailable { retry_after_secs } => *retry_after_secs,
        }
    }
}

/// Requests and tokens in the current and the previous minute. The count
/// "over the last 60 s" weighs the previous minute by how much of it is still
/// inside those 60 s: the sliding-window estimate, exact enough for a limit and
/// constant in size.
#[derive(Debug, Default)]
struct Window {
    minute: i64,
    requests: [u64; 2],
    tokens: [u64; 2],
}

impl Window {
    /// Moves the window to `minute`, the current one.
    fn roll(&mut self, minute: i64) {
        match minute - self.minute {
            0 => {}
            1 => {
                self.requests = [self.requests[1], 0];
                self.tokens = [self.tokens[1], 0];
            }
            _ => {
                self.requests = [0, 0];
                self.tokens = [0, 0];
            }
        }
        self.minute = minute;
    }

    fn estimate(counts: [u64; 2], elapsed: f64) -> f64 {
        counts[0] as f64 * (1.0 - elapsed) + counts[1] as f64
    }
}

/// A budget's spent tokens in the period starting on `since` (`None`: ever).
#[derive(Debug)]
struct Spent {
    since: Option<NaiveDate>,
    tokens: u64,
}

/// The fast path's state. Cheap to clone: handles only.
#[derive(Clone)]
pub struct Meter {
    windows: moka::sync::Cache<String, Arc<Mutex<Window>>>,
    spent: moka::sync::Cache<String, Arc<Mutex<Spent>>>,
    store: UsageStore,
    /// The counts every replica shares, when there is a Redis.
    shared: Option<SharedCounts>,
}

/// Where a minute stands: its number and the fraction of it gone.
fn minute_of(now: DateTime<Utc>) -> (i64, f64) {
    let secs = now.timestamp();
    let into = f64::from(now.second()) + f64::from(now.nanosecond() % 1_000_000_000) / 1e9;
    (secs.div_euclid(60), (into / 60.0).clamp(0.0, 1.0))
}

impl Meter {
    pub fn new(store: UsageStore) -> Self {
        Self::with_capacity(store, MAX_SUBJECTS)
    }

    /// At most `subjects` windows and as many budgets remembered.
    pub fn with_capacity(store: UsageStore, subjects: u64) -> Self {
        Self {
            windows: moka::sync::Cache::builder()
                .max_capacity(subjects)
                .time_to_idle(WINDOW_IDLE)
                .build(),
            spent: moka::sync::Cache::builder()
                .max_capacity(subjects)
                .time_to_live(SPENT_REFRESH)
                .build(),
            store,
            shared: None,
        }
    }

    /// Keeps the counts in Redis, shared with every replica.
    pub fn sharing(mut self, shared: Option<SharedState>) -> Self {
        self.shared = shared.map(SharedCounts::new);
        self
    }

    /// Admits one request for every `(subject, limits)` given, or says which
    /// limit has no room. Counts the request in each subject's window only
    /// when all of them have room.
    pub async fn admit(
        &self,
        subjects: &[(Subject<'_>, Limits)],
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if let Some(shared) = &self.shared {
            match self.admit_shared(shared, subjects, now).await {
                Ok(verdict) => return verdict,
                Err(_) if shared.shared().policy() == FailurePolicy::Closed => {
                    return Err(Refusal::Unavailable {
                        retry_after_secs: 1,
                    })
                }
                // Open: this replica's own counts, until Redis is back.
                Err(_) => {}
            }
        }
        let (minute, elapsed) = minute_of(now);
        let retry_rate = (60.0 - elapsed * 60.0).ceil().max(1.0) as u64;
        for (subject, limits) in subjects {
            if limits.rpm.is_none() && limits.tpm.is_none() {
                continue;
            }
            let window = self.window(subject);
            let mut window = window.lock();
            window.roll(minute);
            if let Some(rpm) = limits.rpm {
                if Window::estimate(window.requests, elapsed) + 1.0 > f64::from(rpm) {
                    return Err(Refusal::Rate {
                        noun: subject.noun(),
                        unit: "requests",
                        limit: rpm,
                        retry_after_secs: retry_rate,
                    });
                }
            }
            if let Some(tpm) = limits.tpm {
                if Window::estimate(window.tokens, elapsed) >= f64::from(tpm) {
                    return Err(Refusal::Rate {
                        noun: subject.noun(),
                        unit: "tokens",
                        limit: tpm,
                        retry_after_secs: retry_rate,
                    });
                }
            }
        }
        for (subject, limits) in subjects {
            let Some(budget) = limits.budget else {
                continue;
            };
            let spent = self.spent(subject, budget.period, now).await;
            if spent >= budget.tokens {
                return Err(refuse_budget(subject, budget, spent, now));
            }
        }
        for (subject, limits) in subjects {
            if limits.rpm.is_some() {
                let window = self.window(subject);
                let mut window = window.lock();
                window.roll(minute);
                window.requests[1] += 1;
            }
        }
        Ok(())
    }

    /// The shared verdict: budgets first (a request refused by its budget is
    /// not counted in any window), then every window at once.
    async fn admit_shared(
        &self,
        shared: &SharedCounts,
        subjects: &[(Subject<'_>, Limits)],
        now: DateTime<Utc>,
    ) -> Result<Result<(), Refusal>, Unavailable> {
        for (subject, limits) in subjects {
            let Some(budget) = limits.budget else {
                continue;
            };
            let since = budget.period.first_day(now);
            let spent = match shared.spent(subject, since).await? {
                Some(tokens) => tokens,
                None => {
                    let from_ledger = self.ledger_spent(subject, since).await;
                    shared.seed(subject, since, from_ledger).await?
                }
            };
            if spent >= budget.tokens {
                return Ok(Err(refuse_budget(subject, budget, spent, now)));
            }
        }
        let (minute, elapsed) = minute_of(now);
        let Some(full) = shared.admit(subjects, minute, elapsed).await? else {
            return Ok(Ok(()));
        };
        let Some((subject, limits)) = subjects.get(full.subject) else {
            return Ok(Ok(()));
        };
        let (unit, limit) = if full.tokens {
            ("tokens", limits.tpm)
        } else {
            ("requests", limits.rpm)
        };
        Ok(Err(Refusal::Rate {
            noun: subject.noun(),
            unit,
            limit: limit.unwrap_or(0),
            retry_after_secs: (60.0 - elapsed * 60.0).ceil().max(1.0) as u64,
        }))
    }

    /// Counts a finished request's tokens against every subject's windows and
    /// budgets that are being kept (in Redis too, without waiting for it).
    pub fn charge(&self, subjects: &[Subject<'_>], tokens: u64, now: DateTime<Utc>) {
        if tokens == 0 {
            return;
        }
        let (minute, _) = minute_of(now);
        if let Some(shared) = self.shared.clone() {
            let owned: Vec<OwnedSubject> = subjects.iter().map(OwnedSubject::from).collect();
            tokio::spawn(async move {
                let subjects: Vec<Subject<'_>> = owned.iter().map(OwnedSubject::borrow).collect();
                // A failure is logged by the shared state; the ledger still
                // has the row, and seeds the figure again when it is missing.
                let _ = shared.charge(&subjects, tokens, minute).await;
            });
        }
        for subject in subjects {
            let key = subject.cache_key();
            if let Some(window) = self.windows.get(&key) {
                let mut window = window.lock();
                window.roll(minute);
                window.tokens[1] += tokens;
            }
            if let Some(spent) = self.spent.get(&key) {
                spent.lock().tokens += tokens;
            }
        }
    }

    /// The subject's per-minute window, made on first use (every subject with
    /// a per-minute limit gets one when admitted, so `charge` finds it).
    fn window(&self, subject: &Subject<'_>) -> Arc<Mutex<Window>> {
        self.windows.get_with(subject.cache_key(), || {
            Arc::new(Mutex::new(Window::default()))
        })
    }

    /// Tokens the subject spent in the period holding `now`: remembered, or
    /// read from the ledger's rollup. A database that cannot answer counts as
    /// nothing spent (logged): an outage of the ledger must not stop chat.
    async fn spent(&self, subject: &Subject<'_>, period: Period, now: DateTime<Utc>) -> u64 {
        let since = period.first_day(now);
        let key = subject.cache_key();
        let entry = match self.spent.get(&key) {
            Some(entry) => entry,
            None => {
                // Two requests may both read it: the same figure, twice.
                let tokens = self.ledger_spent(subject, since).await;
                let entry = Arc::new(Mutex::new(Spent { since, tokens }));
                self.spent.insert(key, entry.clone());
                entry
            }
        };
        let mut spent = entry.lock();
        if spent.since != since {
            // The period turned over (or the budget's period changed) since
            // the figure was read: a new period starts empty.
            *spent = Spent { since, tokens: 0 };
        }
        spent.tokens
    }

    /// The ledger's figure. A database that cannot answer counts as nothing
    /// spent (logged): an outage of the ledger must not stop chat.
    async fn ledger_spent(&self, subject: &Subject<'_>, since: Option<NaiveDate>) -> u64 {
        match self.store.spent_since(subject, since).await {
            Ok(tokens) => tokens,
            Err(e) => {
                tracing::warn!(error = %e, "usage: could not read spent tokens; counting from zero");
                0
            }
        }
    }

    /// Forgets a subject's remembered spend (its budget changed: read afresh).
    pub fn forget(&self, subject: Subject<'_>) {
        self.spent.invalidate(&subject.cache_key());
    }

    /// Subjects remembered now (the bound's proof).
    pub fn remembered(&self) -> (u64, u64) {
        self.windows.run_pending_tasks();
        self.spent.run_pending_tasks();
        (self.windows.entry_count(), self.spent.entry_count())
    }
}

/// A subject that can cross into a spawned task.
enum OwnedSubject {
    User(String),
    Key(String),
}

impl OwnedSubject {
    fn from(subject: &Subject<'_>) -> Self {
        match subject {
            Subject::User(id) => Self::User((*id).to_string()),
            Subject::Key(id) => Self::Key((*id).to_string()),
        }
    }

    fn borrow(&self) -> Subject<'_> {
        match self {
            Self::User(id) => Subject::User(id),
            Self::Key(id) => Subject::Key(id),
        }
    }
}

fn refuse_budget(subject: &Subject<'_>, budget: Budget, spent: u64, now: DateTime<Utc>) -> Refusal {
    Refusal::Budget {
        noun: subject.noun(),
        limit: budget.tokens,
        spent,
        period: budget.period.as_str(),
        // A `total` budget never renews: an hour is a polite interval for a
        // client that retries anyway.
        retry_after_secs: budget.period.seconds_left(now).unwrap_or(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::limits::validate;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    async fn meter() -> Meter {
        Meter::new(UsageStore::in_memory().await.unwrap())
    }

    #[tokio::test]
    async fn rpm_refuses_the_request_past_the_limit_and_says_when_to_retry() {
        let meter = meter().await;
        let limits = validate(Some(2), None, None, None).unwrap();
        let now = at("2026-12-04T10:00:15Z");
        let user = [(Subject::User("u1"), limits)];
        assert!(meter.admit(&user, now).await.is_ok());
        assert!(meter.admit(&user, now).await.is_ok());
        let refused = meter.admit(&user, now).await.unwrap_err();
        assert_eq!(refused.retry_after_secs(), 45);
        // Another user has their own window.
        assert!(meter
            .admit(&[(Subject::User("u2"), limits)], now)
            .await
            .is_ok());
        // Two minutes later the window is empty again.
        assert!(meter.admit(&user, at("2026-12-04T10:02:15Z")).await.is_ok());
    }

    #[tokio::test]
    async fn the_previous_minute_still_counts_for_what_of_it_is_in_the_last_60_seconds() {
        let meter = meter().await;
        let limits = validate(Some(2), None, None, None).unwrap();
        let user = [(Subject::User("u"), limits)];
        meter
            .admit(&user, at("2026-12-04T10:00:59Z"))
            .await
            .unwrap();
        meter
            .admit(&user, at("2026-12-04T10:00:59Z"))
            .await
            .unwrap();
        // One second into the next minute, 59/60 of the two are still "recent".
        assert!(meter
            .admit(&user, at("2026-12-04T10:01:01Z"))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn tpm_refuses_once_the_minute_s_tokens_are_spent() {
        let meter = meter().await;
        let limits = validate(None, Some(10), None, None).unwrap();
        let now = at("2026-12-04T10:00:00Z");
        let key = [(Subject::Key("k"), limits)];
        meter.admit(&key, now).await.unwrap();
        meter.charge(&[Subject::Key("k")], 9, now);
        meter.admit(&key, now).await.unwrap();
        meter.charge(&[Subject::Key("k")], 1, now);
        assert!(matches!(
            meter.admit(&key, now).await,
            Err(Refusal::Rate { unit: "tokens", .. })
        ));
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_until_its_period_turns_over() {
        let meter = meter().await;
        let limits = validate(None, None, Some(20), Some("day")).unwrap();
        let now = at("2026-12-04T23:00:00Z");
        let user = [(Subject::User("u"), limits)];
        meter.admit(&user, now).await.unwrap();
        meter.charge(&[Subject::User("u")], 25, now);
        let refused = meter.admit(&user, now).await.unwrap_err();
        assert!(matches!(refused, Refusal::Budget { spent: 25, .. }));
        assert_eq!(refused.retry_after_secs(), 3600);
        assert!(meter.admit(&user, at("2026-12-05T00:00:01Z")).await.is_ok());
    }

    #[tokio::test]
    async fn however_many_subjects_ask_the_meter_remembers_a_bounded_number() {
        let meter = Meter::with_capacity(UsageStore::in_memory().await.unwrap(), 100);
        let limits = validate(Some(5), None, Some(1000), Some("day")).unwrap();
        let now = at("2026-12-04T10:00:00Z");
        for n in 0..2_000 {
            let id = format!("user-{n}");
            meter
                .admit(&[(Subject::User(&id), limits)], now)
                .await
                .unwrap();
        }
        let (windows, budgets) = meter.remembered();
        assert!(
            windows <= 100 && budgets <= 100,
            "{windows} windows, {budgets} budgets"
        );
    }

    #[tokio::test]
    async fn every_limit_that_applies_must_have_room() {
        let meter = meter().await;
        let generous = validate(Some(100), None, None, None).unwrap();
        let strict = validate(Some(1), None, None, None).unwrap();
        let now = at("2026-12-04T10:00:00Z");
        let both = [(Subject::Key("k"), strict), (Subject::User("u"), generous)];
        meter.admit(&both, now).await.unwrap();
        assert!(matches!(
            meter.admit(&both, now).await,
            Err(Refusal::Rate {
                noun: "API key",
                ..
            })
        ));
        // The refused request did not count against the user.
        let user_only = [(
            Subject::User("u"),
            validate(Some(2), None, None, None).unwrap(),
        )];
        meter.admit(&user_only, now).await.unwrap();
    }
}
