//! `calos mock-llm`: a real HTTP upstream that speaks Ollama's and OpenAI's wire
//! formats, streaming and not, at a set pace, with fault switches. Tests and
//! benchmarks point calos at it (`OLLAMA_URL`, `CALOS_COMPAT_URL`, …) so every
//! adapter is exercised over real HTTP with the real parsing code.
//!
//! Faults (`--fault`, or at run time `POST /_mock/fault {"fault": "…"}`):
//! `none`, `refuse` (accept and close at once), `status:503`, `rate-limit:2`
//! (429 with `Retry-After: 2`), `stall-after:N`, `drop-after:N`,
//! `malformed-after:N`, `fail-first:N` (HTTP 500 for the first N requests),
//! `html` (a 200 HTML page), `invalid-utf8` and `redirect` (a 302).
//! `GET /_mock/stats` reports requests, open streams and cancelled streams;
//! `GET /_mock/last-request` the last chat request's model, messages and W3C
//! `traceparent` header (`null` when it came without one).

mod faults;
mod wire;

pub use faults::Fault;

use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Args)]
pub struct MockArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 11435)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Milliseconds before the first token.
    #[arg(long, default_value_t = 50)]
    pub ttft_ms: u64,
    /// Tokens per second after the first.
    #[arg(long, default_value_t = 100.0)]
    pub tokens_per_sec: f64,
    /// Tokens per reply (a request's max_tokens / num_predict caps it).
    #[arg(long, default_value_t = 20)]
    pub tokens: u32,
    /// Fault to inject (see the module docs).
    #[arg(long, default_value = "none", value_parser = faults::parse)]
    pub fault: Fault,
    /// Model names to list, comma-separated.
    #[arg(long, default_value = "mock-llama,mock-gpt", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Pad each token with `x`s to this many bytes (0: tokens as they are), for
    /// replies big enough to fill a client's TCP window or a cache.
    #[arg(long, default_value_t = 0)]
    pub token_bytes: usize,
}

impl Default for MockArgs {
    fn default() -> Self {
        Self {
            port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ttft_ms: 50,
            tokens_per_sec: 100.0,
            tokens: 20,
            fault: Fault::None,
            models: vec!["mock-llama".into(), "mock-gpt".into()],
            token_bytes: 0,
        }
    }
}

/// Shared state: pacing, the current fault, and counters.
#[derive(Debug)]
pub struct MockState {
    pub ttft: Duration,
    pub gap: Duration,
    pub tokens: u32,
    pub models: Vec<String>,
    /// Each token padded to this many bytes (0: no padding).
    pub token_bytes: usize,
    pub fault: Mutex<Fault>,
    pub requests: AtomicU64,
    pub open_streams: AtomicU64,
    pub cancelled_streams: AtomicU64,
    pub completed_streams: AtomicU64,
    /// The last chat request's model, messages and `traceparent`
    /// (`/_mock/last-request`).
    pub last_request: Mutex<Option<serde_json::Value>>,
}

impl MockState {
    pub fn fault(&self) -> Fault {
        self.fault.lock().clone()
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock() = fault;
    }
}

/// A running mock.
pub struct MockServer {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    shutdown: CancellationToken,
}

impl MockServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn open_streams(&self) -> u64 {
        self.state.open_streams.load(Ordering::SeqCst)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/api/chat", post(wire::ollama_chat))
        .route("/api/generate", post(wire::ollama_generate))
        .route("/api/tags", get(wire::ollama_tags))
        .route("/v1/chat/completions", post(wire::openai_chat))
        .route("/v1/models", get(wire::openai_models))
        .route("/_mock/fault", post(wire::set_fault))
        .route("/_mock/stats", get(wire::stats))
        .route("/_mock/last-request", get(wire::last_request))
        .with_state(state)
}

pub async fn spawn(args: &MockArgs) -> anyhow::Result<MockServer> {
    let listener = TcpListener::bind(SocketAddr::new(args.host, args.port)).await?;
    let addr = listener.local_addr()?;
    let gap = if args.tokens_per_sec > 0.0 {
        Duration::from_secs_f64(1.0 / args.tokens_per_sec)
    } else {
        Duration::ZERO
    };
    let state = Arc::new(MockState {
        ttft: Duration::from_millis(args.ttft_ms),
        gap,
        tokens: args.tokens.max(1),
        models: args
            .models
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect(),
        token_bytes: args.token_bytes.min(1024 * 1024),
        fault: Mutex::new(args.fault.clone()),
        requests: AtomicU64::new(0),
        open_streams: AtomicU64::new(0),
        cancelled_streams: AtomicU64::new(0),
        completed_streams: AtomicU64::new(0),
        last_request: Mutex::new(None),
    });
    let shutdown = CancellationToken::new();
    tokio::spawn(faults::serve(
        listener,
        router(state.clone()),
        state.clone(),
        shutdown.clone(),
    ));
    Ok(MockServer {
        addr,
        state,
        shutdown,
    })
}

/// `calos mock-llm`: runs until SIGINT/SIGTERM.
pub async fn run(args: MockArgs) -> anyhow::Result<()> {
    let server = spawn(&args).await?;
    println!(
        "mock-llm listening on {} (fault: {:?})",
        server.url(),
        args.fault
    );
    let stop = CancellationToken::new();
    crate::shutdown::cancel_on_signals(stop.clone());
    stop.cancelled().await;
    Ok(())
}
