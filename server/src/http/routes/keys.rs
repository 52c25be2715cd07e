//! `/api/keys`: a signed-in person makes, lists and revokes their own API
//! keys. Sessions only: a key cannot make or revoke keys (see `AuthUser`).
//! Another account's key id answers 404, exactly like one that never existed.

use crate::auth::api_keys::{models_of, ApiKeys, KeyError};
use crate::db::api_keys::KeyRow;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use app::wire::{
    CreateKeyRequest, CreatedKeyResponse, ErrorResponse, KeyView, KeysResponse, SuccessResponse,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};

/// Behind the caller's session (the caller adds the check).
pub fn protected() -> Router<AppState> {
    Router::new()
        .route("/api/keys", get(list).post(create))
        .route("/api/keys/{key_id}", delete(revoke))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn expiry(row: &KeyRow) -> Option<String> {
    row.expires_at
        .and_then(|at| DateTime::from_timestamp(at, 0))
        .map(rfc3339)
}

fn view(row: KeyRow) -> KeyView {
    KeyView {
        models: models_of(&row),
        expires_at: expiry(&row),
        created_at: rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(rfc3339),
        limits: app::wire::LimitsView::from(&row.limits()),
        id: row.key_id,
        name: row.name,
        prefix: row.prefix,
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::BadName => ApiError::invalid_field("invalid_field", "name", e.to_string()),
            KeyError::BadModels(_) => {
                ApiError::invalid_field("invalid_field", "models", e.to_string())
            }
            KeyError::BadExpiry => {
                ApiError::invalid_field("invalid_field", "expiresAt", e.to_string())
            }
            KeyError::TooMany => ApiError::Conflict {
                code: "too_many_keys",
                message: e.to_string(),
                field: None,
            },
            KeyError::Invalid => ApiError::Unauthorized {
                code: "invalid_api_key",
                message: e.to_string(),
            },
            KeyError::Expired => ApiError::Unauthorized {
                code: "api_key_expired",
                message: e.to_string(),
            },
            KeyError::Limits(limit) => {
                ApiError::invalid_field("invalid_field", limit.field(), limit.to_string())
            }
            KeyError::Db(db) => ApiError::from(db),
        }
    }
}

#[utoipa::path(post, path = "/api/keys", tag = "keys",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The key; its secret is shown this once", body = CreatedKeyResponse),
        (status = 400, description = "The name, models, expiry or a limit is invalid, or a limit exceeds the owner's", body = ErrorResponse),
        (status = 409, description = "The account has 100 keys already", body = ErrorResponse),
    ))]
async fn create(
    AuthUser(user): AuthUser,
    State(keys): State<ApiKeys>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKeyResponse>)> {
    let limits = crate::usage::limits::validate(
        req.rpm,
        req.tpm,
        req.budget_tokens,
        req.budget_period.as_deref(),
    )
    .map_err(KeyError::from)?;
    let issued = keys
        .create(
            &user,
            &req.name,
            req.models.as_deref(),
            req.expires_at.as_deref(),
            limits,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyResponse {
            success: true,
            key: issued.secret,
            view: view(issued.row),
        }),
    ))
}

#[utoipa::path(get, path = "/api/keys", tag = "keys",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The caller's keys, newest first, without secrets", body = KeysResponse)))]
async fn list(
    AuthUser(user): AuthUser,
    State(keys): State<ApiKeys>,
) -> ApiResult<Json<KeysResponse>> {
    let rows = keys.list(&user.user_id).await?;
    Ok(Json(KeysResponse {
        success: true,
        keys: rows.into_iter().map(view).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/keys/{key_id}", tag = "keys",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("key_id" = String, Path, description = "The key's id (from the list)")),
    responses(
        (status = 200, description = "Revoked: the key stops working at once", body = SuccessResponse),
        (status = 404, description = "The caller has no key with this id", body = ErrorResponse),
    ))]
async fn revoke(
    AuthUser(user): AuthUser,
    State(keys): State<ApiKeys>,
    Path(key_id): Path<String>,
) -> ApiResult<Json<SuccessResponse>> {
    if keys.revoke(&user.user_id, &key_id).await? {
        Ok(Json(SuccessResponse::OK))
    } else {
        Err(ApiError::NotFound(
            "You have no API key with this id.".into(),
        ))
    }
}
