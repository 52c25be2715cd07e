//! The session cookie: HttpOnly (scripts, and so XSS, cannot read it),
//! SameSite=Lax (not sent on cross-site POSTs), whole-site path, and `Secure`
//! when calos is served over HTTPS.

use crate::http::extract::SESSION_COOKIE;
use axum::http::{header, HeaderValue};
use std::time::Duration;

pub fn session(token: &str, ttl: Duration, secure: bool) -> (header::HeaderName, HeaderValue) {
    build(token, ttl.as_secs(), secure)
}

/// The OAuth flow binding: only sent back to the OAuth routes, gone after the
/// flow's lifetime. Lax, because the callback is a top-level GET from the provider.
pub fn oauth_flow(binding: &str, secure: bool) -> (header::HeaderName, HeaderValue) {
    use crate::auth::oauth::{FLOW_COOKIE, FLOW_TTL};
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{FLOW_COOKIE}={binding}; Path=/api/auth/oauth; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        FLOW_TTL.as_secs()
    );
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("calos_oauth=")),
    )
}

pub fn oauth_flow_cleared() -> (header::HeaderName, HeaderValue) {
    (
        header::SET_COOKIE,
        HeaderValue::from_static(
            "calos_oauth=; Path=/api/auth/oauth; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    )
}

pub fn cleared(secure: bool) -> (header::HeaderName, HeaderValue) {
    build("", 0, secure)
}

fn build(value: &str, max_age: u64, secure: bool) -> (header::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    // JWTs are base64url and dots, always a valid header value.
    let value = HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| HeaderValue::from_static("calos_session=; Max-Age=0"));
    (header::SET_COOKIE, value)
}
