//! API keys: made, listed (never with the secret), used for chat (bearer,
//! `x-api-key`, the OpenAI model list) and revoked, on both databases. A key
//! limited to some models refuses others with 403, an expired key is 401, a
//! key cannot manage accounts or keys, and one account cannot reach
//! another's keys.

use crate::helpers::*;
use app::wire::{CreatedKeyResponse, KeysResponse, ModelList};
use serde_json::{json, Value};

async fn create_key(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/api/keys", Some(token))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn key(app: &TestApp, token: &str, body: &Value) -> CreatedKeyResponse {
    let made = create_key(app, token, body).await;
    assert_eq!(made.status(), 201);
    made.json().await.unwrap()
}

async fn list(app: &TestApp, token: &str) -> (KeysResponse, String) {
    let response = app.get("/api/keys", Some(token)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

async fn revoke(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/keys/{id}"),
        Some(token),
    )
    .send()
    .await
    .unwrap()
}

/// A chat through `/v1` with `x-api-key` instead of a bearer token.
async fn chat_with_x_api_key(app: &TestApp, secret: &str, model: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .header("x-api-key", secret)
        .json(&as_json(&ask_openai(model, false)))
        .send()
        .await
        .unwrap()
}

on_both_databases! {
    async fn a_key_is_made_listed_used_and_revoked(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let made = key(&app, &user.token, &json!({ "name": "ci runner" })).await;
        assert!(made.key.starts_with("calos_sk_"));
        assert_eq!(made.key.len(), "calos_sk_".len() + 40);
        assert!(made.key.starts_with(&made.prefix));
        assert_eq!(made.models, None);
        assert_eq!(made.expires_at, None);

        let (listed, text) = list(&app, &user.token).await;
        assert_eq!(listed.keys.len(), 1);
        assert_eq!(listed.keys[0].id, made.id);
        assert_eq!(listed.keys[0].last_used_at, None);
        assert!(!text.contains(&made.key), "the list never shows a secret");

        // It chats wherever a bearer token does, and as x-api-key.
        let reply = app.post_chat("/v1/chat/completions", &made.key, &ask_openai("mock-gpt", false)).await;
        assert_eq!(reply.status(), 200);
        let reply = app.post_chat("/api/llm/complete", &made.key, &ask("mock-llama", false)).await;
        assert_eq!(reply.status(), 200);
        assert_eq!(chat_with_x_api_key(&app, &made.key, "mock-llama").await.status(), 200);
        let models: ModelList = app.get_as("/v1/models", &made.key).await;
        assert!(models.data.iter().any(|m| m.id == "mock-llama"));
        // Its first use is recorded (in the background).
        let mut used = None;
        for _ in 0..50 {
            used = list(&app, &user.token).await.0.keys[0].last_used_at.clone();
            if used.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(used.is_some(), "last use recorded");

        // It cannot manage the account or make keys.
        for (status, code) in [
            error_code(app.me(&made.key).await).await,
            error_code(create_key(&app, &made.key, &json!({ "name": "more" })).await).await,
            error_code(app.get("/api/keys", Some(&made.key)).await).await,
        ] {
            assert_eq!((status, code.as_str()), (401, "session_required"));
        }

        // Revoked: it stops working at once.
        assert_eq!(revoke(&app, &user.token, &made.id).await.status(), 200);
        let refused = app.post_chat("/v1/chat/completions", &made.key, &ask_openai("mock-gpt", false)).await;
        assert_eq!(error_code(refused).await, (401, "invalid_api_key".into()));
        assert_eq!(revoke(&app, &user.token, &made.id).await.status(), 404);
        assert!(list(&app, &user.token).await.0.keys.is_empty());
    }

    async fn a_key_limited_to_some_models_may_use_only_those(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let made = key(&app, &user.token, &json!({ "name": "llama only", "models": ["mock-ll*"] })).await;
        assert_eq!(made.models.as_deref(), Some(&["mock-ll*".to_string()][..]));
        assert_eq!(app.post_chat("/api/llm/complete", &made.key, &ask("mock-llama", false)).await.status(), 200);
        for refused in [
            app.post_chat("/api/llm/complete", &made.key, &ask("mock-gpt", false)).await,
            app.post_chat("/v1/chat/completions", &made.key, &ask_openai("mock-gpt", true)).await,
        ] {
            assert_eq!(error_code(refused).await, (403, "model_not_allowed".into()));
        }
        let models: ModelList = app.get_as("/v1/models", &made.key).await;
        let ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
        assert!(ids.contains(&"mock-llama"), "{ids:?}");
        assert!(!ids.contains(&"mock-gpt"), "the list shows only what the key may use: {ids:?}");
        // The account itself is not limited.
        assert_eq!(app.post_chat("/api/llm/complete", &user.token, &ask("mock-gpt", false)).await.status(), 200);
    }

    async fn expired_unknown_and_other_peoples_keys_get_nowhere(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, owner) = app_with(backend, &mock, &[]).await;
        let made = key(&app, &owner.token, &json!({ "name": "short", "expiresAt": "2099-01-01T00:00:00Z" })).await;
        assert_eq!(made.expires_at.as_deref(), Some("2099-01-01T00:00:00Z"));

        // Another account can neither see nor revoke it.
        let other = app.new_user("other").await;
        assert!(list(&app, &other.token).await.0.keys.is_empty());
        assert_eq!(error_code(revoke(&app, &other.token, &made.id).await).await, (404, "not_found".into()));

        // Expired: the database says so (a key cannot be made already expired).
        let target = server::db::DbTarget::resolve(app.database_url.as_deref(), &app.data_dir);
        let db = server::db::Db::connect(&target, 1).await.unwrap();
        server::with_pool!(&db, pool => sqlx::query("update api_keys set expires_at = $1 where key_id = $2")
            .bind(chrono::Utc::now().timestamp() - 1).bind(&made.id).execute(pool).await.map(|_| ()))
        .unwrap();
        // Nothing but the hash is stored.
        let stored: Vec<String> = server::with_pool!(&db, pool => sqlx::query_scalar::<_, String>(
            "select name || prefix || secret_hash || coalesce(models, '') from api_keys").fetch_all(pool).await)
        .unwrap();
        assert!(stored.iter().all(|row| !row.contains(&made.key[12..])), "the secret is not in the database");
        db.close().await;
        // (Never used before, so the server has no remembered copy of it.)
        let expired = app.post_chat("/v1/chat/completions", &made.key, &ask_openai("mock-gpt", false)).await;
        assert_eq!(error_code(expired).await, (401, "api_key_expired".into()));

        let made_up = format!("calos_sk_{}", "x".repeat(40));
        assert_eq!(error_code(app.post_chat("/api/llm/complete", &made_up, &ask("mock-llama", false)).await).await, (401, "invalid_api_key".into()));
        assert_eq!(error_code(chat_with_x_api_key(&app, &made_up, "mock-llama").await).await, (401, "invalid_api_key".into()));

        for bad in [
            json!({ "name": "" }),
            json!({ "name": "n".repeat(101) }),
            json!({ "name": "x", "models": [] }),
            json!({ "name": "x", "models": ["has space"] }),
            json!({ "name": "x", "expiresAt": "2001-01-01T00:00:00Z" }),
            json!({ "name": "x", "expiresAt": "tomorrow" }),
            json!({ "name": "x", "rpm": 0 }),
            json!({ "name": "x", "budgetTokens": 5 }),
            json!({ "name": "x", "budgetTokens": 5, "budgetPeriod": "week" }),
            json!({ "name": "x", "scope": "admin" }),
        ] {
            let (status, _) = error_code(create_key(&app, &owner.token, &bad).await).await;
            assert_eq!(status, 400, "{bad}");
        }
    }

    async fn an_account_has_at_most_a_hundred_keys(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let user = app.new_user("keyring").await;
        for n in 0..100 {
            assert_eq!(create_key(&app, &user.token, &json!({ "name": format!("k{n}") })).await.status(), 201);
        }
        let (status, code) = error_code(create_key(&app, &user.token, &json!({ "name": "one more" })).await).await;
        assert_eq!((status, code.as_str()), (409, "too_many_keys"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calos_keys_makes_lists_and_revokes_keys_from_the_command_line() {
    const BIN: &str = env!("CARGO_BIN_EXE_calos");
    let mock = mock(0, 0.0, 3).await;
    let (app, user) = app_with(Backend::Sqlite, &mock, &["--session-cache-ttl", "0"]).await;
    let data_dir = app.data_dir.display().to_string();
    let calos = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("keys")
            .args(["--data-dir", &data_dir])
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let made = calos(&[
        "create",
        "--user",
        &user.username,
        "--name",
        "service",
        "--models",
        "mock-gpt",
        "--expires",
        "30d",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let secret = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("calos_sk_"));
    assert_eq!(
        app.post_chat(
            "/v1/chat/completions",
            &secret,
            &ask_openai("mock-gpt", false)
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.post_chat(
            "/v1/chat/completions",
            &secret,
            &ask_openai("mock-llama", false)
        )
        .await
        .status(),
        403
    );

    let listed = String::from_utf8(calos(&["list", "--user", &user.username]).stdout).unwrap();
    assert!(
        listed.contains("service") && listed.contains(&secret[..12]),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "no secret in the list");
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(calos(&["revoke", &id]).status.success());
    let refused = app
        .post_chat(
            "/v1/chat/completions",
            &secret,
            &ask_openai("mock-gpt", false),
        )
        .await;
    assert_eq!(error_code(refused).await, (401, "invalid_api_key".into()));
    assert!(
        !calos(&["revoke", &id]).status.success(),
        "revoking twice says there is no such key"
    );
}
