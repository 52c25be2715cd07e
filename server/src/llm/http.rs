//! One HTTP client per upstream provider, and the one place that turns
//! transport failures and error statuses into [`ProviderError`]s.
//!
//! Clients never follow redirects (a 302 to a metadata address must not be
//! fetched with our API key: ASVS 15.3.2), set TCP_NODELAY, and keep a bounded
//! idle pool. Upstream addresses come only from server configuration.

use super::error::ProviderError;
use super::error_body::{read_bounded, ERROR_BODY_TIME, MAX_ERROR_BODY_BYTES};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use std::time::Duration;

/// An API key that never prints.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Option<Self> {
        let key = key.trim().to_string();
        (!key.is_empty()).then_some(Self(key))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Pool and timeout settings for upstream clients.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
}

/// A configured upstream: its name, base URL, client and key.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    /// Base URL without a trailing slash (for OpenAI-style APIs it includes `/v1`).
    pub base: String,
    /// The base URL as errors and logs show it: any `user:password@` removed.
    pub shown: String,
    pub client: Client,
    pub api_key: Option<ApiKey>,
    /// How long to wait for response headers.
    pub connect_timeout: Duration,
    /// What to tell a person when this upstream cannot be reached.
    pub unreachable_hint: String,
    /// What to tell a person when a model is missing here.
    pub missing_model_hint: String,
}

impl Upstream {
    pub fn new(
        name: &str,
        base: &str,
        api_key: Option<ApiKey>,
        pool: PoolSettings,
    ) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(pool.connect_timeout)
            .pool_idle_timeout(pool.idle_timeout)
            .pool_max_idle_per_host(pool.max_idle_per_host)
            .tcp_nodelay(true)
            .user_agent(concat!("calos/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            name: name.to_string(),
            base: base.trim_end_matches('/').to_string(),
            shown: without_credentials(base.trim_end_matches('/')),
            client,
            api_key,
            connect_timeout: pool.connect_timeout,
            unreachable_hint: String::new(),
            missing_model_hint: String::new(),
        })
    }

    pub fn with_hints(
        mut self,
        unreachable: impl Into<String>,
        missing_model: impl Into<String>,
    ) -> Self {
        self.unreachable_hint = unreachable.into();
        self.missing_model_hint = missing_model.into();
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// Sends `request`, waiting at most the connect timeout for response headers,
/// and maps every failure to a [`ProviderError`] that names this upstream.
pub async fn send(
    upstream: &Upstream,
    request: RequestBuilder,
    model: &str,
) -> Result<Response, ProviderError> {
    let sent = tokio::time::timeout(upstream.connect_timeout, request.send()).await;
    let response = match sent {
        Err(_) => {
            return Err(ProviderError::Timeout {
                provider: upstream.name.clone(),
                address: upstream.shown.clone(),
                phase: "connect",
                after: upstream.connect_timeout,
            })
        }
        Ok(Err(e)) => {
            return Err(ProviderError::Unreachable {
                provider: upstream.name.clone(),
                address: upstream.shown.clone(),
                detail: describe(&e),
                hint: upstream.unreachable_hint.clone(),
            })
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if status.is_redirection() {
        return Err(ProviderError::Status {
            provider: upstream.name.clone(),
            address: upstream.shown.clone(),
            status: status.as_u16(),
            message: "a redirect, which calos does not follow for upstream calls".into(),
            retry_after: None,
        });
    }
    let message = error_message(response).await;
    if status == StatusCode::NOT_FOUND
        && !model.is_empty()
        && message.to_lowercase().contains("not found")
    {
        return Err(ProviderError::ModelNotFound {
            provider: upstream.name.clone(),
            model: model.to_string(),
            hint: upstream.missing_model_hint.replace("{model}", model),
        });
    }
    Err(ProviderError::Status {
        provider: upstream.name.clone(),
        address: upstream.shown.clone(),
        status: status.as_u16(),
        message,
        retry_after,
    })
}

/// The provider's own error message, bounded (an HTML error page is not echoed
/// whole, nor read whole: see [`super::error_body`]).
async fn error_message(response: Response) -> String {
    let body = read_bounded(
        response.bytes_stream(),
        MAX_ERROR_BODY_BYTES,
        ERROR_BODY_TIME,
    )
    .await;
    let text = String::from_utf8_lossy(&body).into_owned();
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| {
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .or_else(|| e.as_str())
                })
                .map(str::to_string)
        });
    let message = from_json.unwrap_or(text);
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if message.is_empty() {
        "no error message".into()
    } else {
        message
    }
}

/// A short reason for a transport failure, without URLs or headers.
/// `url` with any `user:password@` taken out: the address is shown in error
/// replies to administrators and in logs, and a credential in it never is.
pub fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.as_str().trim_end_matches('/').to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL reqwest could call anyway; show no more than its scheme.
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => "…".into(),
        },
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or failed".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_request() {
        "the request could not be sent".into()
    } else {
        "transport error".into()
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn credentials_in_an_upstream_url_are_never_shown() {
        assert_eq!(
            without_credentials("http://admin:hunter2@gpu.example.com:11434"),
            "http://gpu.example.com:11434"
        );
        assert_eq!(
            without_credentials("https://token@api.example.com/v1"),
            "https://api.example.com/v1"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434"
        );
        assert_eq!(without_credentials("ht!tp://a:b@c"), "ht!tp://…");
    }
}
