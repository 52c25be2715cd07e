//! Chat through calos to `calos mock-llm` over real HTTP: pacing, timings,
//! both wire formats, faults, cancellation, cache isolation, queueing. Every
//! test runs on SQLite and on PostgreSQL (accounts, tokens and the cache's
//! owner all come from the database).

use crate::helpers::{
    app_with, as_json, ask, ask_openai, chunks, error_code, events, mock, mock_json, ok_json,
    on_both_databases, Backend, Received,
};
use app::wire::{
    CacheStatus, ChatCompletion, CompleteEvent, CompleteRequest, ModelList, StreamData,
    StreamOptions,
};
use futures::StreamExt;
use serde_json::{json, Value};
use server::emulators::mock_llm::{self, Fault, MockArgs, MockServer};
use std::time::{Duration, Instant};

/// `ask(model, false)` with the breakdown in the body.
fn ask_timed(model: &str) -> CompleteRequest {
    CompleteRequest {
        include_timings: true,
        ..ask(model, false)
    }
}

async fn mock_stats(mock: &MockServer) -> Value {
    mock_json(mock, "/_mock/stats").await
}

/// The last event of a stream that relayed at least one token before failing.
async fn stream_error_after_first_token(
    backend: Backend,
    fault: Fault,
    extra: &[&str],
) -> CompleteEvent {
    let mock = mock(5, 50.0, 10).await;
    let (app, user) = app_with(backend, &mock, extra).await;
    mock.state.set_fault(fault);
    // The first token arrived, so the stream started (200).
    let mut events = app.stream(&user.token, &ask("mock-llama", true)).await;
    assert!(events
        .iter()
        .any(|e| matches!(e.event, CompleteEvent::Delta { .. })));
    events.pop().unwrap().event
}

fn error_code_of(event: &CompleteEvent) -> &str {
    match event {
        CompleteEvent::Error { error } => &error.code,
        other => panic!("not an error event: {other:?}"),
    }
}

