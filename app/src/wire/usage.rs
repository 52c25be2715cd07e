//! Usage and limits: what `/api/usage` sums, and the limits an administrator
//! sets on an account (`PUT /api/admin/users/{id}/limits`).

use serde::{Deserialize, Serialize};

/// A user's or a key's limits; `null` fields are no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LimitsView {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Prompt + completion tokens per minute.
    pub tpm: Option<u64>,
    /// Tokens per `budgetPeriod`.
    pub budget_tokens: Option<u64>,
    /// `day`, `month` (UTC calendar periods) or `total`.
    pub budget_period: Option<String>,
}

impl LimitsView {
    /// The limits in a few words (`""` when there are none).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(rpm) = self.rpm {
            parts.push(format!("{rpm} requests/min"));
        }
        if let Some(tpm) = self.tpm {
            parts.push(format!("{tpm} tokens/min"));
        }
        if let (Some(tokens), Some(period)) = (self.budget_tokens, self.budget_period.as_deref()) {
            parts.push(format!("{tokens} tokens/{period}"));
        }
        parts.join(", ")
    }
}

/// `PUT /api/admin/users/{id}/limits`: the account's limits, replaced as a
/// whole (a field left out is no limit).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetLimitsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<String>,
}

/// An account's limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LimitsResponse {
    pub success: bool,
    pub user_id: String,
    pub limits: LimitsView,
}

/// A budget and how much of it is left this period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    pub tokens: u64,
    pub period: String,
    /// Tokens spent this period.
    pub spent: u64,
    pub remaining: u64,
}

/// One group's sums (a day, a model, a key or a user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// The day (`YYYY-MM-DD`), model, key id (`""`: without a key) or user id.
    pub group: String,
    /// A name for people: the key's name or the user's name, where there is one.
    pub label: Option<String>,
    pub requests: u64,
    /// Requests that ended in an error (refusals by a limit included).
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// With `groupBy=key`: the key's own budget, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
}

/// `GET /api/usage` and `GET /api/admin/usage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    pub success: bool,
    /// First and last day summed, inclusive (UTC, `YYYY-MM-DD`).
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub rows: Vec<UsageRow>,
    /// All rows summed.
    pub totals: UsageRow,
    /// The caller's own limits (`/api/usage` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsView>,
    /// The caller's budget and what is left of it (`/api/usage` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
}
