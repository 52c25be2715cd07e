//! Builds the providers, router, cache and limits from configuration, and says
//! in the log what is available (Ollama is probed, not assumed).

use crate::chat::cache::{CacheBounds, ResponseCache};
use crate::chat::{ChatService, UserLimits};
use crate::config::LlmArgs;
use crate::llm::http::{ApiKey, PoolSettings, Upstream};
use crate::llm::queue::ProviderQueue;
use crate::llm::relay::StreamLimits;
use crate::llm::router::{ModelRouter, ProviderSlot};
use crate::llm::sim::SimModel;
use crate::llm::Provider;
use crate::observability::metrics::Metrics;
use anyhow::Context;
use std::num::NonZeroUsize;
use std::time::Duration;

/// `sim` costs nothing to run, so it gets at least this many slots (load tests
/// of the gateway itself should not queue behind a provider limit).
const SIM_MIN_CONCURRENCY: NonZeroUsize = NonZeroUsize::MIN.saturating_add(1023);

fn openai_like(
    name: &str,
    base: &str,
    key: Option<String>,
    env_key: &str,
    pool: PoolSettings,
) -> anyhow::Result<Provider> {
    let Some(key) = key.and_then(ApiKey::new) else {
        return Ok(Provider::Unconfigured {
            name: name.to_string(),
            hint: format!(
                "set {env_key} to use its models, or route them elsewhere with CALOS_MODEL_ROUTES"
            ),
        });
    };
    let upstream = Upstream::new(name, base, Some(key), pool)
        .with_context(|| format!("building the {name} client"))?
        .with_hints(
            format!("check {name}'s address and your network"),
            format!("{name} has no model {{model}}; see GET /v1/models"),
        );
    Ok(Provider::OpenAi(upstream))
}

/// `metrics` records every request the service handles.
pub async fn build_chat(args: &LlmArgs, metrics: Metrics) -> anyhow::Result<ChatService> {
    let router = build_router(args)?;
    announce(&router).await;
    let cache = ResponseCache::new(CacheBounds {
        max_bytes: args.cache_max_bytes,
        max_entries: args.cache_capacity,
        ttl: args.cache_ttl,
    })
    .reporting_to(metrics.exporter().clone());
    Ok(ChatService::new(
        router,
        cache,
        stream_limits(args),
        args.stream_write_timeout,
        UserLimits {
            rate: args.chat_rate_per_sec,
            burst: args.chat_burst,
            in_flight: args.max_inflight_per_user,
        },
        metrics,
    ))
}

/// The upstream time limits and retry policy from configuration.
pub fn stream_limits(args: &LlmArgs) -> StreamLimits {
    StreamLimits {
        first_token: args.first_token_timeout,
        idle: args.idle_timeout,
        total: args.total_timeout,
        retries: args.upstream_retries,
        backoff: args.retry_backoff,
    }
}

/// Every provider with its queue, behind the routing rules. `calos diag llm`
/// uses this too, to call a provider the way the gateway would, minus the gateway.
pub fn build_router(args: &LlmArgs) -> anyhow::Result<ModelRouter> {
    let pool = PoolSettings {
        connect_timeout: args.connect_timeout,
        idle_timeout: args.upstream_pool_idle,
        max_idle_per_host: args.upstream_pool_max_idle,
    };
    let ollama = Upstream::new("ollama", &args.ollama_url, None, pool)
        .context("building the Ollama client")?
        .with_hints(
            format!(
                "Start it with `ollama serve`, or set OLLAMA_URL (now {}); without Ollama, chat with model `sim`",
                crate::llm::http::without_credentials(&args.ollama_url)
            ),
            "Pull it with `ollama pull {model}`.",
        );
    let mut slots = vec![
        ProviderSlot {
            provider: Provider::Ollama(ollama),
            queue: ProviderQueue::new(args.ollama_concurrency, args.queue_size),
        },
        ProviderSlot {
            provider: openai_like(
                "openai",
                &args.openai_base_url,
                args.openai_api_key.clone(),
                "OPENAI_API_KEY",
                pool,
            )?,
            queue: ProviderQueue::new(args.provider_concurrency, args.queue_size),
        },
        ProviderSlot {
            provider: openai_like(
                "deepseek",
                &args.deepseek_base_url,
                args.deepseek_api_key.clone(),
                "DEEPSEEK_API_KEY",
                pool,
            )?,
            queue: ProviderQueue::new(args.provider_concurrency, args.queue_size),
        },
        ProviderSlot {
            provider: Provider::Sim(SimModel {
                ttft: args.sim_ttft,
                tokens_per_sec: args.sim_tokens_per_sec,
                tokens: args.sim_tokens,
            }),
            queue: ProviderQueue::new(
                args.provider_concurrency.max(SIM_MIN_CONCURRENCY),
                args.queue_size,
            ),
        },
    ];
    if let Some(url) = args.compat_url.as_deref().filter(|u| !u.trim().is_empty()) {
        let key = args.compat_api_key.clone().and_then(ApiKey::new);
        let upstream = Upstream::new("compat", url, key, pool)
            .context("building the compat client")?
            .with_hints(
                format!(
                    "check that the server at {} is running",
                    crate::llm::http::without_credentials(url)
                ),
                "the compat server has no model {model}",
            );
        slots.push(ProviderSlot {
            provider: Provider::OpenAi(upstream),
            queue: ProviderQueue::new(args.provider_concurrency, args.queue_size),
        });
    }
    Ok(ModelRouter::new(args.model_routes(), slots))
}

async fn announce(router: &ModelRouter) {
    for slot in router.providers() {
        let provider = &slot.provider;
        match provider {
            Provider::Unconfigured { name, hint } => {
                tracing::info!(provider = %name, "provider not configured: {hint}")
            }
            Provider::Sim(_) => tracing::info!(
                provider = "sim",
                "simulated model `sim` available (calos built-in)"
            ),
            _ => match tokio::time::timeout(Duration::from_secs(2), provider.models()).await {
                Ok(Ok(models)) => {
                    tracing::info!(provider = provider.name(), address = %provider.address(), models = models.len(), "provider detected")
                }
                Ok(Err(e)) => tracing::warn!(
                    provider = provider.name(),
                    "provider not available now: {e}"
                ),
                Err(_) => {
                    tracing::warn!(provider = provider.name(), address = %provider.address(), "provider did not answer within 2 s")
                }
            },
        }
    }
}
