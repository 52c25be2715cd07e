//! `calos perf`, `calos load` and `calos diag`, run as the binary users run,
//! against a real calos with `calos mock-llm` behind it: counts add up,
//! percentiles match a known delay, verdicts name the component a delay was
//! injected into, ephemeral users leave nothing behind, dead targets fail clearly.

use crate::helpers::{mock, unique, Backend, PgDatabase, TestApp};
use serde_json::Value;
use server::emulators::mock_llm::MockServer;
use std::process::Output;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_calos");

fn calos(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("LOG_LEVEL", "warn").kill_on_drop(true);
    for var in [
        "CALOS_URL",
        "CALOS_TOKEN",
        "CALOS_EMAIL",
        "CALOS_USERNAME",
        "CALOS_PASSWORD",
        "DATABASE_URL",
        "OPENAI_API_KEY",
        "DEEPSEEK_API_KEY",
        "CALOS_COMPAT_URL",
        "CALOS_MODEL_ROUTES",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the command finished within 2 minutes")
        .expect("calos runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

/// calos with Ollama at `mock`, and a token for a fresh account.
async fn gateway(mock: &MockServer) -> (TestApp, String) {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--ollama-url", &mock.url()]).await;
    let token = app.token_for(&unique("tool"), "tool-password").await;
    (app, token)
}

/// `calos perf --json` against `url` as the holder of `token`.
async fn perf_json(url: &str, token: &str) -> Value {
    let output = run(&mut calos(&[
        "perf",
        "--url",
        url,
        "--token",
        token,
        "--model",
        "mock-llama",
        "--json",
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    json_of(&output)
}

async fn requests_seen(mock: &MockServer) -> u64 {
    mock.state
        .requests
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// A TCP proxy that holds every chunk travelling back from `upstream` for
/// `delay`: a slow network or a slow database, made to order.
async fn slow_proxy(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = tokio::io::copy(&mut cr, &mut sw);
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = sr.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        tokio::time::sleep(delay).await;
                        cw.write_all(&buf[..n]).await?;
                    }
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    addr.to_string()
}

/// A port nothing listens on.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn leftover_test_users(app: &TestApp) -> String {
    let output = std::process::Command::new(BIN)
        .args(["users", "list"])
        .env("CALOS_DATA_DIR", &app.data_dir)
        .env("DATABASE_URL", "")
        .output()
        .expect("users list runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("test-user-"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_add_up_and_percentiles_match_a_fixed_delay() {
    // Every whole reply takes 150 ms at the mock (TTFT 150, no gaps).
    let mock = mock(150, 0.0, 5).await;
    let (app, token) = gateway(&mock).await;
    let base = app.url("");
    let output = run(calos(&[
        "load",
        "--url",
        &base,
        "--token",
        &token,
        "--model",
        "mock-llama",
        "-c",
        "4",
        "-n",
        "5",
        "--no-cache",
        "--json",
    ])
    .env("NO_COLOR", "1"))
    .await;
    assert!(output.status.success(), "{output:?}");
    let r = json_of(&output);
    assert_eq!(r["requests"]["total"], 20, "{r:#}");
    assert_eq!(r["requests"]["ok"], 20, "{r:#}");
    assert_eq!(r["requests"]["failed"], 0);
    assert_eq!(
        requests_seen(&mock).await,
        20,
        "--no-cache reached the model every time"
    );
    let (min, p50, p99) = (
        f(&r, "/latency/min"),
        f(&r, "/latency/p50"),
        f(&r, "/latency/p99"),
    );
    assert!(min >= 150.0, "no reply can beat the mock's delay: {min}");
    assert!(p50 < 150.0 * 1.5, "p50 {p50}");
    assert!(p99 < 150.0 * 2.5, "p99 {p99}");
    // The server's own account came back with every answer.
    assert_eq!(r["server"]["responses"], 20);
    assert!(f(&r, "/server/llm/p50") >= 150.0, "{r:#}");
    assert!(
        f(&r, "/server/total/p50") <= p50,
        "server total within client latency"
    );
    // ab's figures: time per request across all = duration / requests.
    let across = f(&r, "/timePerRequestAcrossMs");
    assert!((across - f(&r, "/durationSecs") * 1000.0 / 20.0).abs() < 0.01);
    assert_eq!(r["servedWithin"].as_array().map(Vec::len), Some(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_streams_report_ttft_itl_and_clean_up_ephemeral_users() {
    // TTFT 60 ms, then a token every 40 ms: 4 tokens per reply.
    let mock = mock(60, 25.0, 4).await;
    let (app, _) = gateway(&mock).await;
    let base = app.url("");
    let output = run(&mut calos(&[
        "load",
        "--url",
        &base,
        "--ephemeral-users",
        "-c",
        "2",
        "--model",
        "mock-llama",
        "--stream",
        "--rate",
        "10",
        "--duration",
        "2s",
        "--json",
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let r = json_of(&output);
    assert_eq!(
        (r["mode"].as_str(), r["requests"]["ok"].as_u64()),
        (Some("open"), Some(20)),
        "{r:#}"
    );
    assert_eq!(f(&r, "/openLoop/scheduledRate"), 10.0);
    let achieved = f(&r, "/openLoop/achievedSendRate");
    assert!(
        (achieved - 10.0).abs() < 1.0,
        "sends kept to the schedule: {achieved}"
    );
    let ttft = f(&r, "/streaming/ttft/p50");
    assert!((60.0..200.0).contains(&ttft), "ttft {ttft}");
    let itl = f(&r, "/streaming/itl/p50");
    assert!((30.0..90.0).contains(&itl), "itl {itl}");
    assert_eq!(r["streaming"]["outputTokens"], 80);
    assert_eq!(r["streaming"]["tokenCountMismatches"], 0);
    assert!(f(&r, "/server/llm/p50") >= 60.0 + 3.0 * 40.0 - 5.0, "{r:#}");
    assert_eq!(
        leftover_test_users(&app),
        "",
        "ephemeral users were deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_users_are_deleted_when_the_run_is_interrupted() {
    // Replies take 30 s: the run is surely still going when it is stopped.
    let mock = mock(30_000, 0.0, 3).await;
    let (app, _) = gateway(&mock).await;
    let base = app.url("");
    let child = calos(&[
        "load",
        "--url",
        &base,
        "--ephemeral-users",
        "-c",
        "3",
        "-n",
        "5",
        "--model",
        "mock-llama",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while requests_seen(&mock).await < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !leftover_test_users(&app).is_empty(),
        "the accounts exist mid-run"
    );
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("stopped promptly")
        .unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(json_of(&output)["interrupted"].as_bool().unwrap_or(false));
    assert_eq!(leftover_test_users(&app), "", "no account left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_blames_the_llm_when_the_model_is_slow() {
    let mock = mock(3_200, 0.0, 3).await;
    let (app, token) = gateway(&mock).await;
    let base = app.url("");
    let r = perf_json(&base, &token).await;
    assert_eq!(r["verdict"]["culprit"], "llm", "{r:#}");
    assert!(f(&r, "/server/llm") >= 3_200.0);
    assert!(f(&r, "/client/total") >= f(&r, "/server/total"));
    assert_eq!(r["cacheStatus"], "bypass");
    // The text report has the seed's lines.
    let text = run(&mut calos(&[
        "perf",
        "--url",
        &base,
        "--token",
        &token,
        "--model",
        "mock-llama",
        "--stream",
    ]))
    .await;
    let text = String::from_utf8_lossy(&text.stdout);
    for line in [
        "Total Time:",
        "├─ Auth:",
        "├─ Database:",
        "├─ LLM:",
        "└─ Network:",
        "Verdict: The LLM is slow",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_blames_the_database_when_the_database_is_slow() {
    // PostgreSQL behind a proxy that holds each answer for 80 ms.
    let pg = PgDatabase::create().await;
    let proxy = slow_proxy("127.0.0.1:5432".into(), Duration::from_millis(80)).await;
    let slow_url = pg.url.replace("127.0.0.1:5432", &proxy);
    assert_ne!(slow_url, pg.url, "the database URL goes through the proxy");
    let mock = mock(10, 0.0, 3).await;
    let app = TestApp::spawn_on(Some(pg), Some(slow_url), &["--ollama-url", &mock.url()]).await;
    let token = app.token_for(&unique("slowdb"), "tool-password").await;
    let r = perf_json(&app.url(""), &token).await;
    assert!(f(&r, "/server/database") >= 80.0, "{r:#}");
    assert_eq!(r["verdict"]["culprit"], "database", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_blames_the_network_when_the_path_to_calos_is_slow() {
    let mock = mock(10, 0.0, 3).await;
    let (app, token) = gateway(&mock).await;
    let proxy = slow_proxy(app.addr.to_string(), Duration::from_millis(150)).await;
    let r = perf_json(&format!("http://{proxy}"), &token).await;
    assert!(f(&r, "/components/network") >= 150.0, "{r:#}");
    assert_eq!(r["verdict"]["culprit"], "network", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_gets_a_clear_error_and_a_non_zero_exit() {
    let dead = dead_url().await;
    for args in [
        vec![
            "perf",
            "--url",
            &dead,
            "--email",
            "a@example.com",
            "--password",
            "password-1",
        ],
        vec!["load", "--url", &dead, "--token", "t", "-c", "1", "-n", "2"],
        vec!["diag", "network", &dead, "-n", "2"],
    ] {
        let output = run(&mut calos(&args)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(
            stderr.contains("cannot reach") || stderr.contains("unreachable"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_network_times_each_phase() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let output = run(&mut calos(&[
        "diag",
        "network",
        &app.url("/api/health"),
        "-n",
        "3",
        "--json",
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let r = json_of(&output);
    assert_eq!(
        (r["attempts"].as_u64(), r["answered"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(f(&r, "/lossPercent"), 0.0);
    assert_eq!(r["probes"][0]["status"], 200);
    for phase in ["dns", "connect", "firstByte", "latency"] {
        assert!(f(&r, &format!("/{phase}/avg")) >= 0.0, "{phase}");
    }
    assert!(r["tls"].is_null(), "plain HTTP has no TLS phase");
    assert!(f(&r, "/latency/min") <= f(&r, "/latency/max"));
}

/// `calos diag db --json` with one store variable set; asserts it succeeded.
async fn diag_db(var: &str, value: &str) -> Value {
    let output = run(calos(&["diag", "db", "--json"]).env(var, value)).await;
    assert!(output.status.success(), "{output:?}");
    json_of(&output)
}

fn index_found_and_used(r: &Value) -> (Option<bool>, Option<bool>) {
    (r["indexExists"].as_bool(), r["usesIndex"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_db_finds_the_username_index_on_both_databases() {
    let sqlite = TestApp::spawn(Backend::Sqlite).await;
    let r = diag_db("CALOS_DATA_DIR", &sqlite.data_dir.to_string_lossy()).await;
    assert_eq!(r["backend"], "sqlite");
    assert_eq!(index_found_and_used(&r), (Some(true), Some(true)), "{r:#}");
    assert!(f(&r, "/userLookup/avg") >= 0.0);

    let pg = TestApp::spawn(Backend::Postgres).await;
    let url = pg.database_url.clone().unwrap();
    let r = diag_db("DATABASE_URL", &url).await;
    assert_eq!(r["backend"], "postgres");
    assert_eq!(index_found_and_used(&r), (Some(true), Some(true)), "{r:#}");
    let forced = r["planWithoutSeqScan"].to_string();
    assert!(forced.contains("idx_users_username"), "{forced}");

    // A database without the index is called out with the fix.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("drop index idx_users_username")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let r = diag_db("DATABASE_URL", &url).await;
    assert_eq!(
        index_found_and_used(&r),
        (Some(false), Some(false)),
        "{r:#}"
    );
    assert!(
        r["advice"]
            .as_str()
            .unwrap_or_default()
            .contains("CREATE INDEX"),
        "{r:#}"
    );

    let missing = run(calos(&["diag", "db"]).env("CALOS_DATA_DIR", "/nonexistent/calos")).await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_llm_calls_the_provider_directly_with_its_own_durations() {
    let mock = mock(80, 50.0, 4).await;
    let output = run(&mut calos(&[
        "diag",
        "llm",
        "--model",
        "mock-llama",
        "--ollama-url",
        &mock.url(),
        "-n",
        "2",
        "--json",
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let r = json_of(&output);
    assert_eq!(r["provider"], "ollama");
    assert_eq!(requests_seen(&mock).await, 2);
    let call = &r["calls"][0];
    assert!(f(call, "/ttft") >= 80.0, "{r:#}");
    assert!(f(call, "/total") >= 80.0 + 3.0 * 20.0 - 5.0, "{r:#}");
    assert_eq!(call["deltas"], 4);
    assert!(
        f(call, "/providerTimings/totalMs") > 0.0,
        "Ollama's own durations: {r:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_all_sets_the_gateway_beside_the_direct_call() {
    let mock = mock(50, 100.0, 3).await;
    let (app, token) = gateway(&mock).await;
    let data_dir = app.data_dir.to_string_lossy().to_string();
    let output = run(calos(&[
        "diag",
        "all",
        "--url",
        &app.url(""),
        "--token",
        &token,
        "--model",
        "mock-llama",
        "--ollama-url",
        &mock.url(),
        "-n",
        "2",
        "--json",
    ])
    .env("CALOS_DATA_DIR", &data_dir))
    .await;
    assert!(output.status.success(), "{output:?}");
    let r = json_of(&output);
    let ttft = &r["comparison"][0];
    assert_eq!(ttft["figure"], "TTFT");
    assert!(
        f(ttft, "/direct") >= 50.0 && f(ttft, "/throughCalos") >= 50.0,
        "{r:#}"
    );
    assert!(r["network"]["Ok"]["answered"].as_u64() == Some(2), "{r:#}");
    assert!(
        r["database"]["Ok"]["usesIndex"].as_bool() == Some(true),
        "{r:#}"
    );
    assert_eq!(r["verdict"]["culprit"], "none", "{r:#}");
}
