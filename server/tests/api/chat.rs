//! Chat through calos to `calos mock-llm` over real HTTP: pacing, timings,
//! both wire formats, faults, cancellation, cache isolation, queueing.

use crate::helpers::{error_code, mock, unique, Backend, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use server::emulators::mock_llm::{self, Fault, MockArgs, MockServer};
use std::time::{Duration, Instant};

/// calos with Ollama and an OpenAI-compatible `compat` provider both at `mock`.
async fn app_with(mock: &MockServer, extra: &[&str]) -> (TestApp, String) {
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
    let app = TestApp::spawn_with(Backend::Sqlite, &args).await;
    let token = app.token_for(&unique("chat"), "chat-password").await;
    (app, token)
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "Hello, how are you?" }], "stream": stream })
}

async fn post_chat(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// SSE `data:` payloads with the instant each was parsed (the shared decoder).
async fn sse_events(response: reqwest::Response) -> Vec<(Instant, String)> {
    let mut events = Vec::new();
    let mut decoded = std::pin::pin!(app::sse::decode(response.bytes_stream()));
    while let Some(Ok(data)) = decoded.next().await {
        events.push((Instant::now(), data));
    }
    events
}

async fn mock_stats(mock: &MockServer) -> Value {
    reqwest::get(format!("{}/_mock/stats", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_arrives_at_the_upstreams_pace_with_a_correct_breakdown() {
    let mock = mock(300, 20.0, 6).await;
    let (app, token) = app_with(&mock, &[]).await;
    let sent = Instant::now();
    let response = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert!(response.headers().contains_key("x-request-id"));
    let server_timing = response.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_string();
    for phase in [
        "auth;dur=",
        "db;dur=",
        "queue;dur=",
        "cache;dur=",
        "llm_ttft;dur=",
    ] {
        assert!(server_timing.contains(phase), "{server_timing}");
    }
    let events = sse_events(response).await;
    let deltas: Vec<&(Instant, String)> = events
        .iter()
        .filter(|(_, d)| d.contains("\"delta\""))
        .collect();
    assert_eq!(deltas.len(), 6, "{events:?}");
    let first = deltas[0].0 - sent;
    let last = deltas[5].0 - sent;
    assert!(
        first >= Duration::from_millis(300),
        "first token after the mock's TTFT: {first:?}"
    );
    // Five more tokens at 20/s: the stream is relayed as it arrives, not buffered.
    assert!(
        last - first >= Duration::from_millis(200),
        "tokens spread out: {:?}",
        last - first
    );
    let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(done["done"], true);
    assert_eq!(done["provider"], "ollama");
    assert_eq!(done["usage"]["completion_tokens"], 6);
    let t = &done["timings"];
    assert!(t["ttft"].as_f64().unwrap() >= 300.0, "{t}");
    assert!(
        t["llm"].as_f64().unwrap() >= t["ttft"].as_f64().unwrap() + 200.0,
        "{t}"
    );
    assert!(
        t["total"].as_f64().unwrap() >= t["llm"].as_f64().unwrap(),
        "{t}"
    );
    assert!(
        t["upstream"]["evalMs"].as_f64().is_some(),
        "Ollama's own durations are kept: {t}"
    );
    assert_eq!(t["cacheStatus"], "bypass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_chat_returns_text_and_timings_only_when_asked() {
    let mock = mock(10, 1000.0, 4).await;
    let (app, token) = app_with(&mock, &[]).await;
    let plain: Value = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(plain["text"], "Mock t1 t2 t3");
    assert_eq!(plain["provider"], "ollama");
    assert!(plain.get("timings").is_none());
    let mut body = chat_body("mock-llama", false);
    body["includeTimings"] = json!(true);
    body["messages"][0]["content"] = json!("another prompt");
    let detailed = post_chat(&app, &token, "/api/llm/complete", &body).await;
    assert!(detailed.headers()["server-timing"]
        .to_str()
        .unwrap()
        .contains("total;dur="));
    let detailed: Value = detailed.json().await.unwrap();
    for key in ["auth", "database", "queue", "cache", "ttft", "llm", "total"] {
        assert!(detailed["timings"][key].is_number(), "{key}: {detailed}");
    }
    let by_header = app
        .client
        .post(app.url("/api/llm/complete"))
        .bearer_auth(&token)
        .header("x-timing-detail", "true")
        .json(&chat_body("sim", false))
        .send()
        .await
        .unwrap();
    let by_header: Value = by_header.json().await.unwrap();
    assert!(by_header["timings"]["total"].is_number());
    assert!(
        by_header["text"]
            .as_str()
            .unwrap()
            .starts_with("[simulated"),
        "sim says it is simulated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_compatible_api_streams_chunks_usage_and_done() {
    let mock = mock(20, 200.0, 3).await;
    let (app, token) = app_with(&mock, &[]).await;
    let mut body = chat_body("mock-gpt", true);
    body["stream_options"] = json!({ "include_usage": true });
    let events = sse_events(post_chat(&app, &token, "/v1/chat/completions", &body).await).await;
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Mock t1 t2");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    let whole: Value = post_chat(
        &app,
        &token,
        "/v1/chat/completions",
        &chat_body("mock-llama", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], "Mock t1 t2");
    assert_eq!(whole["usage"]["total_tokens"], 8);

    let models: Value = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"mock-llama") && ids.contains(&"sim"),
        "{models}"
    );
    let sim = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "sim")
        .unwrap();
    assert_eq!(sim["owned_by"], "calos (simulated)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_the_seeds_message_and_bots_get_429() {
    let mock = mock(10, 1000.0, 2).await;
    let (app, _) = app_with(&mock, &[]).await;
    let response = app
        .post_json("/api/llm/complete", &chat_body("mock-llama", false))
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Authentication required. This endpoint uses bot detection."
    );
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            app.post_json("/v1/chat/completions", &chat_body("mock-llama", false))
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&429),
        "the bot guard engages: {statuses:?}"
    );
    assert_eq!(
        mock_stats(&mock).await["requests"],
        0,
        "nothing reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_sent_as_text_plain_like_ab_is_served() {
    let mock = mock(5, 1000.0, 2).await;
    let (app, token) = app_with(&mock, &[]).await;
    let response = app
        .client
        .post(app.url("/api/llm/complete"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(chat_body("mock-llama", false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_that_try_to_pick_an_upstream_and_oversized_requests_are_refused_before_any_call() {
    let mock = mock(5, 1000.0, 2).await;
    let (app, token) = app_with(&mock, &[]).await;
    let mut steer = chat_body("mock-llama", false);
    steer["api_base"] = json!("http://169.254.169.254");
    let mut nested = chat_body("mock-llama", false);
    nested["messages"][0]["base_url"] = json!("http://attacker.example.com");
    let mut huge = chat_body("mock-llama", false);
    huge["max_tokens"] = json!(10_000_000);
    let many = json!({ "model": "mock-llama", "messages": vec![json!({"role":"user","content":"x"}); 300] });
    for (what, body) in [
        ("api_base", steer),
        ("nested base_url", nested),
        ("max_tokens", huge),
        ("300 messages", many),
    ] {
        let status = post_chat(&app, &token, "/api/llm/complete", &body)
            .await
            .status();
        assert_eq!(status, 400, "{what}");
    }
    let mut oai = chat_body("mock-llama", false);
    oai["base_url"] = json!("http://attacker.example.com");
    assert_eq!(
        post_chat(&app, &token, "/v1/chat/completions", &oai)
            .await
            .status(),
        400
    );
    assert_eq!(mock_stats(&mock).await["requests"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_that_are_down_unknown_or_unconfigured_answer_fast_with_the_fix() {
    let mock = mock(5, 1000.0, 2).await;
    let (app, token) = app_with(&mock, &[]).await;
    let missing = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("no-such-model", false),
    )
    .await;
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ollama pull no-such-model"),
        "{body}"
    );

    let openai = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("gpt-4o", false),
    )
    .await;
    assert_eq!(openai.status(), 503);
    let body: Value = openai.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ollama_that_refuses_connections_is_a_fast_503_naming_the_fix() {
    // A mock that accepts and closes every connection, from its first one.
    let mock = mock_llm::spawn(&MockArgs {
        fault: Fault::Refuse,
        ..MockArgs::default()
    })
    .await
    .unwrap();
    let (app, token) = app_with(&mock, &["--upstream-retries", "1"]).await;
    let started = Instant::now();
    let down = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", true),
    )
    .await;
    assert_eq!(down.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fast, not a hang"
    );
    let body: Value = down.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ollama serve") && message.contains(&mock.url()),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_map_to_502_and_429_and_transient_ones_are_retried() {
    let mock = mock(5, 1000.0, 2).await;
    let (app, token) = app_with(&mock, &["--upstream-retries", "1"]).await;
    mock.state.set_fault(Fault::Status(500));
    let r = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", false),
    )
    .await;
    assert_eq!(error_code(r).await, (502, "provider_error".into()));
    assert_eq!(
        mock_stats(&mock).await["requests"],
        2,
        "one retry before giving up"
    );

    mock.state.set_fault(Fault::RateLimit(1));
    let r = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", true),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    mock.state.set_fault(Fault::FailFirst(1));
    mock.state
        .requests
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let mut body = chat_body("mock-llama", false);
    body["includeTimings"] = json!(true);
    let ok: Value = post_chat(&app, &token, "/api/llm/complete", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["text"], "Mock t1");
    assert_eq!(ok["timings"]["attempts"], 2);
}

async fn stream_error_after_first_token(fault: Fault, extra: &[&str]) -> Value {
    let mock = mock(5, 50.0, 10).await;
    let (app, token) = app_with(&mock, extra).await;
    mock.state.set_fault(fault);
    let response = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", true),
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "the first token arrived, so the stream started"
    );
    let events = sse_events(response).await;
    assert!(events.iter().any(|(_, d)| d.contains("\"delta\"")));
    serde_json::from_str(&events.last().unwrap().1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stalls_drops_or_garbles_ends_with_an_error_event() {
    let stalled =
        stream_error_after_first_token(Fault::StallAfter(2), &["--idle-timeout-secs", "0.5"]).await;
    assert_eq!(stalled["error"]["code"], "provider_timeout", "{stalled}");
    let dropped = stream_error_after_first_token(Fault::DropAfter(2), &[]).await;
    assert_eq!(
        dropped["error"]["code"], "provider_protocol_error",
        "{dropped}"
    );
    let garbled = stream_error_after_first_token(Fault::MalformedAfter(2), &[]).await;
    assert_eq!(
        garbled["error"]["code"], "provider_protocol_error",
        "{garbled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_before_the_first_token_is_a_504() {
    let mock = mock(5, 50.0, 10).await;
    let (app, token) = app_with(
        &mock,
        &[
            "--first-token-timeout-secs",
            "0.5",
            "--upstream-retries",
            "0",
        ],
    )
    .await;
    mock.state.set_fault(Fault::StallAfter(0));
    let r = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", true),
    )
    .await;
    assert_eq!(error_code(r).await, (504, "provider_timeout".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_closes_the_upstream_stream_at_once() {
    let mock = mock(5, 10.0, 100).await;
    let (app, token) = app_with(&mock, &[]).await;
    let response = post_chat(
        &app,
        &token,
        "/api/llm/complete",
        &chat_body("mock-llama", true),
    )
    .await;
    let mut body = response.bytes_stream();
    let _first = body.next().await;
    assert_eq!(mock.open_streams(), 1);
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(1);
    while mock.open_streams() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = mock_stats(&mock).await;
    assert_eq!(stats["openStreams"], 0, "{stats}");
    assert_eq!(stats["cancelledStreams"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_a_user_their_own_answer_and_never_another_users() {
    let mock = mock(5, 1000.0, 2).await;
    let (app, alice) = app_with(&mock, &[]).await;
    let bob = app.token_for(&unique("bob"), "bob-password").await;
    let mut body = chat_body("mock-llama", false);
    body["includeTimings"] = json!(true);
    let first: Value = post_chat(&app, &alice, "/api/llm/complete", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["timings"]["cacheStatus"], "miss");
    let again = post_chat(&app, &alice, "/api/llm/complete", &body).await;
    assert!(again.headers()["server-timing"]
        .to_str()
        .unwrap()
        .contains("desc=\"hit\""));
    assert_eq!(again.headers()["cache-control"], "private, no-store");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["timings"]["cacheStatus"], "hit");
    let for_bob: Value = post_chat(&app, &bob, "/api/llm/complete", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        for_bob["timings"]["cacheStatus"], "miss",
        "Bob never gets Alice's cached answer"
    );
    assert_eq!(mock_stats(&mock).await["requests"], 2);
    // `Cache-Control: no-cache` asks for a fresh answer: the model is called again.
    let fresh: Value = app
        .client
        .post(app.url("/api/llm/complete"))
        .bearer_auth(&alice)
        .header("cache-control", "no-cache")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["timings"]["cacheStatus"], "bypass");
    assert_eq!(mock_stats(&mock).await["requests"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_provider_queue_answers_503_with_retry_after_and_waiting_is_timed() {
    let mock = mock(400, 1000.0, 2).await;
    let (app, token) = app_with(&mock, &["--ollama-concurrency", "1", "--queue-size", "1"]).await;
    let body = |n: usize| {
        let mut b = chat_body("mock-llama", false);
        b["messages"][0]["content"] = json!(format!("prompt {n}"));
        b["includeTimings"] = json!(true);
        b
    };
    let (b0, b1, b2) = (body(0), body(1), body(2));
    let (r0, r1, r2) = tokio::join!(
        post_chat(&app, &token, "/api/llm/complete", &b0),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            post_chat(&app, &token, "/api/llm/complete", &b1).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            post_chat(&app, &token, "/api/llm/complete", &b2).await
        },
    );
    assert_eq!(r0.status(), 200);
    assert_eq!(r1.status(), 200);
    let queued: Value = r1.json().await.unwrap();
    assert!(
        queued["timings"]["queue"].as_f64().unwrap() >= 200.0,
        "the second waited its turn: {queued}"
    );
    assert_eq!(r2.status(), 503);
    assert!(r2.headers().contains_key("retry-after"));
    assert_eq!(error_code(r2).await.1, "queue_full");
}
