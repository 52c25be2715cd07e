//! `/api/conversations`: a signed-in person's stored chats. Owner-only: an id
//! that is another account's answers 404, exactly like one that never
//! existed, so ids reveal nothing. Chatting in one is `/api/llm/complete`
//! with a `conversationId`.

use crate::conversations::export::{self, Format};
use crate::conversations::{ConversationError, Conversations};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::json::ApiJson;
use crate::http::query::ApiQuery;
use crate::http::state::AppState;
use app::wire::{
    ConversationDetail, ConversationList, ConversationView, CreateConversationRequest,
    ErrorResponse, RenameConversationRequest,
};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

/// Behind the caller's session (the caller adds the check).
pub fn protected() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list).post(create))
        .route(
            "/api/conversations/{id}",
            get(open).patch(rename).delete(remove),
        )
        .route("/api/conversations/{id}/export", get(export_file))
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::NotFound => ApiError::NotFound(e.to_string()),
            ConversationError::Invalid {
                code,
                field,
                message,
            } => ApiError::invalid_field(code, field, message),
            ConversationError::Full { code, message } => ApiError::Conflict {
                code,
                message,
                field: None,
            },
            ConversationError::Db(db) => ApiError::from(db),
        }
    }
}

/// `GET /api/conversations`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// The `nextBefore` of the previous page.
    before: Option<String>,
    /// 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Only conversations whose title contains this (any case).
    #[param(max_length = 200)]
    q: Option<String>,
}

#[utoipa::path(get, path = "/api/conversations", tag = "conversations",
    security(("bearer" = []), ("session_cookie" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "The caller's conversations, newest first (by creation, so pages neither repeat nor skip while chats go on)", body = ConversationList),
        (status = 400, description = "A malformed query or cursor", body = ErrorResponse),
    ))]
async fn list(
    AuthUser(user): AuthUser,
    State(conversations): State<Conversations>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ConversationList>> {
    let limit = match params.limit {
        None => 20,
        Some(n @ 1..=100) => n as usize,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "invalid_query",
                "limit",
                "`limit` is 1-100.",
            ))
        }
    };
    if params.q.as_deref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "invalid_query",
            "q",
            "`q` is at most 200 characters.",
        ));
    }
    // PostgreSQL text cannot hold a NUL, and no title holds a control
    // character: such a search or cursor is refused, not sent to the store.
    for (field, value) in [("q", &params.q), ("before", &params.before)] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_field(
                "invalid_query",
                field,
                format!("`{field}` may not contain control characters."),
            ));
        }
    }
    let page = conversations
        .list(
            &user.user_id,
            params.before.as_deref(),
            limit,
            params.q.as_deref(),
        )
        .await?;
    Ok(Json(page))
}

#[utoipa::path(post, path = "/api/conversations", tag = "conversations",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = CreateConversationRequest,
    responses(
        (status = 201, description = "The new conversation (titled by its first message unless a title is given)", body = ConversationView),
        (status = 400, description = "The title or model is invalid", body = ErrorResponse),
        (status = 409, description = "The account keeps as many conversations as it may (`too_many_conversations`)", body = ErrorResponse),
    ))]
async fn create(
    AuthUser(user): AuthUser,
    State(conversations): State<Conversations>,
    ApiJson(req): ApiJson<CreateConversationRequest>,
) -> ApiResult<(StatusCode, Json<ConversationView>)> {
    let made = conversations
        .create(&user.user_id, req.title.as_deref(), req.model.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(get, path = "/api/conversations/{id}", tag = "conversations",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The conversation and its messages, oldest first; each reply with its model, tokens, status and timing breakdown", body = ConversationDetail),
        (status = 404, description = "The caller has no conversation with this id", body = ErrorResponse),
    ))]
async fn open(
    AuthUser(user): AuthUser,
    State(conversations): State<Conversations>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationDetail>> {
    Ok(Json(conversations.detail(&user.user_id, &id).await?))
}

#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "conversations",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = RenameConversationRequest,
    responses(
        (status = 200, description = "Renamed", body = ConversationView),
        (status = 400, description = "The title is invalid", body = ErrorResponse),
        (status = 404, description = "The caller has no conversation with this id", body = ErrorResponse),
    ))]
async fn rename(
    AuthUser(user): AuthUser,
    State(conversations): State<Conversations>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RenameConversationRequest>,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(
        conversations.rename(&user.user_id, &id, &req.title).await?,
    ))
}

#[utoipa::path(delete, path = "/api/conversations/{id}", tag = "conversations",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 204, description = "Deleted, with its messages"),
        (status = 404, description = "The caller has no conversation with this id", body = ErrorResponse),
    ))]
async fn remove(
    AuthUser(user): AuthUser,
    State(conversations): State<Conversations>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    conversations.delete(&user.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?format=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportParams {
    /// `markdown` (default) or `json`.
    #[param(pattern = "^(markdown|md|json)$")]
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/conversations/{id}/export", tag = "conversations",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The conversation's id"), ExportParams),
    responses(
        (status = 200, description = "The conversation as a file to download (`Content-Disposition: attachment`)", content(
            (String = "text/markdown"),
            (ConversationDetail = "application/json"),
        )),
        (status = 400, description = "An unknown format", body = ErrorResponse),
        (status = 404, description = "The caller has no conversation with this id", body = ErrorResponse),
    ))]
async fn export_file(
    AuthUser(user): AuthUser,
    State(conversations): State<Conversations>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    let format = match params.format.as_deref() {
        None => Format::Markdown,
        Some(text) => Format::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                "invalid_query",
                "format",
                "`format` is `markdown` or `json`.",
            )
        })?,
    };
    let detail = conversations.detail(&user.user_id, &id).await?;
    let body = export::render(&detail, format);
    let name = export::file_name(&detail.conversation.title, format);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // The name is a slug of ASCII letters, digits and dashes: always a valid header.
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
