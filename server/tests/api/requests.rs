//! Bad input never gets a 500, a hang or a non-JSON error; on both databases.

use crate::helpers::{error_code, on_both_databases, unique, Backend, TestApp};
use app::wire::ErrorResponse;
use futures::stream;
use serde_json::{json, Value};

/// A body one byte over the 1 MiB limit, with or without a length.
pub fn over_one_mebibyte() -> String {
    format!(
        r#"{{"username":"x","password":"{}"}}"#,
        "a".repeat(1024 * 1024)
    )
}

on_both_databases! {
    async fn malformed_json_wrong_types_and_missing_fields_are_400s(app) {
        let cases: [(&str, &str); 5] = [
            (r#"{"username": "x", "password": }"#, "invalid_json"),
            (r#"{"username": 42, "password": "password-1"}"#, "invalid_field"),
            (r#"{"password": "password-1"}"#, "invalid_field"),
            ("", "invalid_json"),
            (r#"["not", "an", "object"]"#, "invalid_json"),
        ];
        for (body, code) in cases {
            let response = app.post_raw("/api/auth/register", "application/json", body).await;
            assert_eq!(error_code(response).await, (400, code.to_string()), "{body}");
        }
        let missing = app
            .post_raw("/api/auth/register", "application/json", r#"{"password":"password-1"}"#)
            .await;
        let body: ErrorResponse = missing.json().await.unwrap();
        assert!(body.error.message.contains("username"), "{body:?}");
    }

    async fn unknown_fields_that_could_steer_the_server_are_rejected(app) {
        for extra in [
            json!({"api_base": "http://attacker.example.com"}),
            json!({"options": {"base_url": "http://x"}}),
        ] {
            let mut body = json!({"username": unique("u"), "password": "password-1"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let response = app.post_json("/api/auth/register", &body).await;
            assert_eq!(error_code(response).await.0, 400);
        }
    }

    async fn json_labelled_as_a_form_needs_a_bearer_token_and_no_label_is_fine(app) {
        // A cross-site HTML form can send these labels: without a bearer token
        // they could sign a visitor into someone else's account (login CSRF).
        let body = json!({"username": unique("ab"), "password": "password-1"}).to_string();
        for label in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "TEXT/PLAIN; charset=utf-8"] {
            let refused = app.post_raw("/api/auth/register", label, body.clone()).await;
            assert_eq!(error_code(refused).await, (415, "unsupported_media_type".into()), "{label}");
        }
        let registered = app.post_raw("/api/auth/register", "application/json", body.clone()).await;
        assert_eq!(registered.status(), 201);
        let no_type = app.client.post(app.url("/api/auth/login")).body(body).send().await.unwrap();
        assert_eq!(no_type.status(), 200);
        // With a bearer token, ab's text/plain is served (see chat::json_sent_as_text_plain_like_ab_is_served).
        let token = app.new_user("ab").await.token;
        let renamed = app
            .client
            .patch(app.url("/api/auth/me"))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body(json!({"username": unique("ab2")}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(renamed.status(), 200);
    }

    async fn writes_a_browser_says_come_from_another_site_are_refused(app) {
        let body = json!({"username": unique("csrf"), "password": "password-1"});
        let cross = |origin: Option<&str>, fetch_site: Option<&str>, url: String| {
            let mut request = app.client.post(url).json(&body);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(site) = fetch_site {
                request = request.header("sec-fetch-site", site);
            }
            request
        };
        for (origin, site) in [
            (Some("http://evil.example.com"), None),
            (Some("null"), None),
            (None, Some("cross-site")),
            (None, Some("same-site")),
        ] {
            for path in ["/api/auth/register", "/api/auth/login", "/login", "/register", "/logout"] {
                let refused = cross(origin, site, app.url(path)).send().await.unwrap();
                assert_eq!(refused.status(), 403, "{path} {origin:?} {site:?}");
            }
        }
        // Our own pages, and clients that are not browsers, go through.
        let own = format!("http://{}", app.addr);
        let ours = cross(Some(&own), Some("same-origin"), app.url("/api/auth/register")).send().await.unwrap();
        assert_eq!(ours.status(), 201);
        // A bearer token is no ambient credential: nothing to forge.
        let token = app.new_user("bearer").await.token;
        let with_bearer = app
            .client
            .post(app.url("/api/auth/logout"))
            .bearer_auth(&token)
            .header("origin", "http://evil.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(with_bearer.status(), 200);
    }

    async fn every_answer_carries_the_safety_headers(app) {
        for path in ["/login", "/api/health", "/api/no-such-route"] {
            let response = app.get(path, None).await;
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{path}");
            assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'self'"), "{path}");
            assert!(headers.contains_key("referrer-policy"), "{path}");
        }
    }

    async fn bodies_over_one_mebibyte_are_413_with_or_without_a_length(app) {
        let big = over_one_mebibyte();
        let sized = app.post_raw("/api/auth/register", "application/json", big.clone()).await;
        assert_eq!(error_code(sized).await, (413, "payload_too_large".into()));
        // Chunked: no Content-Length, so only the streaming limit can catch it.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            big.into_bytes().chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        let chunked = app
            .post_raw("/api/auth/login", "application/json", reqwest::Body::wrap_stream(stream::iter(chunks)))
            .await;
        assert_eq!(error_code(chunked).await, (413, "payload_too_large".into()));
    }

    async fn unknown_api_paths_and_methods_get_json_errors(app) {
        assert_eq!(error_code(app.get("/api/nope", None).await).await, (404, "not_found".into()));
        let wrong_method = app.get("/api/auth/login", None).await;
        assert_eq!(error_code(wrong_method).await, (405, "method_not_allowed".into()));
        // Path tricks do not reach a protected handler without credentials.
        for path in [
            "/API/auth/me", "//api/auth/me", "/api/auth/../auth/me", "/api/auth/me/",
            "/api/auth/%2e%2e/auth/me", "/api/%2e%2e/api/auth/me", "/api/auth/%2E%2E%2Fauth/me",
            "/api/llm/%2e%2e/auth/me", "/api/auth/me%00", "/api/auth/me;x=1",
        ] {
            let response = app.get(path, None).await;
            assert!(matches!(response.status().as_u16(), 401 | 404), "{path}: {}", response.status());
        }
    }

    async fn authenticated_answers_are_never_cached(app) {
        let user = app.new_user("cache").await;
        let me = app.me(&user.token).await;
        assert_eq!(me.headers()["cache-control"], "private, no-store");
    }

    async fn health_reports_the_database_on_both_listeners(app) {
        for url in [app.url("/api/health"), app.dashboard_url("/api/health")] {
            let response = app.get(&url, None).await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], "ok");
            assert_eq!(body["components"]["database"]["status"], "ok");
            assert!(body["components"]["database"]["latencyMs"].as_f64().is_some());
            assert!(body["uptimeSeconds"].as_u64().is_some() && body["version"].is_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_degrades_to_503_when_postgres_stops_answering_and_recovers_by_itself() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let name = app.pg.as_ref().unwrap().name.clone();
    let health = || app.get("/api/health", None);
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
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["components"]["database"]["status"], "down");
    // Requests that need the database fail cleanly meanwhile.
    let login = app.login("someone", "password-1").await;
    assert_eq!(login.status(), 503);
    assert!(login.headers().contains_key("retry-after"));

    sqlx::query(&format!("alter database {name} allow_connections true"))
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(health().await.status(), 200);
}

/// Behind an `https://` public URL the session cookie is `Secure` and carries
/// the `__Host-` prefix without being asked, and it signs its holder in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_public_url_makes_the_session_cookie_secure_and_host_only() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--public-url", "https://chat.example.com"],
    )
    .await;
    let registered = app.register(&unique("secure"), "password-123").await;
    assert_eq!(registered.status(), 201);
    let cookie = registered.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("__Host-calos_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let me = app
        .client
        .get(app.url("/api/auth/me"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

/// Every PostgreSQL connection carries a statement timeout (10 s unless the
/// URL sets its own), and a statement cancelled by it is a 503, not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_have_a_time_limit_and_one_that_overruns_is_a_503() {
    use server::db::{Db, DbTarget};
    let pg = crate::helpers::PgDatabase::create().await;
    let db = Db::connect(&DbTarget::Url(pg.url.clone()), 1)
        .await
        .unwrap();
    let shown: String = server::with_pool!(&db, pool => sqlx::query_scalar::<_, String>("show statement_timeout").fetch_one(pool).await)
        .unwrap();
    assert_eq!(shown, "10s");
    db.close().await;

    let short = format!("{}?options=-c%20statement_timeout%3D300", pg.url);
    let db = Db::connect(&DbTarget::Url(short), 1).await.unwrap();
    let slow = server::with_pool!(&db, pool => sqlx::query("select pg_sleep(3)").execute(pool).await.map(|_| ()));
    let error = server::http::error::ApiError::from(slow.unwrap_err());
    assert_eq!(error.status(), 503, "{error:?}");
    db.close().await;
}

/// SQLite's writer lock held (by another process, say) past the busy timeout:
/// a write is a 503 with `Retry-After`, never a 500, and the next one after
/// the lock goes succeeds. Reads carry on meanwhile (WAL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_is_a_503_and_recovers() {
    use server::db::{Db, DbTarget};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let reader = app.new_user("reader").await;
    let db = Db::connect(&DbTarget::resolve(None, &app.data_dir), 1)
        .await
        .unwrap();
    let Db::Sqlite(pool) = &db else {
        unreachable!("a SQLite target")
    };
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("begin immediate")
        .execute(&mut *holder)
        .await
        .unwrap();

    let name = unique("locked");
    let blocked = app.register(&name, "locked-password").await;
    assert_eq!(blocked.status(), 503);
    assert!(blocked.headers().contains_key("retry-after"));
    let body: ErrorResponse = blocked.json().await.unwrap();
    assert_eq!(body.error.code, "service_unavailable");
    assert!(
        !body.error.message.contains("locked"),
        "no internals: {}",
        body.error.message
    );
    let login = app
        .post_json(
            "/api/auth/login",
            &json!({ "username": reader.username, "password": reader.password }),
        )
        .await;
    assert_ne!(login.status().as_u16(), 500);

    sqlx::query("rollback").execute(&mut *holder).await.unwrap();
    drop(holder);
    db.close().await;
    assert_eq!(app.register(&name, "locked-password").await.status(), 201);
}

/// Every pooled PostgreSQL connection busy: the next request waits the
/// acquire timeout (2 s) and gets a 503, not a 500 and not a hang; once the
/// blockage clears, the held request completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_postgres_pool_is_a_503_and_the_held_request_completes() {
    use sqlx::Connection;
    let app = TestApp::spawn_with(Backend::Postgres, &["--db-max-connections", "1"]).await;
    let user = app.new_user("pooled").await;
    let mut locker = sqlx::PgConnection::connect(app.database_url.as_deref().unwrap())
        .await
        .unwrap();
    sqlx::query("begin").execute(&mut locker).await.unwrap();
    sqlx::query("lock table users in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();

    let credentials = json!({ "username": user.username, "password": user.password });
    let held = {
        let app_url = app.url("/api/auth/login");
        let credentials = credentials.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(app_url)
                .json(&credentials)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The first login now holds the only connection, waiting on the lock.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let starved = app.post_json("/api/auth/login", &credentials).await;
    assert_eq!(starved.status(), 503);
    assert!(starved.headers().contains_key("retry-after"));

    sqlx::query("rollback").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(
        app.post_json("/api/auth/login", &credentials)
            .await
            .status(),
        200
    );
}
