//! The response cache for identical non-streaming requests.
//!
//! `moka` (bounded, TTL, concurrent, well-kept) instead of the original guide's unbounded
//! map. The key is a SHA-256 of the *user id* and every parameter that shapes the
//! answer, so user A never receives user B's cached reply (the wso2 / any-llm
//! lesson in docs/security.md).
//!
//! The bound is in bytes, not entries: ten thousand entries of 200 KB each is
//! 2 GB, so an entry count says nothing about memory. Each entry weighs its
//! key, text and provider name plus a fixed overhead, and is charged at least
//! an equal share of the capacity (`max_bytes / max_entries`), so the older
//! entry-count setting still holds as a bound of its own. A reply larger than
//! 1/16 of the capacity is not cached: one huge answer would evict hundreds of
//! useful ones to be asked again perhaps never.
//!
//! With shared state (`REDIS_URL`) there is a second tier in Redis
//! ([`crate::chat::shared_cache`]), under the same bounds: this replica's
//! memory is asked first, then Redis, so an answer cached by one replica is a
//! hit on the others.

use crate::chat::shared_cache::SharedCache;
use crate::cluster::SharedState;
use crate::llm::types::{ChatParams, Usage};
use crate::observability::exporter::Exporter;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// What an entry costs beyond its strings: the `Arc`, the reply struct, and
/// moka's own per-entry bookkeeping (node, timer wheel, frequency sketch).
const ENTRY_OVERHEAD_BYTES: u64 = 256;

/// A reply over `capacity / LARGEST_SHARE` bytes is not cached.
const LARGEST_SHARE: u64 = 16;

/// A request's cache key: SHA-256 of its user and everything that shapes the answer.
pub type CacheKey = [u8; 32];
type Key = CacheKey;

#[derive(Debug, Clone)]
pub struct CachedReply {
    pub text: String,
    pub usage: Usage,
    pub provider: String,
}

impl CachedReply {
    /// The bytes this reply keeps alive in the cache.
    fn bytes(&self) -> u64 {
        (std::mem::size_of::<Key>() + self.text.len() + self.provider.len()) as u64
            + ENTRY_OVERHEAD_BYTES
    }
}

/// How big the cache may grow.
#[derive(Debug, Clone, Copy)]
pub struct CacheBounds {
    /// Most bytes held (0 disables the cache).
    pub max_bytes: u64,
    /// Most entries held (0 disables the cache).
    pub max_entries: u64,
    /// How long an answer stays (zero disables the cache).
    pub ttl: Duration,
}

#[derive(Clone)]
pub struct ResponseCache {
    inner: Option<Cache<Key, Arc<CachedReply>>>,
    largest_entry: u64,
    /// Where the size is reported after each insert (the Prometheus gauges).
    exporter: Option<Exporter>,
    bounds: CacheBounds,
    /// The tier every replica shares, when there is a Redis.
    shared: Option<SharedCache>,
}

