//! `/api/monitor/invites`: administrators make, list and withdraw the
//! single-use sign-up links that `CALOS_REGISTRATION=invite` asks for. On the
//! dashboard listener, behind the same admin check as the rest of
//! `/api/monitor/*`. Invites can be made whatever the policy, so links are
//! ready before a gateway switches from `open` to `invite`.

use crate::auth::invites::{self, InviteError, DEFAULT_INVITE_HOURS};
use crate::auth::AuthService;
use crate::db::invites::InviteRow;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AdminUser;
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use app::wire::{
    CreateInviteRequest, CreatedInviteResponse, ErrorResponse, InviteView, InvitesResponse,
    SuccessResponse,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};

/// Administrators only (the caller adds the check).
pub fn admin() -> Router<AppState> {
    Router::new()
        .route("/api/monitor/invites", get(list).post(create))
        .route("/api/monitor/invites/{invite_id}", delete(revoke))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn view(row: InviteRow, now: i64) -> InviteView {
    InviteView {
        state: invites::state(&row, now).to_string(),
        expires_at: rfc3339(DateTime::from_timestamp(row.expires_at, 0).unwrap_or_default()),
        created_at: rfc3339(row.created_at),
        invite_id: row.invite_id,
        note: row.note,
        used_by: row.used_by,
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::BadExpiry => {
                ApiError::invalid_field("invalid_field", "expiresInHours", e.to_string())
            }
            InviteError::BadNote => ApiError::invalid_field("invalid_field", "note", e.to_string()),
            InviteError::TooMany(_) => ApiError::Conflict {
                code: "too_many_invites",
                message: e.to_string(),
                field: None,
            },
            InviteError::Db(db) => ApiError::from(db),
        }
    }
}

#[utoipa::path(post, path = "/api/monitor/invites", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = CreateInviteRequest,
    responses(
        (status = 201, description = "The invite; its link is shown this once", body = CreatedInviteResponse),
        (status = 400, description = "The note or expiry is invalid", body = ErrorResponse),
        (status = 409, description = "Too many invites are open already", body = ErrorResponse),
    ))]
async fn create(
    AdminUser(admin): AdminUser,
    State(auth): State<AuthService>,
    ApiJson(req): ApiJson<CreateInviteRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInviteResponse>)> {
    let hours = req.expires_in_hours.unwrap_or(DEFAULT_INVITE_HOURS);
    let issued = auth
        .issue_invite(&admin, req.note.as_deref(), hours)
        .await?;
    let url = auth.invite_link(&issued.token);
    Ok((
        StatusCode::CREATED,
        Json(CreatedInviteResponse {
            success: true,
            invite: view(issued.row, Utc::now().timestamp()),
            url,
            token: issued.token,
        }),
    ))
}

#[utoipa::path(get, path = "/api/monitor/invites", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The newest 200 invites (no secrets) and the registration policy", body = InvitesResponse),
    ))]
async fn list(
    _admin: AdminUser,
    State(auth): State<AuthService>,
) -> ApiResult<Json<InvitesResponse>> {
    let now = Utc::now().timestamp();
    let rows = auth.invites().await?;
    Ok(Json(InvitesResponse {
        success: true,
        registration: auth.registration().as_str().to_string(),
        invites: rows.into_iter().map(|row| view(row, now)).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/monitor/invites/{invite_id}", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("invite_id" = String, Path, description = "The invite's id (from the list)")),
    responses(
        (status = 200, description = "Withdrawn: the link no longer works", body = SuccessResponse),
        (status = 404, description = "No unused invite has this id", body = ErrorResponse),
    ))]
async fn revoke(
    AdminUser(admin): AdminUser,
    State(auth): State<AuthService>,
    Path(invite_id): Path<String>,
) -> ApiResult<Json<SuccessResponse>> {
    if auth.revoke_invite(&admin, &invite_id).await? {
        Ok(Json(SuccessResponse { success: true }))
    } else {
        Err(ApiError::NotFound(
            "No unused invite has this id (used invites stay as a record).".into(),
        ))
    }
}
