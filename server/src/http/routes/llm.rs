//! `POST /api/llm/complete`: the original guide's chat endpoint, streamed or whole, with
//! the timing breakdown in `Server-Timing`, in the body on request, and in the
//! stream's final event. With a `conversationId` it continues a stored
//! conversation: the new messages are stored, the stored history goes to the
//! model, and the reply is stored however it ends.

use super::chat_user::{ChatUser, KeyScope};
use crate::chat::validation::{
    validate, validate_messages, validate_model_name, validate_sampling,
};
use crate::chat::{ChatContext, ChatService, StreamItem, Streaming};
use crate::conversations::reply::{Ending, ReplyRecorder};
use crate::conversations::Conversations;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::sse;
use crate::http::state::AppState;
use crate::llm::types::{ChatMessage, ChatParams};
use crate::observability::timing::{ms, Breakdown};
use app::wire::{
    CompleteEvent, CompleteRequest, CompleteResponse, ConversationTurn, ErrorResponse,
    MessageStatus,
};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use std::time::{Duration, Instant};

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
        (status = 404, description = "No provider serves that model, or the caller has no conversation with that `conversationId`", body = ErrorResponse),
        (status = 409, description = "The conversation holds as many messages as it may (`conversation_full`), or the account's conversations as many bytes (`storage_full`)", body = ErrorResponse),
        (status = 429, description = "A rate limit (`rate_limited`) or token budget (`budget_exceeded`) of the key or account has no room, or too many chats in flight; see `Retry-After`", body = ErrorResponse),
        (status = 502, description = "The provider failed or answered something unusable", body = ErrorResponse),
        (status = 504, description = "The provider did not answer in time", body = ErrorResponse),
    ))]
async fn complete(
    State(chat): State<ChatService>,
    State(conversations): State<Conversations>,
    ChatUser(mut ctx): ChatUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> ApiResult<Response> {
    let messages: Vec<ChatMessage> = req
        .messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content,
        })
        .collect();
    let detail = wants_detail(&headers, req.include_timings);
    let Some(conversation_id) = req.conversation_id else {
        if req.regenerate {
            return Err(ApiError::invalid_field(
                "invalid_request",
                "regenerate",
                "`regenerate` needs a `conversationId`: it answers a stored conversation again.",
            ));
        }
        // Stateless, as the original guide's scripts expect.
        let params = validate(&req.model, messages, req.temperature, req.max_tokens)?;
        ctx.check_model(&req.model)?;
        return answer(&chat, &ctx, params, req.stream, detail, None).await;
    };
    // The new messages are checked before anything is stored.
    let model = validate_model_name(&req.model)?.to_string();
    validate_sampling(req.temperature, req.max_tokens)?;
    if !req.regenerate {
        validate_messages(&messages)?;
    }
    ctx.check_model(&model)?;
    let storing = Instant::now();
    let turn = conversations
        .begin_turn(
            &ctx.user_id,
            &conversation_id,
            messages,
            req.regenerate,
            &model,
        )
        .await?;
    // Reading and writing the conversation is this request's database time too.
    ctx.db += turn.database;
    ctx.trace.phase("database", storing, Instant::now());
    // A regenerated reply is a new answer, never the cached or shared one.
    ctx.fresh |= req.regenerate;
    let recorder = ReplyRecorder::new(&conversations, &turn, &ctx.request_id, &model, "");
    // The history was fitted to these limits; should it still fail them, the
    // reserved reply says why.
    let params = match validate(
        &model,
        turn.history.clone(),
        req.temperature,
        req.max_tokens,
    ) {
        Ok(params) => params,
        Err(invalid) => {
            let ending = Ending {
                status: MessageStatus::Failed,
                error_code: Some(invalid.code),
                usage: None,
                timings: None,
            };
            recorder.finish(ending).await;
            return Err(invalid.into());
        }
    };
    answer(
        &chat,
        &ctx,
        params,
        req.stream,
        detail,
        Some((recorder, turn.wire())),
    )
    .await
}

/// Counts storing the reply as this request's database time: the client
/// waits for it (the reply is stored before the answer or the stream's last
/// event goes out), and left out it would look like network time to the
/// client. The stored copy of the breakdown cannot include its own write.
fn add_reply_write(breakdown: &mut Breakdown, took: Duration) {
    let took = ms(took);
    breakdown.database += took;
    breakdown.total += took;
}

/// A reply being stored in its conversation, and what the reply says about it.
type Recorded = (ReplyRecorder, ConversationTurn);

