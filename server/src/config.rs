//! Configuration in one place: every flag has an environment variable, and its
//! `///` doc is the `--help` text. Secrets are never printed (`hide_env_values`).
//! Durations go through one parser, [`duration`]: a bad or out-of-range value is
//! refused at argument parsing, never clamped. Comma-separated lists are split
//! by clap and each item parsed into its type ([`list_item`]), so a bad item is
//! refused there too.

use crate::db::DbTarget;
use crate::llm::router::Rule;
use clap::Args;
use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

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
    #[arg(long, env = "CALOS_DB_MAX_CONNECTIONS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
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
    /// How long a sign-in lasts, in hours (1 to 8760, a year).
    #[arg(long, env = "CALOS_TOKEN_TTL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub token_ttl_hours: u64,
    /// Mark the session cookie Secure and name it `__Host-calos_session`
    /// (serve over HTTPS); implied by an `https://` public URL.
    #[arg(long, env = "CALOS_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// Failed sign-ins an account may have in a row before it must wait.
    #[arg(long, env = "CALOS_LOGIN_FAILURE_BURST", default_value = "5")]
    pub login_failure_burst: NonZeroU32,
    /// Seconds after which one more failed sign-in is allowed (or e.g. `500ms`, `1m`).
    #[arg(long = "login-failure-refill-secs", env = "CALOS_LOGIN_FAILURE_REFILL_SECS", default_value = "12", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub login_failure_refill: Duration,
    /// Who may create an account: `open` (anyone; the default, which the
    /// ephemeral test users of scripts and `ab` rely on), `invite` (only with
    /// a single-use link an administrator made) or `closed` (administrators
    /// create accounts with `calos users create`). Applies to passwords,
    /// Ed25519 keys and OAuth alike; existing accounts always sign in.
    #[arg(long, env = "CALOS_REGISTRATION", value_enum, default_value_t = crate::auth::invites::Registration::Open)]
    pub registration: crate::auth::invites::Registration,
    /// How many unused, unexpired invites may exist at once.
    #[arg(long, env = "CALOS_MAX_OPEN_INVITES", default_value_t = crate::auth::invites::DEFAULT_MAX_OPEN_INVITES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_open_invites: u32,
    /// Accounts one client address may create in a row (registration or an
    /// Ed25519 key's first proof; IPv6 by /64; loopback clients are exempt).
    #[arg(long, env = "CALOS_SIGNUP_BURST", default_value = "10")]
    pub signup_burst: NonZeroU32,
    /// Seconds after which an address may create one more account.
    #[arg(long = "signup-refill-secs", env = "CALOS_SIGNUP_REFILL_SECS", default_value = "60", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub signup_refill: Duration,
    /// How long a checked token's account is remembered, in seconds (0: read
    /// the database on every request). calos forgets an account it changes at
    /// once, on PostgreSQL any account anyone changes, and on SQLite every
    /// account once anyone wrote; this is the backstop behind those signals.
    #[arg(long = "session-cache-ttl", env = "CALOS_SESSION_CACHE_TTL", default_value = "10s", value_parser = duration(Unit::Secs, Zero::Allowed))]
    pub session_cache_ttl: Duration,
    /// Keep the usage ledger, and with it rate limits and budgets (`off`: a
    /// calos that only relays and times, as before the ledger; `/api/usage`
    /// then answers 503).
    #[arg(long, env = "CALOS_USAGE_LEDGER", default_value = "on", value_parser = ["on", "off"])]
    pub usage_ledger: String,
    /// Days the usage ledger keeps its per-request rows (0: forever); the
    /// daily sums are kept regardless.
    #[arg(long, env = "CALOS_USAGE_RETENTION_DAYS", default_value_t = 90)]
    pub usage_retention_days: u32,
    /// Ledger rows queued for writing at most; past it (a database down for
    /// long) rows are dropped and counted rather than held without end.
    #[arg(long, env = "CALOS_USAGE_QUEUE", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub usage_queue: u64,
    /// Conversations one account may keep.
    #[arg(long, env = "CALOS_CONVERSATIONS_PER_USER", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub conversations_per_user: u64,
    /// Messages one conversation may hold (each reply counts as one).
    #[arg(long, env = "CALOS_CONVERSATION_MESSAGES", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(2..))]
    pub conversation_messages: u64,
    /// Bytes of message text one account's conversations may hold in all.
    #[arg(long, env = "CALOS_CONVERSATION_BYTES_PER_USER", default_value_t = 50 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub conversation_bytes_per_user: u64,
    /// Characters of a conversation's stored history sent to the model at
    /// most: the oldest messages beyond it are left out (the system prompt
    /// stays). Set it to the smallest context window among your models.
    #[arg(long, env = "CALOS_CONVERSATION_CONTEXT_CHARS", default_value_t = 128 * 1024, value_parser = clap::value_parser!(u64).range(1..=262_144))]
    pub conversation_context_chars: u64,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT (0: none).
    #[arg(long = "shutdown-grace-secs", env = "CALOS_SHUTDOWN_GRACE_SECS", default_value = "10", value_parser = duration(Unit::Secs, Zero::Allowed))]
    pub shutdown_grace: Duration,
    /// After SIGTERM, keep accepting new requests this long while
    /// `/api/health` answers 503 `draining`, so a balancer that checks it
    /// takes this replica out before its port closes. Then the grace period
    /// starts. 0 (the default) stops accepting at once: in Kubernetes the
    /// `preStop` hook does this waiting instead.
    #[arg(long = "drain-secs", env = "CALOS_DRAIN_SECS", default_value = "0", value_parser = duration(Unit::Secs, Zero::Allowed))]
    pub drain: Duration,
    /// A TOML file declaring `[[process]]`es for calos to run and watch, and
    /// the `[[deployment]]`s and `[[fallback]]`s models are routed to.
    #[arg(long, env = "CALOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Check the config file, print the routing table, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Comma-separated proxy IPs whose X-Forwarded-For is believed.
    #[arg(long, env = "CALOS_TRUSTED_PROXIES", default_value = "", value_delimiter = ',', value_parser = list_item::<IpAddr>)]
    pub trusted_proxies: Vec<Option<IpAddr>>,
    /// A bearer token that lets a remote scraper (Prometheus) read `/metrics`
    /// and the detailed health report; at least 16 characters. Loopback
    /// clients and administrators need none; everyone else sees only up or
    /// degraded.
    #[arg(long, env = "CALOS_METRICS_TOKEN", hide_env_values = true, value_parser = metrics_token)]
    pub metrics_token: Option<String>,
    /// Where people reach calos (`https://chat.example.com`): OAuth redirect URIs
    /// and Ed25519 challenges name it. Unset: `http://localhost:PORT`.
    #[arg(long, env = "CALOS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Most (provider, model) series the chat metrics keep; further model
    /// names are counted under `other`, so clients cannot grow memory or
    /// `/metrics` by inventing names.
    #[arg(long, env = "CALOS_METRICS_MAX_SERIES", default_value_t = crate::observability::metrics::DEFAULT_MAX_SERIES)]
    pub metrics_max_series: usize,
    // What one client can make calos hold (see `http::serve`).
    /// Seconds a client has to send a request's headers, counted from its
    /// connection or from the first byte of a request on a kept-alive one;
    /// slower clients are disconnected.
    #[arg(long = "header-read-timeout-secs", env = "CALOS_HEADER_READ_TIMEOUT_SECS", default_value = "10", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub header_read_timeout: Duration,
    /// Seconds a client has to send a whole request body; slower ones get 408.
    #[arg(long = "body-read-timeout-secs", env = "CALOS_BODY_READ_TIMEOUT_SECS", default_value = "30", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub body_read_timeout: Duration,
    /// Seconds a kept-alive connection may sit idle between requests before
    /// calos closes it. Longer than the 60 s that proxies and load balancers
    /// keep idle upstream connections by default (nginx, AWS ALB), so they
    /// close first and never reuse a connection calos is closing.
    #[arg(long = "keep-alive-timeout-secs", env = "CALOS_KEEP_ALIVE_TIMEOUT_SECS", default_value = "75", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub keep_alive_timeout: Duration,
    /// Seconds a client may leave calos's writes blocked (it stopped reading)
    /// before its connection is closed, with whatever it was being sent.
    #[arg(long = "write-timeout-secs", env = "CALOS_WRITE_TIMEOUT_SECS", default_value = "30", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub write_timeout: Duration,
    /// Most connections open at once over both listeners; more get 503
    /// `too_many_connections`. Keep it under the file-descriptor limit
    /// (`ulimit -n`).
    #[arg(long, env = "CALOS_MAX_CONNECTIONS", default_value = "10000")]
    pub max_connections: NonZeroUsize,
    /// Most connections open at once from one IP address (an IPv6 /64); more
    /// get 503. A browser opens at most 6 per site plus its streams, so 256
    /// serves a few dozen people behind one NAT while one host can hold only
    /// a small share of `--max-connections`. Trusted proxies are exempt.
    #[arg(long, env = "CALOS_MAX_CONNECTIONS_PER_IP", default_value = "256")]
    pub max_connections_per_ip: NonZeroUsize,
    #[command(flatten)]
    pub oauth: crate::auth::oauth::OAuthArgs,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub otel: crate::observability::otel::OtelArgs,
}

