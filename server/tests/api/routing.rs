//! Several deployments per model, against several `calos mock-llm`s and
//! their fault switches: balancing by weight, circuit breakers that skip a
//! dead deployment and probe it back, `Retry-After`, fallback models, the
//! 503 that names what was tried, no switch in mid-stream, and the config
//! check. Routing keeps nothing in the database, so these run on SQLite only.

use crate::helpers::{ask, events, mock, Backend, Session, TestApp};
use app::wire::{CompleteEvent, CompleteRequest, CompleteResponse, DeploymentTile, ModelList};
use futures::StreamExt;
use server::emulators::mock_llm::{Fault, MockServer};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_calos");

/// One `[[deployment]]` of `model` at a mock, asking it for `mock-llama`.
fn deployment(model: &str, mock: &MockServer, extra: &str) -> String {
    format!(
        "[[deployment]]\nmodel = \"{model}\"\nprovider = \"ollama\"\nurl = \"{}\"\nupstream_model = \"mock-llama\"\n{extra}\n",
        mock.url()
    )
}

/// calos with this config file (kept until the returned dir is dropped).
async fn gateway(config: &str, extra: &[&str]) -> (TestApp, Session, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calos.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_string_lossy().to_string();
    let mut args = vec!["--config", path.as_str(), "--retry-backoff-ms", "20"];
    args.extend_from_slice(extra);
    let app = TestApp::spawn_with(Backend::Sqlite, &args).await;
    let user = app.new_user("routing").await;
    (app, user, dir)
}

/// A whole answer, never from the cache, with its breakdown.
async fn ask_fresh(app: &TestApp, token: &str, model: &str) -> reqwest::Response {
    let body = CompleteRequest {
        include_timings: true,
        ..ask(model, false)
    };
    app.chat_request("/api/llm/complete", token, &body)
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap()
}

/// `n` fresh requests, `at_once` at a time: how many got a 200.
async fn load(app: &TestApp, token: &str, model: &str, n: usize, at_once: usize) -> usize {
    futures::stream::iter(0..n)
        .map(|_| ask_fresh(app, token, model))
        .buffer_unordered(at_once)
        .filter(|r| futures::future::ready(r.status() == 200))
        .count()
        .await
}

fn requests(mock: &MockServer) -> u64 {
    mock.state.requests.load(Ordering::SeqCst)
}

/// Switches a mock's fault and counts its requests from 0 again.
fn set_fault(mock: &MockServer, fault: Fault) {
    mock.state.set_fault(fault);
    mock.state.requests.store(0, Ordering::SeqCst);
}

