//! `TestApp`: the real server on `127.0.0.1:0` with its own database, SQLite (a
//! temp directory) or PostgreSQL (a fresh database on the local server, dropped
//! afterwards), and typed helpers for the calls the tests make: the product's
//! own wire types (`app::wire`) and its one SSE decoder (`app::sse`).
//!
//! `TEST_LOG=1 cargo test -p server --test api NAME` prints the servers' logs
//! (`LOG_LEVEL` or `RUST_LOG` pick how much, `debug` by default); without it
//! the tests stay quiet.

use app::wire::{
    ChatCompletionRequest, ChatMessageIn, CompleteEvent, CompleteRequest, CompleteResponse,
    RequestMessage, StreamData,
};
use clap::Parser;
use futures::StreamExt;
use reqwest::{Client, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use server::cli::{Cli, Command};
use server::config::ServeArgs;
use server::startup::Application;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on (trust auth locally).
pub fn postgres_admin_url() -> String {
    std::env::var("CALOS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A throwaway PostgreSQL database, dropped (with its connections) on drop.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let name = format!("calos_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is reachable for tests");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context guarantees: use a private runtime on a thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The process's tracing subscriber, installed once: Mission Control's log feed
/// always (tests read it), and with `TEST_LOG` set (not `0`) the servers' logs
/// through the test writer, so a failing test shows what the server said.
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use server::observability::{feed, telemetry};
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;
        let show = std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
        let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "debug".into());
        let console = show.then(|| {
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(telemetry::filter(&level))
        });
        let _ = tracing_subscriber::registry()
            .with(feed::FeedLayer.with_filter(feed::feed_filter()))
            .with(console)
            .try_init();
    });
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub dashboard_addr: SocketAddr,
    pub client: Client,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
}

/// A signed-up account and its bearer token.
pub struct Session {
    pub username: String,
    pub password: String,
    pub token: String,
}

