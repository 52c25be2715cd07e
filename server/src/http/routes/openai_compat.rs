//! The OpenAI-compatible API under `/v1`: `POST /v1/chat/completions` (whole or
//! streamed as `chat.completion.chunk`s ending in `data: [DONE]`, with
//! `stream_options.include_usage`) and `GET /v1/models`. The calos JWT is the API
//! key, so the official OpenAI SDKs work unchanged against `http://host:5001/v1`.

use super::chat_user::ChatUser;
use super::llm::{stream_headers, SERVER_TIMING};
use crate::chat::validation::validate;
use crate::chat::{ChatService, StreamItem, Streaming};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use crate::llm::types::ChatMessage;
use crate::llm::Provider;
use app::wire::{ModelInfo, ModelList};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;

/// The OpenAI-compatible chat endpoint (behind the chat guard).
pub fn chat() -> Router<AppState> {
    Router::new().route("/v1/chat/completions", post(chat_completions))
}

/// The model list (any signed-in caller).
pub fn protected() -> Router<AppState> {
    Router::new().route("/v1/models", get(models))
}

/// The request fields calos honours. Anything else is refused rather than
/// silently ignored (and no field can choose the upstream).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
    /// An end-user id for the provider's abuse tracking; calos has its own.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: Content,
}

/// A message's content: a string, or the array-of-parts form the SDKs also send.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

fn flatten(content: Content) -> Result<String, ApiError> {
    match content {
        Content::Text(text) => Ok(text),
        Content::Parts(parts) => parts
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

async fn chat_completions(
    State(chat): State<ChatService>,
    ChatUser(ctx): ChatUser,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> ApiResult<Response> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid_field(
            "unsupported_n",
            "n",
            "only n = 1 is supported",
        ));
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
    )?;
    let id = format!("chatcmpl-{}", ctx.request_id.replace('-', ""));
    let created = unix_now();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let streaming = chat.stream(&ctx, params).await.map_err(ApiError::from)?;
        return Ok(sse(streaming, id, created, include_usage));
    }
    let answer = chat.complete(&ctx, params).await.map_err(ApiError::from)?;
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": answer.model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer.text }, "finish_reason": "stop" }],
        "usage": answer.usage,
    });
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&answer.breakdown.server_timing(true)) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    Ok(response)
}

fn sse(streaming: Streaming, id: String, created: u64, include_usage: bool) -> Response {
    let Streaming {
        model, head, items, ..
    } = streaming;
    let chunk = move |delta: serde_json::Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let opening = chunk(json!({ "role": "assistant", "content": "" }), None);
    let body = items.flat_map(move |item| {
        let events: Vec<serde_json::Value> = match item {
            StreamItem::Delta(text) => vec![chunk(json!({ "content": text }), None)],
            StreamItem::Done { usage, breakdown } => {
                let mut events = vec![chunk(json!({}), Some("stop"))];
                if include_usage {
                    let mut last = chunk(json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = json!(usage);
                    // Extra field: OpenAI clients ignore it, calos tools read it.
                    last["timings"] = json!(breakdown);
                    events.push(last);
                }
                events
            }
            StreamItem::Failed(e) => {
                let api = ApiError::from(e);
                vec![json!({ "error": { "message": api.to_string(), "type": "upstream_error", "code": api.code() } })]
            }
        };
        futures::stream::iter(events)
    });
    let data = futures::stream::iter([opening])
        .chain(body)
        .map(|v| v.to_string())
        .chain(futures::stream::iter(["[DONE]".to_string()]))
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    let mut response = Sse::new(data)
        .keep_alive(KeepAlive::default())
        .into_response();
    stream_headers(&mut response, &head.server_timing(false));
    response
}

/// What each provider really has right now; an unreachable provider is left
/// out (and logged) rather than failing the whole list.
async fn models(State(chat): State<ChatService>, _user: AuthUser) -> Json<ModelList> {
    let lookups = chat.router().providers().map(|slot| async move {
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
        .map(|(id, owned_by)| ModelInfo {
            id,
            object: "model".into(),
            created: 0,
            owned_by,
        })
        .collect();
    data.sort_by(|a, b| a.id.cmp(&b.id));
    Json(ModelList {
        object: "list".into(),
        data,
    })
}
