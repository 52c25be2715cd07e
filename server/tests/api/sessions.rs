//! Tokens and sessions: bearer and cookie carriers, logout, tampering.

use crate::helpers::on_both_databases;
use crate::helpers::{error_code, set_cookie_pair, unique};
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

on_both_databases! {
    async fn me_without_a_token_is_401_in_the_api_error_shape(app) {
        let response = app.get("/api/auth/me", None).await;
        assert_eq!(error_code(response).await, (401, "unauthorized".into()));
    }

    async fn the_session_cookie_authenticates_and_is_httponly_samesite_lax(app) {
        let response = app.register(&unique("cookie"), "cookie-password").await;
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(set_cookie.starts_with("calos_session=ey"), "{set_cookie}");
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/"));
        let cookie = set_cookie_pair(&response);
        let me = app.get_with_cookie("/api/auth/me", cookie.trim_start_matches("calos_session=")).await;
        assert_eq!(me.status(), 200);
        // A cookie-authenticated write from another site's page is refused.
        let cross = app.client.post(app.url("/api/auth/logout")).header("cookie", &cookie)
            .header("origin", "http://evil.example.com").send().await.unwrap();
        assert_eq!(cross.status(), 403);
    }

    async fn logout_ends_the_session_for_every_carrier(app) {
        let token = app.new_user("leaver").await.token;
        assert_eq!(app.me(&token).await.status(), 200);
        let out = app.post("/api/auth/logout", Some(&token)).await;
        assert_eq!(out.status(), 200);
        assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(error_code(app.me(&token).await).await, (401, "invalid_token".into()));
        assert_eq!(app.get_with_cookie("/api/auth/me", &token).await.status(), 401);
    }

    async fn closing_an_account_needs_its_password_and_ends_everything(app) {
        let closer = app.new_user("closer").await;
        let token = &closer.token;
        let delete = |body: Value| app.request(reqwest::Method::DELETE, "/api/auth/me", Some(token)).json(&body).send();
        assert_eq!(error_code(delete(json!({"password": "not-the-password"})).await.unwrap()).await, (401, "invalid_credentials".into()));
        assert_eq!(delete(json!({})).await.unwrap().status(), 400);
        assert_eq!(delete(json!({"password": "closer-password", "admin": true})).await.unwrap().status(), 400);
        let anonymous = app.client.delete(app.url("/api/auth/me")).json(&json!({"password": "closer-password"})).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        // A cookie-carried delete from another site's page is refused.
        let cross = app.client.delete(app.url("/api/auth/me")).header("cookie", format!("calos_session={token}"))
            .header("origin", "http://evil.example.com").json(&json!({"password": "closer-password"})).send().await.unwrap();
        assert_eq!(cross.status(), 403);
        assert_eq!(app.me(token).await.status(), 200, "still there after the refusals");
        let done = delete(json!({"password": "closer-password"})).await.unwrap();
        assert_eq!(done.status(), 200);
        assert_eq!(done.json::<Value>().await.unwrap()["success"], true);
        assert_eq!(app.me(token).await.status(), 401);
        let login = app.login(&closer.username, &closer.password).await;
        assert_eq!(login.status(), 401);
    }

    async fn tampered_tokens_are_rejected(app) {
        let token = app.new_user("target").await.token;
        let parts: Vec<&str> = token.split('.').collect();
        let claims = claims_of(&token);
        // alg:none with the same claims and no signature.
        let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        // A flipped signature.
        let mut sig = parts[2].as_bytes().to_vec();
        sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap());
        // Correctly signed with the server's own key, but expired / for another audience / another algorithm.
        let key = EncodingKey::from_secret(&app.jwt_secret()).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let mut expired = claims.clone();
        expired["exp"] = json!(now - 120);
        expired["iat"] = json!(now - 3600);
        expired["nbf"] = json!(now - 3600);
        let mut wrong_aud = claims.clone();
        wrong_aud["aud"] = json!("another-service");
        let mut no_sub = claims.clone();
        no_sub.as_object_mut().unwrap().remove("sub");
        let sign = |c: &Value, alg| encode(&Header::new(alg), c, &key).unwrap();
        let hs256 = jsonwebtoken::Algorithm::HS256;
        let forged = [
            ("alg none", none),
            ("flipped signature", flipped),
            ("expired", sign(&expired, hs256)),
            ("wrong audience", sign(&wrong_aud, hs256)),
            ("missing sub", sign(&no_sub, hs256)),
            ("HS512", sign(&claims, jsonwebtoken::Algorithm::HS512)),
            ("garbage", "not-a-jwt".to_string()),
        ];
        for (what, bad) in forged {
            assert_eq!(app.me(&bad).await.status(), 401, "{what}");
        }
        // Control: the original, and a re-signed copy of its claims, still work.
        assert_eq!(app.me(&token).await.status(), 200);
        assert_eq!(app.me(&sign(&claims, hs256)).await.status(), 200);
    }

    async fn a_malformed_authorization_header_is_401_even_with_a_good_cookie(app) {
        let carrier = app.new_user("carrier").await;
        let token = carrier.token.clone();
        let response = app.request(reqwest::Method::GET, "/api/auth/me", None)
            .header("authorization", format!("Token {token}"))
            .header("cookie", format!("calos_session={token}"))
            .send().await.unwrap();
        assert_eq!(response.status(), 401);
        // Tokens in the query string are not credentials.
        let query = app.get(&format!("/api/auth/me?token={token}"), None).await;
        assert_eq!(query.status(), 401);
        // Nor is a session token sent as `x-api-key` (that header names an
        // API key, never a session).
        let api_key = app.request(reqwest::Method::GET, "/api/auth/me", None)
            .header("x-api-key", &token)
            .send().await.unwrap();
        assert_eq!(api_key.status(), 401);
        // A good header and another account's cookie: the header decides.
        let other = app.new_user("carrier-cookie").await.token;
        let both = app.request(reqwest::Method::GET, "/api/auth/me", Some(&token))
            .header("cookie", format!("calos_session={other}"))
            .send().await.unwrap();
        assert_eq!(both.status(), 200);
        let body: serde_json::Value = both.json().await.unwrap();
        assert_eq!(body["user"]["username"], carrier.username.as_str());
    }
}

