//! `POST /api/llm/complete`: the original guide's chat endpoint, streamed or whole, with
//! the timing breakdown in `Server-Timing`, in the body on request, and in the
//! stream's final event.

use super::chat_user::{ChatUser, KeyScope};
use crate::chat::validation::validate;
use crate::chat::{ChatService, StreamItem, Streaming};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::sse;
use crate::http::state::AppState;
use crate::llm::types::ChatMessage;
use app::wire::{CompleteEvent, CompleteRequest, CompleteResponse, ErrorResponse};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/llm/complete", post(complete))
}

fn wants_detail(headers: &HeaderMap, flag: bool) -> bool {
    flag || headers
        .get("x-timing-detail")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

#[utoipa::path(post, path = "/api/llm/complete", tag = "chat",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = CompleteRequest,
    params(("X-Timing-Detail" = Option<String>, Header, description = "`true` or `1`: include the timing breakdown in the reply")),
    responses(
        (status = 200, description = "The answer, whole (JSON) or streamed (`stream: true`: server-sent events whose `data` is a `CompleteEvent`, the last one `done` or `error`). `Server-Timing` carries the breakdown", content(
            (CompleteResponse = "application/json"),
            (CompleteEvent = "text/event-stream"),
        )),
        (status = 400, description = "The request is invalid (see `error.field`)", body = ErrorResponse),
        (status = 403, description = "The API key may not use this model (`model_not_allowed`)", body = ErrorResponse),
        (status = 404, description = "No provider serves that model", body = ErrorResponse),
        (status = 429, description = "A rate limit (`rate_limited`) or token budget (`budget_exceeded`) of the key or account has no room, or too many chats in flight; see `Retry-After`", body = ErrorResponse),
        (status = 502, description = "The provider failed or answered something unusable", body = ErrorResponse),
        (status = 504, description = "The provider did not answer in time", body = ErrorResponse),
    ))]
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
    ctx.check_model(&req.model)?;
    if req.stream {
        let streaming = chat
            .stream(&ctx, params)
            .await
            .map_err(|e| ApiError::from_chat(e, ctx.provider_detail))?;
        return Ok(events(streaming, ctx.provider_detail));
    }
    let answer = chat
        .complete(&ctx, params)
        .await
        .map_err(|e| ApiError::from_chat(e, ctx.provider_detail))?;
    let timings = wants_detail(&headers, req.include_timings).then(|| answer.breakdown.clone());
    let body = CompleteResponse {
        model: answer.model,
        provider: answer.provider,
        success: true,
        text: answer.text,
        timings,
        usage: answer.usage,
    };
    let mut response = Json(body).into_response();
    sse::server_timing(&mut response, &answer.breakdown.server_timing(true));
    Ok(response)
}

/// `data: {"delta":"…"}` per token, then `data: {"done":true,…}` with usage and
/// the full breakdown, or `data: {"error":{…}}` if the provider fails mid-way.
fn events(streaming: Streaming, provider_detail: bool) -> Response {
    let Streaming {
        provider,
        model,
        head,
        items,
    } = streaming;
    let events = items.map(move |item| {
        let event = match item {
            StreamItem::Delta(text) => CompleteEvent::delta(text),
            StreamItem::Done { usage, breakdown } => {
                CompleteEvent::done(model.clone(), provider.clone(), usage, breakdown)
            }
            StreamItem::Failed(e) => {
                let api = ApiError::from_provider(e, provider_detail);
                CompleteEvent::error(api.code(), api.to_string())
            }
            StreamItem::ShuttingDown => {
                let (code, message) = StreamItem::SHUTTING_DOWN;
                CompleteEvent::error(code, message.to_string())
            }
            StreamItem::Cut => return Err(sse::StreamCut),
        };
        Ok(sse::event(&event))
    });
    sse::respond(events, &head.server_timing(false))
}
