//! Access tokens: HS256 JWTs with every registered claim set and checked.
//!
//! RFC 8725 and ASVS V9: the algorithm is pinned (no `none`, no key confusion),
//! `exp`/`nbf`/`iat`/`iss`/`aud`/`sub` are all required and validated with a small
//! leeway, and the key is at least 256 bits of configured or generated randomness.
//! The `sep` claim carries the user's session epoch so logout can revoke tokens.

use anyhow::{bail, Context};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

pub const ISSUER: &str = "calos";
pub const AUDIENCE: &str = "calos-api";
const TOKEN_TYPE: &str = "access";
const LEEWAY_SECS: u64 = 5;
/// HS256 needs a key at least as long as its hash (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// The placeholder in `.env.example`; refusing it stops copy-paste deployments.
pub const EXAMPLE_SECRET: &str = "replace-me-with-at-least-32-random-bytes-eg-openssl-rand-hex-32";
const SECRET_FILE: &str = "jwt-secret";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// Unique per token: two logins never share a token.
    pub jti: String,
    /// Token purpose; only access tokens are accepted by the API.
    pub typ: String,
    /// The user's session epoch when the token was issued.
    pub sep: i64,
}

/// A signing secret that never prints.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// From `CALOS_JWT_SECRET`: refuses short or placeholder keys.
    pub fn from_configured(value: &str) -> anyhow::Result<Self> {
        if value == EXAMPLE_SECRET {
            bail!("CALOS_JWT_SECRET is the example placeholder; generate one with `openssl rand -hex 32`");
        }
        if value.len() < MIN_SECRET_BYTES {
            bail!(
                "CALOS_JWT_SECRET is {} bytes; it must be at least {MIN_SECRET_BYTES} (try `openssl rand -hex 32`)",
                value.len()
            );
        }
        Ok(Self(value.as_bytes().to_vec()))
    }

    /// Reads `<data_dir>/jwt-secret`, creating it (mode 0600, 32 random bytes, hex)
    /// on first start so restarts keep sessions valid.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(SECRET_FILE);
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        match std::fs::read_to_string(&path) {
            Ok(existing) => {
                restrict_permissions(&path)?;
                Self::from_configured(existing.trim())
                    .with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                let encoded = hex::encode(bytes);
                write_private(&path, &encoded)?;
                Ok(Self(encoded.into_bytes()))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {} to 0600", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token")]
    Invalid,
    #[error("could not sign token: {0}")]
    Signing(String),
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl JwtKeys {
    pub fn new(secret: &Secret, ttl: Duration) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret.0)
                .context("preparing the JWT signing key")?,
            decoding: DecodingKey::from_secret(&secret.0)
                .context("preparing the JWT verification key")?,
            validation,
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: &str, session_epoch: i64) -> Result<String, TokenError> {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now + self.ttl.as_secs(),
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: TOKEN_TYPE.into(),
            sep: session_epoch,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        // iat in the future means a forged or mis-clocked token.
        if claims.typ != TOKEN_TYPE
            || claims.iat > now_secs() + LEEWAY_SECS
            || claims.sub.is_empty()
        {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    #[cfg(test)]
    fn sign_raw(&self, claims: &Claims, header: &Header) -> String {
        encode(header, claims, &self.encoding).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        let secret =
            Secret::from_configured("0123456789abcdef0123456789abcdef").map_err(|e| e.to_string());
        let Ok(secret) = secret else {
            panic!("{secret:?}")
        };
        match JwtKeys::new(&secret, Duration::from_secs(3600)) {
            Ok(keys) => keys,
            Err(e) => panic!("{e}"),
        }
    }

    fn claims(keys: &JwtKeys) -> Claims {
        let token = keys.issue("user-1", 0).unwrap_or_default();
        keys.verify(&token)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_issued_token_verifies_with_all_claims() {
        let keys = keys();
        let c = claims(&keys);
        assert_eq!(
            (c.sub.as_str(), c.iss.as_str(), c.aud.as_str()),
            ("user-1", ISSUER, AUDIENCE)
        );
        assert!(c.exp > c.iat && c.nbf == c.iat);
    }

    #[test]
    fn expired_wrong_audience_and_future_tokens_are_rejected() {
        let keys = keys();
        let base = claims(&keys);
        let header = Header::new(Algorithm::HS256);
        let expired = Claims {
            exp: now_secs() - 60,
            ..base.clone()
        };
        let wrong_aud = Claims {
            aud: "someone-else".into(),
            ..base.clone()
        };
        let not_yet = Claims {
            nbf: now_secs() + 600,
            ..base.clone()
        };
        let wrong_typ = Claims {
            typ: "refresh".into(),
            ..base.clone()
        };
        let wrong_iss = Claims {
            iss: "https://issuer.example.com".into(),
            ..base.clone()
        };
        for bad in [expired, wrong_aud, not_yet, wrong_typ, wrong_iss] {
            assert!(
                keys.verify(&keys.sign_raw(&bad, &header)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_token_without_an_expiry_is_rejected() {
        let keys = keys();
        let mut claims = serde_json::to_value(claims(&keys)).unwrap();
        claims.as_object_mut().unwrap().remove("exp");
        let token = encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn other_algorithms_and_alg_none_are_rejected() {
        let keys = keys();
        let base = claims(&keys);
        let hs512 = keys.sign_raw(&base, &Header::new(Algorithm::HS512));
        assert!(keys.verify(&hs512).is_err());
        // alg:none: header {"alg":"none"} with an empty signature.
        let good = keys.issue("user-1", 0).unwrap_or_default();
        let payload = good.split('.').nth(1).unwrap_or_default();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(keys.verify(&none).is_err());
    }

    #[test]
    fn short_and_placeholder_secrets_are_refused() {
        assert!(Secret::from_configured("short").is_err());
        assert!(Secret::from_configured(EXAMPLE_SECRET).is_err());
        assert_eq!(format!("{:?}", Secret(b"x".to_vec())), "Secret(***)");
    }
}