/// Asks the model and frames the answer, whole or streamed; a stored turn's
/// reply is recorded however it ends.
async fn answer(
    chat: &ChatService,
    ctx: &ChatContext,
    params: ChatParams,
    stream: bool,
    detail: bool,
    recorded: Option<Recorded>,
) -> ApiResult<Response> {
    if stream {
        return match chat.stream(ctx, params).await {
            Ok(streaming) => Ok(events(streaming, ctx.provider_detail, recorded)),
            Err(e) => {
                let error = ApiError::from_chat(e, ctx.provider_detail);
                record_failure(recorded, error.code()).await;
                Err(error)
            }
        };
    }
    let mut answer = match chat.complete(ctx, params).await {
        Ok(answer) => answer,
        Err(e) => {
            let error = ApiError::from_chat(e, ctx.provider_detail);
            record_failure(recorded, error.code()).await;
            return Err(error);
        }
    };
    let conversation = match recorded {
        Some((mut recorder, turn)) => {
            recorder.set_provider(&answer.provider);
            recorder.set_text(answer.text.clone());
            let storing = Instant::now();
            recorder
                .finish(Ending {
                    status: MessageStatus::Complete,
                    error_code: None,
                    usage: Some(answer.usage),
                    timings: Some(&answer.breakdown),
                })
                .await;
            ctx.trace.phase("database", storing, Instant::now());
            add_reply_write(&mut answer.breakdown, storing.elapsed());
            Some(turn)
        }
        None => None,
    };
    let timings = detail.then(|| answer.breakdown.clone());
    let body = CompleteResponse {
        conversation,
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

/// Stores a reply that failed before its first byte, with the error's code.
async fn record_failure(recorded: Option<Recorded>, code: &str) {
    if let Some((recorder, _)) = recorded {
        recorder
            .finish(Ending {
                status: MessageStatus::Failed,
                error_code: Some(code),
                usage: None,
                timings: None,
            })
            .await;
    }
}

/// A stream item as the event the client gets (`Err` for a cut reply, which
/// the HTTP layer aborts).
fn event_of(
    item: StreamItem,
    model: &str,
    provider: &str,
    provider_detail: bool,
    conversation: Option<ConversationTurn>,
) -> Result<CompleteEvent, sse::StreamCut> {
    Ok(match item {
        StreamItem::Delta(text) => CompleteEvent::delta(text),
        StreamItem::Done { usage, breakdown } => {
            CompleteEvent::Done(Box::new(app::wire::StreamDone {
                conversation,
                done: true,
                model: model.to_string(),
                provider: provider.to_string(),
                timings: breakdown,
                usage,
            }))
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
    })
}

/// `data: {"delta":"…"}` per token, then `data: {"done":true,…}` with usage and
/// the full breakdown, or `data: {"error":{…}}` if the provider fails mid-way.
fn events(streaming: Streaming, provider_detail: bool, recorded: Option<Recorded>) -> Response {
    let Streaming {
        provider,
        model,
        head,
        items,
    } = streaming;
    let Some((mut recorder, turn)) = recorded else {
        let events = items.map(move |item| {
            event_of(item, &model, &provider, provider_detail, None).map(|e| sse::event(&e))
        });
        return sse::respond(events, &head.server_timing(false));
    };
    recorder.set_provider(&provider);
    // The reply is stored before its last event goes out, so a client that
    // reloads on `done` finds it. A client that leaves drops the recorder
    // with this stream, which stores what it was sent as `stopped`.
    let state = (items, Some(recorder), Some(turn));
    let events = futures::stream::unfold(state, move |(mut items, mut recorder, mut turn)| {
        let (model, provider) = (model.clone(), provider.clone());
        async move {
            let mut item = items.next().await?;
            let ending = match &item {
                StreamItem::Delta(text) => {
                    if let Some(recorder) = recorder.as_mut() {
                        recorder.push(text);
                    }
                    None
                }
                StreamItem::Done { usage, breakdown } => Some(Ending {
                    status: MessageStatus::Complete,
                    error_code: None,
                    usage: Some(*usage),
                    timings: Some(breakdown),
                }),
                StreamItem::Failed(e) => Some(Ending {
                    status: MessageStatus::Failed,
                    error_code: Some(e.code()),
                    usage: None,
                    timings: None,
                }),
                StreamItem::ShuttingDown => Some(Ending {
                    status: MessageStatus::Failed,
                    error_code: Some(StreamItem::SHUTTING_DOWN.0),
                    usage: None,
                    timings: None,
                }),
                StreamItem::Cut => None,
            };
            if let Some(ending) = ending {
                if let Some(recorder) = recorder.take() {
                    let storing = Instant::now();
                    recorder.finish(ending).await;
                    if let StreamItem::Done { breakdown, .. } = &mut item {
                        add_reply_write(breakdown, storing.elapsed());
                    }
                }
            }
            let done = matches!(item, StreamItem::Done { .. });
            let conversation = if done { turn.take() } else { None };
            let event = event_of(item, &model, &provider, provider_detail, conversation)
                .map(|e| sse::event(&e));
            Some((event, (items, recorder, turn)))
        }
    });
    sse::respond(events, &head.server_timing(false))
}
