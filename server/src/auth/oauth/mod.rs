//! Sign in with Google, GitHub or Apple (OAuth 2.0 / OpenID Connect, calos as
//! the confidential client; RFC 9700 and ASVS V10 are the checklist).
//!
//! A sign-in is a *flow*: `start` picks a random `state`, a PKCE verifier and,
//! for OpenID providers, a `nonce`, and keeps them server-side under the state,
//! together with a hash of a random binding value that goes into this browser's
//! `calos_oauth` cookie. The callback must bring the same state, from the same
//! browser (the cookie), for the same provider (its own redirect URI, and the
//! RFC 9207 `iss` when sent: the mix-up defence); the flow is removed on first use,
//! so a callback cannot be replayed. Only then is the code traded for tokens.

pub mod apple;
mod config;
pub mod id_token;
mod provider;

pub use config::{OAuthArgs, ProviderConfig};

use crate::cluster::one_time::{OneTime, OneTimeError};
use provider::Provider;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How long a person may take at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Flows in progress kept at most (bounded memory under a flood of starts).
const MAX_FLOWS: u64 = 100_000;
/// The cookie binding a flow to the browser that started it.
pub const FLOW_COOKIE: &str = "calos_oauth";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ProviderKind {
    Google,
    GitHub,
    Apple,
}

impl ProviderKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::GitHub => "github",
            Self::Apple => "apple",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::GitHub => "GitHub",
            Self::Apple => "Apple",
        }
    }

    pub fn is_openid(self) -> bool {
        !matches!(self, Self::GitHub)
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub provider: ProviderKind,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// A display name or login to derive a username from.
    pub name_hint: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error("Sign-in with {0:?} is not configured on this server.")]
    NotConfigured(String),
    #[error("The provider refused: {0}")]
    Denied(String),
    #[error(
        "This sign-in was not started in this browser, was already used, or expired. Start again."
    )]
    State,
    #[error("The callback came from another provider than the one this sign-in went to.")]
    IssuerMismatch,
    #[error("The callback has no authorization code.")]
    MissingCode,
    #[error("The provider did not accept the authorization code ({0}).")]
    CodeRejected(String),
    #[error("The provider's ID token is not valid for this sign-in ({0}).")]
    IdToken(String),
    #[error("The provider could not be reached ({0}).")]
    ProviderUnavailable(String),
    #[error("OAuth is misconfigured: {0}")]
    Misconfigured(String),
    #[error("Sign-in is unavailable for a moment: {0}")]
    Busy(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured(_) => "provider_not_configured",
            Self::Denied(_) => "oauth_denied",
            Self::State => "oauth_state_mismatch",
            Self::IssuerMismatch => "oauth_issuer_mismatch",
            Self::MissingCode => "oauth_missing_code",
            Self::CodeRejected(_) => "oauth_code_rejected",
            Self::IdToken(_) => "oauth_id_token_invalid",
            Self::ProviderUnavailable(_) => "oauth_provider_unavailable",
            Self::Misconfigured(_) => "oauth_misconfigured",
            Self::Busy(_) => "oauth_unavailable",
        }
    }
}

/// A sign-in in progress, kept until its callback (or `FLOW_TTL`): in this
/// process, or in Redis for every replica (`cluster::one_time`).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Flow {
    provider: ProviderKind,
    binding_hash: [u8; 32],
    verifier: String,
    nonce: Option<String>,
    next: String,
    link_user: Option<String>,
    /// The invite the sign-up page carried (`CALOS_REGISTRATION=invite`),
    /// redeemed if this sign-in creates the account.
    invite: Option<String>,
}

/// A started sign-in: send the browser to `redirect`, with `binding` in the
/// flow cookie.
pub struct Redirect {
    pub redirect: String,
    pub binding: String,
}

/// A finished sign-in: who, where to go next, and whether it links an account.
pub struct Finished {
    pub identity: VerifiedIdentity,
    pub next: String,
    pub link_user: Option<String>,
    pub invite: Option<String>,
}

/// What the provider sent back to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Clone)]
pub struct OAuthService {
    providers: Arc<Vec<Provider>>,
    flows: OneTime<Flow>,
    http: reqwest::Client,
}

impl From<OneTimeError> for OAuthError {
    fn from(e: OneTimeError) -> Self {
        Self::Busy(e.to_string())
    }
}

impl From<crate::cluster::Unavailable> for OAuthError {
    fn from(e: crate::cluster::Unavailable) -> Self {
        Self::Busy(e.to_string())
    }
}

fn hash(binding: &str) -> [u8; 32] {
    Sha256::digest(binding.as_bytes()).into()
}

