//! The cookies calos sets, built with axum-extra's `Cookie` (which encodes
//! names, values and attributes correctly). The session cookie: HttpOnly
//! (scripts, and so XSS, cannot read it), SameSite=Lax (not sent on cross-site
//! POSTs), whole-site path, and `Secure` when calos is served over HTTPS. Over
//! HTTPS it is also named with the `__Host-` prefix, which browsers accept only
//! from a secure origin, for the whole site and without a `Domain`: a sibling
//! subdomain or a plain-HTTP man in the middle cannot set or overwrite it.

use crate::http::extract::{SECURE_SESSION_COOKIE, SESSION_COOKIE};
use axum::http::{header, HeaderValue};
use axum_extra::extract::cookie::{Cookie, SameSite};
use std::time::Duration;

type SetCookie = (header::HeaderName, HeaderValue);

pub fn session(token: &str, ttl: Duration, secure: bool) -> SetCookie {
    set(cookie(session_name(secure), token, "/", ttl, secure))
}

fn session_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The OAuth flow binding: only sent back to the OAuth routes, gone after the
/// flow's lifetime. Lax, because the callback is a top-level GET from the provider.
pub fn oauth_flow(binding: &str, secure: bool) -> SetCookie {
    use crate::auth::oauth::{FLOW_COOKIE, FLOW_TTL};
    set(cookie(FLOW_COOKIE, binding, OAUTH_PATH, FLOW_TTL, secure))
}

pub fn oauth_flow_cleared() -> SetCookie {
    set(cookie(
        crate::auth::oauth::FLOW_COOKIE,
        "",
        OAUTH_PATH,
        Duration::ZERO,
        false,
    ))
}

pub fn cleared(secure: bool) -> SetCookie {
    set(cookie(
        session_name(secure),
        "",
        "/",
        Duration::ZERO,
        secure,
    ))
}

const OAUTH_PATH: &str = "/api/auth/oauth";

fn cookie(
    name: &'static str,
    value: &str,
    path: &'static str,
    max_age: Duration,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value.to_string()))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .secure(secure)
        .build()
}

fn set(cookie: Cookie<'static>) -> SetCookie {
    // Tokens and bindings are base64url and dots, so the encoded cookie is
    // always a valid header value; a broken one clears the cookie instead.
    let value = HeaderValue::from_str(&cookie.encoded().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("calos_session=; Max-Age=0"));
    (header::SET_COOKIE, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_lax_and_secure_when_asked() {
        let (_, value) = session("a.b.c", Duration::from_secs(3600), true);
        let value = value.to_str().unwrap_or_default();
        assert!(value.starts_with("__Host-calos_session=a.b.c"), "{value}");
        assert!(!value.contains("Domain"), "{value}");
        let (_, plain) = session("a.b.c", Duration::from_secs(3600), false);
        assert!(plain
            .to_str()
            .unwrap_or_default()
            .starts_with("calos_session=a.b.c"));
        for part in [
            "calos_session=a.b.c",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=3600",
            "Secure",
        ] {
            assert!(value.contains(part), "{part} missing from {value}");
        }
        let (_, cleared) = cleared(false);
        let cleared = cleared.to_str().unwrap_or_default();
        assert!(
            cleared.contains("Max-Age=0") && !cleared.contains("Secure"),
            "{cleared}"
        );
    }
}
