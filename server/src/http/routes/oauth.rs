//! `/api/auth/oauth/*`: the browser's side of "Sign in with Google / GitHub /
//! Apple". Start redirects to the provider; the callback signs in and redirects
//! to where the person was going. A browser that hits an error is sent back to
//! the login page with the error's code; scripts get the JSON error.

use super::cookies;
use crate::auth::oauth::{CallbackParams, OAuthService, FLOW_COOKIE};
use crate::auth::{AuthError, AuthService};
use crate::http::error::ApiError;
use crate::http::extract::{cookie, session_cookie};
use crate::http::state::{AppState, Runtime};
use app::wire::{OAuthButton, OAuthProvidersResponse};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/oauth/providers", get(providers))
        .route("/api/auth/oauth/{provider}", get(start))
        .route("/api/auth/oauth/{provider}/callback", get(callback))
}

async fn providers(State(oauth): State<OAuthService>) -> Json<OAuthProvidersResponse> {
    let providers = oauth
        .configured()
        .into_iter()
        .map(|kind| OAuthButton {
            label: kind.label().to_string(),
            name: kind.name().to_string(),
            url: format!("/api/auth/oauth/{}", kind.name()),
        })
        .collect();
    Json(OAuthProvidersResponse {
        providers,
        success: true,
    })
}

#[derive(Deserialize)]
struct StartParams {
    next: Option<String>,
    /// `true`: attach the provider to the signed-in account instead.
    #[serde(default)]
    link: bool,
}

/// Whether the caller is a browser page (send it back to the login page) rather
/// than a script (give it the JSON error).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn failed(headers: &HeaderMap, error: ApiError) -> Response {
    let mut response = if wants_html(headers) {
        tracing::info!(code = error.code(), reason = %error, "oauth sign-in failed");
        super::pages::back_with("oauth", error)
    } else {
        error.into_response()
    };
    let (name, value) = cookies::oauth_flow_cleared();
    response.headers_mut().append(name, value);
    response
}

async fn start(
    State(oauth): State<OAuthService>,
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    Path(provider): Path<String>,
    crate::http::query::ApiQuery(params): crate::http::query::ApiQuery<StartParams>,
    headers: HeaderMap,
) -> Response {
    let link_user = if params.link {
        let authed = match session_cookie(&headers) {
            Some(token) => auth.authenticate(&token).await,
            None => Err(AuthError::InvalidToken),
        };
        match authed {
            Ok(authed) => Some(authed.user.user_id),
            Err(e) => return failed(&headers, e.into()),
        }
    } else {
        None
    };
    match oauth
        .start(&provider, params.next.as_deref(), link_user)
        .await
    {
        Ok(started) => (
            [cookies::oauth_flow(&started.binding, runtime.cookie_secure)],
            Redirect::to(&started.redirect),
        )
            .into_response(),
        Err(e) => failed(&headers, e.into()),
    }
}

async fn callback(
    State(oauth): State<OAuthService>,
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    Path(provider): Path<String>,
    params: Result<Query<CallbackParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Query(params)) = params else {
        return failed(
            &headers,
            ApiError::bad_request("invalid_query", "The callback's query string is malformed."),
        );
    };
    let binding = cookie(&headers, FLOW_COOKIE);
    let finished = match oauth.finish(&provider, params, binding.as_deref()).await {
        Ok(finished) => finished,
        Err(e) => return failed(&headers, e.into()),
    };
    let session = match auth
        .oauth_sign_in(&finished.identity, finished.link_user.as_deref())
        .await
    {
        Ok(session) => session,
        Err(e) => return failed(&headers, e.into()),
    };
    let session_cookie = cookies::session(&session.token, auth.token_ttl(), runtime.cookie_secure);
    // Redirect::to is a 303: the next request is a GET whatever this one was.
    // AppendHeaders: two Set-Cookie headers (an array would keep only the last).
    (
        axum::response::AppendHeaders([session_cookie, cookies::oauth_flow_cleared()]),
        Redirect::to(&finished.next),
    )
        .into_response()
}
