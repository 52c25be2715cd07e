//! The `calos` binary itself: startup refusals, logs without secrets, graceful
//! shutdown on SIGTERM, and the `users` CLI against both databases.

use crate::helpers::{unique, Backend, TestApp};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_calos");

fn calos(data_dir: &std::path::Path, database_url: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("CALOS_DATA_DIR", data_dir)
        .env("DATABASE_URL", database_url.unwrap_or(""))
        .env_remove("CALOS_JWT_SECRET");
    cmd
}

/// Starts `calos serve` on free ports and returns it with its base URL.
fn start_server(data_dir: &std::path::Path, envs: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = calos(data_dir, None);
    cmd.args(["serve", "--local", "--port", "0", "--dashboard-port", "0"])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("calos starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url in the listening line")
        .to_string();
    (child, url)
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn startup_refuses_a_short_or_placeholder_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    for secret in ["too-short", server::auth::jwt::EXAMPLE_SECRET] {
        let output = calos(dir.path(), None)
            .args(["serve", "--local", "--port", "0", "--dashboard-port", "0"])
            .env("CALOS_JWT_SECRET", secret)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("CALOS_JWT_SECRET"), "{stderr}");
        assert!(
            !stderr.contains(secret),
            "the secret itself is not echoed: {stderr}"
        );
    }
}

