//! `calos perf`, `calos load` and `calos diag` against a real calos with
//! `calos mock-llm` behind it: counts add up, percentiles match a known delay,
//! verdicts name the component a delay was injected into, ephemeral users leave
//! nothing behind, dead targets fail clearly.
//!
//! `perf` and `diag` run in this process: the command line is parsed by calos's
//! own `Cli` and handed to the library's `measure`, whose report is what
//! `--json` prints. `load` runs as the binary users run: it prints its report
//! and handles Ctrl-C (SIGINT) itself, which only a separate process can show.

use crate::helpers::{mock, Backend, PgDatabase, TestApp};
use clap::Parser;
use serde_json::Value;
use server::cli::toolbox::{diag, perf, ToolError, EXIT_UNREACHABLE};
use server::cli::Cli;
use server::emulators::mock_llm::MockServer;
use server::emulators::mock_net::{self, MockNet, MockNetArgs};
use std::process::Output;
use std::time::Duration;
use tokio::net::TcpListener;
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

/// `calos ARGS` as the binary parses it, with what the test did not pass taken
/// from nowhere: the machine's CALOS_*, DATABASE_URL and provider keys are not
/// read (the binary's runs above remove them from its environment).
fn parse(args: &[&str]) -> server::cli::Command {
    let given = |flag: &str| args.iter().any(|a| a.starts_with(flag));
    let argv = std::iter::once("calos").chain(args.iter().copied());
    let Ok(Cli {
        command: Some(mut command),
        ..
    }) = Cli::try_parse_from(argv)
    else {
        panic!("calos {args:?} does not parse");
    };
    let sign_in = |s: &mut server::cli::toolbox::client::SignInArgs| {
        for (flag, value) in [
            ("--email", &mut s.email),
            ("--username", &mut s.username),
            ("--password", &mut s.password),
            ("--token", &mut s.token),
        ] {
            if !given(flag) {
                *value = None;
            }
        }
    };
    let llm = |l: &mut server::config::LlmArgs| {
        (l.openai_api_key, l.deepseek_api_key, l.compat_url) = (None, None, None);
        l.model_routes.clear();
    };
    let store = |s: &mut server::config::StoreArgs| {
        if !given("--database-url") {
            s.database_url = None;
        }
    };
    use diag::DiagCommand as D;
    use server::cli::Command as C;
    match &mut command {
        C::Perf(a) => sign_in(&mut a.target.sign_in),
        C::Diag(d) => match &mut d.command {
            D::Db(a) => store(&mut a.store),
            D::Llm(a) => llm(&mut a.llm),
            D::All(a) => {
                sign_in(&mut a.target.sign_in);
                store(&mut a.store);
                llm(&mut a.llm);
            }
            D::Network(_) => {}
        },
        _ => {}
    }
    command
}

/// `calos perf|diag ARGS` in this process: the report `--json` would print.
async fn tool(args: &[&str]) -> Result<Value, ToolError> {
    use diag::DiagCommand as D;
    use server::cli::Command as C;
    let report = match parse(args) {
        C::Perf(a) => to_json(&perf::measure(&a).await?),
        C::Diag(d) => match d.command {
            D::Network(a) => to_json(&diag::network::measure(&a).await?),
            D::Db(a) => to_json(&diag::db::measure(&a).await?),
            D::Llm(a) => to_json(&diag::llm::measure(&a).await?),
            D::All(a) => {
                let report = diag::all::measure(&a).await?;
                // What `calos diag all` exits non-zero for.
                assert!(report.perf.is_ok(), "the run through calos failed");
                to_json(&report)
            }
        },
        _ => panic!("only perf and diag run in process"),
    };
    Ok(report)
}

/// A report as the JSON `--json` prints.
fn to_json(report: &impl serde::Serialize) -> Value {
    serde_json::to_value(report).expect("a report serialises")
}

