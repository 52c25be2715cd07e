//! The differential verdict against real injected delays: a baseline of
//! `calos perf --runs 8`, then one slower component at a time (the network in
//! front of calos, PostgreSQL behind it, the model, calos's own code), each
//! compared with `--baseline`, and a control with nothing changed. Every
//! delay is real: `calos mock-net` in the path, the mock model's TTFT, and the
//! debug build's `--debug-delay-ms`.
//!
//! One run per component keeps this cheap; `./dev bench attribution` repeats
//! the experiment 20 times per row and prints the confusion table.

use crate::helpers::{mock, PgDatabase, TestApp};
use clap::Parser;
use serde_json::Value;
use server::cli::toolbox::perf;
use server::cli::{Cli, Command};
use server::emulators::mock_net::{self, MockNet, MockNetArgs};
use std::path::Path;

/// Added to the component under test: the issue's +50 ms.
const INJECTED_MS: u64 = 50;

/// A calos on PostgreSQL (through a proxy adding `db_delay_ms` each way), with
/// the mock model at `ollama`, reached through a proxy adding `net_delay_ms`
/// each way, and a token for a fresh account on it.
struct Stack {
    app: TestApp,
    _db_link: MockNet,
    front: MockNet,
    token: String,
}

impl Stack {
    async fn start(
        pg: Option<PgDatabase>,
        pg_url: &str,
        db_delay_ms: f64,
        ollama: &str,
        extra: &[&str],
    ) -> Self {
        let db_link = mock_net::start(&MockNetArgs::to("127.0.0.1:5432", db_delay_ms))
            .await
            .expect("the database proxy starts");
        let through_proxy = pg_url.replace("127.0.0.1:5432", &db_link.addr.to_string());
        assert_ne!(
            through_proxy, pg_url,
            "the database URL goes through the proxy"
        );
        let mut args = vec!["--ollama-url", ollama];
        args.extend_from_slice(extra);
        let app = TestApp::spawn_on(pg, Some(through_proxy), &args).await;
        let token = app.new_user("attribution").await.token;
        let front = mock_net::start(&MockNetArgs::to(app.addr.to_string(), 0.0))
            .await
            .expect("the front proxy starts");
        Self {
            app,
            _db_link: db_link,
            front,
            token,
        }
    }
}

/// `calos perf --runs 8 --warmup 3 --conversation --json` against `addr` as `token`,
/// with the extra flags (`--save F` or `--baseline F`): the series report.
async fn perf_series(addr: &str, token: &str, extra: &[&str]) -> Value {
    let url = format!("http://{addr}");
    let mut argv = vec![
        "calos",
        "perf",
        "--url",
        &url,
        "--token",
        token,
        "--model",
        "mock-llama",
        "--runs",
        "8",
        "--warmup",
        "3",
        "--conversation",
        "--json",
    ];
    argv.extend_from_slice(extra);
    let Ok(Cli {
        command: Some(Command::Perf(args)),
        ..
    }) = Cli::try_parse_from(argv)
    else {
        panic!("perf arguments parse");
    };
    let report = perf::measure_series(&args)
        .await
        .unwrap_or_else(|e| panic!("perf failed: {e:#}"));
    serde_json::to_value(report).expect("the report serialises")
}

async fn compared(addr: &str, token: &str, baseline: &Path) -> Value {
    perf_series(addr, token, &["--baseline", baseline.to_str().unwrap()]).await
}

fn named(report: &Value) -> (&str, &str) {
    (
        report["change"]["named"].as_str().unwrap_or("nothing"),
        report["verdict"]["culprit"].as_str().unwrap_or("?"),
    )
}

