//! The HTTP surface: each area owns its routes; this module only merges them and
//! applies the layers every request goes through.
//!
//! Authenticated by default: an area's routes are public only when listed in
//! [`PUBLIC_ROUTES`]; everything else sits behind a `route_layer` that answers
//! 401 before any handler runs (403 for non-administrators on Mission Control's
//! data). An API test reads every `.route(` in this directory and checks both
//! halves of that promise.

mod auth;
mod chat_user;
mod conversations;
mod cookies;
mod health;
mod invites;
mod keys;
mod llm;
mod monitor;
mod oauth;
mod openai_compat;
pub mod openapi;
mod pages;
mod usage;

pub use chat_user::BotGuard;
pub use health::DatabaseProbe;

use crate::http::error::ApiError;
use crate::http::extract::{AdminUser, AuthUser};
use crate::http::middleware::with_common_layers;
use crate::http::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, from_extractor_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The whole unauthenticated surface of both listeners, `(method, path)`.
/// Pages (GET) render for anyone and redirect to `/login` where a session is
/// needed; static files are served by the fallback.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/soulfra/challenge"),
    ("POST", "/api/auth/soulfra/verify"),
    ("GET", "/api/auth/oauth/providers"),
    ("GET", "/api/auth/oauth/{provider}"),
    ("GET", "/api/auth/oauth/{provider}/callback"),
    ("GET", "/api/health"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("GET", "/docs"),
    ("POST", "/login"),
    ("POST", "/register"),
    ("POST", "/logout"),
];

/// Routes anyone may call, on the main listener.
fn public_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(auth::public())
        .merge(oauth::router())
        .merge(health::router())
        .merge(openapi::main_router())
        .merge(pages::router(state))
}

/// Routes for a signed-in caller; the chat endpoints add the bot guard and
/// the chat's own 401 message (`ChatUser`).
fn protected_routes(state: &AppState) -> Router<AppState> {
    let chat = Router::new()
        .merge(llm::router())
        .merge(openai_compat::chat())
        .merge(openai_compat::models_router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            chat_user::require,
        ));
    Router::new()
        .merge(usage::admin())
        .route_layer(from_extractor_with_state::<AdminUser, _>(state.clone()))
        .merge(
            Router::new()
                .merge(auth::protected())
                .merge(keys::protected())
                .merge(conversations::protected())
                .merge(usage::protected())
                .route_layer(from_extractor_with_state::<AuthUser, _>(state.clone())),
        )
        .merge(chat)
}

/// The main listener (default 5001): pages and API.
pub fn app_router(state: AppState) -> Router {
    let router = protected_routes(&state)
        .merge(public_routes(&state))
        // Only matched routes: their label is the route pattern, so the
        // series stay bounded whatever paths clients invent.
        .route_layer(middleware::from_fn_with_state(state.clone(), http_metrics))
        .fallback(fallback)
        .layer(middleware::from_fn(dashboard_elsewhere))
        // The login page's "continue with" buttons (only on this listener: the
        // OAuth routes and their redirect URIs live here) and sign-up policy.
        .layer(axum::Extension(sign_in_options(&state, true)))
        // The chat page's server-rendered history (one `Arc` per request).
        .layer(axum::Extension(app::history::HistorySource(
            std::sync::Arc::new(state.conversations.clone()),
        )))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            pages::page_session,
        ))
        .with_state(state.clone());
    state.tracing.wrap(with_common_layers(
        router,
        state.runtime.body_read_timeout,
        state.runtime.replica_header(),
    ))
}

/// Built once; the `Extension` layer clones it into every request, so it is an
/// `Arc` (a pointer copy, not a list copy, on every chat and API call).
/// `with_providers`: false on the dashboard listener, which has no OAuth routes.
fn sign_in_options(state: &AppState, with_providers: bool) -> app::session::SignInChoices {
    let providers = state
        .oauth
        .configured()
        .into_iter()
        .filter(|_| with_providers)
        .map(|kind| app::wire::OAuthButton {
            name: kind.name().into(),
            label: format!("Sign in with {}", kind.label()),
            url: format!("/api/auth/oauth/{}", kind.name()),
        })
        .collect();
    app::session::SignInChoices(std::sync::Arc::new(app::session::SignInSettings {
        providers,
        registration: state.auth.registration().as_str().into(),
    }))
}

