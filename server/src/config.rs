//! Configuration in one place: every flag has an environment variable, and its
//! `///` doc is the `--help` text. Secrets are never printed (`hide_env_values`).

use crate::db::DbTarget;
use clap::Args;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Where accounts are stored.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database and the generated JWT key.
    #[arg(long, env = "CALOS_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most database connections held open at once.
    #[arg(long, env = "CALOS_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
}

impl StoreArgs {
    pub fn target(&self) -> DbTarget {
        DbTarget::resolve(self.database_url.as_deref(), &self.data_dir)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Port for the pages and the API.
    #[arg(long, env = "CALOS_PORT", default_value_t = 5001)]
    pub port: u16,
    /// Port for Mission Control (the dashboard listener).
    #[arg(long, env = "CALOS_DASHBOARD_PORT", default_value_t = 3003)]
    pub dashboard_port: u16,
    /// Listen on 127.0.0.1 only.
    #[arg(long, env = "CALOS_LOCAL")]
    pub local: bool,
    /// Address to listen on when not `--local`.
    #[arg(long, env = "CALOS_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// HS256 signing key, at least 32 bytes. Unset: generated once into the data directory.
    #[arg(long, env = "CALOS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "CALOS_TOKEN_TTL_HOURS", default_value_t = 24)]
    pub token_ttl_hours: u64,
    /// Mark the session cookie Secure (serve over HTTPS).
    #[arg(long, env = "CALOS_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// Failed sign-ins an account may have in a row before it must wait.
    #[arg(long, env = "CALOS_LOGIN_FAILURE_BURST", default_value_t = 5)]
    pub login_failure_burst: u32,
    /// Seconds after which one more failed sign-in is allowed.
    #[arg(long, env = "CALOS_LOGIN_FAILURE_REFILL_SECS", default_value_t = 12.0)]
    pub login_failure_refill_secs: f64,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "CALOS_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// A TOML file declaring `[[process]]`es for calos to run and watch.
    #[arg(long, env = "CALOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Comma-separated proxy IPs whose X-Forwarded-For is believed.
    #[arg(long, env = "CALOS_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Where people reach calos (`https://chat.example.com`): OAuth redirect URIs
    /// and Ed25519 challenges name it. Unset: `http://localhost:PORT`.
    #[arg(long, env = "CALOS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Most (provider, model) series the chat metrics keep; further model
    /// names are counted under `other`, so clients cannot grow memory or
    /// `/metrics` by inventing names.
    #[arg(long, env = "CALOS_METRICS_MAX_SERIES", default_value_t = crate::observability::metrics::DEFAULT_MAX_SERIES)]
    pub metrics_max_series: usize,
    #[command(flatten)]
    pub oauth: crate::auth::oauth::OAuthArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
}

impl ServeArgs {
    /// The public URL without a trailing slash.
    pub fn public_url(&self, bound_port: u16) -> String {
        match self.public_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
            _ => format!("http://localhost:{bound_port}"),
        }
    }

    pub fn bind_ip(&self) -> IpAddr {
        if self.local {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.host
        }
    }
}