fn median_shift(report: &Value, component: &str) -> f64 {
    report["change"]["components"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["component"] == component))
        .and_then(|c| c["shift"].as_f64())
        .unwrap_or_else(|| panic!("no {component} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_delay_is_named_and_no_change_blames_nothing() {
    let pg = PgDatabase::create().await;
    let pg_url = pg.url.clone();
    let fast_model = mock(5, 0.0, 3).await;
    let slow_model = mock(5 + INJECTED_MS, 0.0, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let baseline_file = dir.path().join("baseline.json");

    // The baseline: every link in place, nothing slowed.
    let base = Stack::start(Some(pg), &pg_url, 0.0, &fast_model.url(), &[]).await;
    let front = base.front.addr.to_string();
    let saved = perf_series(
        &front,
        &base.token,
        &["--save", baseline_file.to_str().unwrap()],
    )
    .await;
    assert!(saved["change"].is_null(), "no baseline yet: {saved:#}");
    assert!(baseline_file.exists());

    // The control: the same calos again, nothing changed.
    let control = compared(&front, &base.token, &baseline_file).await;
    // Nothing is blamed (a total that drifted faster may say so).
    assert_eq!(named(&control).1, "none", "{control:#}");

    // The network: 25 ms each way between the client and the same calos.
    let slow_net = mock_net::start(&MockNetArgs::to(
        base.app.addr.to_string(),
        INJECTED_MS as f64 / 2.0,
    ))
    .await
    .unwrap();
    let network = compared(&slow_net.addr.to_string(), &base.token, &baseline_file).await;
    assert_eq!(named(&network), ("network", "network"), "{network:#}");

    // The model: 50 ms more before its first token.
    let model = Stack::start(None, &pg_url, 0.0, &slow_model.url(), &[]).await;
    let llm = compared(&model.front.addr.to_string(), &model.token, &baseline_file).await;
    assert_eq!(named(&llm), ("firstToken", "llm"), "{llm:#}");

    // calos's own code: the debug build's delay.
    let delay = INJECTED_MS.to_string();
    let code = Stack::start(
        None,
        &pg_url,
        0.0,
        &fast_model.url(),
        &["--debug-delay-ms", &delay],
    )
    .await;
    let own = compared(&code.front.addr.to_string(), &code.token, &baseline_file).await;
    assert_eq!(named(&own), ("code", "code"), "{own:#}");
    let shift = median_shift(&own, "code");
    assert!(
        (INJECTED_MS as f64 * 0.8..INJECTED_MS as f64 * 1.5).contains(&shift),
        "calos's own time grew by about the injected delay: {shift}"
    );

    // The database: every PostgreSQL round trip 2.5 ms slower (1.25 ms each
    // way); a chat's conversation turn makes about 20.
    let db = Stack::start(None, &pg_url, 1.25, &fast_model.url(), &[]).await;
    let database = compared(&db.front.addr.to_string(), &db.token, &baseline_file).await;
    assert_eq!(named(&database), ("database", "database"), "{database:#}");
}

/// `calos load ARGS --json` as users run it: the report it prints.
async fn load_json(args: &[&str]) -> Value {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_calos"))
            .arg("load")
            .args(args)
            .args(["--json", "--no-cache", "--model", "mock-llama"])
            .env("LOG_LEVEL", "warn")
            .env_remove("CALOS_URL")
            .env_remove("CALOS_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("calos load finished within 2 minutes")
    .expect("calos runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_compares_percentiles_per_component_against_a_saved_run() {
    let fast_model = mock(5, 0.0, 3).await;
    let slow_model = mock(5 + INJECTED_MS, 0.0, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("load.json");
    let saved = saved.to_str().unwrap();

    let before = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &["--ollama-url", &fast_model.url()],
    )
    .await;
    let token = before.new_user("loadbase").await.token;
    let url = before.url("");
    let first = load_json(&[
        "--url", &url, "--token", &token, "-c", "2", "-n", "15", "--save", saved,
    ])
    .await;
    assert!(first["comparison"].is_null());
    let file: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    assert_eq!(file["tool"], "load");
    assert_eq!(
        file["runs"].as_array().map(Vec::len),
        Some(30),
        "one per request"
    );

    // The same calos against its own saved run: nothing to name.
    let again = load_json(&[
        "--url",
        &url,
        "--token",
        &token,
        "-c",
        "2",
        "-n",
        "15",
        "--baseline",
        saved,
    ])
    .await;
    assert_eq!(
        again["comparison"]["change"]["verdict"]["culprit"], "none",
        "{again:#}"
    );

    // A model 50 ms slower to its first token.
    let after = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &["--ollama-url", &slow_model.url()],
    )
    .await;
    let token = after.new_user("loadnow").await.token;
    let now = load_json(&[
        "--url",
        &after.url(""),
        "--token",
        &token,
        "-c",
        "2",
        "-n",
        "15",
        "--baseline",
        saved,
    ])
    .await;
    let comparison = &now["comparison"];
    assert_eq!(
        comparison["change"]["named"], "firstToken",
        "{comparison:#}"
    );
    assert_eq!(comparison["change"]["verdict"]["culprit"], "llm");
    let first_token = comparison["percentiles"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["component"] == "firstToken"))
        .expect("a first-token row");
    let grew = first_token["current"]["p50"].as_f64().unwrap()
        - first_token["baseline"]["p50"].as_f64().unwrap();
    assert!((40.0..80.0).contains(&grew), "p50 grew by {grew} ms");
}
