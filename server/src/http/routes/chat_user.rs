//! `ChatUser`: authentication for the chat endpoints, with the original guide's words for
//! a missing token and a bot guard: unauthenticated callers are counted per
//! client IP and slowed to 429 + `Retry-After` when they keep trying.

use crate::auth::AuthedUser;
use crate::chat::ChatContext;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::http::extract::AuthUser;
use crate::http::middleware::RequestContext;
use crate::http::state::AppState;
use crate::observability::otel::TraceHandle;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AUTH_REQUIRED: &str = "Authentication required. This endpoint uses bot detection.";

/// Unauthenticated requests per client IP: a burst of 20, then one a second.
#[derive(Clone)]
pub struct BotGuard {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl BotGuard {
    pub fn new() -> Self {
        // One a second, bursts of 20 (1 + 19: no fallible conversion to fall back from).
        let quota =
            Quota::per_second(NonZeroU32::MIN).allow_burst(NonZeroU32::MIN.saturating_add(19));
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Counts one unauthenticated request; `Err(seconds)` once the IP is over its allowance.
    fn count(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64
        })
    }

    pub fn forget_stale(&self) {
        self.limiter.retain_recent();
    }
}

/// The authenticated caller of a chat endpoint, as a [`ChatContext`].
impl Default for BotGuard {
    fn default() -> Self {
        Self::new()
    }
}

pub struct ChatUser(pub ChatContext);

impl FromRequestParts<AppState> for ChatUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Already authenticated by the chat routes' layer ([`require`]).
        if let Some(ctx) = parts.extensions.remove::<ChatContext>() {
            return Ok(ChatUser(ctx));
        }
        let request = parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext {
                id: uuid::Uuid::new_v4().to_string(),
                started: Instant::now(),
            });
        let trace = parts
            .extensions
            .get::<TraceHandle>()
            .cloned()
            .unwrap_or_default();
        // An API key (bearer, or `x-api-key` for clients that send that),
        // else a session token or cookie.
        let authed = match api_key(&parts.headers) {
            Some(secret) => {
                let checking = Instant::now();
                let checked = state.keys.authenticate(secret).await;
                trace.phase("auth", checking, Instant::now());
                checked
                    .map(|grant| Authed {
                        user: grant.user.clone(),
                        auth: checking.elapsed(),
                        db: Duration::ZERO,
                        key: Some(grant),
                    })
                    .map_err(ApiError::from)
            }
            None => AuthUser::from_request_parts(parts, state)
                .await
                .map(|AuthUser(user)| {
                    let (auth, db) = parts
                        .extensions
                        .get::<AuthedUser>()
                        .map(|a| {
                            trace_session_check(&trace, a);
                            (a.verify_time, a.db_time)
                        })
                        .unwrap_or_default();
                    Authed {
                        user,
                        key: None,
                        auth,
                        db,
                    }
                }),
        };
        match authed {
            Ok(Authed {
                user,
                key,
                auth,
                db,
            }) => {
                let (key_id, key_models, key_limits) = match key {
                    Some(grant) => (Some(grant.key_id), grant.models, grant.limits),
                    None => (None, None, Default::default()),
                };
                Ok(ChatUser(ChatContext {
                    request_id: request.id,
                    started: request.started,
                    user_id: user.user_id.clone(),
                    auth,
                    db,
                    fresh: wants_fresh(&parts.headers),
                    provider_detail: user.role == app::wire::Role::Admin,
                    key_id,
                    key_models,
                    key_limits,
                    trace,
                }))
            }
            Err(ApiError::Unauthorized { code, message }) => {
                if let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await {
                    if let Err(retry_after_secs) = state.bots.count(ip) {
                        tracing::warn!(%ip, "bot guard: unauthenticated chat requests throttled");
                        return Err(ApiError::TooManyRequests {
                            code: "rate_limited",
                            message: "Too many unauthenticated requests. Sign in and send a token."
                                .into(),
                            retry_after_secs,
                        });
                    }
                }
                // A key's own refusal says what is wrong with the key.
                if matches!(code, "invalid_api_key" | "api_key_expired") {
                    return Err(ApiError::Unauthorized { code, message });
                }
                let code = if code == "invalid_token" {
                    "invalid_token"
                } else {
                    "unauthorized"
                };
                Err(ApiError::Unauthorized {
                    code,
                    message: AUTH_REQUIRED.into(),
                })
            }
            Err(other) => Err(other),
        }
    }
}

/// A session check's two phases as spans: verifying the token, then loading
/// the account it names (from the cache or the database).
fn trace_session_check(trace: &TraceHandle, authed: &AuthedUser) {
    let verified = authed.started + authed.verify_time;
    trace.phase("auth", authed.started, verified);
    trace.phase("database", verified, verified + authed.db_time);
}

/// Who a chat request's credentials name, and what checking them cost.
struct Authed {
    user: app::wire::UserView,
    /// Present when the credential was an API key.
    key: Option<crate::auth::api_keys::KeyGrant>,
    auth: Duration,
    db: Duration,
}

/// An API key sent as `Authorization: Bearer calos_sk_…`, or as `x-api-key`
/// when there is no Authorization header (only a key-shaped value: a session
/// token there is not a credential).
fn api_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    match headers.get(axum::http::header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()?
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| crate::auth::api_keys::is_key(token)),
        None => headers
            .get("x-api-key")?
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|token| crate::auth::api_keys::is_key(token)),
    }
}

/// What a chat handler checks once the model is known.
pub trait KeyScope {
    /// 403 `model_not_allowed` when the request's API key may not use `model`.
    fn check_model(&self, model: &str) -> Result<(), ApiError>;
}

impl KeyScope for ChatContext {
    fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if self.allows_model(model) {
            return Ok(());
        }
        let allowed = self.key_models.as_deref().unwrap_or_default().join(", ");
        Err(ApiError::Refused {
            code: "model_not_allowed",
            message: format!("This API key may not use model `{model}`; it may use: {allowed}."),
        })
    }
}

/// `Cache-Control: no-cache` (or `no-store`) on the request.
fn wants_fresh(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        })
}

/// The chat routes' `route_layer`: authenticates once (with the bot guard and
/// the chat's own 401) and hands the context to the handler's `ChatUser`
/// through the request's extensions, so it is not built twice per request.
pub async fn require(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    match ChatUser::from_request_parts(&mut parts, &state).await {
        Ok(ChatUser(ctx)) => {
            parts.extensions.insert(ctx);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        // `/v1` answers in OpenAI's error shape, which its SDKs read.
        Err(refused) if parts.uri.path().starts_with("/v1/") => {
            crate::http::error::V1Error(refused).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}
