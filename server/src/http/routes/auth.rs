//! `/api/auth/*`: register, sign in (password or Ed25519 key), who am I, rename,
//! sign out, close the account.
//!
//! Register and login answer in the compact shape scripts grep
//! (`{"success":true,"token":…,"user":{…}}`) and also set the HttpOnly session
//! cookie, so a browser page that called them is signed in after a reload.

use super::cookies;
use crate::auth::AuthService;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiResult;
use crate::http::extract::AuthUser;
use crate::http::json::ApiJson;
use crate::http::state::{AppState, Runtime};
use app::wire::{
    AuthResponse, ChallengeRequest, ChallengeResponse, DeleteAccountRequest, ErrorResponse,
    LoginRequest, MeResponse, RegisterRequest, SuccessResponse, UpdateMeRequest, VerifyRequest,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

/// Signing up and signing in: open to anyone.
pub fn public() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/soulfra/challenge", post(soulfra_challenge))
        .route("/api/auth/soulfra/verify", post(soulfra_verify))
}

/// The signed-in account.
pub fn protected() -> Router<AppState> {
    Router::new()
        .route("/api/auth/me", get(me).patch(update_me).delete(delete_me))
        .route("/api/auth/logout", post(logout))
}

#[utoipa::path(post, path = "/api/auth/soulfra/challenge", tag = "accounts",
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "A single-use challenge to sign with the key", body = ChallengeResponse),
        (status = 400, description = "Not a 32-byte hex Ed25519 public key", body = ErrorResponse),
        (status = 429, description = "Too many challenges", body = ErrorResponse),
    ))]
async fn soulfra_challenge(
    State(auth): State<AuthService>,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    let issued = auth.soulfra_challenge(&req.public_key).await?;
    let expires_at = chrono::DateTime::from_timestamp(issued.expires_at as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(Json(ChallengeResponse {
        success: true,
        challenge: issued.challenge,
        expires_at,
    }))
}

#[utoipa::path(post, path = "/api/auth/soulfra/verify", tag = "accounts",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Signed in with the key", body = AuthResponse),
        (status = 201, description = "Signed in; this proof created the account", body = AuthResponse),
        (status = 400, description = "A field is missing or invalid", body = ErrorResponse),
        (status = 401, description = "The signature or challenge did not check out", body = ErrorResponse),
        (status = 403, description = "This proof would create an account, and sign-ups are closed or need a valid invite", body = ErrorResponse),
        (status = 409, description = "The username is taken", body = ErrorResponse),
        (status = 429, description = "Too many attempts or new accounts", body = ErrorResponse),
    ))]
/// The proof of an Ed25519 key: the same answer and cookie as a password sign-in
/// (201 when this proof created the account).
async fn soulfra_verify(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Response> {
    let (session, created) = auth
        .soulfra_verify(
            &req.public_key,
            &req.challenge,
            &req.signature,
            req.username.as_deref(),
            req.invite.as_deref(),
            ip,
        )
        .await?;
    let cookie = cookies::session(&session.token, auth.token_ttl(), runtime.cookie_secure);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = AuthResponse {
        success: true,
        token: session.token,
        user: session.user,
    };
    Ok((status, [cookie], Json(body)).into_response())
}

#[utoipa::path(patch, path = "/api/auth/me", tag = "accounts",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "Renamed", body = MeResponse),
        (status = 400, description = "Not a valid username", body = ErrorResponse),
        (status = 409, description = "The username is taken", body = ErrorResponse),
    ))]
async fn update_me(
    State(auth): State<AuthService>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<UpdateMeRequest>,
) -> ApiResult<Json<MeResponse>> {
    let user = auth.rename(&user, &req.username).await?;
    Ok(Json(MeResponse {
        success: true,
        user,
    }))
}

#[utoipa::path(post, path = "/api/auth/register", tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and signed in (also sets the session cookie)", body = AuthResponse),
        (status = 400, description = "A field is missing or invalid", body = ErrorResponse),
        (status = 403, description = "Sign-ups are closed (`registration_closed`), or need an invite (`invite_required`) and this one is not valid (`invite_invalid`)", body = ErrorResponse),
        (status = 409, description = "The username or email is taken", body = ErrorResponse),
        (status = 429, description = "Too many new accounts from this address", body = ErrorResponse),
    ))]
async fn register(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    let session = auth.register(req, ip).await?;
    let cookie = cookies::session(&session.token, auth.token_ttl(), runtime.cookie_secure);
    let body = AuthResponse {
        success: true,
        token: session.token,
        user: session.user,
    };
    Ok((StatusCode::CREATED, [cookie], Json(body)).into_response())
}

#[utoipa::path(post, path = "/api/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in (also sets the session cookie)", body = AuthResponse),
        (status = 400, description = "A field is missing or invalid", body = ErrorResponse),
        (status = 401, description = "Wrong email/username or password", body = ErrorResponse),
        (status = 429, description = "Too many failed sign-ins", body = ErrorResponse),
    ))]
async fn login(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let session = auth.login(req, ip).await?;
    let cookie = cookies::session(&session.token, auth.token_ttl(), runtime.cookie_secure);
    let body = AuthResponse {
        success: true,
        token: session.token,
        user: session.user,
    };
    Ok(([cookie], Json(body)).into_response())
}

#[utoipa::path(get, path = "/api/auth/me", tag = "accounts",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The signed-in account", body = MeResponse)))]
async fn me(AuthUser(user): AuthUser) -> Json<MeResponse> {
    Json(MeResponse {
        success: true,
        user,
    })
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Every session of the account is ended", body = SuccessResponse)))]
async fn logout(
    State(auth): State<AuthService>,
    State(runtime): State<Runtime>,
    AuthUser(user): AuthUser,
) -> ApiResult<Response> {
    auth.logout(&user).await?;
    let body = SuccessResponse::OK;
    Ok(([cookies::cleared(runtime.cookie_secure)], Json(body)).into_response())
}

#[utoipa::path(delete, path = "/api/auth/me", tag = "accounts",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 200, description = "The account is closed and every session ended", body = SuccessResponse),
        (status = 400, description = "The password is missing", body = ErrorResponse),
        (status = 429, description = "Too many wrong passwords", body = ErrorResponse),
    ))]
/// Closes the caller's account (the load tool's ephemeral users use this to clean up).
async fn delete_me(
    State(auth): State<AuthService>,
    State(keys): State<crate::auth::api_keys::ApiKeys>,
    State(conversations): State<crate::conversations::Conversations>,
    State(runtime): State<Runtime>,
    ClientIp(ip): ClientIp,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> ApiResult<Response> {
    auth.delete_account(&user, req.password, ip).await?;
    // On PostgreSQL the foreign key took them with the account; on SQLite
    // they are in their own file. A failure here leaves them for the sweep
    // at the next start, not a half-closed account.
    if let Err(e) = conversations.forget_user(&user.user_id).await {
        tracing::warn!(user_id = %user.user_id, error = %e, "the conversations of a deleted account are left for the next sweep");
    }
    // Its keys went with the account; none may linger in the cache.
    keys.forget_all();
    let body = SuccessResponse::OK;
    Ok(([cookies::cleared(runtime.cookie_secure)], Json(body)).into_response())
}
