//! The OpenAI-compatible API under `/v1`: `POST /v1/chat/completions` (whole or
//! streamed as `chat.completion.chunk`s ending in `data: [DONE]`, with
//! `stream_options.include_usage`) and `GET /v1/models`. The calos JWT is the API
//! key, so the official OpenAI SDKs work unchanged against `http://host:5001/v1`.

use super::chat_user::{ChatUser, KeyScope};
use crate::chat::validation::validate;
use crate::chat::{ChatService, StreamItem, Streaming};
use crate::http::error::{ApiError, V1Error};
use crate::http::json::ApiJson;
use crate::http::sse;
use crate::http::state::AppState;
use crate::llm::types::ChatMessage;
use crate::llm::Provider;
use app::wire::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkDelta, MessageContent,
    ModelInfo, ModelList, OpenAiError, OpenAiErrorBody,
};
use app::wire::ErrorResponse;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;

/// The OpenAI-compatible chat endpoint (behind the chat guard).
pub fn chat() -> Router<AppState> {
    Router::new().route("/v1/chat/completions", post(chat_completions))
}

/// The model list (behind the chat guard, so an API key lists what it may use).
pub fn models_router() -> Router<AppState> {
    Router::new().route("/v1/models", get(models))
}

fn flatten(content: MessageContent) -> Result<String, ApiError> {
    match content {
        MessageContent::Text(text) => Ok(text),
        MessageContent::Parts(parts) => parts
            .into_iter()
            .map(|p| match (p.kind.as_str(), p.text) {
                ("text", Some(text)) => Ok(text),
                (kind, _) => Err(ApiError::invalid_field(
                    "unsupported_content",
                    "messages",
                    format!("content parts of type {kind:?} are not supported; send text"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("")),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "A `chat.completion`, or with `stream: true` server-sent `chat.completion.chunk`s ending in `data: [DONE]`", content(
            (ChatCompletion = "application/json"),
            (ChatCompletionChunk = "text/event-stream"),
        )),
        (status = 400, description = "The request is invalid (see `error.field`)", body = ErrorResponse),
        (status = 403, description = "The API key may not use this model (`model_not_allowed`)", body = ErrorResponse),
        (status = 404, description = "No provider serves that model", body = ErrorResponse),
        (status = 429, description = "A rate limit (`type` `rate_limit_exceeded`) or a token budget (`insufficient_quota`) of the key or account has no room, or too many chats in flight; see `Retry-After`", body = ErrorResponse),
        (status = 502, description = "The provider failed or answered something unusable", body = ErrorResponse),
        (status = 504, description = "The provider did not answer in time", body = ErrorResponse),
    ))]
async fn chat_completions(
    State(chat): State<ChatService>,
    ChatUser(ctx): ChatUser,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, V1Error> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(
            ApiError::invalid_field("unsupported_n", "n", "only n = 1 is supported").into(),
        );
    }
    let messages = req
        .messages
        .into_iter()
        .map(|m| {
            flatten(m.content).map(|content| ChatMessage {
                role: m.role,
                content,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let params = validate(
        &req.model,
        messages,
        req.temperature,
        req.max_completion_tokens.or(req.max_tokens),
    )
    .map_err(ApiError::from)?;
    ctx.check_model(&req.model)?;
    let id = format!("chatcmpl-{}", ctx.request_id.replace('-', ""));
    let created = unix_now();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let streaming = chat
            .stream(&ctx, params)
            .await
            .map_err(|e| ApiError::from_chat(e, ctx.provider_detail))?;
        return Ok(chunks(
            streaming,
            id,
            created,
            include_usage,
            ctx.provider_detail,
        ));
    }
    let answer = chat
        .complete(&ctx, params)
        .await
        .map_err(|e| ApiError::from_chat(e, ctx.provider_detail))?;
    let body = ChatCompletion::new(id, created, answer.model, answer.text, answer.usage);
    let mut response = Json(body).into_response();
    sse::server_timing(&mut response, &answer.breakdown.server_timing(true));
    Ok(response)
}

/// A role-only opening chunk, one chunk per token, a `finish_reason` chunk,
/// the usage chunk when asked for, then `[DONE]`; an upstream failure mid-way
/// is an `error` object instead of the closing chunks.
fn chunks(
    streaming: Streaming,
    id: String,
    created: u64,
    include_usage: bool,
    provider_detail: bool,
) -> Response {
    let Streaming {
        model, head, items, ..
    } = streaming;
    let (delta_id, delta_model) = (id.clone(), model.clone());
    let chunk = move |delta: ChunkDelta, finish: Option<&str>| {
        ChatCompletionChunk::choice(&id, created, &model, delta, finish)
    };
    let opening = sse::event(&chunk(
        ChunkDelta {
            content: Some(String::new()),
            role: Some("assistant".into()),
        },
        None,
    ));
    let body = items.flat_map(move |item| {
        let events = match item {
            StreamItem::Delta(text) => vec![Ok(sse::event(&ContentChunk::new(
                &delta_id,
                created,
                &delta_model,
                &text,
            )))],
            StreamItem::Done { usage, breakdown } => {
                let mut events = vec![Ok(sse::event(&chunk(ChunkDelta::default(), Some("stop"))))];
                if include_usage {
                    let mut last = chunk(ChunkDelta::default(), None);
                    last.choices.clear();
                    last.usage = Some(usage);
                    last.timings = Some(breakdown);
                    events.push(Ok(sse::event(&last)));
                }
                events
            }
            StreamItem::Failed(e) => {
                let api = ApiError::from_provider(e, provider_detail);
                let error = OpenAiError {
                    error: OpenAiErrorBody {
                        code: Some(api.code().to_string()),
                        message: api.to_string(),
                        kind: Some("upstream_error".into()),
                    },
                };
                vec![Ok(sse::event(&error))]
            }
            StreamItem::ShuttingDown => {
                let (code, message) = StreamItem::SHUTTING_DOWN;
                let error = OpenAiError {
                    error: OpenAiErrorBody {
                        code: Some(code.to_string()),
                        message: message.to_string(),
                        kind: Some("server_error".into()),
                    },
                };
                vec![Ok(sse::event(&error))]
            }
            StreamItem::Cut => vec![Err(sse::StreamCut)],
        };
        futures::stream::iter(events)
    });
    let events = futures::stream::iter([Ok(opening)])
        .chain(body)
        .chain(futures::stream::once(async { Ok(sse::done()) }));
    sse::respond(events, &head.server_timing(false))
}

/// A token's chunk, serialised from borrowed parts. It writes exactly what
/// [`ChatCompletionChunk::choice`] with a content delta writes (the same
/// fields in the same order), without building that value: per token, that
/// would copy the id and the model into new Strings and allocate the choices.
#[derive(Serialize)]
struct ContentChunk<'a> {
    choices: [ContentChoice<'a>; 1],
    created: u64,
    id: &'a str,
    model: &'a str,
    object: &'static str,
}

#[derive(Serialize)]
struct ContentChoice<'a> {
    delta: ContentDelta<'a>,
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct ContentDelta<'a> {
    content: &'a str,
}

impl<'a> ContentChunk<'a> {
    fn new(id: &'a str, created: u64, model: &'a str, text: &'a str) -> Self {
        Self {
            choices: [ContentChoice {
                delta: ContentDelta { content: text },
                finish_reason: None,
                index: 0,
            }],
            created,
            id,
            model,
            object: "chat.completion.chunk",
        }
    }
}

#[utoipa::path(get, path = "/v1/models", tag = "openai",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The models the providers have right now", body = ModelList)))]
/// What each provider really has right now, and each model with
/// `[[deployment]]`s; an unreachable provider is left out (and logged)
/// rather than failing the whole list.
async fn models(State(chat): State<ChatService>, ChatUser(ctx): ChatUser) -> Json<ModelList> {
    let router = chat.router();
    let declared: Vec<(String, String)> = router
        .deployments()
        .filter_map(|d| Some((d.model.clone()?, d.provider.name().to_string())))
        .collect();
    let implicit = router.deployments().filter(|d| d.model.is_none());
    let lookups = implicit.map(|slot| async move {
        let name = slot.provider.name().to_string();
        let owned_by = match &slot.provider {
            Provider::Sim(_) => "calos (simulated)".to_string(),
            _ => name.clone(),
        };
        match tokio::time::timeout(Duration::from_secs(3), slot.provider.models()).await {
            Ok(Ok(ids)) => ids.into_iter().map(|id| (id, owned_by.clone())).collect(),
            Ok(Err(e)) => {
                tracing::debug!(provider = %name, error = %e, "models: provider skipped");
                Vec::new()
            }
            Err(_) => {
                tracing::debug!(provider = %name, "models: provider timed out");
                Vec::new()
            }
        }
    });
    let mut data: Vec<ModelInfo> = futures::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .chain(declared)
        .map(|(id, owned_by)| ModelInfo {
            id,
            object: "model".into(),
            created: 0,
            owned_by,
        })
        .collect();
    // A key limited to some models lists only those.
    data.retain(|m| ctx.allows_model(&m.id));
    data.sort_by(|a, b| a.id.cmp(&b.id));
    data.dedup_by(|a, b| a.id == b.id);
    Json(ModelList {
        object: "list".into(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_content_chunk_writes_the_same_bytes_as_the_wire_type() {
        let text = "a \"quoted\"\nline";
        let owned = ChatCompletionChunk::choice(
            "chatcmpl-1",
            1_700_000_000,
            "mock-gpt",
            ChunkDelta {
                content: Some(text.into()),
                role: None,
            },
            None,
        );
        let borrowed = ContentChunk::new("chatcmpl-1", 1_700_000_000, "mock-gpt", text);
        assert_eq!(
            serde_json::to_string(&borrowed).ok(),
            serde_json::to_string(&owned).ok()
        );
    }
}
