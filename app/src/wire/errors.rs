//! The one error body every API error uses.

use serde::{Deserialize, Serialize};

/// Every error the API returns: `{"success":false,"error":{"code","message","field"?}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// The request field the error is about, when there is one (for form field errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// On `/v1` only, OpenAI's error type (`invalid_request_error`,
    /// `insufficient_quota`, `rate_limit_exceeded`, …), which OpenAI's SDKs read.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}
