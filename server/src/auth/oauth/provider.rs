//! One OAuth provider: where its endpoints are, how to trade a code for tokens,
//! and who the tokens say the person is.
//!
//! Google and Apple are OpenID providers: their endpoints come from the discovery
//! document under the issuer, and the person is the ID token's (`iss`, `sub`).
//! GitHub speaks plain OAuth 2.0: the person is its numeric user id, the email
//! comes from `/user/emails` with GitHub's own `verified` flag.
//!
//! The protocol (authorization URL with `state` and PKCE S256, the code exchange)
//! is the `oauth2` crate's; this module adds discovery, the ID token check and
//! the user lookups.

use super::config::{Credentials, ProviderConfig};
use super::id_token::{self, IdTokenError};
use super::{OAuthError, ProviderKind, VerifiedIdentity};
use jsonwebtoken::jwk::JwkSet;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OnceCell};

/// The token response's `id_token` (OpenID Connect Core §3.1.3.3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The subset of an OpenID discovery document calos needs.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug, Clone)]
struct Endpoints {
    authorize: String,
    token: String,
    jwks: Option<String>,
}

/// How long fetched signing keys are trusted before being fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the keys at most this often (key rotation), so a
/// stream of forged tokens cannot turn calos into a JWKS hammer.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);

pub struct Provider {
    pub config: ProviderConfig,
    redirect_uri: String,
    endpoints: OnceCell<Endpoints>,
    jwks: Mutex<Option<(Instant, JwkSet)>>,
}

/// What the authorization request committed this browser to.
pub struct Started {
    pub url: String,
    pub state: String,
    pub verifier: String,
    pub nonce: Option<String>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> OAuthError {
    OAuthError::ProviderUnavailable(format!("{what}: {e}"))
}

impl Provider {
    pub fn new(config: ProviderConfig, public_url: &str) -> Self {
        let redirect_uri = format!(
            "{public_url}/api/auth/oauth/{}/callback",
            config.kind.name()
        );
        Self {
            config,
            redirect_uri,
            endpoints: OnceCell::new(),
            jwks: Mutex::new(None),
        }
    }

    /// The issuer named in the callback (RFC 9207) and in ID tokens.
    pub fn issuer(&self) -> Option<&str> {
        self.config
            .kind
            .is_openid()
            .then_some(self.config.base.as_str())
    }

    async fn endpoints(&self, http: &reqwest::Client) -> Result<&Endpoints, OAuthError> {
        self.endpoints
            .get_or_try_init(|| async {
                let base = &self.config.base;
                if !self.config.kind.is_openid() {
                    return Ok(Endpoints {
                        authorize: format!("{base}/login/oauth/authorize"),
                        token: format!("{base}/login/oauth/access_token"),
                        jwks: None,
                    });
                }
                let url = format!("{base}/.well-known/openid-configuration");
                let doc: Discovery = fetch_json(http, &url, None)
                    .await
                    .map_err(|e| unavailable("discovery", e))?;
                // OpenID Connect Discovery §4.3: the document must name the
                // issuer it was fetched from, or it is someone else's.
                if doc.issuer.trim_end_matches('/') != base {
                    return Err(unavailable(
                        "discovery",
                        format!("issuer {:?} is not {base:?}", doc.issuer),
                    ));
                }
                Ok(Endpoints {
                    authorize: doc.authorization_endpoint,
                    token: doc.token_endpoint,
                    jwks: Some(doc.jwks_uri),
                })
            })
            .await
    }

    async fn client(&self, http: &reqwest::Client) -> Result<Client, OAuthError> {
        let endpoints = self.endpoints(http).await?;
        let secret = match &self.config.credentials {
            Credentials::Secret(secret) => secret.clone(),
            Credentials::AppleKey {
                team_id,
                key_id,
                private_key_pem,
            } => super::apple::client_secret(
                team_id,
                key_id,
                private_key_pem,
                &self.config.client_id,
                &self.config.base,
            )
            .map_err(|e| OAuthError::Misconfigured(format!("Apple private key: {e}")))?,
        };
        let bad = |what: &str, e: oauth2::url::ParseError| {
            OAuthError::Misconfigured(format!("{what} is not a URL: {e}"))
        };
        Ok(
            oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(secret))
                .set_auth_uri(
                    AuthUrl::new(endpoints.authorize.clone()).map_err(|e| bad("authorize", e))?,
                )
                .set_token_uri(TokenUrl::new(endpoints.token.clone()).map_err(|e| bad("token", e))?)
                .set_redirect_uri(
                    RedirectUrl::new(self.redirect_uri.clone())
                        .map_err(|e| bad("CALOS_PUBLIC_URL", e))?,
                ),
        )
    }

