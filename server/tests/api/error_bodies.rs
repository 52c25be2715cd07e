//! The error bodies clients see, pinned as snapshots (`snapshots/*.snap`), on
//! both databases against the same files.
//!
//! A changed body fails the test. Locally insta writes the new body beside the
//! old as `*.snap.new` (review with `cargo insta review`, or rename it). Under
//! `CI=true` insta writes nothing and the test fails on any new or mismatched
//! snapshot; `INSTA_UPDATE=always|unseen|force` or `INSTA_FORCE_PASS` would make
//! a mismatch pass by rewriting the file, so `snapshots_can_fail` refuses them
//! in CI.

use crate::helpers::{as_json, ask, on_both_databases, TestApp};
use crate::requests::over_one_mebibyte;
use reqwest::Response;
use serde_json::{json, Value};

/// Status, the headers a client acts on, and the body.
async fn seen(response: Response) -> Value {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    let body: Value = response.json().await.expect("a JSON error body");
    let mut seen = json!({ "status": status, "contentType": content_type, "body": body });
    if let Some(wait) = retry_after {
        assert!(
            wait.parse::<u64>().is_ok_and(|s| s >= 1),
            "Retry-After: {wait}"
        );
        seen["retryAfter"] = json!("[seconds]");
    }
    seen
}

/// Numbers in a message (a wait in seconds) become `N`.
fn without_numbers(value: insta::internals::Content, _: insta::internals::ContentPath) -> String {
    let text = value.as_str().unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

/// In CI a snapshot that differs must fail, never be rewritten in place.
fn snapshots_can_fail() {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if !ci {
        return;
    }
    let update = std::env::var("INSTA_UPDATE").unwrap_or_default();
    assert!(
        matches!(update.as_str(), "" | "auto" | "no" | "new"),
        "INSTA_UPDATE={update} would rewrite snapshots in CI instead of failing"
    );
    let forced = std::env::var("INSTA_FORCE_PASS").unwrap_or_default();
    assert!(
        matches!(forced.as_str(), "" | "0"),
        "INSTA_FORCE_PASS would let a changed error body pass in CI"
    );
}

async fn signed_up(app: &TestApp) -> String {
    app.token_for("snapshot-user", "snapshot-password").await
}

on_both_databases! {
    async fn error_bodies_are_pinned(app) {
        snapshots_can_fail();
        let malformed = app.post_raw("/api/auth/register", "application/json", r#"{"username": "x", "password": }"#).await;
        insta::assert_json_snapshot!("400_malformed_json", seen(malformed).await);

        let steer = json!({"username": "steer-user", "password": "password-1", "api_base": "http://attacker.example.com"});
        let unknown = app.post_json("/api/auth/register", &steer).await;
        insta::assert_json_snapshot!("400_unknown_field", seen(unknown).await);

        let token = signed_up(&app).await;
        let bad_model = app.post_chat("/api/llm/complete", &token, &ask("no model!", false)).await;
        insta::assert_json_snapshot!("400_invalid_model", seen(bad_model).await);

        let anonymous = app.post_json("/api/llm/complete", &as_json(&ask("sim", false))).await;
        insta::assert_json_snapshot!("401_chat_without_a_token", seen(anonymous).await);

        insta::assert_json_snapshot!("404_unknown_api_path", seen(app.get("/api/nope", None).await).await);
        insta::assert_json_snapshot!("405_wrong_method", seen(app.get("/api/auth/login", None).await).await);

        let huge = app.post_raw("/api/auth/register", "application/json", over_one_mebibyte()).await;
        insta::assert_json_snapshot!("413_payload_too_large", seen(huge).await);

        let taken = app.register("snapshot-user", "another-password").await;
        insta::assert_json_snapshot!("409_username_taken", seen(taken).await);

        for _ in 0..6 {
            app.login("snapshot-user", "guess-guess").await;
        }
        let throttled = app.login("snapshot-user", "snapshot-password").await;
        insta::assert_json_snapshot!("429_too_many_attempts", seen(throttled).await, {
            ".body.error.message" => insta::dynamic_redaction(without_numbers),
        });
    }
}
