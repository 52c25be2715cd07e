//! Middleware every request goes through: the request id and access log (which
//! also logs a failed request's cause, once), panics turned into JSON 500s, body
//! limits, no caching of answers, and JSON bodies for errors raised below the
//! handlers.

use crate::http::error::{ApiError, ErrorCause};
use crate::http::json::MAX_BODY_BYTES;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;

/// When a request arrived and its id: the start of every timing breakdown.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    pub started: Instant,
}

/// A caller-supplied `X-Request-Id` is kept when it is short and plain (so it
/// can be correlated end to end); anything else is replaced by the request's
/// trace id when it is traced (so a log line and its trace join), else by a
/// fresh UUID.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .or_else(|| {
            req.extensions()
                .get::<crate::observability::otel::TraceHandle>()
                .and_then(|trace| trace.trace_id_hex())
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Stamps the request (id, arrival instant), returns the id as `X-Request-Id`,
/// and writes one access-log line: method, path (without the query), status,
/// latency.
pub async fn access_log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestContext {
        id: id.clone(),
        started,
    });
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let mut response = next.run(req).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The one place a failed request's cause is logged, with its request id.
    if let Some(cause) = response.extensions_mut().remove::<ErrorCause>() {
        match cause {
            ErrorCause::Internal(text) => {
                tracing::error!(request_id = %id, status, cause = %text, "internal error")
            }
            ErrorCause::Unavailable(text) => {
                tracing::warn!(request_id = %id, status, cause = %text, "dependency unavailable")
            }
        }
    }
    tracing::info!(
        target: "server::access",
        request_id = %id,
        %method,
        path = ?path,
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        client = ?peer,
        "request"
    );
    response
}

/// Layers shared by both listeners, innermost first: the body limit for
/// buffering extractors; [`request_guards`] (the bounded body read, JSON error
/// bodies, no caching); a panic in a handler becomes a JSON 500 (the connection
/// and the process live on); the access log around everything.
pub fn with_common_layers(
    router: Router,
    body_read_timeout: Duration,
    replica: Option<HeaderValue>,
) -> Router {
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            Guards {
                body_read_timeout: BodyReadTimeout(body_read_timeout),
                replica,
            },
            request_guards,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(access_log))
}

/// Four small jobs in one layer, each its own function: refuse cross-site
/// writes ([`is_cross_site_write`]), read the body within its bounds
/// ([`read_bounded_body`]), give errors raised below the handlers the
/// API's JSON shape ([`with_json_error_body`]), and forbid caching of
/// (authenticated) answers by browsers and proxies. One layer rather than four
/// because every axum middleware layer clones the service beneath it and boxes
/// a future on every request: under load, separate layers cost more CPU than
/// the jobs.
async fn request_guards(State(guards): State<Guards>, req: Request, next: Next) -> Response {
    let api = is_api_path(req.uri().path());
    if is_cross_site_write(&req) {
        return ApiError::Forbidden("Cross-site request refused.".into()).into_response();
    }
    let mut response = match read_bounded_body(guards.body_read_timeout, req).await {
        Ok(req) => next.run(req).await,
        Err(refused) => refused,
    };
    if api {
        response = with_json_error_body(response);
    }
    let headers = response.headers_mut();
    for (name, value) in SAFETY_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if let Some(replica) = guards.replica {
        headers.insert(crate::cluster::replica::HEADER, replica);
    }
    response
}

/// What [`request_guards`] needs: the body's deadline, and the name of this
/// replica for `X-Calos-Replica` (set when calos runs as one of several).
#[derive(Debug, Clone)]
pub struct Guards {
    pub body_read_timeout: BodyReadTimeout,
    pub replica: Option<HeaderValue>,
}

/// On every answer unless a handler set its own: no caching of (authenticated)
/// answers; no MIME sniffing; no framing by other sites (clickjacking; the
/// dashboard frames its own flamegraph, so `self` may); no
/// plugins or `<base>` rewriting; no full URLs leaked to other sites.
const SAFETY_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "private, no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    (
        header::CONTENT_SECURITY_POLICY,
        "frame-ancestors 'self'; object-src 'none'; base-uri 'none'",
    ),
];