#[test]
fn startup_refuses_a_bad_otlp_endpoint_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = calos(dir.path(), None)
        .args(["serve", "--local", "--port", "0", "--dashboard-port", "0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_generated_jwt_secret_is_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = start_server(dir.path(), &[]);
    let mode = std::fs::metadata(dir.path().join("jwt-secret"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    terminate(&child);
    wait_with_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(mode, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_never_contain_passwords_tokens_or_the_key_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start_server(
        dir.path(),
        &[
            ("LOG_LEVEL", "trace"),
            ("LOG_FORMAT", "json"),
            ("CALOS_SIM_TTFT_MS", "0"),
            ("CALOS_SIM_TOKENS", "3"),
        ],
    );
    let client = reqwest::Client::new();
    let password = "Sup3r-Secret-Passphrase-9d1";
    let username = format!("log\r\n{}", unique("forged"));
    let evil = client
        .post(format!("{url}/api/auth/register"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 400);
    let name = unique("logger");
    let body: serde_json::Value = client
        .post(format!("{url}/api/auth/register"))
        .json(&json!({"username": name, "password": password, "email": format!("{name}@example.com")}))
        .send().await.unwrap().json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    client
        .post(format!("{url}/api/auth/login"))
        .json(&json!({"username": name, "password": "Wrong-Passphrase-77"}))
        .send()
        .await
        .unwrap();
    client
        .get(format!("{url}/api/auth/me?token={token}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // An API key: made, used for chat (the simulated model), and misused.
    let made: serde_json::Value = client
        .post(format!("{url}/api/keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "logged"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = made["key"].as_str().unwrap().to_string();
    let chat = client
        .post(format!("{url}/v1/chat/completions"))
        .header("x-api-key", &api_key)
        .json(&json!({"model": "sim", "messages": [{"role": "user", "content": format!("my key is {api_key}")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    client
        .get(format!("{url}/api/auth/me"))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap();
    // A last chat just before SIGTERM: its ledger row is still queued.
    let last = client
        .post(format!("{url}/api/llm/complete"))
        .header("x-api-key", &api_key)
        .header("cache-control", "no-cache")
        .json(&json!({"model": "sim", "messages": [{"role": "user", "content": "last words"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), 200);

    terminate(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 within the deadline: {status:?}"
    );
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let secret = std::fs::read_to_string(dir.path().join("jwt-secret")).unwrap();
    assert!(
        logs.contains("sign-in failed"),
        "auth attempts are logged: {logs}"
    );
    for leaked in [
        password,
        "Wrong-Passphrase-77",
        token.as_str(),
        secret.trim(),
        &api_key[12..],
    ] {
        assert!(!logs.contains(leaked), "log leaked {leaked:.12}…");
    }
    assert!(
        !logs.lines().any(|l| l.starts_with("forged")),
        "no forged log lines"
    );
    // The ledger kept both chats through the shutdown, and no secret.
    let ledger = server::db::Db::connect(
        &server::db::DbTarget::SqliteFile(dir.path().join("calos-usage.db")),
        1,
    )
    .await
    .unwrap();
    let rows: Vec<(String, Option<String>, i64)> =
        server::with_pool!(&ledger, pool => sqlx::query_as(
        "select model, key_id, completion_tokens from usage_events order by id")
        .fetch_all(pool)
        .await)
        .unwrap();
    ledger.close().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|(model, key, tokens)| model == "sim"
        && key.as_deref() == made["id"].as_str()
        && *tokens == 3));
    let mut stored = std::fs::read(dir.path().join("calos-usage.db")).unwrap();
    stored.extend(std::fs::read(dir.path().join("calos-usage.db-wal")).unwrap_or_default());
    assert!(
        !String::from_utf8_lossy(&stored).contains(&api_key[12..]),
        "no secret in the ledger"
    );
}

/// SIGTERM with replies streaming: no new connection is taken, a reply that
/// ends within the grace period ends whole, one that would not gets a final
/// `shutting_down` error event before the grace runs out, and the process
/// exits 0 in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_short_streams_finish_and_ends_long_ones_with_an_error_event() {
    use crate::helpers::{ask, events, mock};
    use app::wire::CompleteEvent;
    // 30 tokens at 10/s: about 3 s. 200 at 10/s: 20 s, far past the grace.
    let (short, long) = (mock(0, 10.0, 30).await, mock(0, 10.0, 200).await);
    let dir = tempfile::tempdir().unwrap();
    let compat = format!("{}/v1", short.url());
    let (mut child, url) = start_server(
        dir.path(),
        &[
            ("OLLAMA_URL", long.url().as_str()),
            ("CALOS_COMPAT_URL", compat.as_str()),
            ("CALOS_MODEL_ROUTES", "mock-gpt=compat"),
            ("CALOS_SHUTDOWN_GRACE_SECS", "5"),
        ],
    );
    let client = reqwest::Client::new();
    let name = unique("draining");
    let body: serde_json::Value = client
        .post(format!("{url}/api/auth/register"))
        .json(&json!({"username": name, "password": "draining-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let open = |model: &'static str| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let response = client
                .post(format!("{url}/api/llm/complete"))
                .bearer_auth(token)
                .json(&ask(model, true))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{model}");
            response
        }
    };
    // Both replies are streaming (their 200 has arrived) before the signal.
    let short_reply = tokio::spawn(events(open("mock-gpt").await));
    let long_reply = tokio::spawn(events(open("mock-llama").await));

    terminate(&child);
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let address = url.trim_start_matches("http://").to_string();
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "a new connection after SIGTERM is refused"
    );

    let short_events = short_reply.await.unwrap();
    assert!(
        matches!(
            short_events.last().map(|e| &e.event),
            Some(CompleteEvent::Done(_))
        ),
        "the short reply ended whole: {:?}",
        short_events.last()
    );
    let long_events = long_reply.await.unwrap();
    let ended = signalled.elapsed();
    match long_events.last().map(|e| &e.event) {
        Some(CompleteEvent::Error { error }) => assert_eq!(error.code, "shutting_down"),
        other => panic!("the long reply ended with {other:?}"),
    }
    assert!(long_events.len() > 10, "it streamed before it was ended");
    assert!(
        ended < Duration::from_secs(5),
        "ended within the grace: {ended:?}"
    );
    let status = wait_with_deadline(&mut child, Duration::from_secs(8));
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 in time: {status:?}"
    );
}

fn users_cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = calos(&app.data_dir, app.database_url.as_deref());
    cmd.arg("users")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

async fn users_cli_round_trip(app: TestApp) {
    let keep = unique("test-user-keep");
    let (ok, out) = users_cli(
        &app,
        &[
            "create",
            "--username",
            &keep,
            "--email",
            &format!("{keep}@example.com"),
            "--admin",
            "--password-stdin",
        ],
        Some("admin-password-1\n"),
    );
    assert!(ok, "{out}");
    for _ in 0..2 {
        assert_eq!(
            app.register(&unique("test-user"), "test-password-123")
                .await
                .status(),
            201
        );
    }
    let other = unique("someone");
    let token = app.token_for(&other, "someone-password").await;

    let (ok, out) = users_cli(&app, &["list"], None);
    assert!(
        ok && out.contains(&keep) && out.contains("admin") && out.contains(&other),
        "{out}"
    );

    // The admin can sign in with the password given on stdin.
    let login = app.login(&keep, "admin-password-1").await;
    let login: serde_json::Value = login.json().await.unwrap();
    assert_eq!(login["user"]["role"], "admin");

    let (ok, out) = users_cli(&app, &["prune", "--prefix", "test-user-"], None);
    assert!(ok && out.contains("pruned 2 account(s)"), "{out}");
    let (_, out) = users_cli(&app, &["list", "--json"], None);
    assert!(out.contains(&keep), "{out}");
    assert_eq!(
        out.matches("\"username\":\"test-user-").count(),
        1,
        "only the persistent one is left: {out}"
    );

    let (ok, out) = users_cli(&app, &["delete", &other], None);
    assert!(ok, "{out}");
    assert_eq!(
        app.me(&token).await.status(),
        401,
        "a deleted account's token stops working"
    );
    let (ok, _) = users_cli(
        &app,
        &["create", "--username", &keep, "--password-stdin"],
        Some("another-password\n"),
    );
    assert!(!ok, "duplicate username is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cli_creates_lists_prunes_and_deletes_on_sqlite() {
    users_cli_round_trip(TestApp::spawn(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cli_creates_lists_prunes_and_deletes_on_postgres() {
    users_cli_round_trip(TestApp::spawn(Backend::Postgres).await).await;
}
