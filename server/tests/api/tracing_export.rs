//! OpenTelemetry trace export end to end: calos pointed at a small OTLP/HTTP
//! collector in the test (protobuf decoded with `opentelemetry-proto`), a
//! chat through `/api/llm/complete` with the caller's `traceparent`, and the
//! trace that arrives: one trace id, the server span under the caller's
//! span, the phases and the GenAI span under it, the `traceparent` the
//! upstream saw, and the request id that joins the logs. Also: a collector
//! that is down costs chat nothing.

use crate::helpers::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// What the collector received: each export's service name and spans.
#[derive(Default)]
pub(crate) struct Collected {
    spans: Vec<(String, Span)>,
    content_types: Vec<String>,
}

pub(crate) struct Collector {
    pub(crate) base: String,
    pub(crate) received: Arc<Mutex<Collected>>,
}

/// An OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces`, protobuf.
pub(crate) async fn collector() -> Collector {
    async fn traces(
        State(received): State<Arc<Mutex<Collected>>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let Ok(export) = ExportTraceServiceRequest::decode(body) else {
            return StatusCode::BAD_REQUEST;
        };
        let mut received = received.lock();
        received.content_types.push(
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        );
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    received.spans.push((service.clone(), span));
                }
            }
        }
        StatusCode::OK
    }
    let received = Arc::new(Mutex::new(Collected::default()));
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Collector {
        base: format!("http://{addr}"),
        received,
    }
}

impl Collector {
    /// The spans of `trace` (hex), once its server span has arrived.
    pub(crate) async fn trace(&self, trace: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Span> = self
                .received
                .lock()
                .spans
                .iter()
                .filter(|(_, s)| hex::encode(&s.trace_id) == trace)
                .map(|(_, s)| s.clone())
                .collect();
            if spans.iter().any(|s| s.kind == SpanKind::Server as i32) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no server span of {trace} arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

pub(crate) fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s,
        other => panic!("{} has no text {key}: {other:?}", span.name),
    }
}

pub(crate) fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(AnyValue::IntValue(i)) => i,
        other => panic!("{} has no integer {key}: {other:?}", span.name),
    }
}

pub(crate) fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name:?} span in {:?}", names(spans)))
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// Every attribute value of every span, as text: where content would show.
fn every_value(spans: &[Span]) -> String {
    spans
        .iter()
        .flat_map(|s| s.attributes.iter())
        .map(|kv| format!("{}={:?}", kv.key, kv.value))
        .collect::<Vec<_>>()
        .join("\n")
}

/// calos with both mock providers, exporting to `endpoint` every 20 ms.
async fn traced_app(
    mock: &server::emulators::mock_llm::MockServer,
    endpoint: &str,
    extra: &[&str],
) -> (TestApp, Session) {
    let mut args = vec![
        "--otel-endpoint",
        endpoint,
        "--otel-schedule-delay-ms",
        "20",
    ];
    args.extend_from_slice(extra);
    app_with(Backend::Sqlite, mock, &args).await
}