impl ServeArgs {
    /// The public URL without a trailing slash.
    pub fn public_url(&self, bound_port: u16) -> String {
        match self.public_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
            _ => format!("http://localhost:{bound_port}"),
        }
    }

    /// Whether cookies are `Secure`: asked for, or implied by an `https://`
    /// public URL (people reach calos over TLS, so cookies must never travel
    /// without it).
    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure
            || self
                .public_url
                .as_deref()
                .is_some_and(|url| url.trim().to_ascii_lowercase().starts_with("https://"))
    }

    /// `--trusted-proxies` without its empty items.
    pub fn trusted_proxies(&self) -> Vec<IpAddr> {
        self.trusted_proxies.iter().flatten().copied().collect()
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
    #[arg(long, env = "CALOS_MODEL_ROUTES", default_value = "", value_delimiter = ',', value_parser = list_item::<Rule>)]
    pub model_routes: Vec<Option<Rule>>,
    /// The simulated model's time to first token, in ms (or e.g. `1s`).
    #[arg(long = "sim-ttft-ms", env = "CALOS_SIM_TTFT_MS", default_value = "250", value_parser = duration(Unit::Millis, Zero::Allowed))]
    pub sim_ttft: Duration,
    /// The simulated model's speed, in tokens per second.
    #[arg(long, env = "CALOS_SIM_TOKENS_PER_SEC", default_value_t = 30.0)]
    pub sim_tokens_per_sec: f64,
    /// The simulated model's reply length, in tokens (1 to 4096).
    #[arg(long, env = "CALOS_SIM_TOKENS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub sim_tokens: u32,
    /// Concurrent requests to Ollama (one GPU rarely serves more well).
    #[arg(long, env = "CALOS_OLLAMA_CONCURRENCY", default_value = "5")]
    pub ollama_concurrency: NonZeroUsize,
    /// Concurrent requests to each other provider.
    #[arg(long, env = "CALOS_PROVIDER_CONCURRENCY", default_value = "64")]
    pub provider_concurrency: NonZeroUsize,
    /// Requests that may wait for a provider slot; more get 503 + Retry-After.
    #[arg(long, env = "CALOS_QUEUE_SIZE", default_value_t = 256)]
    pub queue_size: usize,
    /// Response cache lifetime in seconds, or e.g. `5m` (0 disables the cache).
    #[arg(long = "cache-ttl-secs", env = "CALOS_CACHE_TTL_SECS", default_value = "300", value_parser = duration(Unit::Secs, Zero::Allowed))]
    pub cache_ttl: Duration,
    /// Response cache size in entries.
    #[arg(long, env = "CALOS_CACHE_CAPACITY", default_value_t = 10_000)]
    pub cache_capacity: u64,
    /// Seconds to wait for an upstream's response headers.
    #[arg(long = "connect-timeout-secs", env = "CALOS_CONNECT_TIMEOUT_SECS", default_value = "10", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub connect_timeout: Duration,
    /// Seconds to wait for the first token.
    #[arg(long = "first-token-timeout-secs", env = "CALOS_FIRST_TOKEN_TIMEOUT_SECS", default_value = "60", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub first_token_timeout: Duration,
    /// Seconds allowed between two tokens.
    #[arg(long = "idle-timeout-secs", env = "CALOS_IDLE_TIMEOUT_SECS", default_value = "30", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub idle_timeout: Duration,
    /// Seconds allowed for a whole reply.
    #[arg(long = "total-timeout-secs", env = "CALOS_TOTAL_TIMEOUT_SECS", default_value = "120", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub total_timeout: Duration,
    /// Retries of a failed upstream call, only before the first token is relayed.
    #[arg(long, env = "CALOS_UPSTREAM_RETRIES", default_value_t = 2)]
    pub upstream_retries: u32,
    /// First retry backoff in ms (doubles each time; 0: retry at once).
    #[arg(long = "retry-backoff-ms", env = "CALOS_RETRY_BACKOFF_MS", default_value = "200", value_parser = duration(Unit::Millis, Zero::Allowed))]
    pub retry_backoff: Duration,
    /// Seconds an idle upstream connection is kept in the pool (0: never reused).
    #[arg(long = "upstream-pool-idle-secs", env = "CALOS_UPSTREAM_POOL_IDLE_SECS", default_value = "90", value_parser = duration(Unit::Secs, Zero::Allowed))]
    pub upstream_pool_idle: Duration,
    /// Idle upstream connections kept per host.
    #[arg(long, env = "CALOS_UPSTREAM_POOL_MAX_IDLE", default_value_t = 64)]
    pub upstream_pool_max_idle: usize,
    /// Chat requests per second per user (sustained).
    #[arg(long, env = "CALOS_CHAT_RATE_PER_SEC", default_value = "20")]
    pub chat_rate_per_sec: NonZeroU32,
    /// Chat requests a user may send in a burst.
    #[arg(long, env = "CALOS_CHAT_BURST", default_value = "200")]
    pub chat_burst: NonZeroU32,
    // --- What one chat may make calos hold (issue 11) ---
    /// Seconds a streamed reply waits for the client to take its next event; a
    /// client that stops reading is dropped, freeing its upstream and provider slot.
    #[arg(long = "stream-write-timeout-secs", env = "CALOS_STREAM_WRITE_TIMEOUT_SECS", default_value = "30", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub stream_write_timeout: Duration,
    /// Chats one user may have in flight at once (a stream counts until it
    /// ends); more get 429 `too_many_inflight`.
    #[arg(long, env = "CALOS_MAX_INFLIGHT_PER_USER", default_value = "32")]
    pub max_inflight_per_user: NonZeroUsize,
    /// Debug builds only: milliseconds every chat request spends in calos's
    /// own code, to test that the verdict names calos (not in release builds).
    #[cfg(debug_assertions)]
    #[arg(long, env = "CALOS_DEBUG_DELAY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=crate::chat::debug_delay::MAX_MS))]
    pub debug_delay_ms: u64,
    /// Response cache size in bytes (text, provider, key and bookkeeping). Each
    /// entry is charged at least this / `CALOS_CACHE_CAPACITY`, so that entry
    /// count holds too; a reply over 1/16 of this is not cached.
    #[arg(long, env = "CALOS_CACHE_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_max_bytes: u64,
    /// Failures in a row that open a deployment's circuit breaker.
    #[arg(long, env = "CALOS_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,
    /// The share of failed requests (0.01-1) in the window that opens it.
    #[arg(long, env = "CALOS_BREAKER_FAILURE_RATE", default_value_t = 0.5, value_parser = failure_rate)]
    pub breaker_failure_rate: f64,
    /// Requests the window must hold before the failure rate counts.
    #[arg(long, env = "CALOS_BREAKER_MIN_REQUESTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_min_requests: u32,
    /// How far back the failure rate looks.
    #[arg(long = "breaker-window-secs", env = "CALOS_BREAKER_WINDOW_SECS", default_value = "30", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub breaker_window: Duration,
    /// How long an open breaker waits before letting one probe request through.
    #[arg(long = "breaker-cooldown-secs", env = "CALOS_BREAKER_COOLDOWN_SECS", default_value = "5", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub breaker_cooldown: Duration,
    /// How often every deployment (and every other component) is health-checked.
    #[arg(long = "probe-interval-secs", env = "CALOS_PROBE_INTERVAL_SECS", default_value = "5", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub probe_interval: Duration,
}