/// A report the command produced (the run succeeded).
async fn report(args: &[&str]) -> Value {
    match tool(args).await {
        Ok(report) => report,
        Err(e) => panic!("calos {args:?} failed: {e:#}"),
    }
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

/// calos with Ollama at `mock`, and a token for a fresh account.
async fn gateway(mock: &MockServer) -> (TestApp, String) {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--ollama-url", &mock.url()]).await;
    let token = app.new_user("tool").await.token;
    (app, token)
}

/// `calos perf --json` against `url` as the holder of `token`.
async fn perf_json(url: &str, token: &str) -> Value {
    report(&[
        "perf",
        "--url",
        url,
        "--token",
        token,
        "--model",
        "mock-llama",
        "--json",
    ])
    .await
}

async fn requests_seen(mock: &MockServer) -> u64 {
    mock.state
        .requests
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// `calos mock-net` to `upstream`, holding every byte `delay` in each
/// direction: a slow network or a slow database, made to order. The proxy runs
/// until the returned value is dropped.
async fn slow_proxy(upstream: String, delay: Duration) -> MockNet {
    mock_net::start(&MockNetArgs::to(upstream, delay.as_secs_f64() * 1e3))
        .await
        .expect("mock-net starts")
}

/// A port nothing listens on.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// The `test-user-…` accounts in `app`'s database, as `calos users list` shows them.
async fn leftover_test_users(app: &TestApp) -> String {
    let data_dir = app.data_dir.to_string_lossy().to_string();
    let argv = ["calos", "users", "--data-dir", &data_dir, "list"];
    let Ok(Cli {
        command: Some(server::cli::Command::Users(mut args)),
        ..
    }) = Cli::try_parse_from(argv)
    else {
        panic!("users list parses");
    };
    args.store.database_url = None;
    let mut out = Vec::new();
    server::cli::users::run(args, &mut out).await.unwrap();
    String::from_utf8_lossy(&out)
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
        leftover_test_users(&app).await,
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
        !leftover_test_users(&app).await.is_empty(),
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
    assert_eq!(
        leftover_test_users(&app).await,
        "",
        "no account left behind"
    );
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
    let args = [
        "perf",
        "--url",
        &base,
        "--token",
        &token,
        "--model",
        "mock-llama",
        "--stream",
    ];
    let server::cli::Command::Perf(args) = parse(&args) else {
        unreachable!()
    };
    let text = perf::render(&perf::measure(&args).await.unwrap());
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
    let pg = PgDatabase::create().await;
    // PostgreSQL behind a proxy: each query's round trip costs 80 ms.
    let proxy = slow_proxy("127.0.0.1:5432".into(), Duration::from_millis(40)).await;
    let slow_url = pg.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(slow_url, pg.url, "the database URL goes through the proxy");
    let mock = mock(10, 0.0, 3).await;
    let app = TestApp::spawn_on(Some(pg), Some(slow_url), &["--ollama-url", &mock.url()]).await;
    let token = app.new_user("slowdb").await.token;
    let r = perf_json(&app.url(""), &token).await;
    assert!(f(&r, "/server/database") >= 80.0, "{r:#}");
    assert_eq!(r["verdict"]["culprit"], "database", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_blames_the_network_when_the_path_to_calos_is_slow() {
    let mock = mock(10, 0.0, 3).await;
    let (app, token) = gateway(&mock).await;
    // 75 ms each way: 150 ms per request and response.
    let proxy = slow_proxy(app.addr.to_string(), Duration::from_millis(75)).await;
    let r = perf_json(&format!("http://{}", proxy.addr), &token).await;
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
        // What `calos` prints (`calos: {error}`) and exits with.
        let (code, stderr) = if args[0] == "load" {
            let output = run(&mut calos(&args)).await;
            let stderr = String::from_utf8_lossy(&output.stderr).to_string();
            (output.status.code(), stderr)
        } else {
            let Err(e) = tool(&args).await else {
                panic!("{args:?} measured a dead target")
            };
            (Some(i32::from(e.exit_code())), format!("calos: {e:#}"))
        };
        assert_eq!(
            code,
            Some(i32::from(EXIT_UNREACHABLE)),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("cannot reach") || stderr.contains("unreachable"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_network_times_each_phase() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = report(&[
        "diag",
        "network",
        &app.url("/api/health"),
        "-n",
        "3",
        "--json",
    ])
    .await;
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

/// `calos diag db --json` with one store option (`--data-dir` or `--database-url`).
async fn diag_db(option: &str, value: &str) -> Value {
    report(&["diag", "db", "--json", option, value]).await
}

fn index_found_and_used(r: &Value) -> (Option<bool>, Option<bool>) {
    (r["indexExists"].as_bool(), r["usesIndex"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_db_finds_the_username_index_on_both_databases() {
    let sqlite = TestApp::spawn(Backend::Sqlite).await;
    let r = diag_db("--data-dir", &sqlite.data_dir.to_string_lossy()).await;
    assert_eq!(r["backend"], "sqlite");
    assert_eq!(index_found_and_used(&r), (Some(true), Some(true)), "{r:#}");
    assert!(f(&r, "/userLookup/avg") >= 0.0);

    let pg = TestApp::spawn(Backend::Postgres).await;
    let url = pg.database_url.clone().unwrap();
    let r = diag_db("--database-url", &url).await;
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
    let r = diag_db("--database-url", &url).await;
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

    let missing = tool(&["diag", "db", "--data-dir", "/nonexistent/calos"]).await;
    let code = missing.as_ref().err().map(ToolError::exit_code);
    assert_eq!(code, Some(EXIT_UNREACHABLE), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_llm_calls_the_provider_directly_with_its_own_durations() {
    let mock = mock(80, 50.0, 4).await;
    let ollama = mock.url();
    let r = report(&[
        "diag",
        "llm",
        "--model",
        "mock-llama",
        "--ollama-url",
        &ollama,
        "-n",
        "2",
        "--json",
    ])
    .await;
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
async fn diag_llm_checks_every_deployment_of_a_model_and_names_the_dead_one() {
    let alive = mock(20, 100.0, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("calos.toml");
    std::fs::write(
        &config,
        format!(
            "[[deployment]]\nmodel = \"llama3.2\"\nprovider = \"ollama\"\nurl = \"{}\"\nupstream_model = \"mock-llama\"\n\
             [[deployment]]\nname = \"dead\"\nmodel = \"llama3.2\"\nprovider = \"ollama\"\nurl = \"http://127.0.0.1:9\"\n",
            alive.url()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().to_string();
    let r = report(&[
        "diag", "llm", "--model", "llama3.2", "--config", &config, "--json",
    ])
    .await;
    assert_eq!(r["deployment"], "llama3.2#1", "{r:#}");
    assert_eq!(r["calls"][0]["deltas"], 2, "{r:#}");
    assert_eq!(r["others"][0]["deployment"], "dead", "{r:#}");
    assert!(
        r["others"][0]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{r:#}"
    );
    assert_eq!(requests_seen(&alive).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_all_sets_the_gateway_beside_the_direct_call() {
    let mock = mock(50, 100.0, 3).await;
    let (app, token) = gateway(&mock).await;
    let data_dir = app.data_dir.to_string_lossy().to_string();
    let (url, ollama) = (app.url(""), mock.url());
    let r = report(&[
        "diag",
        "all",
        "--url",
        &url,
        "--token",
        &token,
        "--model",
        "mock-llama",
        "--ollama-url",
        &ollama,
        "-n",
        "2",
        "--data-dir",
        &data_dir,
        "--json",
    ])
    .await;
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
