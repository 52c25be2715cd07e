//! `calos mock-oauth`: a local OAuth 2.0 / OpenID Connect provider for tests and
//! demos, speaking Google's and Apple's OpenID flavour (discovery, JWKS, ID
//! tokens) and GitHub's plain OAuth (user and emails API) over real HTTP.
//!
//! It is strict where calos's safety depends on the provider being strict:
//! PKCE S256 is required and checked, codes are single-use and short-lived, the
//! token request must repeat the authorize request's redirect URI and
//! authenticate the client (Apple's ES256 client-secret JWT is verified when the
//! team's public key is given). `POST /_emulator/next-id-token` makes the next
//! ID token wrong in a chosen way, so tests can prove calos refuses it.

// Handlers return early with the provider's error response; boxing them would
// only add noise to a test server.
#![allow(clippy::result_large_err)]

mod pages;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use clap::Args;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Args)]
pub struct MockOAuthArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9090)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// The one registered client's id (all three providers).
    #[arg(long, default_value = "calos-local")]
    pub client_id: String,
    /// Its secret (Google and GitHub).
    #[arg(long, default_value = "calos-local-secret")]
    pub client_secret: String,
    /// Apple team id expected as the client secret JWT's issuer.
    #[arg(long, default_value = "TEAMID1234")]
    pub apple_team_id: String,
    /// Apple team's public key (PEM) to verify client secret JWTs with; unset:
    /// their claims are checked but not their signature.
    #[arg(long)]
    pub apple_public_key: Option<String>,
}

/// Providers this emulator plays; the path prefix names it.
const OPENID: [&str; 2] = ["google", "apple"];
/// How long an authorization code can be redeemed.
const CODE_TTL: Duration = Duration::from_secs(60);

/// Who approves at the consent page.
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    #[serde(default = "default_sub")]
    pub sub: String,
    #[serde(default)]
    pub email: String,
    /// A checkbox: present means verified.
    #[serde(default)]
    pub email_verified: Option<String>,
    #[serde(default)]
    pub name: String,
}

fn default_sub() -> String {
    "emulated-user-1".into()
}

/// Ways to spoil the next ID token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spoil {
    pub iss: Option<String>,
    pub aud: Option<String>,
    pub nonce: Option<String>,
    /// Seconds added to `exp` (negative: already expired).
    pub exp_offset_secs: Option<i64>,
    /// Sign with a key the JWKS does not publish.
    #[serde(default)]
    pub unknown_key: bool,
    /// Leave the id_token out of the token response.
    #[serde(default)]
    pub omit: bool,
}

struct Grant {
    provider: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    person: Person,
    issued: Instant,
}

pub struct MockOAuthState {
    base: String,
    args: MockOAuthArgs,
    key: SigningKey,
    stranger: SigningKey,
    kid: String,
    codes: Mutex<HashMap<String, Grant>>,
    access: Mutex<HashMap<String, Person>>,
    spoil: Mutex<Option<Spoil>>,
}

pub struct MockOAuthServer {
    pub addr: SocketAddr,
    pub state: Arc<MockOAuthState>,
    shutdown: CancellationToken,
}

impl MockOAuthServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OpenID issuer of `provider` ("google", "apple").
    pub fn issuer(&self, provider: &str) -> String {
        format!("{}/{provider}", self.url())
    }
}

impl Drop for MockOAuthServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

/// An Ed25519 private key as PKCS#8 v1 DER (RFC 8410): a fixed prefix and the seed.
fn pkcs8(key: &SigningKey) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&key.to_bytes());
    der
}

/// An OAuth error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub fn router(state: Arc<MockOAuthState>) -> Router {
    Router::new()
        .route(
            "/{provider}/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/{provider}/jwks", get(jwks))
        .route("/{provider}/authorize", get(consent).post(decide))
        .route("/{provider}/token", post(token))
        .route(
            "/github/login/oauth/authorize",
            get(github_consent).post(github_decide),
        )
        .route("/github/login/oauth/access_token", post(github_token))
        .route("/github/api/user", get(github_user))
        .route("/github/api/user/emails", get(github_emails))
        .route("/_emulator/next-id-token", post(set_spoil))
        .with_state(state)
}

