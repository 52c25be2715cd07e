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
