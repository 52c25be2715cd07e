//! The pages: Leptos rendering, who-is-signed-in for SSR, page guards, and the
//! plain HTML form posts that make sign-in work before (or without) WASM.

use super::cookies;
use crate::auth::{AuthError, AuthService};
use crate::http::error::ApiError;
use crate::http::extract::session_cookie;
use crate::http::state::{AppState, Runtime};
use app::session::SessionUser;
use app::wire::{LoginRequest, RegisterRequest};
use axum::extract::rejection::FormRejection;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use serde::Deserialize;
use std::sync::OnceLock;

/// The app's routes, walked once per process.
///
/// Walking the route tree sets a process-wide "suppress resource loads" flag in
/// leptos_server (leptos-rs/leptos#4773): a page whose `OnceResource` is created
/// on another thread during the walk never loads, and its response hangs. One
/// walk before anything is served (other callers wait on the `OnceLock`) means no
/// render can overlap it, even with several servers in one process (the tests).
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

pub fn router(state: &AppState) -> Router<AppState> {
    let routes = route_list();
    let options = state.leptos.clone();
    Router::new()
        .route("/login", post(login_form))
        .route("/register", post(register_form))
        .route("/logout", post(logout_form))
        .leptos_routes_with_context(state, routes, page_security_policy, move || {
            app::shell(options.clone())
        })
}

/// A strict Content-Security-Policy for every rendered page: scripts only from
/// this origin or carrying this response's nonce (Leptos puts the nonce it
/// was given on its hydration script), WebAssembly compiled from those, and
/// nothing else: an injected `<script>` or `onclick=` does not run even if
/// some escaping failed. Styles may be inline (components set `style=`).
/// leptos_axum gives every render a fresh random nonce; the header is set from
/// it here, in the same render.
fn page_security_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         frame-src 'self'; frame-ancestors 'self'; object-src 'none'; base-uri 'none'"
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Whether a path is a page (or the pages' own server function) that needs to
/// know who is signed in. API routes authenticate through `AuthUser` instead.
fn is_page(path: &str) -> bool {
    let not_a_page = ["/api/", "/pkg/", "/v1/", "/docs-ui/"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    !not_a_page || path.starts_with("/api/session/")
}

/// Resolves the session cookie for pages, then applies the page guards: the
/// chat page needs a session, the login page is pointless with one. A cookie
/// that no longer works is cleared.
/// Every request passes here, so API calls leave before anything is cloned
/// or allocated (the state is one pointer).
pub async fn page_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !is_page(req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let mut stale_cookie = false;
    if let Some(token) = session_cookie(req.headers()) {
        // Pages decide who is an administrator (Mission Control), and cost far
        // more than a database read: the account is read fresh.
        match state.auth.authenticate_fresh(&token).await {
            Ok(authed) => {
                req.extensions_mut().insert(SessionUser(authed.user));
            }
            Err(AuthError::InvalidToken) => stale_cookie = true,
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let signed_in = req.extensions().get::<SessionUser>().is_some();
    let needs_session =
        matches!(path.as_str(), "/" | "/keys" | "/usage") || path.starts_with("/c/");
    let mut response = if req.method() == Method::GET && needs_session && !signed_in {
        Redirect::to("/login").into_response()
    } else if req.method() == Method::GET && path == "/login" && signed_in {
        Redirect::to("/").into_response()
    } else {
        next.run(req).await
    };
    if stale_cookie {
        let (name, value) = cookies::cleared(state.runtime.cookie_secure);
        response.headers_mut().append(name, value);
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    /// From an invite link, carried by the form (`CALOS_REGISTRATION=invite`).
    #[serde(default)]
    invite: String,
}

/// Where a failed form post goes: back to the page with a known error code.
pub(super) fn back_with(form: &str, error: ApiError) -> Response {
    let code = match &error {
        ApiError::Internal(_) => "service_unavailable",
        other => other.code(),
    };
    if matches!(error, ApiError::Internal(_) | ApiError::Unavailable(_)) {
        // Logs the cause exactly as the API would.
        let _ = error.into_response();
    }
    Redirect::to(&format!("/login?error={code}&form={form}")).into_response()
}

/// [`back_with`] for the sign-up form, keeping its invite so the person can
/// correct a field and try again. Only an invite-shaped value (base64url) is
/// carried back into the URL.
fn back_to_register(error: ApiError, invite: &str) -> Response {
    let mut response = back_with("register", error);
    let carried = !invite.is_empty()
        && invite.len() <= 128
        && invite
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if carried {
        if let Some(location) = response.headers().get(header::LOCATION).cloned() {
            let with_invite = format!("{}&invite={invite}", location.to_str().unwrap_or("/login"));
            if let Ok(value) = axum::http::HeaderValue::from_str(&with_invite) {
                response.headers_mut().insert(header::LOCATION, value);
            }
        }
    }
    response
}

fn signed_in(token: &str, auth: &AuthService, runtime: &Runtime) -> Response {
    let cookie = cookies::session(token, auth.token_ttl(), runtime.cookie_secure);
    ([cookie], Redirect::to("/")).into_response()
}

async fn login_form(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return back_with("login", ApiError::bad_request("missing_field", "form"));
    };
    let login = form.login.trim().to_string();
    let (email, username) = if login.contains('@') {
        (Some(login), None)
    } else {
        (None, Some(login))
    };
    match auth
        .login(
            LoginRequest {
                email,
                username,
                password: form.password,
            },
            ip,
        )
        .await
    {
        Ok(session) => signed_in(&session.token, &auth, &runtime),
        Err(e) => back_with("login", e.into()),
    }
}

async fn register_form(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return back_with("register", ApiError::bad_request("missing_field", "form"));
    };
    let email = Some(form.email).filter(|e| !e.trim().is_empty());
    let invite = form.invite.trim().to_string();
    match auth
        .register(
            RegisterRequest {
                username: form.username,
                password: form.password,
                email,
                invite: Some(invite.clone()).filter(|i| !i.is_empty()),
            },
            ip,
        )
        .await
    {
        Ok(session) => signed_in(&session.token, &auth, &runtime),
        Err(e) => back_to_register(e.into(), &invite),
    }
}

/// Ends the session server-side (when the cookie still works) and clears it.
async fn logout_form(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    req: Request,
) -> Response {
    if let Some(token) = session_cookie(req.headers()) {
        if let Ok(authed) = auth.authenticate(&token).await {
            if let Err(e) = auth.logout(&authed.user).await {
                return ApiError::from(e).into_response();
            }
        }
    }
    let mut response = Redirect::to("/login").into_response();
    let (name, value) = cookies::cleared(runtime.cookie_secure);
    response.headers_mut().append(name, value);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::is_page;

    #[test]
    fn pages_and_their_server_function_resolve_sessions_but_the_api_does_not() {
        assert!(is_page("/"));
        assert!(is_page("/login"));
        assert!(is_page("/api/session/whoami"));
        assert!(!is_page("/api/auth/me"));
        assert!(!is_page("/pkg/calos.wasm"));
    }
}
