//! Running several calos replicas as one service.
//!
//! PostgreSQL is the source of truth; Redis (`REDIS_URL`) is the shared fast
//! path for what must be the same on every replica at once: rate windows and
//! budget counters, the response cache, sign-in state (OAuth flows, Ed25519
//! challenges) and the cluster feed Mission Control shows. Without
//! `REDIS_URL` none of this exists and calos is the single process it always
//! was.
//!
//! - [`shared`]: the Redis connection, its key prefix and its failure policy;
//! - [`one_time`]: single-use, expiring values (a flow, a challenge) that any
//!   replica may hand out and any replica may use up, once;
//! - [`leader`]: which replica runs the managed processes (a PostgreSQL
//!   advisory lock, taken over when its holder dies);
//! - [`replica`]: this replica's name, sent on every response;
//! - [`view`]: Mission Control's view of every replica, over a Redis channel.

pub mod leader;
pub mod one_time;
pub mod replica;
pub mod shared;
pub mod view;

pub use shared::{FailurePolicy, SharedState, Unavailable};

/// The `calos serve` settings for running as one of several replicas.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Redis for state shared by replicas (limits, cache, sign-in state, the
    /// cluster view), e.g. `redis://127.0.0.1:6379/0`. Unset: one process,
    /// everything in memory.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key calos writes, so several calos clusters (or
    /// other programs) can share one Redis.
    #[arg(long, env = "CALOS_REDIS_PREFIX", default_value = "calos", value_parser = shared::parse_prefix)]
    pub redis_prefix: String,
    /// What rate limits and budgets do while Redis cannot be reached: `open`
    /// keeps serving with this replica's own counts (limits are then per
    /// replica), `closed` refuses limited requests with 503 until Redis is back.
    #[arg(long, env = "CALOS_REDIS_FAILURE", value_enum, default_value_t = FailurePolicy::Open)]
    pub redis_failure: FailurePolicy,
    /// How long one Redis command may take before it counts as a failure.
    #[arg(long = "redis-timeout-ms", env = "CALOS_REDIS_TIMEOUT_MS", default_value = "250", value_parser = crate::config::duration(crate::config::Unit::Millis, crate::config::Zero::Refused))]
    pub redis_timeout: std::time::Duration,
    /// This replica's name in Mission Control and the `X-Calos-Replica`
    /// header. Unset: the host name and process id.
    #[arg(long, env = "CALOS_REPLICA_ID", value_parser = replica::parse_name)]
    pub replica_id: Option<String>,
}
