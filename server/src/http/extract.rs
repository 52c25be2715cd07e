//! Request authentication: one credential extractor for the whole API.
//!
//! A request authenticates with `Authorization: Bearer <jwt>` (scripts, SDKs) or
//! the `calos_session` cookie (the browser). The header wins when both are sent,
//! and a bad header is an error, never a silent fall back to the cookie or to
//! anonymous. Tokens in query strings or other headers are not looked at, so they
//! never become credentials (nor land in access logs as such). A cookie used for a
//! state-changing request must come from our own origin (CSRF defence in depth on
//! top of `SameSite=Lax`).

use crate::auth::AuthedUser;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use app::wire::UserView;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, Method};
use axum_extra::extract::cookie::CookieJar;

pub const SESSION_COOKIE: &str = "calos_session";
/// The session cookie's name over HTTPS (see `routes::cookies`).
pub const SECURE_SESSION_COOKIE: &str = "__Host-calos_session";

/// The authenticated user; rejects the request with 401 (or 403) otherwise.
#[derive(Debug, Clone)]
pub struct AuthUser(pub UserView);

pub enum Credential<'a> {
    Bearer(&'a str),
    Cookie(String),
}

impl Credential<'_> {
    /// The token, wherever it came from.
    pub fn token(&self) -> &str {
        match self {
            Credential::Bearer(token) => token,
            Credential::Cookie(token) => token,
        }
    }
}

/// Whether the request carries `Authorization: Bearer …`: a credential no other
/// site can make a browser send, unlike a cookie (the cross-site and
/// form-labelled-JSON checks let such requests through).
pub fn has_bearer(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).is_some_and(|v| {
        v.as_bytes()
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer "))
    })
}

/// Finds the request's credential. `Err` when the Authorization header is present
/// but is not a well-formed bearer token.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential<'_>>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        return match token {
            Some(token) => Ok(Some(Credential::Bearer(token))),
            None => Err(invalid_token()),
        };
    }
    Ok(session_cookie(headers).map(Credential::Cookie))
}

/// The session cookie's value, if the request carries one: the `__Host-`
/// one first (HTTPS), then the plain one (HTTP, or set before a switch to
/// HTTPS).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SECURE_SESSION_COOKIE).or_else(|| cookie(headers, SESSION_COOKIE))
}

/// A cookie's value, read with axum-extra's cookie jar (which parses every
/// `Cookie` header the way browsers send them); empty values count as absent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_token",
        message: "The Authorization header must be `Bearer <token>`.".into(),
    }
}

/// An API key where a session is needed: keys chat, they do not manage
/// accounts or keys (a leaked key must not be able to make more).
fn session_required() -> ApiError {
    ApiError::Unauthorized {
        code: "session_required",
        message: "API keys work for chat (/v1 and /api/llm/complete); this needs a session: sign in and use its token.".into(),
    }
}

pub fn authentication_required() -> ApiError {
    ApiError::Unauthorized {
        code: "unauthorized",
        message: "Authentication required.".into(),
    }
}

/// `Some(true)` when the request's `Origin` names the host it was sent to,
/// `Some(false)` when it names another, `None` without an `Origin`.
pub fn origin_matches_host(headers: &HeaderMap) -> Option<bool> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    Some(!host.is_empty() && origin_host.eq_ignore_ascii_case(host))
}

/// For cookie-authenticated writes: the browser's `Origin` (or `Sec-Fetch-Site`)
/// must say the request comes from a page of ours.
fn same_origin(parts: &Parts) -> bool {
    not_cross_site(&parts.method, &parts.headers)
}

/// Reads are always fine; a write is fine unless the browser says it comes
/// from another site: `Origin` naming another host, or without `Origin`,
/// `Sec-Fetch-Site` other than `same-origin`/`none`. Clients that send
/// neither (curl, scripts, SDKs) are not browsers on someone else's page.
pub fn not_cross_site(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(matches) = origin_matches_host(headers) {
        return matches;
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        // Neither header: not a browser cross-site request (curl, scripts).
        None => true,
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(authed) = parts.extensions.get::<AuthedUser>() {
            return Ok(AuthUser(authed.user.clone()));
        }
        let credential = usable_credential(parts)?;
        if crate::auth::api_keys::is_key(credential.token()) {
            return Err(session_required());
        }
        let authed = state.auth.authenticate(credential.token()).await?;
        parts.extensions.insert(authed.clone());
        Ok(AuthUser(authed.user))
    }
}

/// The request's credential, if it may be used: 401 without one, 403 for a
/// cookie on a write from another site's page.
fn usable_credential(parts: &Parts) -> Result<Credential<'_>, ApiError> {
    match credential(&parts.headers)? {
        None => Err(authentication_required()),
        Some(Credential::Cookie(_)) if !same_origin(parts) => {
            Err(ApiError::Forbidden("Cross-site request refused.".into()))
        }
        Some(credential) => Ok(credential),
    }
}

/// An authenticated administrator: 401 without a session, 403 for other users.
/// The role is read from the database, not the account cache, so a promotion or
/// demotion holds from the very next request whoever made it.
#[derive(Debug, Clone)]
pub struct AdminUser(pub UserView);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = usable_credential(parts)?;
        let user = state
            .auth
            .authenticate_fresh(credential.token())
            .await?
            .user;
        if user.role != app::wire::Role::Admin {
            return Err(ApiError::Forbidden(
                "Mission Control is for administrators (`calos users create --admin`).".into(),
            ));
        }
        Ok(AdminUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                name.clone(),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        map
    }

    #[test]
    fn bearer_wins_over_cookie_and_a_bad_header_is_an_error() {
        let both = headers(&[
            (header::AUTHORIZATION, "Bearer abc"),
            (header::COOKIE, "calos_session=def"),
        ]);
        assert!(matches!(
            credential(&both),
            Ok(Some(Credential::Bearer("abc")))
        ));
        let basic = headers(&[
            (header::AUTHORIZATION, "Basic abc"),
            (header::COOKIE, "calos_session=def"),
        ]);
        assert!(credential(&basic).is_err());
        let cookie = headers(&[(header::COOKIE, "theme=dark; calos_session=def")]);
        assert!(matches!(
            credential(&cookie),
            Ok(Some(Credential::Cookie(token))) if token == "def"
        ));
        assert!(matches!(credential(&HeaderMap::new()), Ok(None)));
    }
}
