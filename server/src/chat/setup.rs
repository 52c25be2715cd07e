//! Builds the providers, router, cache and limits from configuration, and says
//! in the log what is available (Ollama is probed, not assumed).

use crate::chat::cache::{CacheBounds, ResponseCache};
use crate::chat::debug_delay::DebugDelay;
use crate::chat::{ChatService, UserLimits};
use crate::config::LlmArgs;
use crate::llm::breaker::Breaker;
use crate::llm::config::{DeploymentSpec, FallbackSpec};
use crate::llm::deployment::Deployment;
use crate::llm::http::{ApiKey, PoolSettings, Upstream};
use crate::llm::queue::ProviderQueue;
use crate::llm::relay::StreamLimits;
use crate::llm::router::ModelRouter;
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

/// The `[[deployment]]` and `[[fallback]]` tables of the config file.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub deployments: Vec<DeploymentSpec>,
    pub fallbacks: Vec<FallbackSpec>,
}

impl From<&crate::ops::processes::config::ConfigFile> for Routing {
    fn from(config: &crate::ops::processes::config::ConfigFile) -> Self {
        Self {
            deployments: config.deployments.clone(),
            fallbacks: config.fallbacks.clone(),
        }
    }
}

/// `metrics` records every request the service handles.
pub async fn build_chat(
    args: &LlmArgs,
    routing: &Routing,
    metrics: Metrics,
    shared: Option<crate::cluster::SharedState>,
) -> anyhow::Result<ChatService> {
    let router = build_router(args, routing)?;
    for deployment in router.deployments() {
        deployment.count_in(metrics.exporter().attempt_counters(&deployment.name));
    }
    announce(&router).await;
    let cache = ResponseCache::new(CacheBounds {
        max_bytes: args.cache_max_bytes,
        max_entries: args.cache_capacity,
        ttl: args.cache_ttl,
    })
    .reporting_to(metrics.exporter().clone())
    .sharing(shared);
    let service = ChatService::new(
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
    );
    Ok(service.with_debug_delay(debug_delay(args)))
}

