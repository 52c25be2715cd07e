//! `POST /api/llm/complete`: the seed's chat endpoint, streamed or whole, with
//! the timing breakdown in `Server-Timing`, in the body on request, and in the
//! stream's final event.

use super::chat_user::ChatUser;
use crate::chat::validation::validate;
use crate::chat::{ChatService, StreamItem, Streaming};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use crate::llm::types::ChatMessage;
use app::wire::CompleteRequest;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;
use std::convert::Infallible;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/llm/complete", post(complete))
}

pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Headers every stream carries so proxies relay each event as it is written.
pub fn stream_headers(response: &mut Response, server_timing: &str) {
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(value) = HeaderValue::from_str(server_timing) {
        headers.insert(SERVER_TIMING, value);
    }
}

fn wants_detail(headers: &HeaderMap, flag: bool) -> bool {
    flag || headers
        .get("x-timing-detail")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

async fn complete(
    State(chat): State<ChatService>,
    ChatUser(ctx): ChatUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> ApiResult<Response> {
    let messages = req
        .messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content,
        })
        .collect();
    let params = validate(&req.model, messages, req.temperature, req.max_tokens)?;
    if req.stream {
        let streaming = chat.stream(&ctx, params).await.map_err(ApiError::from)?;
        return Ok(sse(streaming));
    }
    let answer = chat.complete(&ctx, params).await.map_err(ApiError::from)?;
    let mut body = json!({
        "success": true,
        "text": answer.text,
        "model": answer.model,
        "provider": answer.provider,
        "usage": answer.usage,
    });
    if wants_detail(&headers, req.include_timings) {
        body["timings"] = json!(answer.breakdown);
    }
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&answer.breakdown.server_timing(true)) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    Ok(response)
}

/// `data: {"delta":"…"}` per token, then `data: {"done":true,…}` with usage and
/// the full breakdown, or `data: {"error":{…}}` if the provider fails mid-way.
fn sse(streaming: Streaming) -> Response {
    let Streaming {
        provider,
        model,
        head,
        items,
    } = streaming;
    let events = items.map(move |item| {
        let data = match item {
            StreamItem::Delta(text) => json!({ "delta": text }),
            StreamItem::Done { usage, breakdown } => json!({
                "done": true, "model": model, "provider": provider, "usage": usage, "timings": breakdown,
            }),
            StreamItem::Failed(e) => {
                let api = ApiError::from(e);
                json!({ "error": { "code": api.code(), "message": api.to_string() } })
            }
        };
        Ok::<_, Infallible>(Event::default().data(data.to_string()))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    stream_headers(&mut response, &head.server_timing(false));
    response
}
