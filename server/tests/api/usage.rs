//! The usage ledger, limits and budgets, on both databases: every chat leaves
//! a row whose tokens match what the mock reported; rpm, tpm and budgets
//! answer 429 with `Retry-After` (OpenAI's error shape on `/v1`); a stream
//! that crosses its budget is finished and counted; nobody sees another
//! account's usage; limits are for administrators to set.

use crate::helpers::*;
use app::wire::{CreatedKeyResponse, LimitsResponse, UsageResponse};
use serde_json::{json, Value};
use std::time::Duration;

/// What the mock reports for every prompt.
const PROMPT_TOKENS: u64 = 5;

async fn make_key(app: &TestApp, token: &str, body: &Value) -> CreatedKeyResponse {
    let made = app
        .request(reqwest::Method::POST, "/api/keys", Some(token))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    made.json().await.unwrap()
}

/// A chat that skips the response cache (each request must reach the mock).
async fn fresh_chat(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &impl serde::Serialize,
) -> reqwest::Response {
    app.chat_request(path, token, body)
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap()
}

async fn usage(app: &TestApp, token: &str, query: &str) -> UsageResponse {
    ok_json(app.get(&format!("/api/usage{query}"), Some(token)).await).await
}

/// The caller's usage once the ledger holds `requests` rows (rows are written
/// in batches, a moment after the reply).
async fn usage_once(app: &TestApp, token: &str, query: &str, requests: u64) -> UsageResponse {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = usage(app, token, query).await;
        if seen.totals.requests >= requests || std::time::Instant::now() > deadline {
            assert_eq!(seen.totals.requests, requests, "ledger rows: {seen:?}");
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.me_as(token).await.user_id
}

async fn set_limits(app: &TestApp, admin: &str, user_id: &str, body: &Value) -> reqwest::Response {
    app.request(
        reqwest::Method::PUT,
        &format!("/api/admin/users/{user_id}/limits"),
        Some(admin),
    )
    .json(body)
    .send()
    .await
    .unwrap()
}

/// A 429's code, its `Retry-After` and, on `/v1`, OpenAI's error `type`.
async fn refusal(response: reqwest::Response) -> (String, u64, Option<String>) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    (
        body["error"]["code"].as_str().unwrap().to_string(),
        retry_after,
        body["error"]["type"].as_str().map(str::to_string),
    )
}

