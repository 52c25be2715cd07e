//! The HTTP side of tracing: one SERVER span per request, named by the
//! route that matched (`POST /api/llm/complete`, never the raw path), a
//! child of the caller's span when an incoming `traceparent` names one.
//!
//! The layer sits outside everything else, so the request id made by the
//! access log can be this trace's id, and the span covers the whole answer:
//! a streamed reply's span ends when its last byte has gone (or the client
//! left), not when its headers did.

use super::propagation::TraceParent;
use super::request::{RequestTrace, TraceHandle};
use super::span::{Kind, Outcome, SpanRecord, Value};
use super::Tracing;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The middleware (installed only when tracing is on; see [`Tracing::wrap`]).
pub async fn trace_requests(
    State(tracing): State<Tracing>,
    mut req: Request,
    next: Next,
) -> Response {
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let trace = Arc::new(RequestTrace::begin(incoming, tracing.captures_content()));
    req.extensions_mut()
        .insert(TraceHandle(Some(trace.clone())));
    let facts = RequestFacts::of(&req);
    let response = next.run(req).await;
    let ending = ServerSpan {
        tracing,
        trace,
        facts,
        status: response.status().as_u16(),
        request_id: response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    if !is_event_stream(response.headers()) {
        ending.finish();
        return response;
    }
    // A stream: the span ends with the body (its end, or the client leaving).
    let (parts, body) = response.into_parts();
    let guard = FinishOnDrop(Some(ending));
    let body = body.into_data_stream().map(move |chunk| {
        guard.keep_alive();
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Records the route that matched, for the span's name (only matched routes
/// have one, so names stay bounded). Called from a `route_layer`: the main
/// listener's metrics layer, [`route_recorder`] on the dashboard's.
pub fn record_route(req: &Request) {
    let Some(TraceHandle(Some(trace))) = req.extensions().get::<TraceHandle>() else {
        return;
    };
    if let Some(route) = req.extensions().get::<MatchedPath>() {
        trace.set_route(route.as_str());
    }
}

/// A `route_layer` that only records the route, for routers without one
/// that does it already.
pub async fn route_recorder(req: Request, next: Next) -> Response {
    record_route(&req);
    next.run(req).await
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// What the server span says about the request, read before it is handed on.
struct RequestFacts {
    method: String,
    path: String,
    host: Option<(String, Option<u16>)>,
    client: Option<String>,
    protocol: &'static str,
}

impl RequestFacts {
    fn of(req: &Request) -> Self {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(split_host);
        Self {
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            host,
            client: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            protocol: match req.version() {
                axum::http::Version::HTTP_10 => "1.0",
                axum::http::Version::HTTP_2 => "2",
                _ => "1.1",
            },
        }
    }
}

/// `host[:port]` (IPv6 in brackets) into its parts.
fn split_host(value: &str) -> (String, Option<u16>) {
    let value = value.trim();
    match value.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(':') && (!host.starts_with('[') || host.ends_with(']')) =>
        {
            (host.to_string(), port.parse().ok())
        }
        _ => (value.to_string(), None),
    }
}

/// Everything needed to close a request's trace and queue it.
struct ServerSpan {
    tracing: Tracing,
    trace: Arc<RequestTrace>,
    facts: RequestFacts,
    status: u16,
    request_id: Option<String>,
}

impl ServerSpan {
    fn finish(self) {
        let Self {
            tracing,
            trace,
            facts,
            status,
            request_id,
        } = self;
        let route = trace.route().map(str::to_string);
        let name = match &route {
            Some(route) => format!("{} {route}", facts.method),
            None => facts.method.clone(),
        };
        let mut attributes: Vec<(&'static str, Value)> = vec![
            ("http.request.method", facts.method.into()),
            ("http.response.status_code", status.into()),
            ("url.scheme", "http".into()),
            ("url.path", facts.path.into()),
            ("network.protocol.version", facts.protocol.into()),
        ];
        if let Some(route) = route {
            attributes.push(("http.route", route.into()));
        }
        if let Some((address, port)) = facts.host {
            attributes.push(("server.address", address.into()));
            if let Some(port) = port {
                attributes.push(("server.port", port.into()));
            }
        }
        if let Some(client) = facts.client {
            attributes.push(("client.address", client.into()));
        }
        if let Some(id) = request_id {
            attributes.push(("calos.request_id", id.into()));
        }
        // Server spans are errors for 5xx only: a 4xx is the client's doing.
        let outcome = if status >= 500 {
            attributes.push(("error.type", status.to_string().into()));
            Outcome::Error(status.to_string())
        } else {
            Outcome::Unset
        };
        let server = SpanRecord {
            name,
            kind: Kind::Server,
            span_id: trace.server_span,
            parent: trace.remote_parent,
            start: trace.clock.at(trace.started),
            end: trace.clock.at(Instant::now()),
            attributes,
            outcome,
        };
        let spans = trace.finish(server);
        if trace.sampled {
            tracing.submit(trace.trace_id, spans);
        }
    }
}

/// Closes the trace when the streamed body is dropped.
struct FinishOnDrop(Option<ServerSpan>);

impl FinishOnDrop {
    /// Called per chunk so the body stream owns the guard.
    fn keep_alive(&self) {}
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(ending) = self.0.take() {
            ending.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn hosts_split_into_address_and_port() {
        assert_eq!(split_host("example.com"), ("example.com".into(), None));
        assert_eq!(
            split_host("127.0.0.1:5001"),
            ("127.0.0.1".into(), Some(5001))
        );
        assert_eq!(split_host("[::1]:5001"), ("[::1]".into(), Some(5001)));
        assert_eq!(split_host("[::1]"), ("[::1]".into(), None));
    }
}
