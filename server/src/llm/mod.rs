//! Talking to models: the providers (Ollama, OpenAI-compatible, the simulator),
//! routing a model name to one, queueing, caching, and relaying streams with
//! their timings.

pub mod balance;
pub mod breaker;
pub mod config;
pub mod deployment;
pub mod error;
pub mod error_body;
pub mod failover;
pub mod http;
pub mod lines;
pub mod ollama;
pub mod openai;
pub mod queue;
pub mod relay;
pub mod router;
pub mod sim;
pub mod types;

use error::ProviderError;
use futures::Stream;
use std::pin::Pin;
use types::{ChatParams, Chunk};

/// A provider's answer as it arrives.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, ProviderError>> + Send>>;

/// The closed set of provider kinds.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Ollama's native API.
    Ollama(http::Upstream),
    /// OpenAI's chat completions API, or any server that speaks it.
    OpenAi(http::Upstream),
    /// The built-in simulated model.
    Sim(sim::SimModel),
    /// A provider calos knows but that lacks configuration; every call explains the fix.
    Unconfigured { name: String, hint: String },
}

impl Provider {
    pub fn name(&self) -> &str {
        match self {
            Self::Ollama(u) | Self::OpenAi(u) => &u.name,
            Self::Sim(_) => "sim",
            Self::Unconfigured { name, .. } => name,
        }
    }

    pub fn address(&self) -> String {
        match self {
            Self::Ollama(u) | Self::OpenAi(u) => u.shown.clone(),
            Self::Sim(_) => "built-in".into(),
            Self::Unconfigured { .. } => "not configured".into(),
        }
    }

    /// Opens a streamed answer; `model` is the name sent upstream.
    pub async fn open(
        &self,
        params: &ChatParams,
        model: &str,
    ) -> Result<ChunkStream, ProviderError> {
        match self {
            Self::Ollama(u) => ollama::open(u, params, model).await,
            Self::OpenAi(u) => openai::open(u, params, model).await,
            Self::Sim(sim) => Ok(sim.stream(params)),
            Self::Unconfigured { name, hint } => Err(ProviderError::NotConfigured {
                provider: name.clone(),
                hint: hint.clone(),
            }),
        }
    }

    /// Models this provider really has right now.
    pub async fn models(&self) -> Result<Vec<String>, ProviderError> {
        match self {
            Self::Ollama(u) => ollama::models(u).await,
            Self::OpenAi(u) => openai::models(u).await,
            Self::Sim(_) => Ok(vec!["sim".into()]),
            Self::Unconfigured { .. } => Ok(Vec::new()),
        }
    }
}