/// A deployment's breaker as `/metrics` has it: 0 closed, 1 half-open, 2 open.
async fn breaker_state(app: &TestApp, deployment: &str) -> Option<f64> {
    let text = app
        .get(&app.dashboard_url("/metrics"), None)
        .await
        .text()
        .await
        .unwrap();
    let needle = format!("calos_deployment_breaker_state{{deployment=\"{deployment}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_splits_evenly_over_equal_deployments_and_by_weight_otherwise() {
    // Four at a time, and one at a time.
    for (weight, at_once, low, high) in [(1, 4, 40, 60), (3, 1, 70, 80)] {
        let (a, b) = (mock(0, 0.0, 2).await, mock(0, 0.0, 2).await);
        let config = deployment("llama3.2", &a, &format!("weight = {weight}"))
            + &deployment("llama3.2", &b, "");
        let (app, user, _dir) = gateway(&config, &[]).await;
        let models: ModelList = app.get_as("/v1/models", &user.token).await;
        assert!(models.data.iter().any(|m| m.id == "llama3.2"), "{models:?}");
        assert_eq!(load(&app, &user.token, "llama3.2", 100, at_once).await, 100);
        let (to_a, to_b) = (requests(&a), requests(&b));
        assert_eq!(to_a + to_b, 100, "one upstream call each");
        let share = to_a * 100 / (to_a + to_b);
        assert!(
            (low..=high).contains(&share),
            "weight {weight}: a got {to_a}, b got {to_b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_dies_mid_load_costs_no_request_and_is_probed_back_after_its_cooldown() {
    let (a, b) = (mock(0, 0.0, 2).await, mock(0, 0.0, 2).await);
    let config = deployment("llama3.2", &a, "") + &deployment("llama3.2", &b, "");
    let (app, user, _dir) = gateway(
        &config,
        &["--breaker-failures", "2", "--breaker-cooldown-secs", "5"],
    )
    .await;
    assert_eq!(load(&app, &user.token, "llama3.2", 20, 4).await, 20);
    assert!(requests(&a) > 0 && requests(&b) > 0);

    // a dies.
    set_fault(&a, Fault::Status(500));
    let killed = Instant::now();
    assert_eq!(
        load(&app, &user.token, "llama3.2", 40, 4).await,
        40,
        "every request moved on to b"
    );
    let failed_at_a = requests(&a);
    assert!(
        (2..=6).contains(&failed_at_a),
        "2 failures open the breaker, plus at most the 4 already under way: {failed_at_a}"
    );
    assert_eq!(breaker_state(&app, "llama3.2#1").await, Some(2.0), "open");
    assert_eq!(breaker_state(&app, "llama3.2#2").await, Some(0.0), "closed");
    let admin = app.admin().await;
    let tiles: Vec<DeploymentTile> = app
        .get_as(&app.dashboard_url("/api/monitor/deployments"), &admin.token)
        .await;
    let a_tile = tiles
        .iter()
        .find(|t| t.name == "llama3.2#1")
        .expect("a's tile");
    assert_eq!(
        (a_tile.state.as_str(), a_tile.model.as_deref()),
        ("open", Some("llama3.2"))
    );
    assert!(
        a_tile.open_for_secs.is_some_and(|s| s > 0.0) && a_tile.why.contains("in a row"),
        "{a_tile:?}"
    );
    assert!(a_tile.error_rate > 0.0);
    let b_tile = tiles
        .iter()
        .find(|t| t.name == "llama3.2#2")
        .expect("b's tile");
    assert_eq!(b_tile.state, "closed");
    assert!(b_tile.p50_ttft_ms.is_some(), "{b_tile:?}");
    assert_eq!(load(&app, &user.token, "llama3.2", 20, 1).await, 20);
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "the check below needs the cooldown still running; this machine took {:?}",
        killed.elapsed()
    );
    assert_eq!(requests(&a), failed_at_a, "no attempt while open");

    // a is back; once the cooldown has passed, one request probes it.
    set_fault(&a, Fault::None);
    tokio::time::sleep(
        Duration::from_secs(5).saturating_sub(killed.elapsed()) + Duration::from_millis(300),
    )
    .await;
    assert_eq!(load(&app, &user.token, "llama3.2", 10, 1).await, 10);
    assert!(requests(&a) >= 1, "probed and taken back");
    assert_eq!(
        breaker_state(&app, "llama3.2#1").await,
        Some(0.0),
        "closed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_keeps_that_deployment_out_for_that_long() {
    let (a, b) = (mock(0, 0.0, 2).await, mock(0, 0.0, 2).await);
    let config = deployment("llama3.2", &a, "") + &deployment("llama3.2", &b, "");
    let (app, user, _dir) = gateway(&config, &[]).await;
    set_fault(&a, Fault::RateLimit(2));
    // The first request goes to a (the first deployment), which says "2 s".
    let r = ask_fresh(&app, &user.token, "llama3.2").await;
    assert_eq!(r.status(), 200, "b answered instead");
    let limited = Instant::now();
    assert_eq!(requests(&a), 1);
    let answer: CompleteResponse = r.json().await.unwrap();
    let timings = answer.timings.unwrap();
    assert_eq!(timings.deployment.as_deref(), Some("llama3.2#2"));
    let outcomes: Vec<(&str, &str)> = timings
        .tried
        .iter()
        .map(|t| (t.deployment.as_str(), t.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("llama3.2#1", "provider_rate_limited"),
            ("llama3.2#2", "ok")
        ]
    );

    set_fault(&a, Fault::None);
    while limited.elapsed() < Duration::from_millis(1700) {
        assert_eq!(ask_fresh(&app, &user.token, "llama3.2").await.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(requests(&a), 0, "out for the 2 s it asked for");
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(limited.elapsed())).await;
    assert_eq!(load(&app, &user.token, "llama3.2", 4, 1).await, 4);
    assert!(requests(&a) >= 1, "back after 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_deployment_or_one_that_refuses_its_key_is_left_for_another() {
    let (a, b) = (mock(0, 0.0, 2).await, mock(0, 0.0, 2).await);
    let config = deployment("llama3.2", &a, "") + &deployment("llama3.2", &b, "");
    let (app, user, _dir) = gateway(&config, &["--first-token-timeout-secs", "0.5"]).await;
    // Hung: it takes the request and never sends a token.
    set_fault(&a, Fault::StallAfter(0));
    let r = ask_fresh(&app, &user.token, "llama3.2").await;
    assert_eq!(r.status(), 200);
    let answer: CompleteResponse = r.json().await.unwrap();
    let outcomes: Vec<String> = answer
        .timings
        .unwrap()
        .tried
        .iter()
        .map(|t| format!("{} {}", t.deployment, t.outcome))
        .collect();
    assert_eq!(outcomes, ["llama3.2#1 provider_timeout", "llama3.2#2 ok"]);

    // A revoked key (401): every request is answered by b, and after five
    // refusals in a row a's breaker is open.
    set_fault(&a, Fault::Status(401));
    assert_eq!(load(&app, &user.token, "llama3.2", 12, 1).await, 12);
    assert_eq!(breaker_state(&app, "llama3.2#1").await, Some(2.0));
    assert!(requests(&a) <= 5, "{}", requests(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_answers_when_every_deployment_is_down_and_a_named_503_when_it_is_too() {
    let (a, b, backup) = (
        mock(0, 0.0, 2).await,
        mock(0, 0.0, 2).await,
        mock(0, 0.0, 2).await,
    );
    let config = deployment("llama3.2", &a, "")
        + &deployment("llama3.2", &b, "")
        + &deployment("backup", &backup, "")
        + "[[fallback]]\nmodel = \"llama3.2\"\nto = [\"backup\"]\n";
    let (app, user, _dir) = gateway(&config, &["--upstream-retries", "2"]).await;
    set_fault(&a, Fault::Status(500));
    set_fault(&b, Fault::Status(502));

    let r = ask_fresh(&app, &user.token, "llama3.2").await;
    assert_eq!(r.status(), 200);
    let server_timing = r.headers()["server-timing"].to_str().unwrap().to_string();
    let answer: CompleteResponse = r.json().await.unwrap();
    let timings = answer.timings.unwrap();
    assert_eq!(timings.fallback.as_deref(), Some("backup"));
    assert_eq!(timings.deployment.as_deref(), Some("backup#1"));
    assert_eq!(
        timings.attempts, 3,
        "a, b, then the fallback: no retry in place"
    );
    let tried: Vec<(&str, &str, &str)> = timings
        .tried
        .iter()
        .map(|t| (t.deployment.as_str(), t.model.as_str(), t.outcome.as_str()))
        .collect();
    assert_eq!(
        tried,
        [
            ("llama3.2#1", "llama3.2", "provider_error"),
            ("llama3.2#2", "llama3.2", "provider_error"),
            ("backup#1", "backup", "ok"),
        ]
    );
    for part in [
        "deployment;desc=\"backup#1\"",
        "fallback;desc=\"backup\"",
        "try1;dur=",
        "desc=\"llama3.2#1 provider_error\"",
        "try3;dur=",
    ] {
        assert!(server_timing.contains(part), "{part} in {server_timing}");
    }
    assert_eq!((requests(&a), requests(&b), requests(&backup)), (1, 1, 1));

    set_fault(&backup, Fault::Status(500));
    let r = ask_fresh(&app, &user.token, "llama3.2").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_deployment_available");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for named in ["llama3.2#1", "llama3.2#2", "backup#1", "fallback backup"] {
        assert!(message.contains(named), "{named} in {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_deployment_dies_after_the_first_token_ends_with_an_error_event() {
    let (a, b) = (mock(0, 50.0, 6).await, mock(0, 50.0, 6).await);
    let config = deployment("llama3.2", &a, "") + &deployment("llama3.2", &b, "");
    let (app, user, _dir) = gateway(&config, &[]).await;
    set_fault(&a, Fault::DropAfter(2));
    let received = app.stream(&user.token, &ask("llama3.2", true)).await;
    let deltas = received
        .iter()
        .filter(|e| matches!(e.event, CompleteEvent::Delta { .. }))
        .count();
    assert!(deltas >= 1, "{received:?}");
    match &received.last().map(|e| &e.event) {
        Some(CompleteEvent::Error { error }) => assert_eq!(error.code, "provider_protocol_error"),
        other => panic!("not an error event: {other:?}"),
    }
    assert_eq!(requests(&b), 0, "no switch to b in mid-reply");
    // A stream that cannot start is moved before its first token, though:
    // of two streams, the one sent to a (the balancer alternates) is
    // answered by b.
    set_fault(&a, Fault::Status(500));
    for _ in 0..2 {
        let response = app
            .post_chat("/api/llm/complete", &user.token, &ask("llama3.2", true))
            .await;
        assert_eq!(response.status(), 200);
        let received = events(response).await;
        assert!(matches!(
            received.last().map(|e| &e.event),
            Some(CompleteEvent::Done { .. })
        ));
    }
    assert_eq!((requests(&a), requests(&b)), (1, 2));
}

/// `calos serve --check-config` on this file: its exit status and output.
fn check_config(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calos.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_config_check_prints_the_table_and_refuses_bad_providers_unknown_fallbacks_and_loops() {
    let good = "[[deployment]]\nmodel = \"llama3.2\"\nprovider = \"ollama\"\nurl = \"http://127.0.0.1:9\"\nweight = 2\nmax_concurrency = 4\n\
                [[deployment]]\nmodel = \"llama3.2\"\nprovider = \"ollama\"\nurl = \"http://127.0.0.1:10\"\n\
                [[fallback]]\nmodel = \"llama3.2\"\nto = [\"gpt-4o-mini\"]\n";
    let (ok, out) = check_config(good);
    assert!(ok, "{out}");
    for line in [
        "llama3.2#1",
        "llama3.2#2",
        "weight 2",
        "max 4 at once",
        "llama3.2 falls back to gpt-4o-mini",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }

    let bad_provider =
        "[[deployment]]\nmodel = \"m\"\nprovider = \"bedrock\"\nurl = \"http://x\"\n";
    let (ok, out) = check_config(bad_provider);
    assert!(!ok && out.contains("unknown provider \"bedrock\""), "{out}");

    let unknown_fallback = "[[deployment]]\nmodel = \"m\"\nprovider = \"sim\"\n[[fallback]]\nmodel = \"m\"\nto = [\"nonesuch\"]\n";
    let (ok, out) = check_config(unknown_fallback);
    assert!(
        !ok && out.contains("no [[deployment]] serves \"nonesuch\""),
        "{out}"
    );

    let cycle =
        "[[fallback]]\nmodel = \"a\"\nto = [\"b\"]\n[[fallback]]\nmodel = \"b\"\nto = [\"a\"]\n";
    let (ok, out) = check_config(cycle);
    assert!(!ok && out.contains("fallbacks loop: a → b → a"), "{out}");
}
