//! The API's one error type.
//!
//! Policy: every error leaves as `{"success":false,"error":{"code","message"}}`
//! with the status that names what went wrong. Client mistakes say exactly what to
//! fix. Internal causes (database, I/O) become an opaque 500 or 503 for the client;
//! the cause is logged once here, never sent, and never includes request secrets.

use app::wire::{ErrorDetail, ErrorResponse};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a field is wrong; `field` names it when there is one.
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// 401: no valid credentials.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 403 with a code of its own, for refusals a client tells apart (a closed
    /// sign-up, a used invite).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("This method is not allowed on this path.")]
    MethodNotAllowed,
    /// 409: a unique value is taken.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// 408: the request body did not arrive within `--body-read-timeout-secs`.
    #[error("The request body did not arrive within {}; send it again, faster.", humantime::format_duration(*.limit))]
    RequestTimeout { limit: std::time::Duration },
    /// 413: the body is over the documented limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415: a JSON body labelled as a form or text without a bearer token: the
    /// label a cross-site form can send (login CSRF), so it is refused.
    #[error("Send the JSON body with Content-Type: application/json (text/plain and form labels are accepted only with an Authorization: Bearer token).")]
    UnsupportedMediaType,
    /// 429: slow down; `retry_after_secs` goes in `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 503: a dependency (the database) is unavailable or saturated.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A provider's failure, with the status that describes it (404 model not
    /// found, 429 provider rate limit, 502 bad answer, 503 down, 504 timeout).
    #[error("{message}")]
    Upstream {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    /// 500: a bug or an unexpected failure; details are logged, not sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid_field(
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Refused { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Conflict { code, .. }
            | Self::Refused { code, .. } => code,
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests { code, .. } => code,
            Self::Unavailable(_) => "service_unavailable",
            Self::Upstream { code, .. } => code,
            Self::Internal(_) => "internal_error",
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest { field, .. } | Self::Conflict { field, .. } => *field,
            _ => None,
        }
    }

    fn client_message(&self) -> String {
        match self {
            Self::Internal(_) => "Internal server error. The cause has been logged.".into(),
            Self::Unavailable(_) => {
                "The service is temporarily unavailable. Try again shortly.".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Pool exhausted or the database is gone: the caller can retry (ASVS 13.1.2).
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            sqlx::Error::Database(ref db) if is_busy(db.as_ref()) => {
                Self::Unavailable(e.to_string())
            }
            other => Self::Internal(anyhow::Error::new(other).context("database query failed")),
        }
    }
}

/// SQLite's "database is busy/locked" (after busy_timeout) and PostgreSQL's
/// connection exceptions (class 08), insufficient resources (53), operator
/// intervention (57, e.g. a terminated backend) and "not accepting connections"
/// (55000) mean the database is unavailable right now, not that calos has a bug.
fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = e.code() else { return false };
    matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517" | "55000")
        || ["08", "53", "57"]
            .iter()
            .any(|class| code.starts_with(class))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(false)
    }
}

/// An error from a `/v1` route: the same body, plus the `type` OpenAI's SDKs
/// read, and OpenAI's own codes for a spent budget (`insufficient_quota`) and
/// a rate limit (`rate_limit_exceeded`), so an SDK behaves as it does with
/// OpenAI (which, for example, does not retry a spent quota).
pub struct V1Error(pub ApiError);

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        self.0.render(true)
    }
}

impl ApiError {
    /// OpenAI's `type` and `code` for this error.
    fn openai_kind(&self) -> (&'static str, &'static str) {
        let code = self.code();
        let kind = match code {
            "budget_exceeded" => return ("insufficient_quota", "insufficient_quota"),
            "rate_limited" | "too_many_inflight" => {
                return ("rate_limit_exceeded", "rate_limit_exceeded")
            }
            _ => match self.status().as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_exceeded",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            },
        };
        (kind, code)
    }