on_both_databases! {
    async fn usage_sums_match_the_mock_token_counts_exactly(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let key = make_key(&app, &user.token, &json!({ "name": "ci" })).await;
        // Two through /v1 with the key (one streamed), two with the session.
        assert_eq!(fresh_chat(&app, "/v1/chat/completions", &key.key, &ask_openai("mock-gpt", false)).await.status(), 200);
        let streamed = fresh_chat(&app, "/v1/chat/completions", &key.key, &ask_openai("mock-gpt", true)).await;
        assert_eq!(streamed.status(), 200);
        let _ = streamed.text().await.unwrap();
        assert_eq!(fresh_chat(&app, "/api/llm/complete", &user.token, &ask("mock-llama", false)).await.status(), 200);
        let _ = app.stream(&user.token, &ask("mock-llama", true)).await;

        let by_model = usage_once(&app, &user.token, "?groupBy=model", 4).await;
        assert_eq!(by_model.totals.prompt_tokens, 4 * PROMPT_TOKENS);
        assert_eq!(by_model.totals.completion_tokens, 4 * 3);
        assert_eq!(by_model.totals.total_tokens, 4 * (PROMPT_TOKENS + 3));
        let models: Vec<(&str, u64)> = by_model.rows.iter().map(|r| (r.group.as_str(), r.requests)).collect();
        assert_eq!(models, [("mock-gpt", 2), ("mock-llama", 2)]);

        let by_key = usage(&app, &user.token, "?groupBy=key").await;
        let keys: Vec<(Option<&str>, u64)> = by_key.rows.iter().map(|r| (r.label.as_deref(), r.total_tokens)).collect();
        assert_eq!(keys, [(Some("signed-in session"), 16), (Some("ci"), 16)]);
        let by_day = usage(&app, &user.token, "").await;
        assert_eq!(by_day.rows.len(), 1);
        assert_eq!(by_day.rows[0].group, chrono::Utc::now().format("%Y-%m-%d").to_string());
        assert_eq!(by_day.limits, Some(Default::default()));
        assert_eq!(by_day.budget, None);

        // /metrics has the same tokens, under OpenTelemetry's GenAI names.
        let exposition = app.get(&app.dashboard_url("/metrics"), None).await.text().await.unwrap();
        let summed = |token_type: &str| -> f64 {
            exposition
                .lines()
                .filter(|l| l.starts_with("gen_ai_client_token_usage_sum{") && l.contains(&format!("gen_ai_token_type=\"{token_type}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!((summed("input"), summed("output")), (20.0, 12.0), "{exposition}");
        assert!(exposition.contains("gen_ai_server_time_to_first_token_seconds_bucket{"), "{exposition}");

        // Another account sees none of it; an administrator sees it by user.
        let other = app.new_user("other").await;
        assert_eq!(usage(&app, &other.token, "?groupBy=key").await.totals.requests, 0);
        let admin = app.admin().await;
        let everyone: UsageResponse = ok_json(app.get("/api/admin/usage?groupBy=user", Some(&admin.token)).await).await;
        let mine = everyone.rows.iter().find(|r| r.label.as_deref() == Some(user.username.as_str())).unwrap();
        assert_eq!(mine.total_tokens, 32);
        assert_eq!(error_code(app.get("/api/admin/usage", Some(&user.token)).await).await.0, 403);
        // A key reads no usage: that takes a session.
        assert_eq!(error_code(app.get("/api/usage", Some(&key.key)).await).await, (401, "session_required".into()));
        for bad in ["?groupBy=user", "?groupBy=week", "?from=2026-13-01", "?from=2026-12-05&to=2026-12-01", "?from=2020-01-01&to=2026-01-01", "?limit=5"] {
            assert_eq!(error_code(app.get(&format!("/api/usage{bad}"), Some(&user.token)).await).await.0, 400, "{bad}");
        }
    }

    async fn rpm_and_tpm_answer_429_with_retry_after(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let two_a_minute = make_key(&app, &user.token, &json!({ "name": "slow", "rpm": 2 })).await;
        assert_eq!(two_a_minute.limits.rpm, Some(2));
        for _ in 0..2 {
            assert_eq!(fresh_chat(&app, "/api/llm/complete", &two_a_minute.key, &ask("mock-llama", false)).await.status(), 200);
        }
        let (code, retry_after, kind) = refusal(fresh_chat(&app, "/api/llm/complete", &two_a_minute.key, &ask("mock-llama", false)).await).await;
        assert_eq!((code.as_str(), kind), ("rate_limited", None));
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let (code, _, kind) = refusal(fresh_chat(&app, "/v1/chat/completions", &two_a_minute.key, &ask_openai("mock-gpt", false)).await).await;
        assert_eq!((code.as_str(), kind.as_deref()), ("rate_limit_exceeded", Some("rate_limit_exceeded")));
        // The account itself is not limited by its key's rpm.
        assert_eq!(fresh_chat(&app, "/api/llm/complete", &user.token, &ask("mock-llama", false)).await.status(), 200);

        // 8 tokens a request against 10 a minute: the second still has room,
        // the third has none.
        let tokens = make_key(&app, &user.token, &json!({ "name": "thrifty", "tpm": 10 })).await;
        for _ in 0..2 {
            assert_eq!(fresh_chat(&app, "/api/llm/complete", &tokens.key, &ask("mock-llama", false)).await.status(), 200);
        }
        let (code, retry_after, _) = refusal(fresh_chat(&app, "/api/llm/complete", &tokens.key, &ask("mock-llama", false)).await).await;
        assert_eq!(code, "rate_limited");
        assert!((1..=60).contains(&retry_after));
        // Refusals are in the ledger too, with no tokens.
        let seen = usage_once(&app, &user.token, "?groupBy=key", 8).await;
        assert_eq!(seen.totals.errors, 3);
        assert_eq!(seen.totals.total_tokens, 5 * (PROMPT_TOKENS + 3));
    }

    async fn a_spent_budget_answers_429_and_a_stream_crossing_it_is_finished(backend: Backend) {
        let mock = mock(0, 0.0, 20).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let admin = app.admin().await;
        let id = user_id(&app, &user.token).await;

        // Only administrators set limits, and only sensible ones.
        assert_eq!(error_code(set_limits(&app, &user.token, &id, &json!({ "rpm": 1 })).await).await.0, 403);
        assert_eq!(error_code(set_limits(&app, &admin.token, "no-such-user", &json!({})).await).await.0, 404);
        for bad in [json!({ "rpm": 0 }), json!({ "budgetTokens": 10 }), json!({ "budgetTokens": 10, "budgetPeriod": "week" }), json!({ "rpm": -1 }), json!({ "burst": 3 })] {
            assert_eq!(error_code(set_limits(&app, &admin.token, &id, &bad).await).await.0, 400, "{bad}");
        }
        let set: LimitsResponse = ok_json(set_limits(&app, &admin.token, &id, &json!({ "budgetTokens": 30, "budgetPeriod": "day" })).await).await;
        assert_eq!(set.limits.budget_tokens, Some(30));
        let read: LimitsResponse = ok_json(app.get(&format!("/api/admin/users/{id}/limits"), Some(&admin.token)).await).await;
        assert_eq!(read.limits, set.limits);

        // A key may not have a larger budget than its owner.
        let too_rich = app
            .request(reqwest::Method::POST, "/api/keys", Some(&user.token))
            .json(&json!({ "name": "rich", "budgetTokens": 31, "budgetPeriod": "month" }))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(too_rich).await, (400, "invalid_field".into()));

        // 25 tokens: room left (5 of 30), so a 25-token stream starts, crosses
        // the budget mid-way and is finished, not cut.
        assert_eq!(fresh_chat(&app, "/api/llm/complete", &user.token, &ask("mock-llama", false)).await.status(), 200);
        let events = app.stream(&user.token, &ask("mock-llama", true)).await;
        assert!(matches!(events.last().map(|e| &e.event), Some(app::wire::CompleteEvent::Done(_))), "the stream ends with its done event");

        // Spent: 429 on /api and, in OpenAI's shape, on /v1.
        let (code, retry_after, _) = refusal(fresh_chat(&app, "/api/llm/complete", &user.token, &ask("mock-llama", false)).await).await;
        assert_eq!(code, "budget_exceeded");
        assert!((1..=86_400).contains(&retry_after), "until midnight UTC: {retry_after}");
        let (code, _, kind) = refusal(fresh_chat(&app, "/v1/chat/completions", &user.token, &ask_openai("mock-gpt", false)).await).await;
        assert_eq!((code.as_str(), kind.as_deref()), ("insufficient_quota", Some("insufficient_quota")));

        let seen = usage_once(&app, &user.token, "", 4).await;
        assert_eq!(seen.totals.total_tokens, 50, "the crossing stream is counted whole");
        let budget = seen.budget.unwrap();
        assert_eq!((budget.tokens, budget.spent, budget.remaining), (30, 50, 0));

        // Lifting the budget lets the account chat again at once.
        let _: LimitsResponse = ok_json(set_limits(&app, &admin.token, &id, &json!({})).await).await;
        assert_eq!(fresh_chat(&app, "/api/llm/complete", &user.token, &ask("mock-llama", false)).await.status(), 200);
    }

    async fn a_key_budget_is_its_own_and_the_ledger_holds_no_secret(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let key = make_key(&app, &user.token, &json!({ "name": "capped", "budgetTokens": 8, "budgetPeriod": "total" })).await;
        assert_eq!(fresh_chat(&app, "/api/llm/complete", &key.key, &ask("mock-llama", false)).await.status(), 200);
        let (code, retry_after, _) = refusal(fresh_chat(&app, "/api/llm/complete", &key.key, &ask("mock-llama", false)).await).await;
        assert_eq!((code.as_str(), retry_after), ("budget_exceeded", 3600));
        // The owner is not bound by the key's budget.
        assert_eq!(fresh_chat(&app, "/api/llm/complete", &user.token, &ask("mock-llama", false)).await.status(), 200);
        let by_key = usage_once(&app, &user.token, "?groupBy=key", 3).await;
        let capped = by_key.rows.iter().find(|r| r.group == key.id).unwrap();
        let budget = capped.budget.clone().unwrap();
        assert_eq!((budget.spent, budget.remaining, budget.period.as_str()), (8, 0, "total"));

        // The ledger names the key by id; its secret is nowhere in it.
        let rows: Vec<String> = match backend {
            Backend::Sqlite => {
                let bytes = std::fs::read(app.data_dir.join("calos-usage.db")).unwrap();
                let mut wal = std::fs::read(app.data_dir.join("calos-usage.db-wal")).unwrap_or_default();
                wal.extend(bytes);
                vec![String::from_utf8_lossy(&wal).into_owned()]
            }
            Backend::Postgres => {
                let db = server::db::Db::connect(&server::db::DbTarget::resolve(app.database_url.as_deref(), &app.data_dir), 1).await.unwrap();
                let rows = server::with_pool!(&db, pool => sqlx::query_scalar::<_, String>(
                    "select concat_ws(' ', request_id, user_id, key_id, model, provider, error_code) from usage_events")
                    .fetch_all(pool).await).unwrap();
                db.close().await;
                rows
            }
        };
        assert!(rows.iter().any(|r| r.contains(&key.id)), "rows name the key");
        assert!(rows.iter().all(|r| !r.contains(&key.key[12..])), "no secret in the ledger");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calos_users_limits_shows_and_sets_an_accounts_limits() {
    const BIN: &str = env!("CARGO_BIN_EXE_calos");
    let app = TestApp::spawn_with(Backend::Sqlite, &["--session-cache-ttl", "0"]).await;
    let user = app.new_user("limited").await;
    let data_dir = app.data_dir.display().to_string();
    let calos = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["users", "--data-dir", &data_dir, "limits"])
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = calos(&[&user.username]);
    assert!(ok);
    assert!(out.contains("no limits"), "{out}");
    let (ok, out, err) = calos(&[
        &user.username,
        "--rpm",
        "1",
        "--budget-tokens",
        "1000",
        "--budget-period",
        "month",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 requests/min") && out.contains("1000 tokens/month"),
        "{out}"
    );
    let (ok, _, err) = calos(&[&user.username, "--budget-tokens", "5"]);
    assert!(!ok, "a budget needs its period: {err}");
    let (ok, _, err) = calos(&["nobody-at-all"]);
    assert!(!ok && err.contains("no account"), "{err}");

    // The server applies it (no cache: the next request reads it).
    let admin = app.admin().await;
    let id = user_id(&app, &user.token).await;
    let read: LimitsResponse = ok_json(
        app.get(&format!("/api/admin/users/{id}/limits"), Some(&admin.token))
            .await,
    )
    .await;
    assert_eq!(read.limits.rpm, Some(1));
    let mine = usage(&app, &user.token, "").await;
    assert_eq!(mine.budget.map(|b| b.remaining), Some(1000));

    let (ok, out, _) = calos(&[&user.username, "--clear"]);
    assert!(ok && out.contains("no limits"), "{out}");
}

/// On PostgreSQL a key revoked, or a limit set, by another process (the CLI
/// here; another replica alike) holds at once: the change is announced and
/// the server forgets its copy. The cache lives 300 s here, so only the
/// announcement can explain a change seen within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_revocation_or_limit_made_elsewhere_holds_at_once() {
    const BIN: &str = env!("CARGO_BIN_EXE_calos");
    let mock = mock(0, 0.0, 3).await;
    let (app, user) = app_with(Backend::Postgres, &mock, &["--session-cache-ttl", "300"]).await;
    let key = make_key(&app, &user.token, &json!({ "name": "leaked" })).await;
    assert_eq!(
        fresh_chat(
            &app,
            "/api/llm/complete",
            &key.key,
            &ask("mock-llama", false)
        )
        .await
        .status(),
        200
    );
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", app.database_url.as_deref().unwrap())
            .env("CALOS_DATA_DIR", &app.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["keys", "revoke", &key.id]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = fresh_chat(
            &app,
            "/api/llm/complete",
            &key.key,
            &ask("mock-llama", false),
        )
        .await
        .status();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key still works: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cli(&["users", "limits", &user.username, "--rpm", "1"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = fresh_chat(
            &app,
            "/api/llm/complete",
            &user.token,
            &ask("mock-llama", false),
        )
        .await
        .status();
        if status == 429 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new limit is not applied: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
