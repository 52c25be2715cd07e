//! Sign in with Apple's client secret: not a fixed string but an ES256 JWT that
//! calos signs with the team's private key, valid for minutes (Apple allows up
//! to six months; a short life means a leaked one is useless soon).

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long each client secret lives.
const LIFETIME_SECS: u64 = 300;

#[derive(Serialize)]
struct ClientSecretClaims<'a> {
    iss: &'a str,
    iat: u64,
    exp: u64,
    aud: &'a str,
    sub: &'a str,
}

/// `team_id` signs for `client_id` towards `audience` (Apple's issuer).
pub fn client_secret(
    team_id: &str,
    key_id: &str,
    private_key_pem: &str,
    client_id: &str,
    audience: &str,
) -> Result<String, jsonwebtoken::errors::Error> {
    let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes())?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id.to_string());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = ClientSecretClaims {
        iss: team_id,
        iat: now,
        exp: now + LIFETIME_SECS,
        aud: audience,
        sub: client_id,
    };
    encode(&header, &claims, &key)
}
