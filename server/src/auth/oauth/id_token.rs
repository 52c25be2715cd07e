//! OpenID Connect ID tokens: checked against the provider's published keys (JWKS),
//! its issuer, our client id and the nonce this browser's sign-in started with.
//!
//! The algorithm comes from the allow-list and must fit the key the token names;
//! the token's own `alg` header never picks a weaker scheme (no `none`, no HMAC
//! with a public key as the secret: RFC 8725 §2.1, §3.1).

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// What providers sign ID tokens with: Google and Apple use RS256; ES256 and
/// EdDSA are the other asymmetric schemes OpenID allows and jsonwebtoken checks.
const ALLOWED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// Clock skew tolerated on `exp`/`iat`/`nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("signed with {0:?}, which is not allowed")]
    Algorithm(Algorithm),
    /// Refetching the keys may help (the provider rotated them).
    #[error("signed with a key the provider does not publish")]
    UnknownKey,
    #[error("signature, issuer, audience or lifetime check failed: {0}")]
    Claims(String),
    #[error("nonce does not match this sign-in")]
    Nonce,
}

/// The claims calos uses. `email_verified` is a boolean at Google and the string
/// "true"/"false" at Apple.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

impl IdClaims {
    pub fn email_verified(&self) -> bool {
        match &self.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        }
    }
}

/// The key a token names: by `kid`, or the only key when the set has one and the
/// token names none.
fn key_for<'a>(keys: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
}

/// Verifies `token` and returns its claims.
pub fn validate(
    token: &str,
    keys: &JwkSet,
    issuer: &str,
    client_id: &str,
    nonce: &str,
) -> Result<IdClaims, IdTokenError> {
    let header = decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ALLOWED.contains(&header.alg) {
        return Err(IdTokenError::Algorithm(header.alg));
    }
    let jwk = key_for(keys, header.kid.as_deref()).ok_or(IdTokenError::UnknownKey)?;
    if let Some(published) = jwk.common.key_algorithm {
        // Both serialise to the JOSE name ("RS256", "EdDSA").
        if serde_json::to_value(published).ok() != serde_json::to_value(header.alg).ok() {
            return Err(IdTokenError::Algorithm(header.alg));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| IdTokenError::Claims(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    let data = decode::<IdClaims>(token, &key, &validation)
        .map_err(|e| IdTokenError::Claims(e.to_string()))?;
    // Constant-time is not needed: the nonce is not a secret once it is in a URL.
    if data.claims.nonce.as_deref() != Some(nonce) {
        return Err(IdTokenError::Nonce);
    }
    Ok(data.claims)
}
