//! The Redis connection replicas share, and what happens when it fails.
//!
//! One multiplexed connection per replica (`ConnectionManager`: it reconnects
//! by itself, with backoff, after Redis restarts). Every command runs under
//! a short timeout so a slow or dead Redis costs a request milliseconds, not
//! seconds; failures flip [`SharedState::is_up`] and are logged once per
//! outage, not once per request. What a caller does when Redis is down is its
//! own choice, guided by the [`FailurePolicy`]:
//! - limits and budgets follow the policy (open: this replica's own counts;
//!   closed: 503);
//! - the response cache falls back to this replica's memory (a miss is never
//!   an error);
//! - sign-in state cannot be kept anywhere else without breaking single use
//!   across replicas, so starting or finishing a sign-in answers 503.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What limits do while Redis cannot be reached.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Keep serving; each replica enforces limits on its own counts.
    Open,
    /// Refuse requests that have a limit (503) until Redis answers again.
    Closed,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// Redis did not answer in time, or answered with an error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shared state (Redis) is unavailable: {0}")]
pub struct Unavailable(pub String);

/// Key prefixes are part of every key: plain characters only.
pub fn parse_prefix(text: &str) -> Result<String, String> {
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if text.is_empty() || text.len() > 64 || !plain {
        return Err("a key prefix is 1 to 64 letters, digits, '-', '_', '.' or ':'".into());
    }
    Ok(text.trim_end_matches(':').to_string())
}

/// The connection, the key prefix and the policy. Cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    connection: ConnectionManager,
    client: redis::Client,
    prefix: Arc<str>,
    policy: FailurePolicy,
    timeout: Duration,
    up: Arc<AtomicBool>,
}

impl SharedState {
    /// Connects, or says why not: a replica told to share state must not
    /// quietly start alone.
    pub async fn connect(
        url: &str,
        prefix: &str,
        policy: FailurePolicy,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis address: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout.max(Duration::from_millis(500)))
            .set_response_timeout(timeout)
            // Reconnect attempts back off up to a second: Redis coming back
            // is noticed within about a second.
            .set_max_delay(1_000);
        let connection = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis at REDIS_URL did not answer within 10 s"))?
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis at REDIS_URL: {e}"))?;
        tracing::info!(
            prefix,
            policy = policy.as_str(),
            "shared state in Redis: limits, cache, sign-in state and the cluster view are shared by every replica"
        );
        Ok(Self {
            connection,
            client,
            prefix: prefix.into(),
            policy,
            timeout,
            up: Arc::new(AtomicBool::new(true)),
        })
    }

    /// `{prefix}:{name}`: every key calos writes.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// Whether the last command got an answer.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A client for connections of their own (pub/sub cannot share the
    /// multiplexed one).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `command` on the shared connection under the timeout, and keeps
    /// [`Self::is_up`] (and the log) in step with the outcome.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let outcome = tokio::time::timeout(self.timeout, command(self.connection.clone())).await;
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        match &result {
            Ok(_) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "Redis answers again: shared limits, cache and sign-in state are back"
                    );
                }
            }
            Err(e) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e.0,
                        policy = self.policy.as_str(),
                        "Redis is unreachable: limits follow the failure policy, the cache is this replica's own, sign-ins answer 503"
                    );
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_plain() {
        assert_eq!(parse_prefix("calos:").as_deref(), Ok("calos"));
        assert_eq!(parse_prefix("team-a.calos").as_deref(), Ok("team-a.calos"));
        for bad in ["", "a b", "x\ny", &"a".repeat(65), "*"] {
            assert!(parse_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