    /// The provider's authorization URL for a new sign-in.
    pub async fn start(&self, http: &reqwest::Client) -> Result<Started, OAuthError> {
        let client = self.client(http).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        let mut nonce = None;
        match self.config.kind {
            ProviderKind::Google => {
                let n = CsrfToken::new_random().secret().clone();
                request = request
                    .add_scope(Scope::new("openid".into()))
                    .add_scope(Scope::new("email".into()))
                    .add_scope(Scope::new("profile".into()))
                    .add_extra_param("nonce", n.clone());
                nonce = Some(n);
            }
            ProviderKind::Apple => {
                // No scopes: Apple then allows `response_mode=query`, a plain GET
                // redirect that carries our SameSite=Lax cookie. (Asking for name
                // and email forces a cross-site form POST.)
                let n = CsrfToken::new_random().secret().clone();
                request = request
                    .add_extra_param("response_mode", "query")
                    .add_extra_param("nonce", n.clone());
                nonce = Some(n);
            }
            ProviderKind::GitHub => {
                request = request
                    .add_scope(Scope::new("read:user".into()))
                    .add_scope(Scope::new("user:email".into()))
                    .add_extra_param("allow_signup", "true");
            }
        }
        let (url, state) = request.url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce,
        })
    }

    /// Trades the code for tokens (sending the PKCE verifier) and establishes
    /// who signed in.
    pub async fn finish(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: &str,
        nonce: Option<&str>,
    ) -> Result<VerifiedIdentity, OAuthError> {
        let client = self.client(http).await?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(http)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    OAuthError::CodeRejected(r.error().to_string())
                }
                // GitHub answers a bad code with 200 and an error body.
                oauth2::RequestTokenError::Parse(e, _) => OAuthError::CodeRejected(e.to_string()),
                other => unavailable("token endpoint", other),
            })?;
        match self.config.kind {
            ProviderKind::GitHub => {
                self.github_identity(http, answer.access_token().secret())
                    .await
            }
            ProviderKind::Google | ProviderKind::Apple => {
                let token = answer.extra_fields().id_token.as_deref().ok_or_else(|| {
                    OAuthError::IdToken("the token response has no id_token".into())
                })?;
                let nonce = nonce.unwrap_or_default();
                let claims = self.check_id_token(http, token, nonce).await?;
                Ok(VerifiedIdentity {
                    provider: self.config.kind,
                    email_verified: claims.email_verified(),
                    subject: claims.sub,
                    email: claims.email,
                    name_hint: claims.name,
                })
            }
        }
    }

    async fn check_id_token(
        &self,
        http: &reqwest::Client,
        token: &str,
        nonce: &str,
    ) -> Result<id_token::IdClaims, OAuthError> {
        let issuer = &self.config.base;
        let client_id = &self.config.client_id;
        let keys = self.keys(http, false).await?;
        match id_token::validate(token, &keys, issuer, client_id, nonce) {
            Err(IdTokenError::UnknownKey) => {
                let keys = self.keys(http, true).await?;
                id_token::validate(token, &keys, issuer, client_id, nonce)
            }
            other => other,
        }
        .map_err(|e| OAuthError::IdToken(e.to_string()))
    }

    /// The provider's signing keys, cached; `refresh` refetches them unless that
    /// happened moments ago.
    async fn keys(&self, http: &reqwest::Client, refresh: bool) -> Result<JwkSet, OAuthError> {
        let mut cached = self.jwks.lock().await;
        if let Some((fetched, keys)) = cached.as_ref() {
            let age = fetched.elapsed();
            if age < JWKS_TTL && (!refresh || age < JWKS_REFRESH_MIN) {
                return Ok(keys.clone());
            }
        }
        let url = self
            .endpoints(http)
            .await?
            .jwks
            .clone()
            .ok_or_else(|| OAuthError::Misconfigured("no jwks_uri".into()))?;
        let keys: JwkSet = fetch_json(http, &url, None)
            .await
            .map_err(|e| unavailable("signing keys", e))?;
        *cached = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// GitHub: the numeric id is the subject (logins can be renamed and reused);
    /// the primary email counts only when GitHub marks it verified.
    async fn github_identity(
        &self,
        http: &reqwest::Client,
        access_token: &str,
    ) -> Result<VerifiedIdentity, OAuthError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
            login: String,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            primary: bool,
            verified: bool,
        }
        let api = self
            .config
            .api
            .as_deref()
            .unwrap_or("https://api.github.com");
        let user: User = fetch_json(http, &format!("{api}/user"), Some(access_token))
            .await
            .map_err(|e| unavailable("GitHub user", e))?;
        let emails: Vec<Email> =
            fetch_json(http, &format!("{api}/user/emails"), Some(access_token))
                .await
                .unwrap_or_default();
        let primary = emails.into_iter().find(|e| e.primary);
        Ok(VerifiedIdentity {
            provider: ProviderKind::GitHub,
            subject: user.id.to_string(),
            email_verified: primary.as_ref().is_some_and(|e| e.verified),
            email: primary.map(|e| e.email),
            name_hint: Some(user.login),
        })
    }
}

/// GET a JSON document (optionally with a bearer token); non-2xx is an error.
async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<T, String> {
    let mut request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        // GitHub's API refuses requests without a User-Agent.
        .header(reqwest::header::USER_AGENT, "calos");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    response.json().await.map_err(|e| e.to_string())
}