fn failure_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.01..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a share between 0.01 and 1")),
    }
}

impl LlmArgs {
    /// `--model-routes` without its empty items, in order.
    pub fn model_routes(&self) -> Vec<Rule> {
        self.model_routes.iter().flatten().cloned().collect()
    }

    pub fn breaker(&self) -> crate::llm::breaker::BreakerSettings {
        crate::llm::breaker::BreakerSettings {
            consecutive: self.breaker_failures,
            failure_rate: self.breaker_failure_rate,
            min_requests: self.breaker_min_requests,
            window: self.breaker_window,
            cooldown: self.breaker_cooldown,
        }
    }
}

/// The parser for one item of a comma-separated flag (`value_delimiter = ','`).
/// An empty item is `None` rather than an error, so an empty value (the
/// documented default, `CALOS_TRUSTED_PROXIES=`), a trailing comma or `a,,b`
/// still mean "nothing there", while a bad item stops the program at argument
/// parsing with the flag's name and the reason.
pub fn list_item<T>(item: &str) -> Result<Option<T>, String>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let item = item.trim();
    if item.is_empty() {
        return Ok(None);
    }
    item.parse().map(Some).map_err(|e| format!("{item:?}: {e}"))
}

/// `CALOS_METRICS_TOKEN`: long enough not to be guessed; the error never
/// repeats the value.
fn metrics_token(value: &str) -> Result<String, String> {
    let token = value.trim();
    if token.chars().count() < 16 {
        return Err("the metrics token needs at least 16 characters".into());
    }
    Ok(token.to_string())
}

