//! Provider failures, each naming the provider, its address and the fix, so
//! "is it my setup or the model?" is answered by the error message itself.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Nothing answers at the address (refused, DNS, TLS, reset before headers).
    #[error("{provider} is not reachable at {address}: {detail}. {hint}")]
    Unreachable {
        provider: String,
        address: String,
        detail: String,
        hint: String,
    },
    /// The provider needs configuration it does not have (an API key).
    #[error("{provider} is not configured: {hint}")]
    NotConfigured { provider: String, hint: String },
    /// No model by that name at the provider.
    #[error("model {model:?} is not available from {provider}. {hint}")]
    ModelNotFound {
        provider: String,
        model: String,
        hint: String,
    },
    /// A phase took longer than its limit.
    #[error("{provider} at {address} timed out waiting for {phase} after {}s", .after.as_secs_f64())]
    Timeout {
        provider: String,
        address: String,
        phase: &'static str,
        after: Duration,
    },
    /// The provider answered with an error status.
    #[error("{provider} at {address} answered HTTP {status}: {message}")]
    Status {
        provider: String,
        address: String,
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// The provider's answer could not be understood, or stopped half-way.
    #[error("{provider} at {address} sent an invalid or truncated answer: {message}")]
    Protocol {
        provider: String,
        address: String,
        message: String,
    },
}

impl ProviderError {
    /// Worth another attempt (before any token reached the client).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Protocol { .. } => true,
            Self::Timeout { phase, .. } => *phase == "connect",
            Self::NotConfigured { .. } | Self::ModelNotFound { .. } => false,
        }
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What a caller who is not an administrator is told: what went wrong
    /// and what to do, without the provider's address or its raw answer
    /// (both are in the log and in administrators' replies).
    pub fn public_message(&self) -> String {
        const ASK: &str = "If it keeps happening, ask an administrator: calos's log has the cause.";
        match self {
            Self::Unreachable { provider, hint, .. } => format!(
                "The model provider {provider} cannot be reached right now. {} {ASK}",
                without_addresses(hint)
            ),
            Self::NotConfigured { provider, hint } => format!(
                "The model provider {provider} is not set up on this gateway: {}",
                without_addresses(hint)
            ),
            Self::ModelNotFound { provider, model, hint } => format!(
                "Model {model:?} is not available from {provider}. {}",
                without_addresses(hint)
            ),
            Self::Timeout { provider, phase, after, .. } => format!(
                "{provider} took longer than {}s waiting for {phase}. Try again, or ask for a shorter answer. {ASK}",
                after.as_secs_f64()
            ),
            Self::Status { provider, status: 429, .. } => {
                format!("{provider} is rate-limiting this gateway. Wait a moment and try again.")
            }
            Self::Status { provider, status, message, .. }
                if (400..500).contains(status) && *status != 401 && *status != 403 =>
            {
                // The provider's own words say what to fix ("context length
                // exceeded"); any address in them is hidden.
                format!("{provider} refused the request (HTTP {status}): {}", without_addresses(message))
            }
            Self::Status { provider, status, .. } => {
                format!("{provider} answered with an error (HTTP {status}). Try again in a moment. {ASK}")
            }
            Self::Protocol { provider, .. } => {
                format!("{provider} sent an answer calos could not read. Try again. {ASK}")
            }
        }
    }

    /// The HTTP status a client gets for this failure: 404 for a model the
    /// provider does not have, 429 for the provider's rate limit, 503 when it
    /// cannot be reached, 504 when it was too slow, 502 for anything else.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unreachable { .. } | Self::NotConfigured { .. } => 503,
            Self::ModelNotFound { .. } => 404,
            Self::Timeout { .. } => 504,
            Self::Status { status: 429, .. } => 429,
            Self::Status { .. } | Self::Protocol { .. } => 502,
        }
    }

    /// Short machine-readable code for the API error and the logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "provider_unreachable",
            Self::NotConfigured { .. } => "provider_not_configured",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::Timeout { .. } => "provider_timeout",
            Self::Status { status: 429, .. } => "provider_rate_limited",
            Self::Status { .. } => "provider_error",
            Self::Protocol { .. } => "provider_protocol_error",
        }
    }
}

/// `text` with every word that looks like a URL or a host:port replaced, and
/// cut to a readable length.
fn without_addresses(text: &str) -> String {
    const LONGEST: usize = 300;
    let mut shown: String = text
        .split_whitespace()
        .map(|word| {
            let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
            let hostlike = bare.contains("://")
                || bare.split_once(':').is_some_and(|(host, port)| {
                    host.contains('.')
                        && !port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                });
            if hostlike {
                word.replacen(bare, "[address]", 1)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if shown.chars().count() > LONGEST {
        shown = shown.chars().take(LONGEST).collect::<String>() + "…";
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn all(address: &str) -> Vec<ProviderError> {
        let provider = "ollama".to_string();
        let address = address.to_string();
        vec![
            ProviderError::Unreachable {
                provider: provider.clone(),
                address: address.clone(),
                detail: "refused".into(),
                hint: format!("Is it running at {address}?"),
            },
            ProviderError::NotConfigured {
                provider: provider.clone(),
                hint: "set OPENAI_API_KEY".into(),
            },
            ProviderError::ModelNotFound {
                provider: provider.clone(),
                model: "m".into(),
                hint: format!("ollama pull m at {address}"),
            },
            ProviderError::Timeout {
                provider: provider.clone(),
                address: address.clone(),
                phase: "first token",
                after: Duration::from_secs(30),
            },
            ProviderError::Status {
                provider: provider.clone(),
                address: address.clone(),
                status: 500,
                message: format!("boom at {address}"),
                retry_after: None,
            },
            ProviderError::Status {
                provider: provider.clone(),
                address: address.clone(),
                status: 400,
                message: format!("context length exceeded; see {address}/docs or 10.0.0.7:11434"),
                retry_after: None,
            },
            ProviderError::Status {
                provider: provider.clone(),
                address: address.clone(),
                status: 429,
                message: "slow down".into(),
                retry_after: Some(2),
            },
            ProviderError::Protocol {
                provider,
                address: address.clone(),
                message: format!("bad line from {address}"),
            },
        ]
    }

    #[test]
    fn public_messages_never_name_the_address() {
        for error in all("http://gpu-box.internal.example.com:11434") {
            let public = error.public_message();
            assert!(!public.contains("gpu-box"), "{public}");
            assert!(!public.contains("11434"), "{public}");
            assert!(public.contains("ollama"), "{public}");
            // The full detail (for administrators and the log) still has it.
            if !matches!(
                error,
                ProviderError::NotConfigured { .. } | ProviderError::ModelNotFound { .. }
            ) {
                assert!(error.to_string().contains("gpu-box"), "{error}");
            }
        }
    }

    #[test]
    fn a_refusal_keeps_the_providers_words() {
        let error = &all("http://10.1.2.3:8000")[5];
        let public = error.public_message();
        assert!(public.contains("context length exceeded"), "{public}");
        assert!(
            !public.contains("10.0.0.7") && !public.contains("10.1.2.3"),
            "{public}"
        );
    }
}
