//! Who may see calos's internals: the Prometheus metrics and the detailed
//! health report (database backend, latency and error, uptime, version).
//!
//! An operator is a client on the loopback interface (a local scraper or
//! health checker), a caller with `Authorization: Bearer <CALOS_METRICS_TOKEN>`
//! (Prometheus elsewhere), or a signed-in administrator. Anyone else learns
//! only whether calos is up. Behind a reverse proxy on the same host every
//! client looks like loopback: list the proxy in `CALOS_TRUSTED_PROXIES`, so
//! that the forwarded address is the one judged.

use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::http::extract::{authentication_required, credential};
use crate::http::state::AppState;
use app::wire::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The bearer token that lets a remote scraper read `/metrics` and the
/// detailed health report, kept as its SHA-256: comparing digests takes the
/// same time whatever the guess, so the comparison leaks nothing.
#[derive(Clone, Default)]
pub struct MetricsToken(Option<Arc<[u8; 32]>>);

impl MetricsToken {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| Arc::new(Sha256::digest(t.trim().as_bytes()).into())))
    }

    fn admits(&self, presented: &str) -> bool {
        self.0.as_deref().is_some_and(|expected| {
            let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            presented == *expected
        })
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "MetricsToken(set)"
        } else {
            "MetricsToken(unset)"
        })
    }
}

/// What the caller is: an operator, or the public (and whether it showed a
/// credential that was not enough, for 403 rather than 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Operator,
    Public { showed_credential: bool },
}

impl Viewer {
    pub fn is_operator(self) -> bool {
        self == Viewer::Operator
    }

    /// For endpoints that are operators' only: 401 without a credential,
    /// 403 with one that is not enough.
    pub fn require_operator(self) -> Result<(), ApiError> {
        match self {
            Viewer::Operator => Ok(()),
            Viewer::Public {
                showed_credential: false,
            } => Err(authentication_required()),
            Viewer::Public {
                showed_credential: true,
            } => Err(ApiError::Forbidden(
                "Metrics are for administrators, the metrics token, or local clients.".into(),
            )),
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        if ip.is_loopback() || ip.to_canonical().is_loopback() {
            return Ok(Viewer::Operator);
        }
        // A malformed Authorization header is no credential here: the public
        // answer is still owed.
        let Ok(Some(credential)) = credential(&parts.headers) else {
            return Ok(Viewer::Public {
                showed_credential: false,
            });
        };
        if state.metrics_token.admits(credential.token()) {
            return Ok(Viewer::Operator);
        }
        let admin = state
            .auth
            .authenticate_fresh(credential.token())
            .await
            .is_ok_and(|authed| authed.user.role == Role::Admin);
        Ok(if admin {
            Viewer::Operator
        } else {
            Viewer::Public {
                showed_credential: true,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MetricsToken;

    #[test]
    fn only_the_configured_token_is_admitted() {
        let token = MetricsToken::new(Some("scrape-token-0123456789"));
        assert!(token.admits("scrape-token-0123456789"));
        assert!(!token.admits("scrape-token-012345678"));
        assert!(!MetricsToken::new(None).admits(""));
        assert_eq!(format!("{token:?}"), "MetricsToken(set)");
    }
}