/// Serve arguments as a user would pass them; env vars the machine may have set
/// (DATABASE_URL, CALOS_*) are overridden below so tests stay isolated.
pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "calos",
        "serve",
        "--local",
        "--port",
        "0",
        "--dashboard-port",
        "0",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Some(Command::Serve(args)),
            ..
        }) => *args,
        other => panic!("bad test arguments: {other:?}"),
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[&str]) -> Self {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await),
        };
        let url = pg.as_ref().map(|p| p.url.clone());
        Self::spawn_on(pg, url, extra).await
    }

    /// calos on `pg` (dropped with the app) reached at `database_url`, which may
    /// differ from `pg.url` (e.g. through a slow proxy).
    pub async fn spawn_on(
        pg: Option<PgDatabase>,
        database_url: Option<String>,
        extra: &[&str],
    ) -> Self {
        // calos's own log events feed Mission Control's log stream.
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = serve_args(extra);
        args.store.data_dir = dir.path().to_path_buf();
        args.jwt_secret = None;
        args.store.database_url = database_url;
        let app = Application::build(&args).await.expect("server builds");
        let (addr, dashboard_addr) = (app.api_addr(), app.dashboard_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A hung request fails the test with a timeout instead of stalling the run.
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            addr,
            dashboard_addr,
            client,
            data_dir: dir.path().to_path_buf(),
            database_url: args.store.database_url.clone(),
            shutdown,
            _dir: dir,
            pg,
        }
    }

    /// `path` on the API listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `path` on the dashboard (Mission Control) listener.
    pub fn dashboard_url(&self, path: &str) -> String {
        format!("http://{}{}", self.dashboard_addr, path)
    }

    /// A path is on the API listener; a whole URL (`dashboard_url`) is taken as is.
    fn resolve(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        }
    }

    /// `method` on `path` (or a whole URL), with the bearer token if one is given.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> RequestBuilder {
        let request = self.client.request(method, self.resolve(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        send(self.request(reqwest::Method::GET, path, token)).await
    }

    /// A POST without a body.
    pub async fn post(&self, path: &str, token: Option<&str>) -> Response {
        send(self.request(reqwest::Method::POST, path, token)).await
    }

    /// `GET path` on the dashboard listener as the holder of `token`.
    pub async fn dashboard_get(&self, path: &str, token: &str) -> Response {
        self.get(&self.dashboard_url(path), Some(token)).await
    }

    /// `POST path` (no body) on the dashboard listener as the holder of `token`.
    pub async fn dashboard_post(&self, path: &str, token: &str) -> Response {
        self.post(&self.dashboard_url(path), Some(token)).await
    }

    /// `GET path` as the holder of `token`; a 200 whose body reads as `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str, token: &str) -> T {
        ok_json(self.get(path, Some(token)).await).await
    }

    /// `GET path` with the session cookie (what a browser sends).
    pub async fn get_with_cookie(&self, path: &str, token: &str) -> Response {
        send(
            self.request(reqwest::Method::GET, path, None)
                .header("cookie", format!("calos_session={token}")),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        send(
            self.client
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Registers and returns the token.
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let response = self.register(username, password).await;
        assert_eq!(response.status(), 201, "register {username}");
        let body: app::wire::AuthResponse = response.json().await.expect("json");
        body.token
    }

    /// A fresh account named `prefix-…` with the password `prefix-password`.
    pub async fn new_user(&self, prefix: &str) -> Session {
        let username = unique(prefix);
        let password = format!("{prefix}-password");
        let token = self.token_for(&username, &password).await;
        Session {
            username,
            password,
            token,
        }
    }

    /// A fresh administrator.
    pub async fn admin(&self) -> Session {
        let session = self.new_user("admin").await;
        self.set_role(&session.username, "admin").await;
        session
    }

    /// A token for a fresh administrator.
    pub async fn admin_token(&self) -> String {
        self.admin().await.token
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get("/api/auth/me", Some(token)).await
    }

    /// The account `token` belongs to.
    pub async fn me_as(&self, token: &str) -> app::wire::UserView {
        self.get_as::<app::wire::MeResponse>("/api/auth/me", token)
            .await
            .user
    }

    /// A chat request (`/api/llm/complete` or `/v1/chat/completions`) as `token`.
    pub fn chat_request(&self, path: &str, token: &str, body: &impl Serialize) -> RequestBuilder {
        self.request(reqwest::Method::POST, path, Some(token))
            .json(body)
    }

    pub async fn post_chat(&self, path: &str, token: &str, body: &impl Serialize) -> Response {
        send(self.chat_request(path, token, body)).await
    }

    /// A whole (`stream:false`) answer from `/api/llm/complete`.
    pub async fn chat(&self, token: &str, body: &CompleteRequest) -> CompleteResponse {
        ok_json(self.post_chat("/api/llm/complete", token, body).await).await
    }

    /// A streamed answer from `/api/llm/complete`: its events, each as it arrived.
    pub async fn stream(
        &self,
        token: &str,
        body: &CompleteRequest,
    ) -> Vec<Received<CompleteEvent>> {
        let response = self.post_chat("/api/llm/complete", token, body).await;
        assert_eq!(response.status(), 200, "a stream starts");
        events(response).await
    }

    /// The generated JWT signing key in the data directory.
    pub fn jwt_secret(&self) -> Vec<u8> {
        std::fs::read_to_string(self.data_dir.join("jwt-secret"))
            .expect("jwt secret")
            .trim()
            .as_bytes()
            .to_vec()
    }

    /// Sets an account's role directly in the database (what `calos users
    /// create --admin` writes), e.g. to promote or demote a signed-in user.
    pub async fn set_role(&self, username: &str, role: &str) {
        let target = server::db::DbTarget::resolve(self.database_url.as_deref(), &self.data_dir);
        let db = server::db::Db::connect(&target, 1).await.expect("database");
        server::with_pool!(&db, pool => sqlx::query("update users set role = $2 where username = $1")
            .bind(username).bind(role).execute(pool).await.map(|_| ()))
        .expect("role updated");
        db.close().await;
    }
}

impl TestApp {
    /// An invite's secret, made straight in the database (what `calos users
    /// invite` does), valid for `hours`.
    pub async fn invite_token(&self, hours: u32) -> String {
        let target = server::db::DbTarget::resolve(self.database_url.as_deref(), &self.data_dir);
        let db = server::db::Db::connect(&target, 1).await.expect("database");
        let issued = server::auth::invites::issue(&db, None, Some("test"), hours, 10_000)
            .await
            .expect("invite issued");
        db.close().await;
        issued.token
    }

    /// A fresh administrator on a gateway whose sign-ups need an invite.
    pub async fn invited_admin(&self) -> Session {
        let username = unique("admin");
        let password = "admin-password-1".to_string();
        let invite = self.invite_token(1).await;
        let response = self
            .post_json(
                "/api/auth/register",
                &json!({ "username": username, "password": password, "invite": invite }),
            )
            .await;
        assert_eq!(response.status(), 201, "invited sign-up");
        let body: app::wire::AuthResponse = response.json().await.expect("json");
        self.set_role(&username, "admin").await;
        Session {
            username,
            password,
            token: body.token,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("request sent")
}

/// A 200 whose body reads as `T`; otherwise the test fails with the body.
pub async fn ok_json<T: DeserializeOwned>(response: Response) -> T {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The chat everyone asks: one user message.
pub const PROMPT: &str = "Hello, how are you?";

/// `POST /api/llm/complete`'s body: `model`, one user message, `stream`.
pub fn ask(model: &str, stream: bool) -> CompleteRequest {
    CompleteRequest {
        model: model.into(),
        messages: vec![ChatMessageIn {
            role: "user".into(),
            content: PROMPT.into(),
        }],
        stream,
        temperature: None,
        max_tokens: None,
        include_timings: false,
        conversation_id: None,
        regenerate: false,
    }
}

/// The same chat in OpenAI's shape, for `/v1/chat/completions`.
pub fn ask_openai(model: &str, stream: bool) -> ChatCompletionRequest {
    ChatCompletionRequest::new(model, vec![RequestMessage::text("user", PROMPT)], stream)
}

/// A request body as JSON, to add what the wire types would not let through.
pub fn as_json(body: &impl Serialize) -> Value {
    serde_json::to_value(body).expect("serialisable")
}

/// One SSE event: when it was decoded, its `data`, and what that says.
#[derive(Debug)]
pub struct Received<T> {
    pub at: Instant,
    pub data: String,
    pub event: T,
}

/// The `data` of each event of an SSE body, decoded by the product's own SSE
/// decoder, until the body ends (or fails: what came before is kept).
pub async fn sse(response: Response) -> Vec<(Instant, String)> {
    let decoded = app::sse::decode(response.bytes_stream());
    futures::pin_mut!(decoded);
    let mut out = Vec::new();
    while let Some(Ok(data)) = decoded.next().await {
        out.push((Instant::now(), data));
    }
    out
}

/// A `/api/llm/complete` stream's events.
pub async fn events(response: Response) -> Vec<Received<CompleteEvent>> {
    parsed(response, CompleteEvent::parse).await
}

/// A `/v1/chat/completions` stream's chunks, then `[DONE]`.
pub async fn chunks(response: Response) -> Vec<Received<StreamData>> {
    parsed(response, StreamData::parse).await
}

async fn parsed<T>(
    response: Response,
    parse: fn(&str) -> Result<T, serde_json::Error>,
) -> Vec<Received<T>> {
    sse(response)
        .await
        .into_iter()
        .map(|(at, data)| {
            let event = parse(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            Received { at, data, event }
        })
        .collect()
}

/// The API error code of a response body.
pub async fn error_code(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(body["success"], json!(false), "error body shape: {body}");
    assert!(
        body["error"]["message"].is_string(),
        "error body shape: {body}"
    );
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Where a redirect points.
pub fn location(response: &Response) -> String {
    response.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("ASCII location")
        .to_string()
}

/// The first `name=value` pair a response's `Set-Cookie` sets.
pub fn set_cookie_pair(response: &Response) -> String {
    response.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .expect("ASCII cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Declares each test twice, against SQLite and against PostgreSQL:
/// `name::sqlite` and `name::postgres`. `async fn name(app)` is handed a
/// `TestApp` with default arguments; `async fn name(backend: Backend)` the
/// backend, for tests that start their own servers (extra arguments, a mock).
macro_rules! on_both_databases {
    () => {};
    ($(#[$meta:meta])* async fn $name:ident($backend:ident : Backend) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = $crate::helpers::Backend::Sqlite;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $backend = $crate::helpers::Backend::Postgres;
                $body
            }
        }
        $crate::helpers::on_both_databases! { $($rest)* }
    };
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block $($rest:tt)*) => {
        $crate::helpers::on_both_databases! {
            $(#[$meta])*
            async fn $name(backend: Backend) {
                let $app = $crate::helpers::TestApp::spawn(backend).await;
                $body
            }
            $($rest)*
        }
    };
}
pub(crate) use on_both_databases;

/// calos with Ollama and an OpenAI-compatible `compat` provider both at `mock`
/// (`mock-gpt` routed to `compat`, retries 20 ms apart), and a signed-up user.
pub async fn app_with(
    backend: Backend,
    mock: &server::emulators::mock_llm::MockServer,
    extra: &[&str],
) -> (TestApp, Session) {
    let ollama = mock.url();
    let compat = format!("{}/v1", mock.url());
    let mut args = vec![
        "--ollama-url",
        &ollama,
        "--compat-url",
        &compat,
        "--model-routes",
        "mock-gpt=compat",
        "--retry-backoff-ms",
        "20",
    ];
    args.extend_from_slice(extra);
    let app = TestApp::spawn_with(backend, &args).await;
    let user = app.new_user("chat").await;
    (app, user)
}

/// A mock upstream's JSON endpoint (`/_mock/stats`, `/_mock/last-request`).
pub async fn mock_json(mock: &server::emulators::mock_llm::MockServer, path: &str) -> Value {
    reqwest::get(format!("{}{path}", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A `calos mock-llm` on a free port: first token after `ttft_ms`, then
/// `tokens_per_sec` (0 = no gaps), `tokens` in all.
pub async fn mock(
    ttft_ms: u64,
    tokens_per_sec: f64,
    tokens: u32,
) -> server::emulators::mock_llm::MockServer {
    server::emulators::mock_llm::spawn(&server::emulators::mock_llm::MockArgs {
        ttft_ms,
        tokens_per_sec,
        tokens,
        ..server::emulators::mock_llm::MockArgs::default()
    })
    .await
    .unwrap()
}