on_both_databases! {
    async fn a_streamed_chat_arrives_at_the_upstreams_pace_with_a_correct_breakdown(backend: Backend) {
        let mock = mock(300, 20.0, 6).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let sent = Instant::now();
        let response = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        assert!(response.headers().contains_key("x-request-id"));
        let server_timing = response.headers()["server-timing"].to_str().unwrap().to_string();
        for phase in ["auth;dur=", "db;dur=", "queue;dur=", "cache;dur=", "llm_ttft;dur="] {
            assert!(server_timing.contains(phase), "{server_timing}");
        }
        let events = events(response).await;
        let deltas: Vec<&Received<CompleteEvent>> = events
            .iter()
            .filter(|e| matches!(e.event, CompleteEvent::Delta { .. }))
            .collect();
        assert_eq!(deltas.len(), 6, "{events:?}");
        let first = deltas[0].at - sent;
        let last = deltas[5].at - sent;
        assert!(first >= Duration::from_millis(300), "first token after the mock's TTFT: {first:?}");
        // Five more tokens at 20/s: the stream is relayed as it arrives, not buffered.
        assert!(last - first >= Duration::from_millis(200), "tokens spread out: {:?}", last - first);
        let Some(CompleteEvent::Done(done)) = events.last().map(|e| &e.event) else {
            panic!("the last event is `done`: {events:?}");
        };
        assert!(done.done);
        assert_eq!(done.provider, "ollama");
        assert_eq!(done.usage.completion_tokens, 6);
        let t = &done.timings;
        let (ttft, llm) = (t.ttft.unwrap(), t.llm.unwrap());
        assert!(ttft >= 300.0, "{t:?}");
        assert!(llm >= ttft + 200.0, "{t:?}");
        assert!(t.total >= llm, "{t:?}");
        assert!(
            t.upstream.and_then(|u| u.eval_ms).is_some(),
            "Ollama's own durations are kept: {t:?}"
        );
        assert_eq!(t.cache_status, CacheStatus::Bypass);
    }

    async fn a_whole_chat_returns_text_and_timings_only_when_asked(backend: Backend) {
        let mock = mock(10, 1000.0, 4).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let plain: Value = ok_json(app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", false)).await).await;
        assert!(plain.get("timings").is_none(), "{plain}");
        let plain: app::wire::CompleteResponse = serde_json::from_value(plain).unwrap();
        assert_eq!(plain.text, "Mock t1 t2 t3");
        assert_eq!(plain.provider, "ollama");
        let mut body = ask_timed("mock-llama");
        body.messages[0].content = "another prompt".into();
        let detailed = app.post_chat("/api/llm/complete", &user.token, &body).await;
        assert!(detailed.headers()["server-timing"].to_str().unwrap().contains("total;dur="));
        let detailed: app::wire::CompleteResponse = ok_json(detailed).await;
        // auth, database, queue, cache and total are numbers by type; the rest happened.
        let timings = detailed.timings.expect("timings when asked");
        assert!(timings.ttft.is_some() && timings.llm.is_some(), "{timings:?}");
        let by_header = app
            .chat_request("/api/llm/complete", &user.token, &ask("sim", false))
            .header("x-timing-detail", "true")
            .send()
            .await
            .unwrap();
        let by_header: app::wire::CompleteResponse = ok_json(by_header).await;
        assert!(by_header.timings.is_some());
        assert!(by_header.text.starts_with("[simulated"), "sim says it is simulated");
    }

    async fn the_openai_compatible_api_streams_chunks_usage_and_done(backend: Backend) {
        let mock = mock(20, 200.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let mut body = ask_openai("mock-gpt", true);
        body.stream_options = Some(StreamOptions { include_usage: true });
        let mut received = chunks(app.post_chat("/v1/chat/completions", &user.token, &body).await).await;
        assert_eq!(received.pop().map(|r| r.event), Some(StreamData::Done));
        let chunks: Vec<_> = received
            .iter()
            .map(|r| match &r.event {
                StreamData::Chunk(c) => c,
                other => panic!("a chunk before [DONE]: {other:?}"),
            })
            .collect();
        assert_eq!(chunks[0].choices[0].delta.role.as_deref(), Some("assistant"));
        let text: String = chunks.iter().filter_map(|c| c.content()).collect();
        assert_eq!(text, "Mock t1 t2");
        assert!(chunks.iter().all(|c| c.object == "chat.completion.chunk"));
        let usage: Value = serde_json::from_str(&received.last().unwrap().data).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(chunks.last().unwrap().usage.map(|u| u.completion_tokens), Some(3));

        let whole: ChatCompletion = ok_json(app.post_chat("/v1/chat/completions", &user.token, &ask_openai("mock-llama", false)).await).await;
        assert_eq!(whole.object, "chat.completion");
        assert_eq!(whole.choices[0].message.content, "Mock t1 t2");
        assert_eq!(whole.usage.total_tokens, 8);

        let models: ModelList = app.get_as("/v1/models", &user.token).await;
        let ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
        assert!(ids.contains(&"mock-llama") && ids.contains(&"sim"), "{ids:?}");
        let sim = models.data.iter().find(|m| m.id == "sim").unwrap();
        assert_eq!(sim.owned_by, "calos (simulated)");
    }

    async fn requests_without_a_valid_token_get_the_seeds_message_and_bots_get_429(backend: Backend) {
        let mock = mock(10, 1000.0, 2).await;
        let (app, _) = app_with(backend, &mock, &[]).await;
        let response = app.post_json("/api/llm/complete", &as_json(&ask("mock-llama", false))).await;
        let body: app::wire::ErrorResponse = response.json().await.unwrap();
        assert_eq!(body.error.message, "Authentication required. This endpoint uses bot detection.");
        let mut statuses = Vec::new();
        for _ in 0..25 {
            let response = app.post_json("/v1/chat/completions", &as_json(&ask_openai("mock-llama", false))).await;
            statuses.push(response.status().as_u16());
        }
        assert!(statuses.contains(&429), "the bot guard engages: {statuses:?}");
        assert_eq!(mock_stats(&mock).await["requests"], 0, "nothing reached the upstream");
    }

    async fn json_sent_as_text_plain_like_ab_is_served(backend: Backend) {
        let mock = mock(5, 1000.0, 2).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let response = app
            .chat_request("/api/llm/complete", &user.token, &ask("mock-llama", false))
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn fields_that_try_to_pick_an_upstream_and_oversized_requests_are_refused_before_any_call(backend: Backend) {
        let mock = mock(5, 1000.0, 2).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let mut steer = as_json(&ask("mock-llama", false));
        steer["api_base"] = json!("http://169.254.169.254");
        let mut nested = as_json(&ask("mock-llama", false));
        nested["messages"][0]["base_url"] = json!("http://attacker.example.com");
        let huge = CompleteRequest { max_tokens: Some(10_000_000), ..ask("mock-llama", false) };
        let mut many = ask("mock-llama", false);
        many.messages = vec![many.messages[0].clone(); 300];
        for (what, body) in [
            ("api_base", steer),
            ("nested base_url", nested),
            ("max_tokens", as_json(&huge)),
            ("300 messages", as_json(&many)),
        ] {
            let response = app.post_chat("/api/llm/complete", &user.token, &body).await;
            assert_eq!(error_code(response).await.0, 400, "{what}");
        }
        let mut oai = as_json(&ask_openai("mock-llama", false));
        oai["base_url"] = json!("http://attacker.example.com");
        let response = app.post_chat("/v1/chat/completions", &user.token, &oai).await;
        assert_eq!(response.status(), 400);
        assert_eq!(mock_stats(&mock).await["requests"], 0);
    }

    async fn providers_that_are_down_unknown_or_unconfigured_answer_fast_with_the_fix(backend: Backend) {
        let mock = mock(5, 1000.0, 2).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let missing = app.post_chat("/api/llm/complete", &user.token, &ask("no-such-model", false)).await;
        let body: app::wire::ErrorResponse = missing.json().await.unwrap();
        assert_eq!(body.error.code, "model_not_found");
        assert!(body.error.message.contains("ollama pull no-such-model"), "{body:?}");

        let openai = app.post_chat("/api/llm/complete", &user.token, &ask("gpt-4o", false)).await;
        assert_eq!(openai.status(), 503);
        let body: app::wire::ErrorResponse = openai.json().await.unwrap();
        assert!(body.error.message.contains("OPENAI_API_KEY"), "{body:?}");
    }

    async fn an_ollama_that_refuses_connections_is_a_fast_503_naming_the_fix(backend: Backend) {
        // A mock that accepts and closes every connection, from its first one.
        let mock = mock_llm::spawn(&MockArgs { fault: Fault::Refuse, ..MockArgs::default() })
            .await
            .unwrap();
        let (app, user) = app_with(backend, &mock, &["--upstream-retries", "1"]).await;
        let started = Instant::now();
        let down = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", true)).await;
        assert_eq!(down.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(5), "fast, not a hang");
        let body: app::wire::ErrorResponse = down.json().await.unwrap();
        let message = body.error.message;
        // A member is told the fix, not the provider's internal address…
        assert!(message.contains("ollama serve") && !message.contains(&mock.url()), "{message}");
        assert!(!message.contains("127.0.0.1"), "{message}");
        // …an administrator gets both.
        let admin = app.admin_token().await;
        let down = app.post_chat("/api/llm/complete", &admin, &ask("mock-llama", false)).await;
        let body: app::wire::ErrorResponse = down.json().await.unwrap();
        assert!(body.error.message.contains(&mock.url()), "{}", body.error.message);
    }

    async fn upstream_errors_map_to_502_and_429_and_transient_ones_are_retried(backend: Backend) {
        let mock = mock(5, 1000.0, 2).await;
        let (app, user) = app_with(backend, &mock, &["--upstream-retries", "1"]).await;
        mock.state.set_fault(Fault::Status(500));
        let r = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", false)).await;
        assert_eq!(error_code(r).await, (502, "provider_error".into()));
        assert_eq!(mock_stats(&mock).await["requests"], 2, "one retry before giving up");

        mock.state.set_fault(Fault::RateLimit(1));
        let r = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", true)).await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        // The upstream asked for a second's rest: calos leaves it alone that long.
        let r = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", false)).await;
        assert_eq!(r.status(), 429, "within the Retry-After, answered without an attempt");
        tokio::time::sleep(Duration::from_millis(1100)).await;

        mock.state.set_fault(Fault::FailFirst(1));
        mock.state.requests.store(0, std::sync::atomic::Ordering::SeqCst);
        let ok = app.chat(&user.token, &ask_timed("mock-llama")).await;
        assert_eq!(ok.text, "Mock t1");
        assert_eq!(ok.timings.map(|t| t.attempts), Some(2));
    }

    async fn html_pages_invalid_utf8_and_redirects_from_upstream_are_502s(backend: Backend) {
        let mock = mock(5, 1000.0, 2).await;
        // Six broken answers in a row would open the breaker; this test is
        // about how each one is told.
        let (app, user) = app_with(backend, &mock, &["--upstream-retries", "0", "--breaker-failures", "100"]).await;
        for fault in [Fault::Html, Fault::InvalidUtf8, Fault::Redirect] {
            mock.state.set_fault(fault.clone());
            for stream in [false, true] {
                mock.state.requests.store(0, std::sync::atomic::Ordering::SeqCst);
                let r = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", stream)).await;
                let (status, code) = error_code(r).await;
                assert_eq!(status, 502, "{fault:?} stream={stream}: {code}");
                // A redirect is not followed (nor retried): the mock saw one request.
                assert_eq!(mock_stats(&mock).await["requests"], 1, "{fault:?}");
            }
        }
    }

    async fn a_stream_that_stalls_drops_or_garbles_ends_with_an_error_event(backend: Backend) {
        let stalled = stream_error_after_first_token(backend, Fault::StallAfter(2), &["--idle-timeout-secs", "0.5"]).await;
        assert_eq!(error_code_of(&stalled), "provider_timeout");
        let dropped = stream_error_after_first_token(backend, Fault::DropAfter(2), &[]).await;
        assert_eq!(error_code_of(&dropped), "provider_protocol_error");
        let garbled = stream_error_after_first_token(backend, Fault::MalformedAfter(2), &[]).await;
        assert_eq!(error_code_of(&garbled), "provider_protocol_error");
    }

    async fn a_stall_before_the_first_token_is_a_504(backend: Backend) {
        let mock = mock(5, 50.0, 10).await;
        let extra = ["--first-token-timeout-secs", "0.5", "--upstream-retries", "0"];
        let (app, user) = app_with(backend, &mock, &extra).await;
        mock.state.set_fault(Fault::StallAfter(0));
        let r = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", true)).await;
        assert_eq!(error_code(r).await, (504, "provider_timeout".into()));
    }

    async fn a_client_hanging_up_closes_the_upstream_stream_at_once(backend: Backend) {
        let mock = mock(5, 10.0, 100).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let response = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", true)).await;
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

    async fn the_cache_serves_a_user_their_own_answer_and_never_another_users(backend: Backend) {
        let mock = mock(5, 1000.0, 2).await;
        let (app, alice) = app_with(backend, &mock, &[]).await;
        let bob = app.new_user("bob").await;
        let body = ask_timed("mock-llama");
        let cache_status = |reply: app::wire::CompleteResponse| reply.timings.map(|t| t.cache_status);
        let first = app.chat(&alice.token, &body).await;
        assert_eq!(cache_status(first), Some(CacheStatus::Miss));
        let again = app.post_chat("/api/llm/complete", &alice.token, &body).await;
        assert!(again.headers()["server-timing"].to_str().unwrap().contains("desc=\"hit\""));
        assert_eq!(again.headers()["cache-control"], "private, no-store");
        assert_eq!(cache_status(ok_json(again).await), Some(CacheStatus::Hit));
        let for_bob = app.chat(&bob.token, &body).await;
        assert_eq!(cache_status(for_bob), Some(CacheStatus::Miss), "Bob never gets Alice's cached answer");
        assert_eq!(mock_stats(&mock).await["requests"], 2);
        // `Cache-Control: no-cache` asks for a fresh answer: the model is called again.
        let fresh = app
            .chat_request("/api/llm/complete", &alice.token, &body)
            .header("cache-control", "no-cache")
            .send()
            .await
            .unwrap();
        assert_eq!(cache_status(ok_json(fresh).await), Some(CacheStatus::Bypass));
        assert_eq!(mock_stats(&mock).await["requests"], 3);
    }

    async fn identical_concurrent_whole_requests_share_one_upstream_call(backend: Backend) {
        let mock = mock(300, 1000.0, 3).await;
        let (app, alice) = app_with(backend, &mock, &["--upstream-retries", "0"]).await;
        let bob = app.new_user("bob").await;
        let body = ask_timed("mock-llama");
        let all_at_once = |token: &str, body: &CompleteRequest, n: usize, fresh: bool| {
            let requests = (0..n).map(|_| {
                let request = app.chat_request("/api/llm/complete", token, body);
                let request = if fresh { request.header("cache-control", "no-cache") } else { request };
                async move { request.send().await.unwrap() }
            });
            futures::future::join_all(requests)
        };
        // What `ab -n 10 -c 10` does: ten identical chats at once.
        let mut texts = Vec::new();
        let mut statuses = Vec::new();
        for response in all_at_once(&alice.token, &body, 10, false).await {
            let reply: app::wire::CompleteResponse = ok_json(response).await;
            let timings = reply.timings.unwrap();
            if timings.cache_status == CacheStatus::Shared {
                assert_eq!(timings.attempts, 0, "a shared answer made no upstream attempt: {timings:?}");
                assert!(timings.ttft.is_none(), "{timings:?}");
            }
            texts.push(reply.text);
            statuses.push(timings.cache_status);
        }
        assert_eq!(mock_stats(&mock).await["requests"], 1, "one upstream call for ten requests");
        assert!(texts.iter().all(|t| *t == texts[0] && !t.is_empty()), "{texts:?}");
        let shared = statuses.iter().filter(|s| **s == CacheStatus::Shared).count();
        assert_eq!((shared, statuses.len() - shared), (9, 1), "{statuses:?}");

        // Never shared: streams, requests for a fresh answer, another user's.
        for response in all_at_once(&alice.token, &ask("mock-llama", true), 3, false).await {
            assert_eq!(response.status(), 200);
            events(response).await;
        }
        assert_eq!(mock_stats(&mock).await["requests"], 4, "each stream has its own upstream call");
        for response in all_at_once(&alice.token, &body, 3, true).await {
            let reply: app::wire::CompleteResponse = ok_json(response).await;
            assert_eq!(reply.timings.unwrap().cache_status, CacheStatus::Bypass);
        }
        assert_eq!(mock_stats(&mock).await["requests"], 7, "a fresh answer is asked for each");
        let for_bob = app.chat(&bob.token, &body).await;
        assert_eq!(for_bob.timings.unwrap().cache_status, CacheStatus::Miss);
        assert_eq!(mock_stats(&mock).await["requests"], 8);

        // A failure is shared as well: one upstream call, every waiter told
        // (the upstream fails after its first token, so the call lasts).
        mock.state.set_fault(Fault::DropAfter(1));
        let mut failing = body.clone();
        failing.messages[0].content = "this one fails".into();
        let mut errors = Vec::new();
        for response in all_at_once(&alice.token, &failing, 5, false).await {
            errors.push(error_code(response).await);
        }
        assert!(errors.iter().all(|e| *e == errors[0] && e.0 >= 500), "{errors:?}");
        assert_eq!(mock_stats(&mock).await["requests"], 9);
    }

    async fn a_full_provider_queue_answers_503_with_retry_after_and_waiting_is_timed(backend: Backend) {
        let mock = mock(400, 1000.0, 2).await;
        let (app, user) = app_with(backend, &mock, &["--ollama-concurrency", "1", "--queue-size", "1"]).await;
        let body = |n: usize| {
            let mut b = ask_timed("mock-llama");
            b.messages[0].content = format!("prompt {n}");
            b
        };
        let (b0, b1, b2) = (body(0), body(1), body(2));
        let token = &user.token;
        let (r0, r1, r2) = tokio::join!(
            app.post_chat("/api/llm/complete", token, &b0),
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                app.post_chat("/api/llm/complete", token, &b1).await
            },
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                app.post_chat("/api/llm/complete", token, &b2).await
            },
        );
        assert_eq!(r0.status(), 200);
        let queued: app::wire::CompleteResponse = ok_json(r1).await;
        let queue = queued.timings.as_ref().map(|t| t.queue).unwrap_or_default();
        assert!(queue >= 200.0, "the second waited its turn: {queued:?}");
        assert_eq!(r2.status(), 503);
        assert!(r2.headers().contains_key("retry-after"));
        assert_eq!(error_code(r2).await.1, "queue_full");
    }
}