/// Moves the account's session epoch on with SQL of its own, behind calos's
/// back, as another replica or an operator would.
async fn end_sessions_behind_calos_back(app: &crate::helpers::TestApp, username: &str) {
    let target = server::db::DbTarget::resolve(app.database_url.as_deref(), &app.data_dir);
    let db = server::db::Db::connect(&target, 1).await.unwrap();
    server::with_pool!(&db, pool => sqlx::query("update users set session_epoch = session_epoch + 1 where username = $1")
        .bind(username).execute(pool).await.map(|_| ()))
    .unwrap();
    db.close().await;
}

on_both_databases! {
    /// Checked tokens' accounts are remembered (no database read per request),
    /// yet a change made behind calos's back is seen at once, long before the
    /// cache's time to live: on PostgreSQL its trigger announces it, on SQLite
    /// the write moved the database's files.
    async fn an_account_changed_behind_calos_back_is_seen(backend: Backend) {
        let app = crate::helpers::TestApp::spawn_with(backend, &["--session-cache-ttl", "60s"]).await;
        let user = app.new_user("elsewhere").await;
        assert_eq!(app.me(&user.token).await.status(), 200);
        assert_eq!(app.me(&user.token).await.status(), 200, "served again, now from memory");
        end_sessions_behind_calos_back(&app, &user.username).await;
        let changed = std::time::Instant::now();
        // PostgreSQL's notification travels on its own connection: allow it a moment.
        let deadline = changed + std::time::Duration::from_secs(3);
        loop {
            let status = app.me(&user.token).await.status();
            if status == 401 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the change was not seen in 3 s ({status})");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