impl ResponseCache {
    /// Any bound at zero disables caching.
    pub fn new(bounds: CacheBounds) -> Self {
        let CacheBounds {
            max_bytes,
            max_entries,
            ttl,
        } = bounds;
        let enabled = max_bytes > 0 && max_entries > 0 && !ttl.is_zero();
        let least_charge = max_bytes / max_entries.max(1);
        let inner = enabled.then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |_key: &Key, reply: &Arc<CachedReply>| {
                    // moka weighs in u32; `largest_entry` keeps real entries far below.
                    u32::try_from(reply.bytes().max(least_charge)).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build()
        });
        Self {
            inner,
            largest_entry: max_bytes / LARGEST_SHARE,
            exporter: None,
            bounds,
            shared: None,
        }
    }

    /// Adds Redis as a tier shared with every replica, under the same bounds.
    pub fn sharing(mut self, shared: Option<SharedState>) -> Self {
        if self.inner.is_some() {
            self.shared = shared.map(|shared| {
                SharedCache::new(
                    shared,
                    self.bounds.ttl,
                    self.bounds.max_bytes,
                    self.bounds.max_entries,
                )
            });
        }
        self
    }

    /// Reports the cache's size to `exporter` after every insert.
    pub fn reporting_to(mut self, exporter: Exporter) -> Self {
        self.exporter = Some(exporter);
        self
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn key(user_id: &str, params: &ChatParams) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(user_id.as_bytes());
        hasher.update([0]);
        // serde_json of a struct is deterministic (field order is fixed).
        hasher.update(serde_json::to_vec(params).unwrap_or_default());
        hasher.finalize().into()
    }

    pub async fn get(&self, key: &Key) -> Option<Arc<CachedReply>> {
        let local = self.inner.as_ref()?;
        if let Some(hit) = local.get(key).await {
            return Some(hit);
        }
        let shared = self.shared.as_ref()?.get(key).await?;
        let hit = Arc::new(shared);
        // Kept here too: the next ask skips the round trip (until its TTL,
        // counted afresh from now: at most twice the TTL in all).
        local.insert(*key, hit.clone()).await;
        Some(hit)
    }

    /// Keeps `reply` unless it is too big to be worth its room.
    pub async fn put(&self, key: Key, reply: CachedReply) {
        let Some(cache) = &self.inner else {
            return;
        };
        if reply.bytes() > self.largest_entry {
            return;
        }
        if let Some(shared) = &self.shared {
            shared.put(&key, &reply);
        }
        cache.insert(key, Arc::new(reply)).await;
        // Apply the eviction this insert calls for now, not at moka's next
        // housekeeping: the bound then holds at every moment, and the gauge
        // reads true. Inserts follow an upstream call, so this is cheap beside it.
        cache.run_pending_tasks().await;
        if let Some(exporter) = &self.exporter {
            exporter.cache_size(cache.weighted_size(), cache.entry_count());
        }
    }

    /// The weight the cache holds now, in bytes (entries are charged at
    /// least their share, so this is at least the bytes really held). moka
    /// applies evictions in batches: call [`Self::settle`] first for an exact figure.
    pub fn weighed_bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.weighted_size())
    }

    /// Entries held now (after [`Self::settle`], exact).
    pub fn entries(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.entry_count())
    }

    /// Applies pending inserts and evictions now rather than on moka's schedule.
    pub async fn settle(&self) {
        if let Some(cache) = &self.inner {
            cache.run_pending_tasks().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::ChatMessage;

    #[test]
    fn the_same_prompt_from_two_users_has_two_keys() {
        let params = ChatParams {
            model: "sim".into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            temperature: None,
            max_tokens: None,
            trace: Default::default(),
        };
        assert_ne!(
            ResponseCache::key("alice", &params),
            ResponseCache::key("bob", &params)
        );
        let warmer = ChatParams {
            temperature: Some(0.9),
            ..params.clone()
        };
        assert_ne!(
            ResponseCache::key("alice", &params),
            ResponseCache::key("alice", &warmer)
        );
    }

    fn reply(bytes: usize) -> CachedReply {
        CachedReply {
            text: "x".repeat(bytes),
            usage: Usage::default(),
            provider: "ollama".into(),
        }
    }

    fn key(n: u32) -> Key {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        key
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_bytes_and_skips_replies_too_big_to_keep() {
        let cache = ResponseCache::new(CacheBounds {
            max_bytes: 64 * 1024,
            max_entries: 10_000,
            ttl: Duration::from_secs(60),
        });
        for n in 0..200 {
            cache.put(key(n), reply(2_000)).await;
        }
        cache.settle().await;
        let (weighed, entries) = (cache.weighed_bytes(), cache.entries());
        assert!(weighed <= 64 * 1024, "{weighed} bytes held");
        assert!(
            entries > 0 && entries < 200,
            "{entries} entries: old ones were evicted"
        );
        assert!(
            weighed >= entries * 2_000,
            "every entry weighs at least its text"
        );

        cache.put(key(1_000), reply(64 * 1024 / 16 + 1)).await;
        cache.settle().await;
        assert!(
            cache.get(&key(1_000)).await.is_none(),
            "over 1/16 of the capacity is not cached"
        );
    }

    #[tokio::test]
    async fn the_entry_count_still_bounds_a_cache_of_small_replies() {
        let cache = ResponseCache::new(CacheBounds {
            max_bytes: 1024 * 1024,
            max_entries: 10,
            ttl: Duration::from_secs(60),
        });
        for n in 0..100 {
            cache.put(key(n), reply(10)).await;
        }
        cache.settle().await;
        assert!(cache.entries() <= 10, "{} entries", cache.entries());
    }
}
