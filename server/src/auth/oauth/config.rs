//! Which OAuth providers are configured, from the environment or flags.
//!
//! A provider is on only when its credentials are all present; the issuer and
//! endpoint overrides exist so tests (and on-premises mirrors) can point calos at
//! another server speaking the same protocol.

use clap::Args;

#[derive(Debug, Clone, Default, Args)]
pub struct OAuthArgs {
    /// Google OAuth client id (enables "Sign in with Google").
    #[arg(long, env = "GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    /// Google OAuth client secret.
    #[arg(long, env = "GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,
    /// Google's OpenID issuer (its discovery document lives under it).
    #[arg(
        long,
        env = "CALOS_GOOGLE_ISSUER",
        default_value = "https://accounts.google.com",
        hide = true
    )]
    pub google_issuer: String,

    /// GitHub OAuth app client id (enables "Sign in with GitHub").
    #[arg(long, env = "GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    /// GitHub OAuth app client secret.
    #[arg(long, env = "GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,
    /// GitHub's web address (authorize and token endpoints).
    #[arg(
        long,
        env = "CALOS_GITHUB_URL",
        default_value = "https://github.com",
        hide = true
    )]
    pub github_url: String,
    /// GitHub's API address (the user and emails endpoints).
    #[arg(
        long,
        env = "CALOS_GITHUB_API_URL",
        default_value = "https://api.github.com",
        hide = true
    )]
    pub github_api_url: String,

    /// Sign in with Apple: the Services ID (enables "Sign in with Apple").
    #[arg(long, env = "APPLE_CLIENT_ID")]
    pub apple_client_id: Option<String>,
    /// Apple developer team id (the client secret's issuer).
    #[arg(long, env = "APPLE_TEAM_ID")]
    pub apple_team_id: Option<String>,
    /// Id of the Sign in with Apple private key.
    #[arg(long, env = "APPLE_KEY_ID")]
    pub apple_key_id: Option<String>,
    /// The Sign in with Apple private key (PKCS#8 PEM, the `.p8` file's contents).
    #[arg(long, env = "APPLE_PRIVATE_KEY", hide_env_values = true)]
    pub apple_private_key: Option<String>,
    /// Apple's OpenID issuer.
    #[arg(
        long,
        env = "CALOS_APPLE_ISSUER",
        default_value = "https://appleid.apple.com",
        hide = true
    )]
    pub apple_issuer: String,
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Credentials of one provider.
#[derive(Debug, Clone)]
pub enum Credentials {
    Secret(String),
    /// Apple signs nothing we send with a fixed secret: calos makes a short-lived
    /// ES256 JWT from these on every token request.
    AppleKey {
        team_id: String,
        key_id: String,
        private_key_pem: String,
    },
}

/// One configured provider, before its endpoints are known.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: super::ProviderKind,
    pub client_id: String,
    pub credentials: Credentials,
    /// OpenID issuer (Google, Apple) or web base URL (GitHub).
    pub base: String,
    /// GitHub's API base.
    pub api: Option<String>,
}

impl OAuthArgs {
    /// The providers whose credentials are complete.
    pub fn configured(&self) -> Vec<ProviderConfig> {
        use super::ProviderKind as K;
        let mut out = Vec::new();
        if let (Some(id), Some(secret)) =
            (set(&self.google_client_id), set(&self.google_client_secret))
        {
            out.push(ProviderConfig {
                kind: K::Google,
                client_id: id.into(),
                credentials: Credentials::Secret(secret.into()),
                base: self.google_issuer.trim_end_matches('/').into(),
                api: None,
            });
        }
        if let (Some(id), Some(secret)) =
            (set(&self.github_client_id), set(&self.github_client_secret))
        {
            out.push(ProviderConfig {
                kind: K::GitHub,
                client_id: id.into(),
                credentials: Credentials::Secret(secret.into()),
                base: self.github_url.trim_end_matches('/').into(),
                api: Some(self.github_api_url.trim_end_matches('/').into()),
            });
        }
        if let (Some(id), Some(team), Some(key_id), Some(pem)) = (
            set(&self.apple_client_id),
            set(&self.apple_team_id),
            set(&self.apple_key_id),
            set(&self.apple_private_key),
        ) {
            out.push(ProviderConfig {
                kind: K::Apple,
                client_id: id.into(),
                credentials: Credentials::AppleKey {
                    team_id: team.into(),
                    key_id: key_id.into(),
                    // Environment files often carry the PEM with literal "\n".
                    private_key_pem: pem.replace("\\n", "\n"),
                },
                base: self.apple_issuer.trim_end_matches('/').into(),
                api: None,
            });
        }
        out
    }
}
