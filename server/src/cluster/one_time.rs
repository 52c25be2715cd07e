//! Single-use, expiring values: an OAuth flow between its start and its
//! callback, an Ed25519 challenge between its issue and its proof.
//!
//! Alone, a replica keeps them in memory (bounded, with a TTL). With shared
//! state they live in Redis, so a flow started on one replica completes on
//! another; `GETDEL` hands a value to exactly one taker however many race for
//! it, which is what "single use" means across replicas. The ids are hashed
//! into the key: they come from clients, so their length and bytes are not
//! ours to put in a key. At most `max` values wait at once in Redis too: an
//! index of ids by expiry is trimmed and counted on every put, atomically.

use crate::cluster::{SharedState, Unavailable};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use std::time::Duration;

/// Why a value could not be kept or taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OneTimeError {
    #[error("too many sign-ins are in progress; try again in a minute")]
    Full,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Stores the value unless `max` unexpired ones wait already. Expiry is by
/// Redis's own clock (`TIME`), so replicas' clocks need not agree.
static PUT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl_ms)
redis.call('ZADD', KEYS[2], now_ms + ttl_ms, KEYS[1])
redis.call('PEXPIRE', KEYS[2], ttl_ms)
return 1
",
    )
});

/// Hands the value to one caller and forgets it.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('ZREM', KEYS[2], KEYS[1])
return redis.call('GETDEL', KEYS[1])
",
    )
});

/// Single-use values of one kind (`namespace`), in memory or in Redis.
#[derive(Clone)]
pub struct OneTime<T: Clone + Send + Sync + 'static> {
    local: moka::sync::Cache<String, T>,
    shared: Option<SharedState>,
    namespace: &'static str,
    ttl: Duration,
    max: u64,
}

impl<T> OneTime<T>
where
    T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    pub fn new(
        namespace: &'static str,
        ttl: Duration,
        max: u64,
        shared: Option<SharedState>,
    ) -> Self {
        Self {
            local: moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_live(ttl)
                .build(),
            shared,
            namespace,
            ttl,
            max,
        }
    }

    fn keys(&self, shared: &SharedState, id: &str) -> (String, String) {
        let digest = hex::encode(Sha256::digest(id.as_bytes()));
        (
            shared.key(&format!("{}:{digest}", self.namespace)),
            shared.key(&format!("{}:index", self.namespace)),
        )
    }

    /// Keeps `value` under `id` for the TTL.
    pub async fn put(&self, id: &str, value: T) -> Result<(), OneTimeError> {
        let Some(shared) = &self.shared else {
            // In memory the bound evicts the oldest instead of refusing: one
            // process's cache, as before there were replicas.
            self.local.insert(id.to_string(), value);
            return Ok(());
        };
        let json = serde_json::to_string(&value)
            .map_err(|e| Unavailable(format!("encoding a {}: {e}", self.namespace)))?;
        let (key, index) = self.keys(shared, id);
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let max = self.max;
        let stored: i64 = shared
            .run(|mut c| async move {
                PUT.key(key)
                    .key(index)
                    .arg(json)
                    .arg(ttl_ms)
                    .arg(max)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(OneTimeError::Full)
        }
    }

    /// The value under `id`, left in place.
    pub async fn peek(&self, id: &str) -> Result<Option<T>, Unavailable> {
        let Some(shared) = &self.shared else {
            return Ok(self.local.get(id));
        };
        let (key, _) = self.keys(shared, id);
        let json: Option<String> = shared
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// The value under `id`, removed: of callers racing for it, one gets it.
    pub async fn take(&self, id: &str) -> Result<Option<T>, Unavailable> {
        let Some(shared) = &self.shared else {
            return Ok(self.local.remove(id));
        };
        let (key, index) = self.keys(shared, id);
        let json: Option<String> = shared
            .run(|mut c| async move { TAKE.key(key).key(index).invoke_async(&mut c).await })
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}