pub async fn spawn(args: &MockOAuthArgs) -> anyhow::Result<MockOAuthServer> {
    let listener = TcpListener::bind(SocketAddr::new(args.host, args.port)).await?;
    let addr = listener.local_addr()?;
    let key = SigningKey::from_bytes(&rand::random());
    let state = Arc::new(MockOAuthState {
        base: format!("http://{addr}"),
        args: args.clone(),
        kid: hex::encode(&key.verifying_key().to_bytes()[..8]),
        key,
        stranger: SigningKey::from_bytes(&rand::random()),
        codes: Mutex::new(HashMap::new()),
        access: Mutex::new(HashMap::new()),
        spoil: Mutex::new(None),
    });
    let shutdown = CancellationToken::new();
    let app = router(state.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(MockOAuthServer {
        addr,
        state,
        shutdown,
    })
}

/// `calos mock-oauth`: runs until SIGINT/SIGTERM.
pub async fn run(args: MockOAuthArgs) -> anyhow::Result<()> {
    let server = spawn(&args).await?;
    println!(
        "mock-oauth listening on {} (client id {:?}; issuers {0}/google, {0}/apple; GitHub at {0}/github)",
        server.url(),
        args.client_id
    );
    let stop = CancellationToken::new();
    crate::shutdown::cancel_on_signals(stop.clone());
    stop.cancelled().await;
    Ok(())
}

fn openid_provider(provider: &str) -> Result<&str, Response> {
    OPENID
        .iter()
        .find(|p| **p == provider)
        .copied()
        .ok_or_else(|| oauth_error(StatusCode::NOT_FOUND, "not_found", "unknown provider"))
}

async fn discovery(State(s): State<Arc<MockOAuthState>>, Path(provider): Path<String>) -> Response {
    let provider = match openid_provider(&provider) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let issuer = format!("{}/{provider}", s.base);
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<MockOAuthState>>) -> Json<Value> {
    Json(json!({ "keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
        "alg": "EdDSA",
        "kid": s.kid,
        "x": URL_SAFE_NO_PAD.encode(s.key.verifying_key().to_bytes()),
    }]}))
}

/// The authorize request's parameters, checked before the consent page shows.
#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
}

fn check_authorize(s: &MockOAuthState, p: &AuthorizeParams) -> Result<(), Response> {
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, Html(pages::error(msg))).into_response();
    if p.client_id.as_deref() != Some(s.args.client_id.as_str()) {
        return Err(bad("unknown client_id"));
    }
    if p.response_type.as_deref() != Some("code") {
        return Err(bad("response_type must be code"));
    }
    match p.redirect_uri.as_deref() {
        Some(uri) if uri.starts_with("http://") || uri.starts_with("https://") => {}
        _ => return Err(bad("redirect_uri is required")),
    }
    if p.code_challenge.is_none() || p.code_challenge_method.as_deref() != Some("S256") {
        return Err(bad("PKCE with S256 is required"));
    }
    Ok(())
}

async fn consent(
    State(s): State<Arc<MockOAuthState>>,
    Path(provider): Path<String>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    if let Err(r) = openid_provider(&provider) {
        return r;
    }
    show_consent(&s, &provider, &params)
}

async fn github_consent(
    State(s): State<Arc<MockOAuthState>>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    show_consent(&s, "github", &params)
}

fn show_consent(s: &MockOAuthState, provider: &str, params: &AuthorizeParams) -> Response {
    if let Err(r) = check_authorize(s, params) {
        return r;
    }
    Html(pages::consent(provider)).into_response()
}

/// The consent form's answer: who, and approve or deny.
#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    person: Person,
    decision: String,
}

async fn decide(
    State(s): State<Arc<MockOAuthState>>,
    Path(provider): Path<String>,
    Query(params): Query<AuthorizeParams>,
    Form(decision): Form<Decision>,
) -> Response {
    if let Err(r) = openid_provider(&provider) {
        return r;
    }
    redirect_back(&s, &provider, params, decision)
}

