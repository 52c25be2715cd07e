//! Who a valid token belongs to, remembered for a few seconds so that an
//! authenticated request costs a signature check, not a database round trip.
//!
//! A token is only as good as its account: the account must still exist and
//! its session epoch must still equal the token's (`logout` moves the epoch
//! on). The cache keeps the account row's view and epoch per user id and is
//! kept honest three ways:
//! - every change calos makes itself (logout, rename, deletion) forgets the
//!   user at once, in this process;
//! - on PostgreSQL, a trigger announces every change or deletion of an account
//!   (`NOTIFY calos_account_changed`), whoever made it: another replica, the
//!   `calos users` command, an operator's SQL; [`follow_account_changes`]
//!   forgets those users, and everything when the listening connection was
//!   lost (notifications may have been missed);
//! - on SQLite, any write by anyone changes the write-ahead log; a `stat` of
//!   it (a microsecond, against tens for a query on SQLite's worker thread)
//!   tells the cache to forget everything when it moved, so `calos users` and
//!   an operator's `sqlite3` are seen on the next request;
//! - entries expire after a short time to live, a backstop for whatever the
//!   two signals above could miss.
//!
//! A notification travels on its own connection and can arrive a moment after
//! the next request, so decisions about privilege (operator endpoints, Mission
//! Control, pages) skip the cache and read the account itself
//! (`AuthService::authenticate_fresh`): a demotion holds on the very next
//! request, whoever made it.

use crate::db::Db;
use app::wire::UserView;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The PostgreSQL channel the accounts trigger notifies, with the user id.
pub const ACCOUNT_CHANGED_CHANNEL: &str = "calos_account_changed";

/// Accounts remembered at most; a cache of every active user of a large
/// deployment, yet a bounded one (about 200 bytes each).
const MAX_ACCOUNTS: u64 = 100_000;

/// What a token is checked against.
#[derive(Debug, Clone)]
pub struct CachedAccount {
    pub user: UserView,
    pub session_epoch: i64,
}

/// Cheap to clone; every clone is the same cache. A time to live of zero turns
/// it off (every request reads the database, as before).
#[derive(Clone)]
pub struct AccountCache {
    accounts: Option<moka::sync::Cache<Arc<str>, Arc<CachedAccount>>>,
    /// On SQLite, the log whose change means "someone wrote".
    writes: Option<Arc<FileWatch>>,
}