/// A whole `mock-gpt` chat sent with `traceparent`; it must succeed.
async fn chat_with_traceparent(
    app: &TestApp,
    user: &Session,
    traceparent: &str,
) -> reqwest::Response {
    let response = app
        .chat_request("/api/llm/complete", &user.token, &ask("mock-gpt", false))
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

async fn upstream_saw(mock: &server::emulators::mock_llm::MockServer) -> Value {
    mock_json(mock, "/_mock/last-request").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_a_chat_exports_one_trace_under_the_callers_span() {
    let collector = collector().await;
    let mock = mock(30, 200.0, 4).await;
    let (app, user) = traced_app(
        &mock,
        &collector.base,
        &["--otel-service-name", "calos-under-test"],
    )
    .await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let response = chat_with_traceparent(&app, &user, &caller).await;
    // The request id is the trace id: in the header, and on the request's
    // log lines (the access log and `[Performance]`).
    assert_eq!(response.headers()["x-request-id"], CALLER_TRACE);
    let logged: Vec<String> = server::observability::logs::global()
        .recent(0, usize::MAX)
        .into_iter()
        .filter(|line| line.request_id.as_deref() == Some(CALLER_TRACE))
        .filter_map(|line| line.target)
        .collect();
    assert!(
        logged.iter().any(|t| t == "calos::performance"),
        "{logged:?}"
    );
    let reply: app::wire::CompleteResponse = response.json().await.unwrap();

    let spans = collector.trace(CALLER_TRACE).await;
    let server = named(&spans, "POST /api/llm/complete");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(hex::encode(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(text(server, "http.route"), "/api/llm/complete");
    assert_eq!(text(server, "http.request.method"), "POST");
    assert_eq!(int(server, "http.response.status_code"), 200);
    assert_eq!(text(server, "url.scheme"), "http");
    assert_eq!(text(server, "calos.request_id"), CALLER_TRACE);
    assert!(attr(server, "server.address").is_some());

    // The phases and the model call, each a child of the server span,
    // inside its time.
    for name in ["auth", "database", "cache", "queue", "chat mock-gpt"] {
        let child = named(&spans, name);
        assert_eq!(child.parent_span_id, server.span_id, "{name}");
        assert!(
            child.start_time_unix_nano >= server.start_time_unix_nano
                && child.end_time_unix_nano <= server.end_time_unix_nano
                && child.start_time_unix_nano <= child.end_time_unix_nano,
            "{name} lies outside its request"
        );
    }
    // In the order a request lives them.
    let auth = named(&spans, "auth");
    let queue = named(&spans, "queue");
    let llm = named(&spans, "chat mock-gpt");
    assert!(auth.end_time_unix_nano <= queue.start_time_unix_nano);
    assert!(queue.end_time_unix_nano <= llm.start_time_unix_nano);
    // The mock takes 30 ms to its first token and 15 ms more for the rest.
    let llm_ms = (llm.end_time_unix_nano - llm.start_time_unix_nano) as f64 / 1e6;
    assert!(
        (30.0..5_000.0).contains(&llm_ms),
        "model call took {llm_ms} ms"
    );

    // The GenAI conventions.
    assert_eq!(llm.kind, SpanKind::Client as i32);
    assert_eq!(text(llm, "gen_ai.operation.name"), "chat");
    assert_eq!(text(llm, "gen_ai.provider.name"), "openai");
    assert_eq!(text(llm, "gen_ai.request.model"), "mock-gpt");
    assert_eq!(text(llm, "gen_ai.response.model"), "mock-gpt");
    assert_eq!(int(llm, "gen_ai.usage.input_tokens"), 5);
    assert_eq!(int(llm, "gen_ai.usage.output_tokens"), 4);
    assert_eq!(reply.usage.completion_tokens, 4);
    let Some(AnyValue::DoubleValue(ttfc)) = attr(llm, "gen_ai.response.time_to_first_chunk") else {
        panic!("no time to first chunk")
    };
    assert!(ttfc >= 0.03 && ttfc * 1000.0 <= llm_ms, "{ttfc}");
    assert_eq!(text(llm, "server.address"), "127.0.0.1");

    // No message content by default: neither the prompt nor the reply.
    let values = every_value(&spans);
    assert!(!values.contains(PROMPT), "{values}");
    assert!(!values.contains(&reply.text), "{values}");
    assert!(!values.contains("gen_ai.input.messages"));
    assert!(!values.contains("gen_ai.output.messages"));

    // The upstream was told this trace and the model call's span.
    let saw = upstream_saw(&mock).await;
    assert_eq!(
        saw["traceparent"],
        format!("00-{CALLER_TRACE}-{}-01", hex::encode(&llm.span_id))
    );

    // Every span of the trace is one of these, from the configured service,
    // sent as protobuf.
    let received = collector.received.lock();
    assert!(received
        .spans
        .iter()
        .filter(|(_, s)| hex::encode(&s.trace_id) == CALLER_TRACE)
        .all(|(service, _)| service == "calos-under-test"));
    assert!(received
        .content_types
        .iter()
        .all(|c| c == "application/x-protobuf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_a_stream_with_a_bad_traceparent_starts_a_trace_and_keeps_the_callers_request_id() {
    let collector = collector().await;
    let mock = mock(10, 200.0, 3).await;
    let (app, user) = traced_app(&mock, &collector.base, &[]).await;
    // A malformed traceparent is ignored, never an error.
    let response = app
        .chat_request("/api/llm/complete", &user.token, &ask("mock-llama", true))
        .header("traceparent", "00-not-a-trace-01")
        .header("x-request-id", "caller-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "caller-id-42");
    let events = events(response).await;
    assert!(events.len() > 1);

    // Ollama gets the trace context too.
    let saw = upstream_saw(&mock).await;
    let traceparent = saw["traceparent"].as_str().expect("traceparent sent");
    let trace = traceparent.split('-').nth(1).unwrap().to_string();
    assert_eq!(trace.len(), 32);
    let spans = collector.trace(&trace).await;
    let server = named(&spans, "POST /api/llm/complete");
    assert!(server.parent_span_id.is_empty(), "a root span");
    assert_eq!(text(server, "calos.request_id"), "caller-id-42");
    let llm = named(&spans, "chat mock-llama");
    assert_eq!(text(llm, "gen_ai.provider.name"), "ollama");
    assert_eq!(int(llm, "gen_ai.usage.output_tokens"), 3);
    // A stream's server span lasts until its body ended.
    assert!(server.end_time_unix_nano >= llm.end_time_unix_nano);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_to_a_collector_that_is_down_leaves_chat_as_fast() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mock = mock(5, 1000.0, 3).await;
    let endpoint = format!("http://{closed}");
    let (app, user) = traced_app(&mock, &endpoint, &[]).await;
    for stream in [false, true, false] {
        let began = Instant::now();
        let response = app
            .post_chat("/api/llm/complete", &user.token, &ask("mock-gpt", stream))
            .await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(!body.is_empty());
        let took = began.elapsed();
        assert!(took < Duration::from_secs(2), "a chat took {took:?}");
    }
    // Traced requests' ids are their trace ids, 32 hex digits.
    let response = app.get("/api/health", None).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_with_content_capture_on_records_the_prompt_and_the_reply() {
    let collector = collector().await;
    let mock = mock(5, 1000.0, 3).await;
    let (app, user) = traced_app(&mock, &collector.base, &["--otel-capture-content"]).await;
    let response = app
        .post_chat("/api/llm/complete", &user.token, &ask("mock-gpt", true))
        .await;
    assert_eq!(response.status(), 200);
    // No caller id: the request id is the trace id.
    let trace = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let reply: String = events(response)
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            app::wire::CompleteEvent::Delta { delta } => Some(delta),
            _ => None,
        })
        .collect();
    let spans = collector.trace(&trace).await;
    let llm = named(&spans, "chat mock-gpt");
    let input: Value = serde_json::from_str(&text(llm, "gen_ai.input.messages")).unwrap();
    assert_eq!(input[0]["role"], "user");
    assert_eq!(input[0]["parts"][0]["content"], PROMPT);
    let output: Value = serde_json::from_str(&text(llm, "gen_ai.output.messages")).unwrap();
    assert_eq!(output[0]["parts"][0]["content"], reply.as_str());
    assert_eq!(output[0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_follows_a_caller_that_does_not_sample() {
    let collector = collector().await;
    let mock = mock(5, 1000.0, 2).await;
    let (app, user) = traced_app(&mock, &collector.base, &[]).await;
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let not_sampled = format!("00-{unsampled}-b7ad6b7169203331-00");
    let response = chat_with_traceparent(&app, &user, &not_sampled).await;
    assert_eq!(response.headers()["x-request-id"], unsampled);
    // The flag goes upstream as it came.
    let saw = upstream_saw(&mock).await;
    let sent = saw["traceparent"].as_str().unwrap();
    assert!(sent.starts_with(&format!("00-{unsampled}-")) && sent.ends_with("-00"));
    // A sampled request after it: once its trace is in, the first would be
    // too (one queue, in order), and it is not.
    chat_with_traceparent(&app, &user, &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")).await;
    collector.trace(CALLER_TRACE).await;
    assert!(!collector
        .received
        .lock()
        .spans
        .iter()
        .any(|(_, s)| hex::encode(&s.trace_id) == unsampled));
}