async fn github_decide(
    State(s): State<Arc<MockOAuthState>>,
    Query(params): Query<AuthorizeParams>,
    Form(decision): Form<Decision>,
) -> Response {
    redirect_back(&s, "github", params, decision)
}

/// Sends the browser back to the client with a code (or `access_denied`), the
/// state, and for OpenID providers the RFC 9207 `iss`.
fn redirect_back(
    s: &MockOAuthState,
    provider: &str,
    params: AuthorizeParams,
    decision: Decision,
) -> Response {
    if let Err(r) = check_authorize(s, &params) {
        return r;
    }
    let redirect_uri = params.redirect_uri.unwrap_or_default();
    let Ok(mut back) = oauth2::url::Url::parse(&redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error("redirect_uri is not a URL")),
        )
            .into_response();
    };
    {
        let mut query = back.query_pairs_mut();
        if decision.decision == "approve" {
            let code = random_token();
            s.codes.lock().insert(
                code.clone(),
                Grant {
                    provider: provider.to_string(),
                    redirect_uri: redirect_uri.clone(),
                    challenge: params.code_challenge.unwrap_or_default(),
                    nonce: params.nonce,
                    person: decision.person,
                    issued: Instant::now(),
                },
            );
            query.append_pair("code", &code);
        } else {
            query.append_pair("error", "access_denied");
            query.append_pair("error_description", "The person declined.");
        }
        if let Some(state) = &params.state {
            query.append_pair("state", state);
        }
        if OPENID.contains(&provider) {
            query.append_pair("iss", &format!("{}/{provider}", s.base));
        }
    }
    Redirect::to(back.as_str()).into_response()
}

/// The token request (RFC 6749 §4.1.3 with RFC 7636's `code_verifier`).
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The client's id and secret from HTTP Basic (oauth2's default) or the body.
fn client_credentials(headers: &HeaderMap, body: &TokenRequest) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |v: &str| {
                oauth2::url::form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    basic.or_else(|| Some((body.client_id.clone()?, body.client_secret.clone()?)))
}

/// Apple's client secret is a JWT the client signs (iss team, sub client, aud
/// issuer). Without the team's public key only its claims can be checked.
fn apple_secret_ok(s: &MockOAuthState, secret: &str) -> bool {
    let audience = format!("{}/apple", s.base);
    let Some(pem) = &s.args.apple_public_key else {
        let claims = secret
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .unwrap_or_default();
        return claims["iss"] == json!(s.args.apple_team_id)
            && claims["sub"] == json!(s.args.client_id)
            && claims["aud"] == json!(audience)
            && claims["exp"].as_i64().is_some_and(|exp| exp > now());
    };
    let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&s.args.apple_team_id]);
    validation.set_audience(&[audience]);
    validation.sub = Some(s.args.client_id.clone());
    jsonwebtoken::decode::<Value>(secret, &key, &validation).is_ok()
}

/// Checks a token request and uses up its code; returns the grant.
fn redeem(
    s: &MockOAuthState,
    provider: &str,
    headers: &HeaderMap,
    body: &TokenRequest,
) -> Result<Grant, Response> {
    let invalid = |error: &str, why: &str| oauth_error(StatusCode::BAD_REQUEST, error, why);
    if body.grant_type.as_deref() != Some("authorization_code") {
        return Err(invalid("unsupported_grant_type", "only authorization_code"));
    }
    let Some((id, secret)) = client_credentials(headers, body) else {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client credentials",
        ));
    };
    let secret_ok = if provider == "apple" {
        apple_secret_ok(s, &secret)
    } else {
        secret == s.args.client_secret
    };
    if id != s.args.client_id || !secret_ok {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "bad client credentials",
        ));
    }
    let code = body.code.as_deref().unwrap_or_default();
    // Removed whatever happens next: a code is good for one attempt.
    let grant = s
        .codes
        .lock()
        .remove(code)
        .ok_or_else(|| invalid("invalid_grant", "unknown or already used code"))?;
    if grant.provider != provider || grant.issued.elapsed() > CODE_TTL {
        return Err(invalid(
            "invalid_grant",
            "code expired or for another provider",
        ));
    }
    if body.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return Err(invalid(
            "invalid_grant",
            "redirect_uri differs from the authorize request",
        ));
    }
    let verifier = body.code_verifier.as_deref().unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        return Err(invalid(
            "invalid_grant",
            "PKCE verifier does not match the challenge",
        ));
    }
    Ok(grant)
}

