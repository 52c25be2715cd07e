//! The mock's handlers: Ollama NDJSON and OpenAI SSE, paced token by token,
//! with the current fault applied.

use super::faults::{parse, Fault};
use super::MockState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Deserialize, Default)]
pub struct ChatBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
    /// Kept as sent, for `GET /_mock/last-request`.
    #[serde(default)]
    messages: Option<Value>,
    /// Ollama's `/api/generate` prompt.
    #[serde(default)]
    prompt: Option<Value>,
}

impl ChatBody {
    fn tokens(&self, default: u32) -> u32 {
        let from_options = self
            .options
            .as_ref()
            .and_then(|o| o.get("num_predict"))
            .and_then(Value::as_u64)
            .map(|n| n as u32);
        self.max_tokens
            .or(from_options)
            .unwrap_or(default)
            .clamp(1, 100_000)
            .min(default.max(1))
    }
}

/// The i-th token of every reply, padded with `x`s to `bytes` if longer.
pub fn token(i: u32, bytes: usize) -> String {
    let mut token = if i == 0 {
        "Mock".to_string()
    } else {
        format!(" t{i}")
    };
    if token.len() < bytes {
        token.extend(std::iter::repeat_n('x', bytes - token.len()));
    }
    token
}

/// Counts an open stream; on drop, records whether it finished or was cut off
/// by the client (how tests see that cancellation reached the upstream).
struct OpenStream {
    state: Arc<MockState>,
    finished: bool,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.state.open_streams.fetch_sub(1, Ordering::SeqCst);
        let counter = if self.finished {
            &self.state.completed_streams
        } else {
            &self.state.cancelled_streams
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

enum Format {
    OllamaChat,
    OllamaGenerate,
    OpenAi { include_usage: bool },
}

/// Applies request-level faults; `None` means answer normally.
fn refuse_with(state: &MockState) -> Option<Response> {
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    match state.fault() {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(
                (
                    status,
                    Json(json!({ "error": { "message": format!("mock fault: HTTP {code}") } })),
                )
                    .into_response(),
            )
        }
        Fault::RateLimit(secs) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "error": { "message": "mock fault: rate limited" } })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Some(r)
        }
        Fault::FailFirst(k) if n < u64::from(k) => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": { "message": "mock fault: failing first requests" } })),
            )
                .into_response(),
        ),
        Fault::Html => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!DOCTYPE html><html><body><h1>Sign in to the network</h1></body></html>",
            )
                .into_response(),
        ),
        Fault::InvalidUtf8 => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/event-stream")],
                &b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n{\"message\":{\"content\":\"\xc3\x28\"}}\n"[..],
            )
                .into_response(),
        ),
        Fault::Redirect => Some(
            (
                StatusCode::FOUND,
                [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
            )
                .into_response(),
        ),
        _ => None,
    }
}

fn unknown_model(state: &MockState, model: &str) -> Option<Response> {
    (!state.models.iter().any(|m| m == model)).then(|| {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("model '{model}' not found") })),
        )
            .into_response()
    })
}

fn chunk_line(format: &Format, model: &str, i: u32, text: &str) -> String {
    match format {
        Format::OllamaChat => format!(
            "{}\n",
            json!({ "model": model, "message": { "role": "assistant", "content": text }, "done": false })
        ),
        Format::OllamaGenerate => format!(
            "{}\n",
            json!({ "model": model, "response": text, "done": false })
        ),
        Format::OpenAi { .. } => {
            let delta = if i == 0 {
                json!({ "role": "assistant", "content": text })
            } else {
                json!({ "content": text })
            };
            format!(
                "data: {}\n\n",
                json!({ "id": "mock", "object": "chat.completion.chunk", "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": null }] })
            )
        }
    }
}