    fn render(self, openai: bool) -> Response {
        let status = self.status();
        // Logged once, by the access log, which knows the request id.
        let cause = match &self {
            Self::Internal(cause) => Some(ErrorCause::Internal(format!("{cause:?}"))),
            Self::Unavailable(cause) => Some(ErrorCause::Unavailable(cause.to_string())),
            _ => None,
        };
        let (kind, code) = match openai {
            true => {
                let (kind, code) = self.openai_kind();
                (Some(kind.to_string()), code)
            }
            false => (None, self.code()),
        };
        let body = ErrorResponse {
            success: false,
            error: ErrorDetail {
                code: code.to_string(),
                message: self.client_message(),
                field: self.field().map(str::to_string),
                kind,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(1),
            Self::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

/// Why a request failed on calos's side, carried in the response's extensions
/// from `IntoResponse` to the access log, which logs it once with the request
/// id. Never sent to the client.
#[derive(Debug, Clone)]
pub enum ErrorCause {
    Internal(String),
    Unavailable(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::password::PasswordError;
        use crate::auth::AuthError as A;
        use crate::db::users::Taken;
        match e {
            A::Field(f) => ApiError::invalid_field(f.code(), f.field(), f.to_string()),
            A::AmbiguousLogin => ApiError::bad_request("ambiguous_login", e.to_string()),
            A::MissingLogin => ApiError::invalid_field("missing_field", "email", e.to_string()),
            A::InvalidCredentials => ApiError::Unauthorized {
                code: "invalid_credentials",
                message: e.to_string(),
            },
            A::Throttled(wait) => ApiError::TooManyRequests {
                code: "too_many_attempts",
                message: e.to_string(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            },
            A::SignupThrottled(wait) => ApiError::TooManyRequests {
                code: "too_many_signups",
                message: e.to_string(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            },
            A::Taken(Taken::Username) => ApiError::Conflict {
                code: "username_taken",
                message: "That username is already taken.".into(),
                field: Some("username"),
            },
            A::Taken(Taken::Email) => ApiError::Conflict {
                code: "email_taken",
                message: "That email is already registered.".into(),
                field: Some("email"),
            },
            A::InvalidToken => ApiError::Unauthorized {
                code: "invalid_token",
                message: "The token is invalid, expired or revoked; sign in again.".into(),
            },
            A::Password(PasswordError::Busy) => {
                ApiError::Unavailable("password hashing queue is full".into())
            }
            A::Password(PasswordError::Failed(cause)) => ApiError::Internal(anyhow::anyhow!(cause)),
            A::Db(db) => ApiError::from(db),
            A::Token(cause) => ApiError::Internal(anyhow::anyhow!(cause)),
            A::Taken(Taken::Identity) => ApiError::Conflict {
                code: "identity_taken",
                message: "That sign-in is already linked to an account.".into(),
                field: None,
            },
            A::MalformedProof(m) => {
                use crate::auth::soulfra::MalformedProof as M;
                let field = match m {
                    M::PublicKeyEncoding | M::PublicKeyPoint => "publicKey",
                    M::SignatureEncoding => "signature",
                    M::Challenge => "challenge",
                };
                ApiError::invalid_field("invalid_field", field, m.to_string())
            }
            A::OAuthAccountExists(_) => ApiError::Conflict {
                code: "oauth_account_exists",
                message: e.to_string(),
                field: None,
            },
            A::OAuthEmailUnverified(_) => ApiError::Forbidden(e.to_string()),
            A::SignInBusy(_) => ApiError::Unavailable(e.to_string()),
            A::ProofRejected(_) => ApiError::Unauthorized {
                code: "invalid_proof",
                message: e.to_string(),
            },
            A::RegistrationClosed => ApiError::Refused {
                code: "registration_closed",
                message: e.to_string(),
            },
            A::InviteRequired => ApiError::Refused {
                code: "invite_required",
                message: e.to_string(),
            },
            A::InviteInvalid => ApiError::Refused {
                code: "invite_invalid",
                message: e.to_string(),
            },
        }
    }
}

impl From<crate::auth::oauth::OAuthError> for ApiError {
    fn from(e: crate::auth::oauth::OAuthError) -> Self {
        use crate::auth::oauth::OAuthError as O;
        let code = e.code();
        match e {
            O::NotConfigured(_) => ApiError::NotFound(e.to_string()),
            O::Denied(_) | O::State | O::IssuerMismatch | O::MissingCode => {
                ApiError::bad_request(code, e.to_string())
            }
            O::CodeRejected(_) | O::IdToken(_) => ApiError::Unauthorized {
                code,
                message: e.to_string(),
            },
            O::ProviderUnavailable(_) => ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                code,
                message: e.to_string(),
                retry_after: None,
            },
            O::Misconfigured(_) | O::Busy(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::llm::error::ProviderError> for ApiError {
    fn from(e: crate::llm::error::ProviderError) -> Self {
        use crate::llm::error::ProviderError as P;
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let retry_after = match &e {
            P::Status {
                status: 429,
                retry_after,
                ..
            } => Some(retry_after.unwrap_or(1)),
            P::Unreachable { .. } => Some(5),
            _ => None,
        };
        ApiError::Upstream {
            status,
            code: e.code(),
            message: e.to_string(),
            retry_after,
        }
    }
}

impl ApiError {
    /// A provider's failure as its caller is told it: in full for an
    /// administrator (`detail`), otherwise without the provider's address or
    /// raw answer. The log has the full detail either way.
    pub fn from_provider(e: crate::llm::error::ProviderError, detail: bool) -> Self {
        let public = (!detail).then(|| e.public_message());
        let mut error = ApiError::from(e);
        if let (ApiError::Upstream { message, .. }, Some(public)) = (&mut error, public) {
            *message = public;
        }
        error
    }

    /// A chat failure as its caller is told it (see [`ApiError::from_provider`]).
    pub fn from_chat(e: crate::chat::ChatError, detail: bool) -> Self {
        match e {
            crate::chat::ChatError::Provider(p) => Self::from_provider(p, detail),
            other => other.into(),
        }
    }
}

impl From<crate::chat::ChatError> for ApiError {
    fn from(e: crate::chat::ChatError) -> Self {
        use crate::chat::ChatError as C;
        match e {
            C::RateLimited(wait) => ApiError::TooManyRequests {
                code: "rate_limited",
                message: e.to_string(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            },
            C::TooManyInFlight(_) => ApiError::TooManyRequests {
                code: "too_many_inflight",
                message: e.to_string(),
                retry_after_secs: 1,
            },
            C::NoSuchProvider { .. } => {
                ApiError::invalid_field("unknown_provider", "model", e.to_string())
            }
            C::QueueFull { .. } => ApiError::Upstream {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "queue_full",
                message: e.to_string(),
                retry_after: Some(1),
            },
            C::Provider(p) => p.into(),
            // Names deployments and error codes only, never an address, so
            // every caller may read it.
            C::Unavailable(u) => ApiError::Upstream {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "no_deployment_available",
                message: u.to_string(),
                retry_after: Some(u.retry_after.map_or(1, |d| d.as_secs().max(1))),
            },
            C::Limited(refusal @ crate::usage::meter::Refusal::Unavailable { .. }) => {
                ApiError::Upstream {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "limits_unavailable",
                    message: refusal.to_string(),
                    retry_after: Some(refusal.retry_after_secs()),
                }
            }
            C::Limited(refusal) => ApiError::TooManyRequests {
                code: match refusal {
                    crate::usage::meter::Refusal::Rate { .. } => "rate_limited",
                    _ => "budget_exceeded",
                },
                retry_after_secs: refusal.retry_after_secs(),
                message: refusal.to_string(),
            },
        }
    }
}

impl From<crate::chat::validation::InvalidRequest> for ApiError {
    fn from(e: crate::chat::validation::InvalidRequest) -> Self {
        Self::invalid_field(e.code, e.field, e.message)
    }
}
