//! `TestApp`: the real server on `127.0.0.1:0` with its own database, SQLite (a
//! temp directory) or PostgreSQL (a fresh database on the local server, dropped
//! afterwards), and typed helpers for the calls the tests make.

use clap::Parser;
use reqwest::{Client, Response};
use serde_json::{json, Value};
use server::cli::{Cli, Command};
use server::config::ServeArgs;
use server::startup::Application;
use std::net::SocketAddr;
use std::path::PathBuf;
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
        server::observability::telemetry::init_feed_only();
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Registers and returns the token.
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let response = self.register(username, password).await;
        assert_eq!(response.status(), 201, "register {username}");
        let body: Value = response.json().await.expect("json");
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.client
            .get(self.url("/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// The generated JWT signing key in the data directory.
    pub fn jwt_secret(&self) -> Vec<u8> {
        std::fs::read_to_string(self.data_dir.join("jwt-secret"))
            .expect("jwt secret")
            .trim()
            .as_bytes()
            .to_vec()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
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

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Declares each test twice, against SQLite and against PostgreSQL:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await;
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let $app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await;
                    $body
                }
            }
        )*
    };
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

impl TestApp {
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

    /// A token for a fresh administrator.
    pub async fn admin_token(&self) -> String {
        let name = unique("admin");
        let token = self.token_for(&name, "admin-password").await;
        self.set_role(&name, "admin").await;
        token
    }
}