fn final_lines(
    format: &Format,
    model: &str,
    count: u32,
    started: Instant,
    ttft: Duration,
) -> String {
    let total = started.elapsed().as_nanos() as u64;
    let eval = total.saturating_sub(ttft.as_nanos() as u64);
    match format {
        Format::OllamaChat | Format::OllamaGenerate => {
            let mut last = json!({
                "model": model, "done": true, "done_reason": "stop",
                "total_duration": total, "load_duration": 0, "prompt_eval_count": 5,
                "prompt_eval_duration": ttft.as_nanos() as u64, "eval_count": count, "eval_duration": eval,
            });
            if matches!(format, Format::OllamaChat) {
                last["message"] = json!({ "role": "assistant", "content": "" });
            } else {
                last["response"] = json!("");
            }
            format!("{last}\n")
        }
        Format::OpenAi { include_usage } => {
            let mut out = format!(
                "data: {}\n\n",
                json!({ "id": "mock", "object": "chat.completion.chunk", "model": model, "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] })
            );
            if *include_usage {
                out += &format!(
                    "data: {}\n\n",
                    json!({ "id": "mock", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": { "prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count } })
                );
            }
            out + "data: [DONE]\n\n"
        }
    }
}

/// The paced body, with stream faults applied.
fn paced(state: Arc<MockState>, format: Format, model: String, count: u32) -> Body {
    let fault = state.fault();
    state.open_streams.fetch_add(1, Ordering::SeqCst);
    let guard = OpenStream {
        state: state.clone(),
        finished: false,
    };
    let started = Instant::now();
    let stream = futures::stream::unfold((0u32, guard, false), move |(i, mut guard, ended)| {
        let (state, model, fault) = (state.clone(), model.clone(), fault.clone());
        let format_ref = match &format {
            Format::OllamaChat => Format::OllamaChat,
            Format::OllamaGenerate => Format::OllamaGenerate,
            Format::OpenAi { include_usage } => Format::OpenAi {
                include_usage: *include_usage,
            },
        };
        async move {
            if ended {
                return None;
            }
            // Pace the tokens; the closing line follows the last token at once.
            if i < count {
                pause(if i == 0 { state.ttft } else { state.gap }).await;
            }
            match fault {
                Fault::StallAfter(n) if i == n => std::future::pending::<()>().await,
                Fault::DropAfter(n) if i == n => {
                    return Some((
                        Err(std::io::Error::other("mock fault: connection dropped")),
                        (i, guard, true),
                    ));
                }
                Fault::MalformedAfter(n) if i == n => {
                    let junk = match format_ref {
                        Format::OpenAi { .. } => "data: {this is not json\n\n",
                        _ => "{this is not json\n",
                    };
                    return Some((Ok(Bytes::from(junk)), (i + 1, guard, false)));
                }
                _ => {}
            }
            if i >= count {
                guard.finished = true;
                let last = final_lines(&format_ref, &model, count, started, state.ttft);
                return Some((Ok(Bytes::from(last)), (i, guard, true)));
            }
            Some((
                Ok(Bytes::from(chunk_line(
                    &format_ref,
                    &model,
                    i,
                    &token(i, state.token_bytes),
                ))),
                (i + 1, guard, false),
            ))
        }
    });
    Body::from_stream(stream)
}

fn whole_text(count: u32, token_bytes: usize) -> String {
    (0..count).map(|i| token(i, token_bytes)).collect()
}

/// The W3C `traceparent` a request came with, as sent (`null` without one):
/// whether calos passed its trace context upstream.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn answer(
    state: Arc<MockState>,
    mut body: ChatBody,
    format: Format,
    headers: &HeaderMap,
) -> Response {
    *state.last_request.lock() = Some(json!({
        "model": body.model,
        "messages": body.messages.take(),
        "prompt": body.prompt.take(),
        "traceparent": traceparent(headers),
    }));
    if let Some(r) = refuse_with(&state) {
        return r;
    }
    if let Some(r) = unknown_model(&state, &body.model) {
        return r;
    }
    let count = body.tokens(state.tokens);
    let streaming = body
        .stream
        .unwrap_or(!matches!(format, Format::OpenAi { .. }));
    if streaming {
        let content_type = match format {
            Format::OpenAi { .. } => "text/event-stream",
            _ => "application/x-ndjson",
        };
        let mut response = Response::new(paced(state, format, body.model, count));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return response;
    }
    let started = Instant::now();
    pause(state.ttft + state.gap * count.saturating_sub(1)).await;
    let text = whole_text(count, state.token_bytes);
    match format {
        Format::OpenAi { .. } => {
            let mut r = Json(json!({
                "id": "mock", "object": "chat.completion", "model": body.model,
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count },
            }))
            .into_response();
            let ms = started.elapsed().as_millis().to_string();
            if let Ok(v) = HeaderValue::from_str(&ms) {
                r.headers_mut().insert("openai-processing-ms", v);
            }
            r
        }
        Format::OllamaChat | Format::OllamaGenerate => {
            let total = started.elapsed().as_nanos() as u64;
            let mut v = json!({ "model": body.model, "done": true, "total_duration": total, "eval_count": count, "prompt_eval_count": 5 });
            if matches!(format, Format::OllamaChat) {
                v["message"] = json!({ "role": "assistant", "content": text });
            } else {
                v["response"] = json!(text);
            }
            Json(v).into_response()
        }
    }
}

pub async fn ollama_chat(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<ChatBody>,
) -> Response {
    answer(state, body, Format::OllamaChat, &headers).await
}

pub async fn ollama_generate(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<ChatBody>,
) -> Response {
    answer(state, body, Format::OllamaGenerate, &headers).await
}

pub async fn openai_chat(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<ChatBody>,
) -> Response {
    let include_usage = body
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    answer(state, body, Format::OpenAi { include_usage }, &headers).await
}

pub async fn ollama_tags(State(state): State<Arc<MockState>>) -> Json<Value> {
    let models: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({ "name": m, "model": m, "size": 0 }))
        .collect();
    Json(json!({ "models": models }))
}

pub async fn openai_models(State(state): State<Arc<MockState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": 0, "owned_by": "mock" }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

#[derive(Deserialize)]
pub struct SetFault {
    fault: String,
}

pub async fn set_fault(
    State(state): State<Arc<MockState>>,
    Json(body): Json<SetFault>,
) -> Response {
    match parse(&body.fault) {
        Ok(fault) => {
            state.requests.store(0, Ordering::SeqCst);
            state.set_fault(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response(),
    }
}

/// `GET /_mock/last-request`: the model, messages and `traceparent` of the
/// last chat request, as received (`null` before the first): what calos sent
/// upstream.
pub async fn last_request(State(state): State<Arc<MockState>>) -> Json<Value> {
    Json(state.last_request.lock().clone().unwrap_or(Value::Null))
}

pub async fn stats(State(state): State<Arc<MockState>>) -> Json<Value> {
    Json(json!({
        "requests": state.requests.load(Ordering::SeqCst),
        "openStreams": state.open_streams.load(Ordering::SeqCst),
        "cancelledStreams": state.cancelled_streams.load(Ordering::SeqCst),
        "completedStreams": state.completed_streams.load(Ordering::SeqCst),
    }))
}

/// Sleeps, except for zero: tokio rounds even a zero sleep up to its next timer
/// tick (~1 ms), which would make "no delay" benchmarks measure the timer.
async fn pause(d: std::time::Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