impl AccountCache {
    /// `sqlite_file`: the SQLite database, watched for writes by anyone.
    pub fn new(ttl: Duration, sqlite_file: Option<PathBuf>) -> Self {
        let accounts = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_ACCOUNTS)
                .time_to_live(ttl)
                .build()
        });
        let writes = sqlite_file.map(|file| Arc::new(FileWatch::new(file)));
        Self { accounts, writes }
    }

    pub fn get(&self, user_id: &str) -> Option<Arc<CachedAccount>> {
        let accounts = self.accounts.as_ref()?;
        if let Some(writes) = &self.writes {
            if writes.changed() {
                accounts.invalidate_all();
                return None;
            }
        }
        accounts.get(user_id)
    }

    pub fn remember(&self, account: CachedAccount) {
        if let Some(accounts) = &self.accounts {
            accounts.insert(account.user.user_id.as_str().into(), Arc::new(account));
        }
    }

    /// The account changed or is gone: the next request reads the database.
    pub fn forget(&self, user_id: &str) {
        if let Some(accounts) = &self.accounts {
            accounts.invalidate(user_id);
        }
    }

    pub fn forget_all(&self) {
        if let Some(accounts) = &self.accounts {
            accounts.invalidate_all();
        }
    }

    /// Accounts held now (for tests and the bound's proof).
    pub fn len(&self) -> u64 {
        self.accounts.as_ref().map_or(0, |accounts| {
            accounts.run_pending_tasks();
            accounts.entry_count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file's modification time and length; `None` when it does not exist.
type Stamp = Option<(Option<SystemTime>, u64)>;

/// The SQLite database's write-ahead log, as last seen. calos opens SQLite in
/// WAL mode, which is a property of the database file, so every writer's
/// every commit appends to the log (and a checkpoint that empties it changes
/// its length too): one `stat` of it sees any write, anyone's.
struct FileWatch {
    wal: PathBuf,
    seen: Mutex<Stamp>,
}

impl FileWatch {
    fn new(database: PathBuf) -> Self {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let seen = Mutex::new(stamp(&wal));
        Self { wal, seen }
    }

    /// Whether the log changed since the last call.
    fn changed(&self) -> bool {
        let now = stamp(&self.wal);
        let mut seen = self.seen.lock();
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }
}

fn stamp(file: &std::path::Path) -> Stamp {
    std::fs::metadata(file)
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

/// Another cache that follows the same channel: it hears each announcement's
/// payload (a user id, `key:<user id>` for an API key, `limits:<user id>` for
/// an account's limits), or `None` when announcements may have been missed and
/// everything must be forgotten.
pub type ChangeListener = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// On PostgreSQL, forgets every account the database announces as changed,
/// and tells `listeners`, until `shutdown`. Reconnects after a lost connection
/// and then forgets everything, since announcements made meanwhile are lost.
/// Nothing to follow on SQLite.
pub async fn follow_account_changes(
    db: Db,
    cache: AccountCache,
    listeners: Vec<ChangeListener>,
    shutdown: CancellationToken,
) {
    let forget_all = || {
        cache.forget_all();
        listeners.iter().for_each(|heard| heard(None));
    };
    let Db::Postgres(requests_pool) = db else {
        return;
    };
    if cache.accounts.is_none() {
        return;
    }
    // A listener keeps its connection for as long as it listens. Taken from
    // the requests' pool, it would shrink that pool by one for good (and,
    // with `--db-max-connections 1`, starve every request); so it gets a
    // one-connection pool of its own, with the same connect options.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(requests_pool.connect_options().as_ref().clone());
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(ACCOUNT_CHANGED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            listening = listening => listening,
            _ = shutdown.cancelled() => return,
        };
        match &mut listener {
            Ok(listener) => {
                // Whatever changed before the LISTEN took effect is unknown.
                forget_all();
                loop {
                    let notification = tokio::select! {
                        n = listener.try_recv() => n,
                        _ = shutdown.cancelled() => return,
                    };
                    match notification {
                        Ok(Some(changed)) => {
                            cache.forget(changed.payload());
                            listeners
                                .iter()
                                .for_each(|heard| heard(Some(changed.payload())));
                        }
                        // The connection was lost. Reconnect here rather than
                        // inside `try_recv`, so that everything is forgotten
                        // again once the new LISTEN holds: a change made while
                        // it was being set up is otherwise missed until the
                        // cache's TTL.
                        Ok(None) => {
                            forget_all();
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "account change notifications lost; reconnecting");
                            forget_all();
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for account changes; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::wire::Role;

    fn account(id: &str, epoch: i64) -> CachedAccount {
        CachedAccount {
            user: UserView {
                user_id: id.into(),
                email: None,
                username: format!("user-{id}"),
                role: Role::User,
            },
            session_epoch: epoch,
        }
    }

    #[test]
    fn accounts_are_remembered_until_forgotten() {
        let cache = AccountCache::new(Duration::from_secs(60), None);
        cache.remember(account("a", 1));
        cache.remember(account("b", 2));
        assert_eq!(cache.get("a").map(|a| a.session_epoch), Some(1));
        cache.forget("a");
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        cache.forget_all();
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn a_zero_time_to_live_turns_the_cache_off() {
        let cache = AccountCache::new(Duration::ZERO, None);
        cache.remember(account("a", 1));
        assert!(cache.get("a").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_write_to_the_sqlite_log_forgets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("calos.db");
        std::fs::write(&file, b"one").unwrap();
        let cache = AccountCache::new(Duration::from_secs(60), Some(file.clone()));
        cache.remember(account("a", 1));
        assert!(cache.get("a").is_some(), "nothing written yet");
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        std::fs::write(&wal, b"a write by another process").unwrap();
        assert!(
            cache.get("a").is_none(),
            "the new write-ahead log is a write"
        );
        cache.remember(account("a", 1));
        assert!(cache.get("a").is_some());
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
        log.write_all(b"another commit").unwrap();
        assert!(
            cache.get("a").is_none(),
            "a commit appended to the log is a write"
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = AccountCache::new(Duration::from_secs(60), None);
        for i in 0..(MAX_ACCOUNTS + 5_000) {
            cache.remember(account(&i.to_string(), 0));
        }
        assert!(cache.len() <= MAX_ACCOUNTS, "{} accounts", cache.len());
    }
}
