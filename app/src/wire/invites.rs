//! Invites: what an administrator sends to `/api/monitor/invites` to make a
//! sign-up link, and what comes back. The secret is in the answer to the
//! request that made it and nowhere else, ever after.

use serde::{Deserialize, Serialize};

/// `POST /api/monitor/invites`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateInviteRequest {
    /// Who it is for, as a reminder in the list (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How long the link works: 1-720 hours (default 72).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 720))]
    pub expires_in_hours: Option<u32>,
}

/// One invite, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InviteView {
    pub invite_id: String,
    pub note: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// `open`, `used` or `expired`.
    pub state: String,
    /// The username of the account it created, while that account exists.
    pub used_by: Option<String>,
}

/// The answer to `POST /api/monitor/invites`: the only time the link is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedInviteResponse {
    pub success: bool,
    pub invite: InviteView,
    /// The sign-up link to hand over; it works once.
    pub url: String,
    /// The secret alone (`calos identity login --invite`, or `invite` in
    /// `POST /api/auth/register`).
    pub token: String,
}

/// `GET /api/monitor/invites`: the newest 200, and the policy they serve.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InvitesResponse {
    pub success: bool,
    /// `CALOS_REGISTRATION`: `open`, `invite` or `closed`.
    pub registration: String,
    pub invites: Vec<InviteView>,
}
