//! The response cache for identical non-streaming requests.
//!
//! `moka` (bounded, TTL, concurrent, well-kept) instead of the original guide's unbounded
//! map. The key is a SHA-256 of the *user id* and every parameter that shapes the
//! answer, so user A never receives user B's cached reply (the wso2 / any-llm
//! lesson in docs/security.md).

use crate::llm::types::{ChatParams, Usage};
use moka::future::Cache;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CachedReply {
    pub text: String,
    pub usage: Usage,
    pub provider: String,
}

#[derive(Clone)]
pub struct ResponseCache {
    inner: Option<Cache<[u8; 32], Arc<CachedReply>>>,
}

impl ResponseCache {
    /// `capacity` 0 or `ttl` zero disables caching.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let inner = (capacity > 0 && !ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Self { inner }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn key(user_id: &str, params: &ChatParams) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(user_id.as_bytes());
        hasher.update([0]);
        // serde_json of a struct is deterministic (field order is fixed).
        hasher.update(serde_json::to_vec(params).unwrap_or_default());
        hasher.finalize().into()
    }

    pub async fn get(&self, key: &[u8; 32]) -> Option<Arc<CachedReply>> {
        self.inner.as_ref()?.get(key).await
    }

    pub async fn put(&self, key: [u8; 32], reply: CachedReply) {
        if let Some(cache) = &self.inner {
            cache.insert(key, Arc::new(reply)).await;
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
}
