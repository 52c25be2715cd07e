//! API keys: what a signed-in person sends to `/api/keys` to make one, and
//! what comes back. The secret is in the answer that made it and nowhere else.

use serde::{Deserialize, Serialize};

/// `POST /api/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKeyRequest {
    /// A label to tell keys apart (1-100 characters).
    pub name: String,
    /// Model names or globs (`gpt-4o*`) the key may use, 1-32 of them;
    /// absent: every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// When the key stops working (RFC 3339, in the future); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Requests per minute this key may make (its owner's limit applies too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Prompt + completion tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Tokens this key may spend per `budgetPeriod`; at most its owner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    /// `day`, `month` (UTC calendar) or `total`; given with `budgetTokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<String>,
}

/// A key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The secret's first 12 characters (`calos_sk_…`).
    pub prefix: String,
    /// `null`: every model.
    pub models: Option<Vec<String>>,
    /// RFC 3339, UTC; `null`: never.
    pub expires_at: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC, to the minute; `null`: never used.
    pub last_used_at: Option<String>,
    /// The key's own limits (`rpm`, `tpm`, `budgetTokens`, `budgetPeriod`);
    /// `null` ones leave only the owner's.
    #[serde(flatten)]
    pub limits: super::LimitsView,
}

/// The answer to `POST /api/keys` (201): the only time `key` is shown, with
/// the key as the list shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyResponse {
    pub success: bool,
    /// The secret: `Authorization: Bearer <key>` (or `x-api-key`), or an
    /// OpenAI SDK's `api_key`.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

impl std::ops::Deref for CreatedKeyResponse {
    type Target = KeyView;

    fn deref(&self) -> &KeyView {
        &self.view
    }
}

/// `GET /api/keys`: the caller's keys, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct KeysResponse {
    pub success: bool,
    pub keys: Vec<KeyView>,
}
