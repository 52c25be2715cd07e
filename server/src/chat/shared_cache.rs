//! The response cache's shared tier in Redis: an answer cached by one
//! replica is a hit on every other.
//!
//! Keys stay per user (the same SHA-256 of the user and the request as the
//! in-memory tier). The tier is bounded in bytes and entries like the memory
//! one: an index of entries by insertion time and a byte counter are kept
//! beside the entries, and each put trims the oldest (and the expired) until
//! both bounds hold again, in one script so replicas putting at once cannot
//! overshoot. A Redis that does not answer is a miss, never an error.

use crate::chat::cache::{CacheKey, CachedReply};
use crate::cluster::SharedState;
use std::sync::LazyLock;
use std::time::Duration;

/// Most entries one put evicts: a put after a bound was lowered trims a
/// little at a time instead of stalling Redis.
const MAX_EVICTIONS_PER_PUT: u32 = 256;

/// KEYS: entry, index (zset of entry keys by insertion time), sizes (hash of
/// entry key to bytes), byte counter. ARGV: value, TTL ms, max bytes, max
/// entries, eviction cap. Time is Redis's own, so replicas' clocks need not agree.
static PUT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local function forget(key)
  local size = redis.call('HGET', KEYS[3], key)
  if size then redis.call('DECRBY', KEYS[4], size) end
  redis.call('HDEL', KEYS[3], key)
  redis.call('ZREM', KEYS[2], key)
  redis.call('DEL', key)
end
forget(KEYS[1])
local size = string.len(ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], size)
redis.call('INCRBY', KEYS[4], size)
local budget = tonumber(ARGV[5])
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl, 'LIMIT', 0, budget)) do
  forget(key)
  budget = budget - 1
end
while budget > 0 and (tonumber(redis.call('GET', KEYS[4]) or '0') > tonumber(ARGV[3])
    or redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[4])) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then break end
  forget(oldest)
  budget = budget - 1
end
return redis.call('ZCARD', KEYS[2])
",
    )
});

/// The wire form of a cached answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    text: String,
    usage: crate::llm::types::Usage,
    provider: String,
}

/// Redis's side of the cache. Cheap to clone.
#[derive(Clone)]
pub struct SharedCache {
    shared: SharedState,
    ttl: Duration,
    max_bytes: u64,
    max_entries: u64,
}

impl SharedCache {
    pub fn new(shared: SharedState, ttl: Duration, max_bytes: u64, max_entries: u64) -> Self {
        Self {
            shared,
            ttl,
            max_bytes,
            max_entries,
        }
    }

    fn entry(&self, key: &CacheKey) -> String {
        self.shared.key(&format!("cache:{}", hex::encode(key)))
    }

    /// The index, sizes and byte counter's keys (also read by tests and
    /// operators checking the bound).
    pub fn bookkeeping(&self) -> [String; 3] {
        [
            self.shared.key("cache:index"),
            self.shared.key("cache:sizes"),
            self.shared.key("cache:bytes"),
        ]
    }

    /// The answer another replica (or this one) cached, if any.
    pub async fn get(&self, key: &CacheKey) -> Option<CachedReply> {
        let entry = self.entry(key);
        let json: Option<Vec<u8>> = self
            .shared
            .run(|mut c| async move { redis::cmd("GET").arg(entry).query_async(&mut c).await })
            .await
            .ok()
            .flatten();
        let stored: Stored = serde_json::from_slice(&json?).ok()?;
        Some(CachedReply {
            text: stored.text,
            usage: stored.usage,
            provider: stored.provider,
        })
    }

    /// Shares an answer, in the background: the client waiting for it should
    /// not wait for Redis too. A failure only costs other replicas a miss.
    pub fn put(&self, key: &CacheKey, reply: &CachedReply) {
        let stored = Stored {
            text: reply.text.clone(),
            usage: reply.usage,
            provider: reply.provider.clone(),
        };
        let Ok(json) = serde_json::to_vec(&stored) else {
            return;
        };
        let [index, sizes, bytes] = self.bookkeeping();
        let mut invocation = PUT.prepare_invoke();
        invocation
            .key(self.entry(key))
            .key(index)
            .key(sizes)
            .key(bytes)
            .arg(json)
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(self.max_bytes)
            .arg(self.max_entries)
            .arg(MAX_EVICTIONS_PER_PUT);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let _ = shared
                .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
                .await;
        });
    }
}
