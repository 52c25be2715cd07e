//! Mission Control's data on the dashboard listener: who may see it, the
//! process manager restarting a failing process, and `/metrics` as a
//! Prometheus text parser reads it.

use crate::helpers::{ask, error_code, mock, Backend, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

/// calos with one managed process declared in a config file.
async fn with_process(toml: &str) -> (TestApp, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calos.toml");
    std::fs::write(&path, toml).unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, &["--config", path.to_str().unwrap()]).await;
    let admin = app.admin_token().await;
    (app, admin, dir)
}

/// Polls the process list until `check` holds for `name` (10 s at most).
async fn wait_for(app: &TestApp, admin: &str, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let list: Value = app
            .get_as(&app.dashboard_url("/api/monitor/processes"), admin)
            .await;
        if let Some(p) = list.as_array().unwrap().iter().find(|p| p["name"] == name) {
            if check(p) {
                return p.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached the expected state");
}

crate::helpers::on_both_databases! {
    async fn monitor_endpoints_are_for_administrators_only(app) {
        for path in ["/api/monitor/processes", "/api/monitor/logs", "/api/monitor/latency"] {
            let anonymous = app.get(&app.dashboard_url(path), None).await;
            assert_eq!(error_code(anonymous).await, (401, "unauthorized".into()), "{path}");
        }
        let session = app.new_user("user").await;
        let (name, user) = (&session.username, &session.token);
        let forbidden = app.dashboard_get("/api/monitor/processes", user).await;
        assert_eq!(error_code(forbidden).await, (403, "forbidden".into()));
        // Promoted: allowed; demoted again: refused on the very next request.
        app.set_role(name, "admin").await;
        assert_eq!(app.dashboard_get("/api/monitor/processes", user).await.status(), 200);
        app.set_role(name, "user").await;
        assert_eq!(app.dashboard_get("/api/monitor/processes", user).await.status(), 403);
        // A cookie-carried order from another site's page is refused.
        let admin = app.admin_token().await;
        let cross = app.request(reqwest::Method::POST, &app.dashboard_url("/api/monitor/processes/x/stop"), None)
            .header("cookie", format!("calos_session={admin}"))
            .header("origin", "http://evil.example.com").send().await.unwrap();
        assert_eq!(cross.status(), 403);
        // Monitor routes live on the dashboard port only.
        let on_api = app.get("/api/monitor/processes", Some(&admin)).await;
        assert_eq!(on_api.status(), 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_process_is_restarted_with_backoff_and_its_output_logged() {
    let (app, admin, _dir) = with_process(
        r#"
        [[process]]
        name = "flaky"
        command = "sh"
        args = ["-c", "echo 'flaky starting password=hunter2'; exit 3"]
        restart = "on-failure"
        restart_delay_ms = 20
        crash_loop_restarts = 1000
        "#,
    )
    .await;
    let p = wait_for(&app, &admin, "flaky", |p| p["restarts"].as_u64() >= Some(2)).await;
    assert_eq!(p["lastExitCode"], 3, "{p}");
    assert_eq!(
        p["command"],
        "sh -c echo 'flaky starting password=hunter2'; exit 3"
    );
    let logs: Value = app
        .get_as(&app.dashboard_url("/api/monitor/logs?limit=50"), &admin)
        .await;
    let lines: Vec<&Value> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["source"] == "process:flaky")
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "flaky starting password=[redacted]"),
        "{logs:#}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "exited (code 3)" && l["level"] == "error"),
        "{logs:#}"
    );
    // An administrator stops it; it stays stopped.
    let stop = app
        .dashboard_post("/api/monitor/processes/flaky/stop", &admin)
        .await;
    assert_eq!(stop.status(), 200);
    let stopped = wait_for(&app, &admin, "flaky", |p| p["status"] == "stopped").await;
    let restarts = stopped["restarts"].as_u64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still = wait_for(&app, &admin, "flaky", |p| p["status"] == "stopped").await;
    assert_eq!(
        still["restarts"].as_u64(),
        restarts,
        "no restarts while stopped"
    );
    // Unknown processes and actions are 404s in the API's shape.
    let unknown = app
        .dashboard_post("/api/monitor/processes/nope/stop", &admin)
        .await;
    assert_eq!(error_code(unknown).await, (404, "not_found".into()));
    let bad = app
        .dashboard_post("/api/monitor/processes/flaky/explode", &admin)
        .await;
    assert_eq!(error_code(bad).await, (404, "not_found".into()));
    let bad_query = app
        .dashboard_get("/api/monitor/logs?limit=lots", &admin)
        .await;
    assert_eq!(error_code(bad_query).await, (400, "invalid_query".into()));
    // Past int64, which is what the published contract promises to read.
    let huge = app
        .dashboard_get("/api/monitor/logs?after=9223372036854775808", &admin)
        .await;
    assert_eq!(error_code(huge).await, (400, "invalid_query".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_stops_the_restarts_until_an_administrator_starts_it() {
    let (app, admin, _dir) = with_process(
        r#"
        [[process]]
        name = "doomed"
        command = "false"
        restart = "always"
        restart_delay_ms = 10
        crash_loop_restarts = 3
        crash_loop_window_secs = 60
        "#,
    )
    .await;
    let p = wait_for(&app, &admin, "doomed", |p| p["status"] == "crash-loop").await;
    assert_eq!(p["restarts"], 3, "{p}");
    let start = app
        .dashboard_post("/api/monitor/processes/doomed/start", &admin)
        .await;
    assert_eq!(start.status(), 200);
    wait_for(&app, &admin, "doomed", |p| p["restarts"].as_u64() > Some(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_process_is_stopped_when_calos_shuts_down() {
    let (app, admin, dir) = with_process(
        r#"
        [[process]]
        name = "sleeper"
        command = "sleep"
        args = ["600"]
        "#,
    )
    .await;
    let p = wait_for(&app, &admin, "sleeper", |p| p["status"] == "running").await;
    let pid = p["pid"].as_u64().unwrap();
    assert!(p["uptimeSecs"].as_f64().is_some());
    drop(app);
    let alive = || {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    for _ in 0..100 {
        if !alive() {
            drop(dir);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the managed process {pid} outlived calos");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_clean_with_routes_phases_and_streams() {
    let mock = mock(5, 1000.0, 3).await;
    let app = TestApp::spawn_with(Backend::Sqlite, &["--ollama-url", &mock.url()]).await;
    let user = app.new_user("scraped").await;
    app.chat(&user.token, &ask("mock-llama", false)).await;
    let response = app.get(&app.dashboard_url("/metrics"), None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let find = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
    };
    let requests =
        find("calos_http_requests_total", ("route", "/api/llm/complete")).expect("route counted");
    assert_eq!(requests.labels.get("status"), Some("200"));
    assert!(
        matches!(requests.value, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v >= 1.0),
        "{text}"
    );
    assert!(
        find("calos_chat_requests_total", ("model", "mock-llama")).is_some(),
        "{text}"
    );
    assert!(
        find("calos_chat_phase_seconds", ("phase", "ttft")).is_some(),
        "{text}"
    );
    assert!(
        find("calos_cache_lookups_total", ("result", "miss")).is_some(),
        "{text}"
    );
    assert!(
        find("calos_queue_running", ("provider", "ollama")).is_some(),
        "{text}"
    );
    assert!(text.contains("calos_active_streams 0"), "{text}");
    // Raw paths never become labels: a made-up path is not a series.
    let _ = app.get("/api/made-up-12345", None).await;
    let again = app
        .get(&app.dashboard_url("/metrics"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!again.contains("made-up-12345"));
    // Not on the public port.
    assert_eq!(app.get("/metrics", None).await.status(), 404);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the feed; `Err(status)` when the handshake is refused.
async fn open_feed(
    app: &TestApp,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}/api/monitor/ws", app.dashboard_addr);
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("{e}"),
    }
}

/// The next JSON message, or the close code.
async fn next_message(socket: &mut Socket) -> Result<Value, Option<u16>> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_for_admins_and_starts_with_a_snapshot_of_every_kind() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(open_feed(&app, None, None).await.err(), Some(401));
    let user = app.new_user("user").await.token;
    assert_eq!(open_feed(&app, Some(&user), None).await.err(), Some(403));
    let admin = app.admin_token().await;
    assert_eq!(
        open_feed(&app, Some(&admin), Some("http://evil.example.com"))
            .await
            .err(),
        Some(403)
    );
    let origin = format!("http://{}", app.dashboard_addr);
    let mut socket = open_feed(&app, Some(&admin), Some(&origin)).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..7 {
        kinds.push(
            next_message(&mut socket).await.unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        kinds,
        [
            "health",
            "log",
            "metrics",
            "process",
            "usage",
            "deployments",
            "verdict"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_from_the_page_closes_the_feed() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let mut socket = open_feed(&app, Some(&admin), None).await.unwrap();
    for _ in 0..5 {
        next_message(&mut socket).await.unwrap();
    }
    // Small messages are read and ignored; the feed goes on.
    socket.send(Message::text("x".repeat(100))).await.unwrap();
    let _ = socket.send(Message::binary(vec![0u8; 1 << 20])).await;
    // The feed sends about a message a second; without the cap it would go
    // on (the big message read and ignored) and this would run out.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let closed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed took a 1 MiB message"
        );
        match next_message(&mut socket).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    // 1009 "message too big" when the close frame gets through, or a reset.
    assert!(matches!(closed, Some(1009) | None), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_request_shows_in_the_log_and_metrics_feed_within_two_seconds() {
    let mock = mock(5, 1000.0, 3).await;
    let app = TestApp::spawn_with(Backend::Sqlite, &["--ollama-url", &mock.url()]).await;
    let admin = app.admin_token().await;
    let mut socket = open_feed(&app, Some(&admin), None).await.unwrap();
    for _ in 0..5 {
        next_message(&mut socket).await.unwrap();
    }
    let user = app.new_user("chatter").await;
    let sent = std::time::Instant::now();
    let chat = app
        .post_chat("/api/llm/complete", &user.token, &ask("mock-llama", false))
        .await;
    assert_eq!(chat.status(), 200);
    let request_id = chat.headers()["x-request-id"].to_str().unwrap().to_string();
    let (mut logged, mut counted) = (false, false);
    while !(logged && counted) {
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "logged {logged}, counted {counted}"
        );
        let message = next_message(&mut socket).await.unwrap();
        match message["type"].as_str() {
            Some("log") => {
                logged |= message["lines"].as_array().unwrap().iter().any(|l| {
                    l["target"] == "calos::performance" && l["requestId"] == request_id.as_str()
                });
            }
            Some("metrics") => {
                counted |= message["samples"][0]["requestsPerSec"].as_f64() > Some(0.0)
                    && message["samples"][0]["latency"]["total"]["p50"].as_f64() > Some(0.0);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_counts_tokens_per_minute_and_ranks_the_days_top_users() {
    let mock = mock(0, 0.0, 3).await;
    let app = TestApp::spawn_with(Backend::Sqlite, &["--ollama-url", &mock.url()]).await;
    let admin = app.admin_token().await;
    let mut socket = open_feed(&app, Some(&admin), None).await.unwrap();
    for _ in 0..5 {
        next_message(&mut socket).await.unwrap();
    }
    let user = app.new_user("heavy").await;
    for _ in 0..2 {
        let chat = app
            .chat_request("/api/llm/complete", &user.token, &ask("mock-llama", false))
            .header("cache-control", "no-cache")
            .send()
            .await
            .unwrap();
        assert_eq!(chat.status(), 200);
    }
    // The mock spends 5 + 3 tokens a request.
    let (mut per_minute, mut ranked) = (false, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !(per_minute && ranked) {
        assert!(
            std::time::Instant::now() < deadline,
            "per minute {per_minute}, ranked {ranked}"
        );
        let message = next_message(&mut socket).await.unwrap();
        match message["type"].as_str() {
            Some("metrics") => per_minute |= message["samples"][0]["tokensPerMinute"] == 16,
            Some("usage") => {
                ranked |= message["topUsers"].as_array().unwrap().iter().any(|u| {
                    u["username"] == user.username.as_str()
                        && u["totalTokens"] == 16
                        && u["requests"] == 2
                });
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_or_signed_out_admin_loses_the_feed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let boss = app.admin().await;
    let mut socket = open_feed(&app, Some(&boss.token), None).await.unwrap();
    for _ in 0..5 {
        next_message(&mut socket).await.unwrap();
    }
    app.set_role(&boss.username, "user").await;
    let closed = loop {
        if let Err(code) = next_message(&mut socket).await {
            break code;
        }
    };
    assert_eq!(closed, Some(4003));
    // Signing out ends a socket the same way.
    let admin = app.admin_token().await;
    let mut socket = open_feed(&app, Some(&admin), None).await.unwrap();
    let out = app.post("/api/auth/logout", Some(&admin)).await;
    assert_eq!(out.status(), 200);
    let closed = loop {
        if let Err(code) = next_message(&mut socket).await {
            break code;
        }
    };
    assert_eq!(closed, Some(4003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_for_admins_on_the_dashboard_port() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = |path: &str, token: Option<&str>| {
        let mut request = app.request(reqwest::Method::GET, &app.dashboard_url(path), None);
        if let Some(token) = token {
            request = request.header("cookie", format!("calos_session={token}"));
        }
        request.send()
    };
    for path in ["/dashboard", "/dashboard.html"] {
        let anonymous = page(path, None).await.unwrap();
        assert!(
            anonymous.status().is_redirection(),
            "{path}: {}",
            anonymous.status()
        );
        assert_eq!(anonymous.headers()["location"], "/login");
    }
    let user = app.new_user("viewer").await.token;
    assert_eq!(page("/dashboard", Some(&user)).await.unwrap().status(), 403);
    let admin = app.admin_token().await;
    let ok = page("/dashboard.html", Some(&admin)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let html = ok.text().await.unwrap();
    assert!(
        html.contains("Mission Control") && html.contains("/api/monitor/chart.svg"),
        "{html}"
    );
    // `/` on the dashboard port is the dashboard; the sign-in page is served there too.
    let root = page("/", Some(&admin)).await.unwrap();
    assert_eq!(root.headers()["location"], "/dashboard");
    assert_eq!(
        page("/", None).await.unwrap().headers()["location"],
        "/login"
    );
    assert_eq!(page("/login", None).await.unwrap().status(), 200);
    // Not on the main port.
    let elsewhere = app.get_with_cookie("/dashboard", &admin).await;
    assert_eq!(elsewhere.status(), 404);
    // The charts are SVG drawn by the server; a wrong kind is a 400 in the API's shape.
    let chart = app
        .dashboard_get("/api/monitor/chart.svg?kind=latency&n=3", &admin)
        .await;
    assert_eq!(chart.status(), 200);
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    assert!(chart.text().await.unwrap().starts_with("<svg"));
    let bad = app
        .dashboard_get("/api/monitor/chart.svg?kind=pie", &admin)
        .await;
    assert_eq!(error_code(bad).await, (400, "invalid_query".into()));
    let anonymous_chart = app
        .get(
            &app.dashboard_url("/api/monitor/chart.svg?kind=errors"),
            None,
        )
        .await;
    assert_eq!(anonymous_chart.status(), 401);
}

/// `GET /api/monitor/profile`: admins only, bounded seconds, one at a time, and a
/// flamegraph with samples when calos was busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_profiles_are_for_admins_one_at_a_time() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let user = app.new_user("plain").await.token;
    let path = "/api/monitor/profile?seconds=2";
    let anonymous = app.get(&app.dashboard_url(path), None).await;
    assert_eq!(error_code(anonymous).await.0, 401);
    assert_eq!(
        error_code(app.dashboard_get(path, &user).await).await,
        (403, "forbidden".into())
    );
    for bad in ["0", "61", "ten"] {
        let response = app
            .dashboard_get(&format!("/api/monitor/profile?seconds={bad}"), &admin)
            .await;
        assert_eq!(response.status(), 400, "seconds={bad}");
    }

    let (client, url) = (app.client.clone(), app.dashboard_url(path));
    let first = tokio::spawn({
        let admin = admin.clone();
        async move { client.get(url).bearer_auth(admin).send().await.unwrap() }
    });
    // Keep calos busy (charts are drawn on demand) while it samples.
    let started = std::time::Instant::now();
    let mut asked_again = false;
    while started.elapsed() < Duration::from_millis(2_300) {
        let _ = app
            .dashboard_get("/api/monitor/chart.svg?kind=latency", &admin)
            .await;
        if !asked_again && started.elapsed() > Duration::from_millis(300) {
            let second = app.dashboard_get(path, &admin).await;
            assert_eq!(error_code(second).await, (409, "profile_running".into()));
            asked_again = true;
        }
    }
    let profile = first.await.unwrap();
    assert_eq!(profile.status(), 200);
    assert_eq!(profile.headers()["content-type"], "image/svg+xml");
    let samples: u64 = profile.headers()["x-profile-samples"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(samples > 0);
    let svg = profile.text().await.unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("samples"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

/// Seen through a trusted proxy from a remote address, a client is no
/// operator: the health report shrinks to up or degraded and `/metrics` wants
/// the metrics token or an administrator. Loopback clients see everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internals_are_for_local_clients_administrators_and_the_metrics_token() {
    const METRICS_TOKEN: &str = "scrape-token-0123456789";
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--metrics-token",
            METRICS_TOKEN,
        ],
    )
    .await;
    let remote = |url: String, token: Option<&str>| {
        let request = app.client.get(url).header("x-forwarded-for", "203.0.113.9");
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    for url in [app.url("/api/health"), app.dashboard_url("/api/health")] {
        let public = remote(url.clone(), None).send().await.unwrap();
        assert_eq!(public.status(), 200);
        assert_eq!(
            public.json::<Value>().await.unwrap(),
            json!({"status": "ok"})
        );
        let local: Value = app.get(&url, None).await.json().await.unwrap();
        assert_eq!(local["components"]["database"]["status"], "ok", "{local}");
    }
    let metrics = app.dashboard_url("/metrics");
    let user = app.new_user("viewer").await.token;
    let admin = app.admin_token().await;
    let status = |token: Option<String>| {
        let request = remote(metrics.clone(), token.as_deref());
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(user.clone())).await, 403);
    assert_eq!(status(Some("scrape-token-wrong-guess".into())).await, 403);
    assert_eq!(status(Some(METRICS_TOKEN.into())).await, 200);
    assert_eq!(status(Some(admin)).await, 200);
    assert_eq!(app.get(&metrics, None).await.status(), 200);
    // The detailed report follows the same rule.
    let with_token: Value = remote(app.url("/api/health"), Some(METRICS_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(with_token["components"].is_object(), "{with_token}");
}

/// A server that accepts connections and never answers: each one stays open
/// until its client gives up. Returns its address and the most connections
/// it ever held open at once.
async fn silent_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let most_seen = most.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let open = open.clone();
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (address, most_seen)
}

#[tokio::test]
async fn health_checks_run_at_once_so_dead_targets_do_not_add_up() {
    let (address, most_open) = silent_server().await;
    let targets: String = (0..4)
        .map(|i| {
            format!("[[target]]\nname = \"silent-{i}\"\nurl = \"http://{address}/health\"\n\n")
        })
        .collect();
    let (app, _admin, _dir) = with_process(&targets).await;
    // Each check waits its full time limit on this server; run one after
    // another, no two would ever be open together.
    for _ in 0..100 {
        if most_open.load(std::sync::atomic::Ordering::SeqCst) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        most_open.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "all four checks were in flight together"
    );
    drop(app);
}

/// `GET /api/monitor/verdict` and the feed's snapshot judge the chats the
/// server answered: three distinct questions count, a cached answer does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdict_counts_the_last_15_minutes_chats_but_not_cache_hits() {
    let mock = mock(5, 1000.0, 3).await;
    let app = TestApp::spawn_with(Backend::Sqlite, &["--ollama-url", &mock.url()]).await;
    let admin = app.admin_token().await;
    let anonymous = app
        .get(&app.dashboard_url("/api/monitor/verdict"), None)
        .await;
    assert_eq!(error_code(anonymous).await, (401, "unauthorized".into()));
    let empty = verdict_of(&app, &admin).await;
    assert_eq!(
        (&empty["currentSamples"], &empty["change"], &empty["model"]),
        (&json!(0), &Value::Null, &json!("")),
        "{empty}"
    );

    let user = app.new_user("judged").await;
    let question = |i: usize| {
        let mut body = ask("mock-llama", false);
        body.messages[0].content = format!("question {i}");
        body.include_timings = true;
        body
    };
    for i in 0..3 {
        app.chat(&user.token, &question(i)).await;
    }
    let again = app.chat(&user.token, &question(0)).await;
    assert_eq!(
        again.timings.map(|t| t.cache_status),
        Some(app::wire::CacheStatus::Hit)
    );
    // Recorded as each reply ends; give the last a moment.
    let mut judged = verdict_of(&app, &admin).await;
    for _ in 0..40 {
        if judged["currentSamples"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        judged = verdict_of(&app, &admin).await;
    }
    assert_eq!(judged["currentSamples"], 3, "{judged}");
    assert_eq!(
        (
            &judged["baselineSamples"],
            &judged["currentMinutes"],
            &judged["baselineMinutes"]
        ),
        (&json!(0), &json!(15), &json!(60))
    );
    assert_eq!(judged["model"], "mock-llama");
    assert_eq!(judged["change"], Value::Null, "no baseline yet");
    assert_eq!(judged["verdict"]["culprit"], "none", "{judged}");
    assert!(judged["current"]["total"].as_f64() > Some(0.0), "{judged}");
    assert_eq!(
        judged["current"]["network"], 0.0,
        "the server cannot see it"
    );

    // A page opened now gets the same in its snapshot.
    let mut socket = open_feed(&app, Some(&admin), None).await.unwrap();
    let in_snapshot = loop {
        let message = next_message(&mut socket).await.unwrap();
        if message["type"] == "verdict" {
            break message["verdict"].clone();
        }
    };
    assert_eq!(in_snapshot["currentSamples"], 3, "{in_snapshot}");
    assert_eq!(in_snapshot["verdict"], judged["verdict"]);
}

async fn verdict_of(app: &TestApp, admin: &str) -> Value {
    app.get_as(&app.dashboard_url("/api/monitor/verdict"), admin)
        .await
}