/// Providers, routing, queueing, caching and stream limits.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// Ollama's address.
    #[arg(long, env = "OLLAMA_URL", default_value = "http://localhost:11434")]
    pub ollama_url: String,
    /// OpenAI API key (enables gpt-*, o1*, … models).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// OpenAI base URL (with /v1).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub openai_base_url: String,
    /// DeepSeek API key (enables deepseek-chat and deepseek-reasoner).
    #[arg(long, env = "DEEPSEEK_API_KEY", hide_env_values = true)]
    pub deepseek_api_key: Option<String>,
    /// DeepSeek base URL.
    #[arg(
        long,
        env = "DEEPSEEK_BASE_URL",
        default_value = "https://api.deepseek.com/v1"
    )]
    pub deepseek_base_url: String,
    /// Any other OpenAI-compatible server (vLLM, llama.cpp, LM Studio), as provider `compat`.
    #[arg(long, env = "CALOS_COMPAT_URL")]
    pub compat_url: Option<String>,
    /// API key for the `compat` server, if it needs one.
    #[arg(long, env = "CALOS_COMPAT_API_KEY", hide_env_values = true)]
    pub compat_api_key: Option<String>,
    /// Extra routing rules in front of the defaults: `pattern=provider,…` (e.g. `qwen*=compat`).
    #[arg(long, env = "CALOS_MODEL_ROUTES", default_value = "")]
    pub model_routes: String,
    /// The simulated model's time to first token, in ms.
    #[arg(long, env = "CALOS_SIM_TTFT_MS", default_value_t = 250)]
    pub sim_ttft_ms: u64,
    /// The simulated model's speed, in tokens per second.
    #[arg(long, env = "CALOS_SIM_TOKENS_PER_SEC", default_value_t = 30.0)]
    pub sim_tokens_per_sec: f64,
    /// The simulated model's reply length, in tokens.
    #[arg(long, env = "CALOS_SIM_TOKENS", default_value_t = 60)]
    pub sim_tokens: u32,
    /// Concurrent requests to Ollama (one GPU rarely serves more well).
    #[arg(long, env = "CALOS_OLLAMA_CONCURRENCY", default_value_t = 5)]
    pub ollama_concurrency: usize,
    /// Concurrent requests to each other provider.
    #[arg(long, env = "CALOS_PROVIDER_CONCURRENCY", default_value_t = 64)]
    pub provider_concurrency: usize,
    /// Requests that may wait for a provider slot; more get 503 + Retry-After.
    #[arg(long, env = "CALOS_QUEUE_SIZE", default_value_t = 256)]
    pub queue_size: usize,
    /// Response cache lifetime in seconds (0 disables the cache).
    #[arg(long, env = "CALOS_CACHE_TTL_SECS", default_value_t = 300)]
    pub cache_ttl_secs: u64,
    /// Response cache size in entries.
    #[arg(long, env = "CALOS_CACHE_CAPACITY", default_value_t = 10_000)]
    pub cache_capacity: u64,
    /// Seconds to wait for an upstream's response headers.
    #[arg(long, env = "CALOS_CONNECT_TIMEOUT_SECS", default_value_t = 10.0)]
    pub connect_timeout_secs: f64,
    /// Seconds to wait for the first token.
    #[arg(long, env = "CALOS_FIRST_TOKEN_TIMEOUT_SECS", default_value_t = 60.0)]
    pub first_token_timeout_secs: f64,
    /// Seconds allowed between two tokens.
    #[arg(long, env = "CALOS_IDLE_TIMEOUT_SECS", default_value_t = 30.0)]
    pub idle_timeout_secs: f64,
    /// Seconds allowed for a whole reply.
    #[arg(long, env = "CALOS_TOTAL_TIMEOUT_SECS", default_value_t = 120.0)]
    pub total_timeout_secs: f64,
    /// Retries of a failed upstream call, only before the first token is relayed.
    #[arg(long, env = "CALOS_UPSTREAM_RETRIES", default_value_t = 2)]
    pub upstream_retries: u32,
    /// First retry backoff in ms (doubles each time).
    #[arg(long, env = "CALOS_RETRY_BACKOFF_MS", default_value_t = 200)]
    pub retry_backoff_ms: u64,
    /// Seconds an idle upstream connection is kept in the pool.
    #[arg(long, env = "CALOS_UPSTREAM_POOL_IDLE_SECS", default_value_t = 90)]
    pub upstream_pool_idle_secs: u64,
    /// Idle upstream connections kept per host.
    #[arg(long, env = "CALOS_UPSTREAM_POOL_MAX_IDLE", default_value_t = 64)]
    pub upstream_pool_max_idle: usize,
    /// Chat requests per second per user (sustained).
    #[arg(long, env = "CALOS_CHAT_RATE_PER_SEC", default_value_t = 20)]
    pub chat_rate_per_sec: u32,
    /// Chat requests a user may send in a burst.
    #[arg(long, env = "CALOS_CHAT_BURST", default_value_t = 200)]
    pub chat_burst: u32,
}

pub fn secs(value: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(value.clamp(0.001, 86_400.0))
}
