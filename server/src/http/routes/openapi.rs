//! The published API contract: an OpenAPI 3.1 document generated from the
//! handlers' own annotations and the wire types (`GET /api/openapi.json`, on
//! each listener for the routes that listener serves), and `/docs`, a page
//! that renders it with Swagger UI from the site's own files (bundled from
//! npm at build time; nothing is loaded from a CDN).
//!
//! Answers that any route can give because of the layers every request
//! crosses (a refused body, a cross-site write, a busy database, a missing
//! token) are added here, once, by [`EveryRouteAnswers`], rather than repeated
//! on each handler; a test checks every declared route is in a document.

use super::{
    auth, conversations, health, invites, keys, llm, monitor, oauth, openai_compat, usage,
};
use crate::http::state::AppState;
use app::wire::ErrorResponse;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::LazyLock;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema};

/// The main listener's contract (pages aside): accounts, chat, `/v1`, health.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "calos",
        description = "A self-hosted LLM chat gateway that says where every millisecond of a reply goes. Authenticate with `Authorization: Bearer <token>` (the token from register or login) or the session cookie. For chat (`/v1/*`, `/api/llm/complete`) an API key from `POST /api/keys` works too, as a bearer token, `x-api-key`, or an OpenAI SDK's `api_key`.",
    ),
    paths(
        auth::register, auth::login, auth::soulfra_challenge, auth::soulfra_verify,
        auth::me, auth::update_me, auth::delete_me, auth::logout,
        oauth::providers, oauth::start, oauth::callback,
        keys::create, keys::list, keys::revoke,
        conversations::list, conversations::create, conversations::open,
        conversations::rename, conversations::remove, conversations::export_file,
        usage::own, usage::everyone, usage::set_limits, usage::get_limits,
        llm::complete, openai_compat::chat_completions, openai_compat::models,
        health::health, contract,
    ),
    modifiers(&EveryRouteAnswers),
    tags(
        (name = "accounts", description = "Registration, sign-in (password or Ed25519 key), the account itself"),
        (name = "oauth", description = "Sign in with Google, GitHub or Apple (browser redirects)"),
        (name = "keys", description = "API keys for scripts and SDKs (made and revoked with a session)"),
        (name = "usage", description = "Tokens and requests per day, model, key or user; limits and budgets"),
        (name = "conversations", description = "Chats kept by the server: list, open, rename, delete, export; continue one with `conversationId` on `/api/llm/complete`"),
        (name = "chat", description = "The chat endpoint with its timing breakdown"),
        (name = "openai", description = "The OpenAI-compatible API: point an OpenAI SDK at `/v1`"),
        (name = "health", description = "Liveness and the database's answer"),
    ),
)]
struct MainApi;

/// Mission Control's listener: the administrators' data, sign-in, health and
/// `/metrics`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "calos Mission Control",
        description = "The dashboard listener's API: administrators only, except sign-in, health and `/metrics` (operators).",
    ),
    paths(
        monitor::processes, monitor::deployments, monitor::cluster, monitor::order, monitor::logs, monitor::latency,
        monitor::verdict,
        monitor::socket, monitor::chart, monitor::profile, monitor::metrics,
        invites::create, invites::list, invites::revoke,
        usage::everyone, usage::set_limits, usage::get_limits,
        auth::register, auth::login, auth::soulfra_challenge, auth::soulfra_verify,
        auth::me, auth::update_me, auth::delete_me, auth::logout,
        health::health, contract,
    ),
    modifiers(&EveryRouteAnswers),
    tags(
        (name = "monitor", description = "Processes, logs, latency, the verdict over recent requests, charts, profiles, the live feed, and invites"),
        (name = "usage", description = "Everyone's usage, and accounts' limits and budgets"),
        (name = "accounts", description = "Sign-in, so the dashboard can be reached from a browser"),
        (name = "health", description = "Liveness and the database's answer"),
    ),
)]
struct DashboardApi;

/// Built once per process: the document is a pure function of the code.
static MAIN: LazyLock<String> = LazyLock::new(|| render(MainApi::openapi()));
static DASHBOARD: LazyLock<String> = LazyLock::new(|| render(DashboardApi::openapi()));

fn render(mut document: Document) -> String {
    document.info.version = env!("CARGO_PKG_VERSION").into();
    document.to_pretty_json().unwrap_or_else(|e| {
        // Cannot happen (the document is plain data), but never a panic.
        tracing::error!(error = %e, "the OpenAPI document does not serialise");
        String::from("{}")
    })
}

