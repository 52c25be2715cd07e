//! Bad input never gets a 500, a hang or a non-JSON error.

use crate::helpers::{error_code, unique, Backend, TestApp};
use futures::stream;
use serde_json::json;

#[tokio::test]
async fn malformed_json_wrong_types_and_missing_fields_are_400s() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let cases: [(&str, &str); 5] = [
        (r#"{"username": "x", "password": }"#, "invalid_json"),
        (
            r#"{"username": 42, "password": "password-1"}"#,
            "invalid_field",
        ),
        (r#"{"password": "password-1"}"#, "invalid_field"),
        ("", "invalid_json"),
        (r#"["not", "an", "object"]"#, "invalid_json"),
    ];
    for (body, code) in cases {
        let response = app
            .post_raw("/api/auth/register", "application/json", body)
            .await;
        assert_eq!(
            error_code(response).await,
            (400, code.to_string()),
            "{body}"
        );
    }
    let missing = app
        .post_raw(
            "/api/auth/register",
            "application/json",
            r#"{"password":"password-1"}"#,
        )
        .await;
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("username"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_fields_that_could_steer_the_server_are_rejected() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for extra in [
        json!({"api_base": "http://attacker.example.com"}),
        json!({"options": {"base_url": "http://x"}}),
    ] {
        let mut body = json!({"username": unique("u"), "password": "password-1"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = app.post_json("/api/auth/register", &body).await;
        assert_eq!(error_code(response).await.0, 400);
    }
}

#[tokio::test]
async fn json_labelled_text_plain_like_apache_bench_sends_is_accepted_not_415() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = json!({"username": unique("ab"), "password": "password-1"}).to_string();
    assert_eq!(
        app.post_raw("/api/auth/register", "text/plain", body.clone())
            .await
            .status(),
        201
    );
    let no_type = app
        .client
        .post(app.url("/api/auth/login"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 200);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_with_or_without_a_length() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let big = format!(
        r#"{{"username":"x","password":"{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let sized = app
        .post_raw("/api/auth/register", "application/json", big.clone())
        .await;
    assert_eq!(error_code(sized).await, (413, "payload_too_large".into()));
    // Chunked: no Content-Length, so only the streaming limit can catch it.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let chunked = app
        .post_raw(
            "/api/auth/login",
            "application/json",
            reqwest::Body::wrap_stream(stream::iter(chunks)),
        )
        .await;
    assert_eq!(error_code(chunked).await, (413, "payload_too_large".into()));
}

#[tokio::test]
async fn unknown_api_paths_and_methods_get_json_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let missing = app.client.get(app.url("/api/nope")).send().await.unwrap();
    assert_eq!(error_code(missing).await, (404, "not_found".into()));
    let wrong_method = app
        .client
        .get(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong_method).await,
        (405, "method_not_allowed".into())
    );
    // Path tricks do not reach a protected handler without credentials.
    for path in [
        "/API/auth/me",
        "//api/auth/me",
        "/api/auth/../auth/me",
        "/api/auth/me/",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert!(
            matches!(response.status().as_u16(), 401 | 404),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn authenticated_answers_are_never_cached() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token_for(&unique("cache"), "password-1").await;
    let me = app.me(&token).await;
    assert_eq!(me.headers()["cache-control"], "private, no-store");
}

#[tokio::test]
async fn health_reports_the_database_on_both_listeners() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for base in [app.addr, app.dashboard_addr] {
        let response = app
            .client
            .get(format!("http://{base}/api/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["components"]["database"]["status"], "ok");
        assert!(body["components"]["database"]["latencyMs"]
            .as_f64()
            .is_some());
        assert!(body["uptimeSeconds"].as_u64().is_some() && body["version"].is_string());
    }
}

#[tokio::test]
async fn health_degrades_to_503_when_postgres_stops_answering_and_recovers_by_itself() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let name = app.pg.as_ref().unwrap().name.clone();
    let health = || async { app.client.get(app.url("/api/health")).send().await.unwrap() };
    assert_eq!(health().await.status(), 200);

    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&crate::helpers::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("alter database {name} allow_connections false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    let down = health().await;
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["components"]["database"]["status"], "down");
    // Requests that need the database fail cleanly meanwhile.
    let login = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "someone", "password": "password-1"}),
        )
        .await;
    assert_eq!(login.status(), 503);
    assert!(login.headers().contains_key("retry-after"));

    sqlx::query(&format!("alter database {name} allow_connections true"))
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(health().await.status(), 200);
}