/// The Mission Control listener (default 3003): the dashboard page (admins
/// only; sign-in pages too, so a signed-out visitor can sign in here), the
/// health check, `/metrics` and the admin-only `/api/monitor/*`.
pub fn dashboard_router(state: AppState) -> Router {
    let body_read_timeout = state.runtime.body_read_timeout;
    let replica = state.runtime.replica_header();
    let tracing = state.tracing.clone();
    let router = with_common_layers(
        monitor::admin()
            .merge(invites::admin())
            .merge(usage::admin())
            .route_layer(from_extractor_with_state::<AdminUser, _>(state.clone()))
            .merge(
                auth::protected()
                    .route_layer(from_extractor_with_state::<AuthUser, _>(state.clone())),
            )
            .merge(auth::public())
            .merge(monitor::public())
            .merge(health::router())
            .merge(openapi::dashboard_router())
            .merge(pages::router(&state))
            .route_layer(middleware::from_fn(
                crate::observability::otel::layer::route_recorder,
            ))
            .fallback(fallback)
            .layer(axum::Extension(sign_in_options(&state, false)))
            .layer(middleware::from_fn(dashboard_guard))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                pages::page_session,
            ))
            .with_state(state),
        body_read_timeout,
        replica,
    );
    tracing.wrap(router)
}

fn is_dashboard(path: &str) -> bool {
    path == "/dashboard" || path == "/dashboard.html"
}

/// On the dashboard port: `/` is the dashboard; signed-out visitors are sent to
/// sign in; signed-in users who are not administrators get 403.
async fn dashboard_guard(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() == axum::http::Method::GET && path == "/" {
        return axum::response::Redirect::to("/dashboard").into_response();
    }
    if is_dashboard(path) {
        match req.extensions().get::<app::session::SessionUser>() {
            None => return axum::response::Redirect::to("/login").into_response(),
            Some(app::session::SessionUser(user)) if user.role != app::wire::Role::Admin => {
                let page = "<!DOCTYPE html><html lang=\"en\"><title>calos: 403</title><body><h1>Mission Control is for administrators</h1><p>Ask an administrator, or create one with <code>calos users create --admin</code>.</p><form method=\"post\" action=\"/logout\"><button>Sign out</button></form></body></html>";
                return (StatusCode::FORBIDDEN, axum::response::Html(page)).into_response();
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// On the main port the dashboard is not served: it lives on its own port.
async fn dashboard_elsewhere(req: Request, next: Next) -> Response {
    if is_dashboard(req.uri().path()) {
        let page = "<!DOCTYPE html><html lang=\"en\"><title>calos: Mission Control</title><body><h1>Mission Control is on the dashboard port</h1><p>Open this path on the dashboard port instead (3003 by default, <code>CALOS_DASHBOARD_PORT</code>).</p></body></html>";
        return (StatusCode::NOT_FOUND, axum::response::Html(page)).into_response();
    }
    next.run(req).await
}

/// Counts and times every answered request by its route pattern.
async fn http_metrics(
    State(metrics): State<crate::observability::metrics::Metrics>,
    req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    crate::observability::otel::layer::record_route(&req);
    let response = next.run(req).await;
    metrics.exporter().http(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Unknown API paths get a JSON 404; anything else is a static file from the
/// site directory or the pages' 404.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    if req.uri().path().starts_with("/api/") || req.uri().path().starts_with("/v1/") {
        return api_not_found(req).await;
    }
    let files_and_pages = leptos_axum::file_and_error_handler::<AppState, _>(app::shell);
    files_and_pages(req.uri().clone(), State(state), req).await
}

async fn api_not_found(req: Request) -> Response {
    ApiError::NotFound(format!(
        "No route for {} {}.",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}