/// A write that a browser says comes from another site's page, carrying no
/// bearer token: a cross-site form or `fetch` riding on the visitor's cookie,
/// or signing them into someone else's account (login CSRF). Refused before
/// the body is read, on every route: calos serves no cross-origin clients
/// (no CORS), so nothing legitimate looks like this.
fn is_cross_site_write(req: &Request) -> bool {
    use crate::http::extract::{has_bearer, not_cross_site};
    !has_bearer(req.headers()) && !not_cross_site(req.method(), req.headers())
}

fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/v1/")
}

/// How much of a refused body calos still reads and throws away, and for how
/// long. Closing a connection whose request is unread makes the kernel send a
/// reset, and most clients then report "connection reset" or "broken pipe"
/// instead of our 413; reading the rest first (bounded, like nginx's lingering
/// close) lets them see the answer.
const DRAIN_BYTES: usize = 8 * MAX_BODY_BYTES;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// How long a client has to send a whole request body: the deadline is for the
/// whole body, not each read, so dripping a byte now and then cannot hold a
/// connection and a buffer for longer (`--body-read-timeout-secs`).
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub Duration);

/// Reads a request body of at most [`MAX_BODY_BYTES`], whether or not it
/// declares its length (chunked bodies are counted as they arrive). Over the
/// limit: 413 with `Connection: close`, after draining what the client still
/// sends within [`DRAIN_BYTES`] and [`DRAIN_TIME`]. Not all there within the
/// [`BodyReadTimeout`]: 408 with `Connection: close` (the rest of the body may
/// still come, so the connection cannot carry another request). Requests without
/// a body (pages, WebSocket upgrades) pass untouched.
async fn read_bounded_body(
    BodyReadTimeout(limit): BodyReadTimeout,
    req: Request,
) -> Result<Request, Response> {
    use futures::StreamExt;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if declared == Some(0) || (declared.is_none() && !chunked) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buffered = bytes::BytesMut::new();
    let mut too_large = declared.is_some_and(|n| n > MAX_BODY_BYTES as u64);
    let deadline = tokio::time::Instant::now() + limit;
    while !too_large {
        let Ok(next_chunk) = tokio::time::timeout_at(deadline, stream.next()).await else {
            return Err(closing(ApiError::RequestTimeout { limit }.into_response()));
        };
        match next_chunk {
            Some(Ok(chunk)) if buffered.len() + chunk.len() > MAX_BODY_BYTES => too_large = true,
            Some(Ok(chunk)) => buffered.extend_from_slice(&chunk),
            Some(Err(_)) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "The request body could not be read.",
                )
                .into_response())
            }
            None => break,
        }
    }
    if too_large {
        let drain = async {
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        return Err(closing(
            ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
            .into_response(),
        ));
    }
    Ok(Request::from_parts(
        parts,
        axum::body::Body::from(buffered.freeze()),
    ))
}

/// The answer, and the connection closes after it: the client may still be
/// sending a body calos did not read.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Errors produced below the handlers (405 from the router, 413 from the body
/// limit layer) come without a body; on API paths they get the API's JSON shape
/// like every other error.
fn with_json_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::NOT_FOUND => ApiError::NotFound("Not found.".into()),
        s if s.is_server_error() => {
            ApiError::Internal(anyhow::anyhow!("{s} without a body from a lower layer"))
        }
        _ => ApiError::bad_request(
            "bad_request",
            status.canonical_reason().unwrap_or("Bad request."),
        ),
    };
    let mut converted = error.into_response();
    *converted.status_mut() = status;
    converted
}

/// A handler panicked: answer like any internal error, and let the access log
/// record the panic's message with the request id.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_gets_a_json_500_and_the_cause_stays_private() {
        async fn boom() -> &'static str {
            let secret = "db password in a panic message";
            panic!("{secret}")
        }
        let app = with_common_layers(
            Router::new().route("/api/boom", get(boom)),
            Duration::from_secs(30),
            None,
        );
        let request = Request::builder()
            .uri("/api/boom")
            .body(Body::empty())
            .unwrap_or_default();
        let Ok(response) = app.oneshot(request).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        let body: app::wire::ErrorResponse = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => panic!("not the API's error shape: {e}"),
        };
        assert_eq!(body.error.code, "internal_error");
        assert!(
            !body.error.message.contains("password"),
            "{}",
            body.error.message
        );
    }
}
