//! What one chat can make calos hold: a client that stops reading is dropped
//! and frees its upstream and provider slot, a user has a cap on chats in
//! flight, and the response cache is bounded in bytes. Each test on SQLite
//! and on PostgreSQL.

use crate::helpers::{app_with, ask, ask_openai, error_code, on_both_databases, TestApp};
use app::wire::{CompleteRequest, StreamOptions};
use serde::Serialize;
use server::emulators::mock_llm::{self, MockArgs, MockServer};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A mock whose replies are `tokens` tokens of `token_bytes` bytes each, as
/// fast as it can send them after `ttft_ms`.
async fn big_mock(ttft_ms: u64, tokens: u32, token_bytes: usize) -> MockServer {
    mock_llm::spawn(&MockArgs {
        ttft_ms,
        tokens_per_sec: 0.0,
        tokens,
        token_bytes,
        ..MockArgs::default()
    })
    .await
    .unwrap()
}

/// Opens a chat stream on a raw socket with a small receive buffer, reads the
/// response head and returns the socket unread from then on: a client whose
/// TCP window fills and stays full.
async fn open_and_stop_reading(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &impl Serialize,
) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    let body = serde_json::to_vec(body).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    // Read byte by byte up to the end of the head, so nothing of the body is taken.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("the response head arrives")
            .unwrap();
        assert_eq!(n, 1, "the connection closed before the head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// Waits until the mock has no stream open, or `within` passes; how long it took.
async fn until_no_open_stream(mock: &MockServer, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if mock.open_streams() == 0 {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The value of an unlabelled series in a Prometheus exposition.
fn gauge(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{exposition}"))
}

/// `ask(model, false)` about something else each time (distinct cache keys).
fn ask_about(model: &str, n: usize) -> CompleteRequest {
    let mut body = ask(model, false);
    body.messages[0].content = format!("question {n}");
    body
}

on_both_databases! {
    async fn a_client_that_stops_reading_is_dropped_and_frees_its_upstream_and_slot(backend: Backend) {
        // 20,000 tokens of 2 KB: 40 MB, far more than every buffer between
        // calos and a client that does not read.
        let mock = big_mock(5, 20_000, 2048).await;
        let extra = [
            "--stream-write-timeout-secs", "1",
            "--write-timeout-secs", "2",
            "--ollama-concurrency", "1",
            "--provider-concurrency", "1",
        ];
        let (app, user) = app_with(backend, &mock, &extra).await;
        let other = app.new_user("other").await;
        let mut openai = ask_openai("mock-gpt", true);
        openai.stream_options = Some(StreamOptions { include_usage: true });
        let streams = [
            ("/api/llm/complete", serde_json::to_value(ask("mock-llama", true)).unwrap()),
            ("/v1/chat/completions", serde_json::to_value(&openai).unwrap()),
        ];
        for (n, (path, body)) in streams.iter().enumerate() {
            let stalled = open_and_stop_reading(&app, path, &user.token, body).await;
            assert_eq!(mock.open_streams(), 1, "{path}: the upstream stream is open");
            let released = until_no_open_stream(&mock, Duration::from_secs(8)).await;
            let took = released.unwrap_or_else(|| panic!("{path}: the upstream is still open"));
            assert!(took >= Duration::from_millis(500), "{path}: dropped for not reading, not for another reason ({took:?})");
            let stats: serde_json::Value = reqwest::get(format!("{}/_mock/stats", mock.url()))
                .await.unwrap().json().await.unwrap();
            assert_eq!(stats["cancelledStreams"], n + 1, "{path}: {stats}");
            // Only the other user's earlier chats ran to the end.
            assert_eq!(stats["completedStreams"], n, "{path}: {stats}");

            // The provider's only slot is free again: another user's chat gets it
            // while the stalled socket is still open.
            let model = if *path == "/api/llm/complete" { "mock-llama" } else { "mock-gpt" };
            let small = CompleteRequest { max_tokens: Some(2), ..ask(model, false) };
            let started = Instant::now();
            let response = app.post_chat("/api/llm/complete", &other.token, &small).await;
            assert_eq!(response.status(), 200, "{path}: {}", response.text().await.unwrap_or_default());
            assert!(started.elapsed() < Duration::from_secs(5), "{path}: not queued behind the stalled client");

            // And the socket itself is closed: reading now finds what was
            // buffered, then the end. (Had calos kept it, the read would let
            // the answer finish and the kept-alive connection would stay open.)
            let mut stalled = stalled;
            let closed = tokio::time::timeout(Duration::from_secs(15), async {
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = stalled.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "{path}: calos closed the connection of a client that stopped reading");
        }
        let metrics = app.get(&app.dashboard_url("/metrics"), None).await.text().await.unwrap();
        assert!(metrics.contains("outcome=\"client_too_slow\""), "the cut-off is recorded:\n{metrics}");
    }

    async fn a_user_at_the_in_flight_cap_gets_429_while_others_chat_on(backend: Backend) {
        let mock = mock_llm::spawn(&MockArgs { ttft_ms: 1500, tokens: 2, ..MockArgs::default() })
            .await
            .unwrap();
        let (app, alice) = app_with(backend, &mock, &["--max-inflight-per-user", "2"]).await;
        let bob = app.new_user("bob").await;
        let (first, second) = (ask_about("mock-llama", 1), ask_about("mock-llama", 2));
        let (third, bobs) = (ask_about("mock-llama", 3), ask_about("mock-llama", 4));
        let (r1, r2, r3, rb) = tokio::join!(
            app.post_chat("/api/llm/complete", &alice.token, &first),
            app.post_chat("/api/llm/complete", &alice.token, &second),
            async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                app.post_chat("/api/llm/complete", &alice.token, &third).await
            },
            async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                app.post_chat("/api/llm/complete", &bob.token, &bobs).await
            },
        );
        assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (200, 200));
        assert_eq!(r3.headers()["retry-after"], "1");
        assert_eq!(error_code(r3).await, (429, "too_many_inflight".into()));
        assert_eq!(rb.status(), 200, "another user is unaffected");
        // Both finished: Alice may chat again.
        let again = app.post_chat("/api/llm/complete", &alice.token, &third).await;
        assert_eq!(again.status(), 200);
    }

    async fn a_streams_in_flight_slot_is_held_until_the_stream_ends(backend: Backend) {
        // Slow streams: 20 tokens at 5 a second.
        let mock = mock_llm::spawn(&MockArgs { ttft_ms: 5, tokens_per_sec: 5.0, tokens: 20, ..MockArgs::default() })
            .await
            .unwrap();
        let (app, alice) = app_with(backend, &mock, &["--max-inflight-per-user", "2"]).await;
        let (app, token) = (&app, alice.token.as_str());
        let open = |n| {
            let body = CompleteRequest { stream: true, ..ask_about("mock-llama", n) };
            async move { app.post_chat("/api/llm/complete", token, &body).await }
        };
        let (s1, s2) = tokio::join!(open(1), open(2));
        assert_eq!((s1.status().as_u16(), s2.status().as_u16()), (200, 200));
        // The handler has returned; the streams still run, and still count.
        let refused = open(3).await;
        assert_eq!(error_code(refused).await, (429, "too_many_inflight".into()));
        drop((s1, s2));
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            let response = app.post_chat("/api/llm/complete", token, &ask_about("mock-llama", 4)).await;
            if response.status() != 429 || Instant::now() > deadline {
                break response.status();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status, 200, "hanging up gave the slots back");
    }

    async fn the_response_cache_holds_at_most_its_bytes(backend: Backend) {
        // 3 tokens of 1,000 bytes: each reply ~3 KB, under 1/16 of 64 KiB.
        let mock = big_mock(0, 3, 1000).await;
        let (app, user) = app_with(backend, &mock, &["--cache-max-bytes", "65536", "--chat-burst", "1000", "--chat-rate-per-sec", "1000"]).await;
        for n in 0..60 {
            let reply = app.chat(&user.token, &ask_about("mock-llama", n)).await;
            assert_eq!(reply.text.len(), 3000);
        }
        let metrics = app.get(&app.dashboard_url("/metrics"), None).await.text().await.unwrap();
        let (bytes, entries) = (gauge(&metrics, "calos_cache_bytes"), gauge(&metrics, "calos_cache_entries"));
        assert!(bytes <= 65536.0, "{bytes} bytes charged");
        assert!(entries >= 1.0, "the cache still caches");
        assert!(entries * 3000.0 <= 65536.0, "{entries} entries of 3 KB are over the bound");
        // 60 × 3 KB went in, so most were evicted or never admitted.
        assert!(entries < 60.0);
    }

    async fn a_user_past_the_chat_rate_gets_429_with_retry_after_and_others_do_not(backend: Backend) {
        let mock = big_mock(0, 1, 10).await;
        let (app, user) = app_with(backend, &mock, &["--chat-burst", "3", "--chat-rate-per-sec", "1"]).await;
        for n in 0..3 {
            let reply = app.post_chat("/api/llm/complete", &user.token, &ask_about("mock-llama", n)).await;
            assert_eq!(reply.status(), 200, "within the burst");
        }
        let refused = app.post_chat("/api/llm/complete", &user.token, &ask_about("mock-llama", 3)).await;
        let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
        assert_eq!(error_code(refused).await, (429, "rate_limited".into()));
        // The limit is per account: someone else chats on.
        let other = app.new_user("other").await;
        let reply = app.post_chat("/v1/chat/completions", &other.token, &ask_openai("mock-llama", false)).await;
        assert_eq!(reply.status(), 200);
        assert_eq!(mock.state.requests.load(std::sync::atomic::Ordering::SeqCst), 4, "the refused chat never reached the provider");
    }

}