/// The debug-only delay in calos's own code (none in a release build).
fn debug_delay(args: &LlmArgs) -> DebugDelay {
    #[cfg(debug_assertions)]
    let delay = DebugDelay::from_ms(args.debug_delay_ms);
    #[cfg(not(debug_assertions))]
    let delay = {
        let _ = args;
        DebugDelay::default()
    };
    if let Some(delay) = delay.configured() {
        tracing::warn!(
            delay_ms = delay.as_millis() as u64,
            "debug build: every chat request spends this long in calos's own code (CALOS_DEBUG_DELAY_MS)"
        );
    }
    delay
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

/// Every deployment with its queue and breaker: one per provider configured
/// by environment, behind the routing rules, and the config file's
/// `[[deployment]]`s and `[[fallback]]`s. `calos diag llm` uses this too, to
/// call a deployment the way the gateway would, minus the gateway.
pub fn build_router(args: &LlmArgs, routing: &Routing) -> anyhow::Result<ModelRouter> {
    let pool = PoolSettings {
        connect_timeout: args.connect_timeout,
        idle_timeout: args.upstream_pool_idle,
        max_idle_per_host: args.upstream_pool_max_idle,
    };
    let implicit_one = |provider: Provider, concurrency: NonZeroUsize| {
        Deployment::new(
            provider.name().to_string(),
            None,
            None,
            provider,
            ProviderQueue::new(concurrency, args.queue_size),
            1,
            Breaker::new(args.breaker()),
        )
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
    let mut implicit = vec![
        implicit_one(Provider::Ollama(ollama), args.ollama_concurrency),
        implicit_one(
            openai_like(
                "openai",
                &args.openai_base_url,
                args.openai_api_key.clone(),
                "OPENAI_API_KEY",
                pool,
            )?,
            args.provider_concurrency,
        ),
        implicit_one(
            openai_like(
                "deepseek",
                &args.deepseek_base_url,
                args.deepseek_api_key.clone(),
                "DEEPSEEK_API_KEY",
                pool,
            )?,
            args.provider_concurrency,
        ),
        implicit_one(
            Provider::Sim(sim_model(args)),
            args.provider_concurrency.max(SIM_MIN_CONCURRENCY),
        ),
    ];
    if let Some(url) = args.compat_url.as_deref().filter(|u| !u.trim().is_empty()) {
        let key = args.compat_api_key.clone().and_then(ApiKey::new);
        implicit.push(implicit_one(
            Provider::OpenAi(compat(url, key, pool)?),
            args.provider_concurrency,
        ));
    }
    crate::llm::config::check(&routing.deployments, &routing.fallbacks)?;
    let names = crate::llm::config::names(&routing.deployments);
    let mut configured = Vec::new();
    for (spec, name) in routing.deployments.iter().zip(names) {
        let provider = configured_provider(args, spec, &name, pool)
            .with_context(|| format!("deployment {name:?}"))?;
        let default_concurrency = match spec.provider.as_str() {
            "ollama" => args.ollama_concurrency,
            "sim" => args.provider_concurrency.max(SIM_MIN_CONCURRENCY),
            _ => args.provider_concurrency,
        };
        configured.push(Deployment::new(
            name,
            Some(spec.model.clone()),
            spec.upstream_model.clone(),
            provider,
            ProviderQueue::new(
                spec.max_concurrency.unwrap_or(default_concurrency),
                args.queue_size,
            ),
            spec.weight,
            Breaker::new(args.breaker()),
        ));
    }
    let fallbacks: Vec<(String, Vec<String>)> = routing
        .fallbacks
        .iter()
        .map(|f| (f.model.clone(), f.to.clone()))
        .collect();
    let router = ModelRouter::new(args.model_routes(), implicit, configured, fallbacks);
    for f in &routing.fallbacks {
        for to in &f.to {
            anyhow::ensure!(
                router.declares(to),
                "fallback {:?} → {to:?}: no [[deployment]] serves {to:?} and no routing rule names it; declare a deployment for it",
                f.model
            );
        }
    }
    Ok(router)
}

fn sim_model(args: &LlmArgs) -> SimModel {
    SimModel {
        ttft: args.sim_ttft,
        tokens_per_sec: args.sim_tokens_per_sec,
        tokens: args.sim_tokens,
    }
}

fn compat(url: &str, key: Option<ApiKey>, pool: PoolSettings) -> anyhow::Result<Upstream> {
    Ok(Upstream::new("compat", url, key, pool)
        .context("building the compat client")?
        .with_hints(
            format!(
                "check that the server at {} is running",
                crate::llm::http::without_credentials(url)
            ),
            "the compat server has no model {model}",
        ))
}

/// The provider of one `[[deployment]]`: its own address, and the key from
/// its `api_key_env` or the provider's usual variable.
fn configured_provider(
    args: &LlmArgs,
    spec: &DeploymentSpec,
    name: &str,
    pool: PoolSettings,
) -> anyhow::Result<Provider> {
    let key_from = |var: &str| std::env::var(var).ok().filter(|k| !k.trim().is_empty());
    let key = match (&spec.api_key_env, spec.provider.as_str()) {
        (Some(var), _) => {
            let key = key_from(var);
            anyhow::ensure!(key.is_some(), "api_key_env names {var}, which is not set");
            key
        }
        (None, "openai") => args.openai_api_key.clone(),
        (None, "deepseek") => args.deepseek_api_key.clone(),
        (None, "compat") => args.compat_api_key.clone(),
        (None, _) => None,
    };
    let url = spec.url.as_deref();
    Ok(match spec.provider.as_str() {
        "ollama" => {
            let url = url.unwrap_or(&args.ollama_url);
            let upstream = Upstream::new("ollama", url, key.and_then(ApiKey::new), pool)?
                .with_hints(
                    format!(
                        "check that Ollama at {} (deployment {name}) is running",
                        crate::llm::http::without_credentials(url)
                    ),
                    "Pull it there with `ollama pull {model}`.",
                );
            Provider::Ollama(upstream)
        }
        "openai" | "deepseek" => {
            let (base, key_env) = if spec.provider == "openai" {
                (&args.openai_base_url, "OPENAI_API_KEY")
            } else {
                (&args.deepseek_base_url, "DEEPSEEK_API_KEY")
            };
            openai_like(
                &spec.provider,
                url.unwrap_or(base),
                key,
                spec.api_key_env.as_deref().unwrap_or(key_env),
                pool,
            )?
        }
        "compat" => Provider::OpenAi(compat(
            url.unwrap_or_default(),
            key.and_then(ApiKey::new),
            pool,
        )?),
        _ => Provider::Sim(sim_model(args)),
    })
}

/// Probes every deployment at once (so N dead ones delay the start by 2 s,
/// not N × 2 s) and logs what answered.
async fn announce(router: &ModelRouter) {
    futures::future::join_all(router.deployments().map(|deployment| async move {
        let provider = &deployment.provider;
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
                    tracing::info!(deployment = %deployment.name, provider = provider.name(), address = %provider.address(), models = models.len(), "provider detected")
                }
                Ok(Err(e)) => tracing::warn!(
                    deployment = %deployment.name,
                    provider = provider.name(),
                    "provider not available now: {e}"
                ),
                Err(_) => {
                    tracing::warn!(deployment = %deployment.name, provider = provider.name(), address = %provider.address(), "provider did not answer within 2 s")
                }
            },
        }
    }))
    .await;
}
