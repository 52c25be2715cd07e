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
use app::wire::{ErrorResponse, OAuthButton, OAuthProvidersResponse};
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

#[utoipa::path(get, path = "/api/auth/oauth/providers", tag = "oauth",
    responses((status = 200, description = "The configured sign-in providers", body = OAuthProvidersResponse)))]
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
    /// An invite from the sign-up page, for when this sign-in creates the account.
    invite: Option<String>,
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

#[utoipa::path(get, path = "/api/auth/oauth/{provider}", tag = "oauth",
    params(
        ("provider" = String, Path, description = "`google`, `github` or `apple`"),
        ("next" = Option<String>, Query, description = "Where to go after signing in (a path on this site)"),
        ("link" = Option<bool>, Query, description = "Attach the provider to the signed-in account"),
        ("invite" = Option<String>, Query, description = "An invite, used if this sign-in creates the account (`CALOS_REGISTRATION=invite`)"),
    ),
    responses(
        (status = 303, description = "To the provider's sign-in page"),
        (status = 400, description = "A malformed query", body = ErrorResponse),
        (status = 401, description = "`link=true` without a session", body = ErrorResponse),
        (status = 404, description = "That provider is not configured", body = ErrorResponse),
        (status = 502, description = "The provider cannot be reached", body = ErrorResponse),
    ))]
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
        .start(
            &provider,
            params.next.as_deref(),
            link_user,
            params.invite.as_deref(),
        )
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

#[utoipa::path(get, path = "/api/auth/oauth/{provider}/callback", tag = "oauth",
    params(
        ("provider" = String, Path, description = "`google`, `github` or `apple`"),
        ("code" = Option<String>, Query, description = "The provider's authorization code"),
        ("state" = Option<String>, Query, description = "The flow's state, checked against its cookie"),
        ("error" = Option<String>, Query, description = "The provider's refusal"),
    ),
    responses(
        (status = 303, description = "Signed in: on to where the person was going (or back to the login page with an error code, for browsers)"),
        (status = 400, description = "The flow was not started in this browser, or the query is malformed", body = ErrorResponse),
        (status = 401, description = "The provider's answer did not verify", body = ErrorResponse),
        (status = 403, description = "The provider has not verified the email, or this sign-in would create an account the registration policy does not allow", body = ErrorResponse),
        (status = 404, description = "That provider is not configured", body = ErrorResponse),
        (status = 409, description = "The identity or email belongs to another account", body = ErrorResponse),
        (status = 502, description = "The provider cannot be reached", body = ErrorResponse),
    ))]
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
        .oauth_sign_in(
            &finished.identity,
            finished.link_user.as_deref(),
            finished.invite.as_deref(),
        )
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