/// The main listener's document (also used by tests and `calos` tooling).
pub fn main_document() -> &'static str {
    &MAIN
}

/// Mission Control's listener's document.
pub fn dashboard_document() -> &'static str {
    &DASHBOARD
}

/// `/api/openapi.json` and `/docs` for the main listener.
pub fn main_router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(|| async { json(main_document()) }))
        .route("/docs", get(docs_page))
}

/// The same two for Mission Control's listener, describing its own routes.
pub fn dashboard_router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/openapi.json",
            get(|| async { json(dashboard_document()) }),
        )
        .route("/docs", get(docs_page))
}

/// This listener's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
#[expect(
    dead_code,
    reason = "documents the closures in the routers above; never called"
)]
fn contract() {}

fn json(document: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// The renderer's files come from the site directory (`docs-ui/`, copied from
/// npm's `swagger-ui-dist` by the build); the page's own script is a file too,
/// so a strict Content-Security-Policy needs no inline-script exception.
async fn docs_page() -> impl IntoResponse {
    let policy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                  img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; \
                  object-src 'none'; base-uri 'none'";
    (
        [(header::CONTENT_SECURITY_POLICY, policy)],
        Html(concat!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>calos API</title>",
            "<link rel=\"stylesheet\" href=\"/docs-ui/swagger-ui.css\"></head>",
            "<body><div id=\"swagger-ui\"><noscript>The API contract is at ",
            "<a href=\"/api/openapi.json\">/api/openapi.json</a>.</noscript></div>",
            "<script src=\"/docs-ui/swagger-ui-bundle.js\"></script>",
            "<script src=\"/docs-ui/calos-docs.js\"></script></body></html>",
        )),
    )
}

/// Adds the security schemes, and to every operation the answers the shared
/// layers can give it, where the handler did not document its own.
struct EveryRouteAnswers;

impl Modify for EveryRouteAnswers {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The token from register or login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::http::extract::SESSION_COOKIE,
                "The browser's session (`__Host-calos_session` over HTTPS)",
            ))),
        );
        components
            .schemas
            .entry("ErrorResponse".into())
            .or_insert_with(ErrorResponse::schema);
        for item in document.paths.paths.values_mut() {
            for (method, operation) in operations(item) {
                add_shared_answers(method, operation);
            }
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|op| (method, op)))
}

fn add_shared_answers(method: HttpMethod, operation: &mut Operation) {
    let needs_session = operation.security.as_ref().is_some_and(|requirements| {
        // An empty requirement means "or anonymous" (`/metrics`).
        !requirements.is_empty()
            && !requirements
                .iter()
                .any(|r| r == &utoipa::openapi::security::SecurityRequirement::default())
    });
    let mut answers: Vec<(&str, &str)> = vec![(
        "503",
        "Unavailable for now (too many connections, or the database is busy); retry",
    )];
    if needs_session {
        answers.push((
            "401",
            "No credential, or a malformed, expired or revoked token",
        ));
    }
    if method != HttpMethod::Get {
        answers.push((
            "403",
            "A cookie-carried write from another site's page, or not allowed for this account",
        ));
    }
    if operation.request_body.is_some() {
        answers.extend([
            (
                "400",
                "The body is not the JSON object this operation takes",
            ),
            ("408", "The body did not arrive in time"),
            ("413", "The body is larger than 1 MiB"),
            (
                "415",
                "A form or text label on a body sent without a bearer token",
            ),
        ]);
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.into())
            .or_insert_with(|| RefOr::T(error_answer(description)));
    }
}

fn error_answer(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorResponse",
                ))))
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(document: &str) -> serde_json::Value {
        serde_json::from_str(document).unwrap()
    }

    #[test]
    fn the_documents_are_openapi_3_1_and_name_every_error_schema() {
        for document in [main_document(), dashboard_document()] {
            let document = parsed(document);
            assert_eq!(document["openapi"], "3.1.0");
            assert!(document["components"]["schemas"]["ErrorResponse"].is_object());
            assert!(document["components"]["securitySchemes"]["bearer"].is_object());
        }
    }

    #[test]
    fn a_protected_write_with_a_body_lists_every_shared_answer() {
        let document = parsed(main_document());
        let responses = &document["paths"]["/api/llm/complete"]["post"]["responses"];
        for status in ["200", "400", "401", "403", "408", "413", "415", "503"] {
            assert!(responses[status].is_object(), "{status} missing");
        }
        // Public reads get neither 401 nor 403.
        let health = &document["paths"]["/api/health"]["get"]["responses"];
        assert!(health["401"].is_null() && health["403"].is_null());
    }
}