/// What a bare number means to a duration flag: its name says (`…_secs`, `…_ms`).
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Secs,
    Millis,
}

/// Whether 0 means something (cache off, no grace, no backoff) or is a mistake
/// (a timeout that fires at once, a refill that never comes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    Allowed,
    Refused,
}

/// The longest any duration flag may be: every one of them is a timeout, a
/// delay or a lifetime, and more than a day is a typo (milliseconds given to a
/// seconds flag) rather than a wish.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// The one parser for duration flags, for `#[arg(value_parser = …)]`. It takes
/// humantime's forms (`90s`, `1m30s`, `500ms`, `2h`) and also a bare number in
/// the flag's `unit`, decimals allowed, so every value written before units
/// were accepted (`CALOS_TOTAL_TIMEOUT_SECS=20`, `--idle-timeout-secs 0.5`,
/// `--retry-backoff-ms 20`) keeps its meaning.
pub fn duration(
    unit: Unit,
    zero: Zero,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| parse_duration(text, unit, zero)
}

fn parse_duration(text: &str, unit: Unit, zero: Zero) -> Result<Duration, String> {
    let text = text.trim();
    let value = match text.parse::<f64>() {
        Ok(number) => {
            if !number.is_finite() || number < 0.0 {
                return Err(format!("{text:?} is not a duration: give a number of {} or e.g. 30s, 500ms, 2m", unit.name()));
            }
            let secs = match unit {
                Unit::Secs => number,
                Unit::Millis => number / 1000.0,
            };
            // Too large for a Duration is also more than a day.
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        }
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("{text:?} is not a duration ({e}): give a number of {} or e.g. 30s, 500ms, 2m, 1h30m", unit.name())
        })?,
    };
    if value.is_zero() && zero == Zero::Refused {
        return Err("must be more than 0".into());
    }
    if value > MAX_DURATION {
        return Err(format!(
            "{text:?} is more than a day; the most is 86400 seconds (24h)"
        ));
    }
    Ok(value)
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Secs => "seconds",
            Unit::Millis => "milliseconds",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Result<Duration, String> {
        parse_duration(text, Unit::Secs, Zero::Refused)
    }

    #[test]
    fn bare_numbers_keep_their_documented_unit() {
        assert_eq!(secs("20"), Ok(Duration::from_secs(20)));
        assert_eq!(secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(secs(" 12 "), Ok(Duration::from_secs(12)));
        assert_eq!(
            parse_duration("20", Unit::Millis, Zero::Allowed),
            Ok(Duration::from_millis(20))
        );
        assert_eq!(
            parse_duration("0", Unit::Secs, Zero::Allowed),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn units_are_humantime() {
        assert_eq!(secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(secs("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("2s", Unit::Millis, Zero::Refused),
            Ok(Duration::from_secs(2))
        );
    }

    #[test]
    fn nonsense_and_out_of_range_values_are_refused() {
        for bad in ["", "abc", "-1", "NaN", "inf", "5 parsecs", "1e400"] {
            assert!(secs(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(secs("0"), Err("must be more than 0".into()));
        assert!(secs("0ms").is_err());
        assert!(secs("86400").is_ok());
        assert!(secs("86401").unwrap_err().contains("more than a day"));
        assert!(secs("2days").is_err());
        assert!(parse_duration("90000000", Unit::Millis, Zero::Allowed).is_err());
    }

    #[test]
    fn lists_split_at_commas_and_refuse_bad_items() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            llm: LlmArgs,
            #[arg(long, default_value = "", value_delimiter = ',', value_parser = list_item::<IpAddr>)]
            trusted_proxies: Vec<Option<IpAddr>>,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("calos").chain(args.iter().copied()))
                .map_err(|e| e.to_string())
        };
        let empty = parse(&[]).map(|c| (c.trusted_proxies, c.llm.model_routes()));
        assert_eq!(empty, Ok((vec![None], vec![])));
        let given = parse(&[
            "--trusted-proxies",
            "127.0.0.1, ::1,",
            "--model-routes",
            "qwen*=compat,,mistral*=ollama",
        ]);
        assert!(given
            .as_ref()
            .is_ok_and(|c| c.trusted_proxies.iter().flatten().count() == 2
                && c.llm.model_routes().len() == 2));
        assert!(parse(&["--trusted-proxies", ""]).is_ok_and(|c| c
            .trusted_proxies
            .iter()
            .flatten()
            .count()
            == 0));
        let bad_ip = parse(&["--trusted-proxies", "10.0.0.1,nope"]);
        assert!(bad_ip.is_err_and(|e| e.contains("--trusted-proxies") && e.contains("\"nope\"")));
        let bad_route = parse(&["--model-routes", "qwen*"]);
        assert!(bad_route.is_err_and(|e| e.contains("expected pattern=provider")));
    }

    #[test]
    fn flags_parse_as_documented() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            llm: LlmArgs,
        }
        let cli = Cli::try_parse_from([
            "calos",
            "--total-timeout-secs",
            "20",
            "--retry-backoff-ms",
            "20",
            "--idle-timeout-secs",
            "0.5",
            "--cache-ttl-secs",
            "0",
        ])
        .map_err(|e| e.to_string());
        let llm = cli.map(|c| c.llm);
        assert!(llm.is_ok(), "{:?}", llm.as_ref().err());
        if let Ok(llm) = llm {
            assert_eq!(llm.total_timeout, Duration::from_secs(20));
            assert_eq!(llm.retry_backoff, Duration::from_millis(20));
            assert_eq!(llm.idle_timeout, Duration::from_millis(500));
            assert_eq!(llm.cache_ttl, Duration::ZERO);
            assert_eq!(llm.first_token_timeout, Duration::from_secs(60));
            assert_eq!(llm.sim_ttft, Duration::from_millis(250));
        }
        let zero = Cli::try_parse_from(["calos", "--connect-timeout-secs", "0"]);
        assert!(zero
            .err()
            .is_some_and(|e| e.to_string().contains("must be more than 0")));
        for flag in [
            "--chat-burst",
            "--chat-rate-per-sec",
            "--ollama-concurrency",
            "--sim-tokens",
        ] {
            let zero = Cli::try_parse_from(["calos", flag, "0"]);
            assert!(
                zero.err().is_some_and(|e| e.to_string().contains(flag)),
                "{flag} 0 was accepted"
            );
        }
    }
}