async fn token(
    State(s): State<Arc<MockOAuthState>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Form(body): Form<TokenRequest>,
) -> Response {
    if let Err(r) = openid_provider(&provider) {
        return r;
    }
    let grant = match redeem(&s, &provider, &headers, &body) {
        Ok(grant) => grant,
        Err(r) => return r,
    };
    let spoil = s.spoil.lock().take().unwrap_or_default();
    let issuer = format!("{}/{provider}", s.base);
    let verified = grant.person.email_verified.is_some();
    let mut claims = json!({
        "iss": spoil.iss.unwrap_or(issuer),
        "aud": spoil.aud.unwrap_or_else(|| s.args.client_id.clone()),
        "sub": grant.person.sub,
        "iat": now(),
        "exp": now() + 600 + spoil.exp_offset_secs.unwrap_or(0),
        "nonce": spoil.nonce.or(grant.nonce),
    });
    if !grant.person.email.is_empty() {
        claims["email"] = json!(grant.person.email);
        // Apple sends the flag as a string, Google as a boolean.
        claims["email_verified"] = if provider == "apple" {
            json!(verified.to_string())
        } else {
            json!(verified)
        };
    }
    if !grant.person.name.is_empty() {
        claims["name"] = json!(grant.person.name);
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(s.kid.clone());
    let signer = if spoil.unknown_key {
        &s.stranger
    } else {
        &s.key
    };
    let key = EncodingKey::from_ed_der(&pkcs8(signer));
    let id_token = match jsonwebtoken::encode(&header, &claims, &key) {
        Ok(token) => token,
        Err(e) => {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &e.to_string(),
            )
        }
    };
    let mut answer = json!({
        "access_token": random_token(),
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "openid email profile",
    });
    if !spoil.omit {
        answer["id_token"] = json!(id_token);
    }
    Json(answer).into_response()
}

async fn github_token(
    State(s): State<Arc<MockOAuthState>>,
    headers: HeaderMap,
    Form(body): Form<TokenRequest>,
) -> Response {
    let grant = match redeem(&s, "github", &headers, &body) {
        Ok(grant) => grant,
        Err(r) => return r,
    };
    let access_token = random_token();
    s.access.lock().insert(access_token.clone(), grant.person);
    Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "scope": "read:user,user:email",
    }))
    .into_response()
}

fn github_person(s: &MockOAuthState, headers: &HeaderMap) -> Result<Person, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or_default();
    s.access.lock().get(token).cloned().ok_or_else(|| {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "Bad credentials" })),
        )
            .into_response()
    })
}

/// GitHub's user ids are numbers: a numeric `sub` is used as is, any other is
/// hashed to one.
fn github_id(sub: &str) -> u64 {
    sub.parse().unwrap_or_else(|_| {
        let digest = Sha256::digest(sub.as_bytes());
        digest[..8]
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b))
            >> 12
    })
}

async fn github_user(State(s): State<Arc<MockOAuthState>>, headers: HeaderMap) -> Response {
    match github_person(&s, &headers) {
        Ok(p) => Json(json!({
            "id": github_id(&p.sub),
            "login": if p.name.is_empty() { p.sub.clone() } else { p.name.clone() },
            "name": p.name,
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn github_emails(State(s): State<Arc<MockOAuthState>>, headers: HeaderMap) -> Response {
    match github_person(&s, &headers) {
        Ok(p) if p.email.is_empty() => Json(json!([])).into_response(),
        Ok(p) => Json(json!([{
            "email": p.email,
            "primary": true,
            "verified": p.email_verified.is_some(),
            "visibility": "private",
        }]))
        .into_response(),
        Err(r) => r,
    }
}

async fn set_spoil(State(s): State<Arc<MockOAuthState>>, Json(spoil): Json<Spoil>) -> StatusCode {
    *s.spoil.lock() = Some(spoil);
    StatusCode::NO_CONTENT
}