/// Where to go after signing in: a path on this site only (no open redirect via
/// `//evil.example`, `/\evil.example` or `https://…`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control()) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

impl OAuthService {
    /// `shared`: keep flows in Redis, so a sign-in started on one replica
    /// can finish on another.
    pub fn new(
        args: &OAuthArgs,
        public_url: &str,
        shared: Option<crate::cluster::SharedState>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Following redirects from a token endpoint opens SSRF (oauth2 docs).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?;
        let providers = args
            .configured()
            .into_iter()
            .map(|config| Provider::new(config, public_url))
            .collect();
        Ok(Self {
            providers: Arc::new(providers),
            flows: OneTime::new("oauth-flow", FLOW_TTL, MAX_FLOWS, shared),
            http,
        })
    }

    /// The configured providers, for the login page's buttons.
    pub fn configured(&self) -> Vec<ProviderKind> {
        self.providers.iter().map(|p| p.config.kind).collect()
    }

    fn provider(&self, name: &str) -> Result<&Provider, OAuthError> {
        self.providers
            .iter()
            .find(|p| p.config.kind.name() == name)
            .ok_or_else(|| OAuthError::NotConfigured(name.chars().take(32).collect()))
    }

    /// Begins a sign-in (or, with `link_user`, the linking of a signed-in account).
    pub async fn start(
        &self,
        provider: &str,
        next: Option<&str>,
        link_user: Option<String>,
        invite: Option<&str>,
    ) -> Result<Redirect, OAuthError> {
        let provider = self.provider(provider)?;
        let started = provider.start(&self.http).await?;
        let binding = hex::encode(rand::random::<[u8; 32]>());
        self.flows
            .put(
                &started.state,
                Flow {
                    provider: provider.config.kind,
                    binding_hash: hash(&binding),
                    verifier: started.verifier,
                    nonce: started.nonce,
                    next: safe_next(next),
                    link_user,
                    // An invite is 43 characters; a longer value is not one and
                    // is not worth holding.
                    invite: invite.filter(|i| i.len() <= 128).map(str::to_string),
                },
            )
            .await?;
        Ok(Redirect {
            redirect: started.url,
            binding,
        })
    }

    /// Checks the callback against the flow this browser started and, when it
    /// matches, trades the code and verifies who signed in.
    pub async fn finish(
        &self,
        provider: &str,
        params: CallbackParams,
        binding: Option<&str>,
    ) -> Result<Finished, OAuthError> {
        let provider = self.provider(provider)?;
        let state = params.state.as_deref().ok_or(OAuthError::State)?;
        // Only the browser holding the binding may use up a flow; anyone else's
        // attempt leaves it in place.
        let flow = self.flows.peek(state).await?.ok_or(OAuthError::State)?;
        let bound = binding.is_some_and(|b| hash(b) == flow.binding_hash);
        if !bound || flow.provider != provider.config.kind {
            return Err(OAuthError::State);
        }
        // Two callbacks racing with the same state: only one removes the flow.
        let flow = self.flows.take(state).await?.ok_or(OAuthError::State)?;
        if let Some(error) = params.error {
            let detail = params.error_description.unwrap_or_default();
            return Err(OAuthError::Denied(
                format!("{error} {detail}")
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            ));
        }
        if let (Some(sent), Some(expected)) = (params.iss.as_deref(), provider.issuer()) {
            if sent.trim_end_matches('/') != expected {
                return Err(OAuthError::IssuerMismatch);
            }
        }
        let code = params.code.as_deref().ok_or(OAuthError::MissingCode)?;
        let identity = provider
            .finish(&self.http, code, &flow.verifier, flow.nonce.as_deref())
            .await?;
        Ok(Finished {
            identity,
            next: flow.next,
            link_user: flow.link_user,
            invite: flow.invite,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/chat?x=1")), "/chat?x=1");
        for hostile in [
            "https://evil.example.com",
            "//evil.example.com",
            "/\\evil.example.com",
            "evil",
            "/\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn only_complete_credentials_enable_a_provider() {
        let mut args = OAuthArgs {
            google_issuer: "https://accounts.google.com".into(),
            github_url: "https://github.com".into(),
            github_api_url: "https://api.github.com".into(),
            apple_issuer: "https://appleid.apple.com".into(),
            ..OAuthArgs::default()
        };
        args.google_client_id = Some("id".into());
        assert!(args.configured().is_empty(), "a secret is missing");
        args.google_client_secret = Some("secret".into());
        args.apple_client_id = Some("com.example.calos".into());
        args.apple_team_id = Some("TEAM".into());
        let kinds: Vec<_> = args.configured().iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ProviderKind::Google], "Apple lacks its key");
    }
}
