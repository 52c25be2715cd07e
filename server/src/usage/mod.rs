//! Usage: who spent what, and whether they may spend more.
//!
//! - [`ledger`]: one row per chat request, written in batches off the hot path;
//! - [`store`]: the ledger's tables, with a daily rollup for long ranges;
//! - [`limits`]: requests and tokens per minute, token budgets, and the rule
//!   that combines them;
//! - [`meter`]: the in-memory fast path that applies them;
//! - [`record`]: a row, and the token estimate for providers that report none.
//!
//! [`Usage`] ties them together for the chat service: `admit` before a
//! request, `finish` after it.

pub mod ledger;
pub mod limits;
pub mod meter;
pub mod record;
pub mod shared_counts;
pub mod store;

use crate::db::Db;
use chrono::Utc;
use ledger::{Ledger, LedgerConfig};
use limits::Limits;
use meter::{Meter, Refusal, Subject};
use record::UsageRecord;
use std::sync::Arc;
use std::time::Duration;
use store::UsageStore;

/// Accounts whose limits are remembered at most (a few dozen bytes each).
const MAX_REMEMBERED_LIMITS: u64 = 100_000;

/// The ledger, the meter and the users' limits. Cheap to clone.
#[derive(Clone)]
pub struct Usage {
    inner: Arc<Inner>,
}

struct Inner {
    store: UsageStore,
    ledger: Ledger,
    meter: Meter,
    /// Where users' limits are kept (the accounts database).
    accounts: Db,
    /// Users' limits, remembered for the session cache's time to live: a
    /// change made by this process is seen at once, one made elsewhere (the
    /// CLI, another replica) within that time.
    user_limits: Option<moka::sync::Cache<String, Limits>>,
}

/// What the chat service knows about a request when it asks for admission.
pub struct Caller<'a> {
    pub user_id: &'a str,
    pub key: Option<(&'a str, Limits)>,
}

impl Usage {
    /// Starts the ledger's writer on `store`; users' limits are read from
    /// `accounts` and remembered for `limits_ttl` (0: read every time).
    pub fn start(
        store: UsageStore,
        accounts: Db,
        config: LedgerConfig,
        limits_ttl: Duration,
        shared: Option<crate::cluster::SharedState>,
    ) -> Self {
        let user_limits = (!limits_ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_REMEMBERED_LIMITS)
                .time_to_live(limits_ttl)
                .build()
        });
        Self {
            inner: Arc::new(Inner {
                ledger: Ledger::start(store.clone(), config),
                meter: Meter::new(store.clone()).sharing(shared),
                store,
                accounts,
                user_limits,
            }),
        }
    }

    pub fn store(&self) -> &UsageStore {
        &self.inner.store
    }

    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    /// A user's limits: remembered, or read. A database that cannot answer
    /// means no limits this time (logged): chat stays up when accounting
    /// cannot be checked, as a gateway in front of models should.
    pub async fn user_limits(&self, user_id: &str) -> Limits {
        if let Some(known) = self.inner.user_limits.as_ref().and_then(|c| c.get(user_id)) {
            return known;
        }
        match crate::db::limits::for_user(&self.inner.accounts, user_id).await {
            Ok(limits) => {
                if let Some(cache) = &self.inner.user_limits {
                    cache.insert(user_id.to_string(), limits);
                }
                limits
            }
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "usage: could not read the account's limits; none applied");
                Limits::default()
            }
        }
    }

    /// Replaces a user's limits; `false` when there is no such user.
    pub async fn set_user_limits(
        &self,
        user_id: &str,
        limits: &Limits,
    ) -> Result<bool, sqlx::Error> {
        let set = crate::db::limits::set_for_user(&self.inner.accounts, user_id, limits).await?;
        self.forget_user(user_id);
        Ok(set)
    }

    /// Forgets what is remembered of a user's limits and spend (changed
    /// elsewhere: another replica, the CLI).
    pub fn forget_user(&self, user_id: &str) {
        if let Some(cache) = &self.inner.user_limits {
            cache.invalidate(user_id);
        }
        self.inner.meter.forget(Subject::User(user_id));
    }

    /// Forgets every remembered limit (announcements may have been missed).
    pub fn forget_all_limits(&self) {
        if let Some(cache) = &self.inner.user_limits {
            cache.invalidate_all();
        }
    }

    /// Admits a request when every limit that applies to it has room.
    pub async fn admit(&self, caller: &Caller<'_>) -> Result<(), Refusal> {
        let user = self.user_limits(caller.user_id).await;
        let mut subjects = Vec::with_capacity(2);
        if let Some((key_id, key_limits)) = caller.key {
            if !key_limits.is_unlimited() {
                subjects.push((Subject::Key(key_id), key_limits));
            }
        }
        if !user.is_unlimited() {
            subjects.push((Subject::User(caller.user_id), user));
        }
        if subjects.is_empty() {
            return Ok(());
        }
        self.inner.meter.admit(&subjects, Utc::now()).await
    }

    /// Counts a finished request's tokens and queues its ledger row.
    pub fn finish(&self, row: UsageRecord) {
        let tokens = row.tokens.total();
        let mut subjects = Vec::with_capacity(2);
        subjects.push(Subject::User(&row.user_id));
        if let Some(key_id) = &row.key_id {
            subjects.push(Subject::Key(key_id));
        }
        self.inner.meter.charge(&subjects, tokens, row.at);
        self.inner.ledger.record(row);
    }

    /// Writes every queued row (at shutdown, once requests have stopped).
    pub async fn close(&self) {
        self.inner.ledger.close().await;
    }
}
