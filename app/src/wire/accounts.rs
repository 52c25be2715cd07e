//! Accounts: registration, sign-in (password, OAuth buttons, Ed25519 challenges)
//! and the account's own view of itself.

use serde::{Deserialize, Serialize};

/// `POST /api/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3-64 letters, digits, `.`, `_` or `-` (surrounding spaces are trimmed).
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The secret from an invite link, where sign-ups need one
    /// (`CALOS_REGISTRATION=invite`); ignored when registration is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// `POST /api/auth/login`: by email or by username.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub password: String,
}

/// The public view of an account. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: String,
    pub email: Option<String>,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// Answer to register and login. Field order matters to scripts: the original guide's
/// `grep -o '"token":"[^"]*"'` needs compact JSON with a plain `token` string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthResponse {
    pub success: bool,
    pub token: String,
    pub user: UserView,
}

/// `POST /api/auth/soulfra/challenge`: the Ed25519 public key, 32 bytes as hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChallengeRequest {
    pub public_key: String,
}

/// A single-use challenge: sign its UTF-8 bytes before `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    pub success: bool,
    pub challenge: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// `POST /api/auth/soulfra/verify`: hex key and hex signature over the challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyRequest {
    pub public_key: String,
    pub challenge: String,
    pub signature: String,
    /// Only used when this proof creates the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// An invite's secret, used when this proof creates the account and
    /// sign-ups need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// A configured OAuth provider, as the login page's button shows it. Fields in
/// the order `GET /api/auth/oauth/providers` has always sent them (sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthButton {
    pub label: String,
    pub name: String,
    /// Where the sign-in button points.
    pub url: String,
}

/// `GET /api/auth/oauth/providers`: the configured ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthProvidersResponse {
    pub providers: Vec<OAuthButton>,
    pub success: bool,
}

/// A reply that only says it worked (logout, closing an account).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessResponse {
    pub success: bool,
}

impl SuccessResponse {
    pub const OK: Self = Self { success: true };
}

/// `PATCH /api/auth/me`: rename the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// 3-64 letters, digits, `.`, `_` or `-` (surrounding spaces are trimmed).
    pub username: String,
}

/// `GET /api/auth/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    pub success: bool,
    pub user: UserView,
}

/// `DELETE /api/auth/me`: closing one's own account needs the password again, so
/// a stolen token alone cannot delete it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    pub password: String,
}

/// Password length bounds (ASVS 5.0 6.2.1 and 6.2.9; the upper bound keeps Argon2
/// input small and is checked before hashing).
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Messages for the error codes a login page can show after a plain (no-JS) form
/// post redirects back with `?error=CODE`. Only known codes are shown: the page never
/// echoes text from the URL.
pub fn login_error_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_credentials" => "Invalid email/username or password.",
        "too_many_attempts" => "Too many failed sign-ins. Wait a minute and try again.",
        "too_many_signups" => "Too many new accounts from this address. Try again later.",
        "username_taken" => "That username is already taken.",
        "email_taken" => "That email is already registered.",
        "invalid_username" => "Usernames are 3-64 letters, digits, '.', '_' or '-'.",
        "invalid_email" => "That does not look like an email address.",
        "password_too_short" => "Passwords need at least 8 characters.",
        "password_too_long" => "Passwords can have at most 128 characters.",
        "login_too_long" => "An email or username has at most 256 characters.",
        "missing_field" => "Please fill in every required field.",
        "service_unavailable" => "The service is busy. Try again in a moment.",
        "not_found" => "That sign-in method is not configured here.",
        "oauth_denied" => "The sign-in was cancelled at the provider.",
        "oauth_state_mismatch" | "oauth_missing_code" | "invalid_query" => {
            "That sign-in expired or was not started in this browser. Please try again."
        }
        "oauth_issuer_mismatch" | "oauth_code_rejected" | "oauth_id_token_invalid" => {
            "The provider's answer could not be verified. Please try again."
        }
        "oauth_provider_unavailable" | "oauth_misconfigured" => {
            "The sign-in provider cannot be reached right now."
        }
        "oauth_account_exists" => {
            "An account with this email exists. Sign in with your password, then link the provider."
        }
        "identity_taken" => "That sign-in is already linked to another account.",
        "forbidden" => "The provider has not verified this email, so it cannot be linked.",
        "invalid_proof" => "The key's signature did not check out. Please try again.",
        "registration_closed" => {
            "This gateway does not take sign-ups; ask an administrator for an account."
        }
        "invite_required" => "Sign-ups here need an invite link; ask an administrator for one.",
        "invite_invalid" => {
            "This invite link was used, withdrawn or has expired. Ask for a new one."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_response_serialises_compactly_for_the_seed_grep() {
        let body = AuthResponse {
            success: true,
            token: "a.b.c".into(),
            user: UserView {
                user_id: "u1".into(),
                email: None,
                username: "test-user-1".into(),
                role: Role::User,
            },
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        assert!(json.contains(r#""token":"a.b.c""#), "{json}");
        assert!(json.contains(r#""userId":"u1""#), "{json}");
    }

    #[test]
    fn login_request_rejects_unknown_fields() {
        let parsed: Result<LoginRequest, _> = serde_json::from_str(
            r#"{"email":"a@example.com","password":"x","api_base":"http://evil"}"#,
        );
        assert!(parsed.is_err());
    }

    #[test]
    fn unknown_error_codes_are_not_echoed() {
        assert!(login_error_message("<script>").is_none());
        assert!(login_error_message("invalid_credentials").is_some());
    }
}
