//! The client's IP address for rate limiting: the socket peer, unless the peer
//! is a configured trusted proxy, in which case the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy (ASVS 15.3.4:
//! forwarded headers from anyone else are ignored, so they cannot be spoofed).

use axum::http::HeaderMap;
use std::net::IpAddr;

pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// The proxies whose `X-Forwarded-For` is believed (`CALOS_TRUSTED_PROXIES`).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub std::sync::Arc<Vec<IpAddr>>);

/// The client's address: the peer, or what a trusted proxy says it forwarded.
/// Handlers ask for this instead of combining headers, peer and proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S> axum::extract::FromRequestParts<S> for ClientIp
where
    TrustedProxies: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::http::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRef;
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| {
                crate::http::error::ApiError::Internal(anyhow::anyhow!(
                    "the server was started without peer addresses (ConnectInfo)"
                ))
            })?;
        let trusted = TrustedProxies::from_ref(state);
        Ok(ClientIp(client_ip(&parts.headers, peer, &trusted.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let stranger: IpAddr = [198, 51, 100, 9].into();
        assert_eq!(
            client_ip(&headers, stranger, &[proxy]),
            stranger,
            "spoofed header ignored"
        );
        assert_eq!(
            client_ip(&headers, proxy, &[proxy]),
            IpAddr::from([203, 0, 113, 7])
        );
        assert_eq!(client_ip(&HeaderMap::new(), proxy, &[proxy]), proxy);
    }
}
