//! One chat request end to end: rate limit, route, cache, queue, upstream, and
//! the timing breakdown with its `[Performance]` log line. The HTTP routes
//! (`/api/llm/complete`, `/v1/chat/completions`) only frame what this returns.

use crate::chat::cache::{CacheKey, CachedReply, ResponseCache};
use crate::chat::coalesce::{Flights, Role};
use crate::chat::debug_delay::DebugDelay;
use crate::chat::delivery::{self, Abandoned, DeliveryLimits};
use crate::chat::inflight::{InFlight, InFlightLimiter, TooManyInFlight};
use crate::llm::error::ProviderError;
use crate::llm::failover::{self, Unavailable, Unopened};
use crate::llm::queue::QueueFull;
use crate::llm::relay::{self, RelayEvent, StreamLimits, Summary};
use crate::llm::router::{ModelRouter, Plan};
use crate::llm::types::{ChatParams, Usage};
use crate::observability::metrics::Metrics;
use crate::observability::otel::genai::{LlmCall, LlmEnd};
use crate::observability::otel::TraceHandle;
use crate::observability::timing::{ms, Breakdown, CacheStatus};
use crate::usage::limits::Limits;
use crate::usage::meter::Refusal;
use crate::usage::record::{Tokens, UsageRecord};
use crate::usage::{self as accounting, Caller};
use futures::{FutureExt, Stream, StreamExt};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::{NonZeroU32, NonZeroUsize};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Who is asking and what it cost to find out.
#[derive(Debug, Clone)]
pub struct ChatContext {
    pub request_id: String,
    pub started: Instant,
    pub user_id: String,
    pub auth: Duration,
    pub db: Duration,
    /// The client asked for a fresh answer (`Cache-Control: no-cache`): skip the
    /// cache lookup, as `calos perf` does to time the model rather than the cache.
    pub fresh: bool,
    /// An administrator: a provider's failure is shown in full (its address
    /// and raw answer); everyone else gets [`ProviderError::public_message`].
    pub provider_detail: bool,
    /// The API key the request came with, if any.
    pub key_id: Option<String>,
    /// The models that key may use (`None`: every model, and always without
    /// a key).
    pub key_models: Option<std::sync::Arc<[String]>>,
    /// That key's own rate limits and budget (none without a key).
    pub key_limits: Limits,
    /// The request's trace (empty when not traced): phases are recorded
    /// into it as the breakdown measures them.
    pub trace: TraceHandle,
}

impl ChatContext {
    /// Whether the request may use `model` (only an API key limits that).
    pub fn allows_model(&self, model: &str) -> bool {
        crate::auth::api_keys::allows(self.key_models.as_deref(), model)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatError {
    #[error("too many chat requests; retry in {0:?}")]
    RateLimited(Duration),
    #[error(transparent)]
    TooManyInFlight(#[from] TooManyInFlight),
    #[error("model {model:?} routes to provider {provider:?}, which is not configured")]
    NoSuchProvider { model: String, provider: String },
    #[error("{provider} is busy: {full}")]
    QueueFull { provider: String, full: QueueFull },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Several deployments or fallbacks were planned and none could answer.
    #[error(transparent)]
    Unavailable(Unavailable),
    /// A rate limit or budget of the key or the account has no room.
    #[error(transparent)]
    Limited(#[from] Refusal),
}

impl ChatError {
    /// The HTTP status the client gets (for the ledger; the HTTP layer makes
    /// the same choice when it frames the error).
    pub fn status(&self) -> u16 {
        match self {
            Self::Limited(Refusal::Unavailable { .. }) => 503,
            Self::RateLimited(_) | Self::TooManyInFlight(_) | Self::Limited(_) => 429,
            Self::NoSuchProvider { .. } => 400,
            Self::QueueFull { .. } | Self::Unavailable(_) => 503,
            Self::Provider(e) => e.http_status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited(_) => "rate_limited",
            Self::TooManyInFlight(_) => "too_many_inflight",
            Self::NoSuchProvider { .. } => "unknown_provider",
            Self::QueueFull { .. } => "queue_full",
            Self::Unavailable(_) => "no_deployment_available",
            Self::Provider(e) => e.code(),
            Self::Limited(Refusal::Rate { .. }) => "rate_limited",
            Self::Limited(Refusal::Budget { .. }) => "budget_exceeded",
            Self::Limited(Refusal::Unavailable { .. }) => "limits_unavailable",
        }
    }
}

impl From<Unopened> for ChatError {
    fn from(error: Unopened) -> Self {
        match error {
            Unopened::Provider(e) => Self::Provider(e),
            Unopened::QueueFull { provider, full } => Self::QueueFull { provider, full },
            Unopened::Unavailable(u) => Self::Unavailable(u),
        }
    }
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Complete {
    pub text: String,
    pub usage: Usage,
    pub provider: String,
    pub model: String,
    pub breakdown: Breakdown,
}

/// What a streaming answer yields after its headers.
#[derive(Debug)]
pub enum StreamItem {
    Delta(String),
    Done {
        usage: Usage,
        breakdown: Breakdown,
    },
    Failed(ProviderError),
    /// calos is shutting down and the grace period is nearly over: the reply
    /// ends with an error event the client can act on (retry elsewhere)
    /// rather than a connection closed under it.
    ShuttingDown,
    /// The client stopped reading and the reply was cut: the HTTP layer aborts
    /// the response, so no client mistakes what it got for a whole answer.
    Cut,
}

impl StreamItem {
    /// The error code and message of [`StreamItem::ShuttingDown`]'s event.
    pub const SHUTTING_DOWN: (&'static str, &'static str) = (
        "shutting_down",
        "calos is shutting down and ended this reply early; send the request again.",
    );
}

pub struct Streaming {
    pub provider: String,
    pub model: String,
    /// The phases known before the first byte (for the `Server-Timing` header).
    pub head: Breakdown,
    pub items: Pin<Box<dyn Stream<Item = StreamItem> + Send>>,
}

#[derive(Clone)]
pub struct ChatService {
    router: Arc<ModelRouter>,
    cache: ResponseCache,
    limits: StreamLimits,
    /// How long a streamed reply waits for its client to take the next event.
    write_timeout: Duration,
    per_user: Arc<DefaultKeyedRateLimiter<String>>,
    in_flight: InFlightLimiter,
    /// Where every request's breakdown is recorded (the metrics are shared
    /// with the HTTP layer and Mission Control, owned by neither).
    recorder: Recorder,
    /// Cancelled shortly before the shutdown grace period ends: open streams
    /// then end with [`StreamItem::ShuttingDown`].
    wind_down: CancellationToken,
    /// Whole answers being fetched, by cache key: the same user's identical
    /// request arriving meanwhile waits for that answer instead of asking again.
    flights: Flights<CacheKey, Fetched>,
    /// Time spent in calos's own code on purpose (debug builds only).
    debug_delay: DebugDelay,
}

/// A whole answer fetched from upstream, as every request that waited for
/// it receives it.
#[derive(Debug, Clone)]
struct Whole {
    text: String,
    summary: Summary,
    /// The upstream phases: queue, connect, TTFT, LLM, attempts.
    phases: Breakdown,
    /// The provider that answered.
    provider: String,
}

/// A failed fetch: the error, the phases that ran, and, when the upstream
/// had begun answering, how much text had arrived (for the token estimate;
/// a request refused before that spent nothing).
#[derive(Debug, Clone)]
struct FetchFailed {
    error: ChatError,
    phases: Breakdown,
    partial_chars: Option<usize>,
    /// The provider that failed last.
    provider: String,
}

type Fetched = Result<Whole, FetchFailed>;

/// What one user may ask of the service.
#[derive(Debug, Clone, Copy)]
pub struct UserLimits {
    /// Chat requests per second, sustained.
    pub rate: NonZeroU32,
    /// Chat requests in a burst.
    pub burst: NonZeroU32,
    /// Chats in flight at once.
    pub in_flight: NonZeroUsize,
}

impl ChatService {
    pub fn new(
        router: ModelRouter,
        cache: ResponseCache,
        limits: StreamLimits,
        write_timeout: Duration,
        per_user: UserLimits,
        metrics: Metrics,
    ) -> Self {
        let in_flight = InFlightLimiter::new(per_user.in_flight);
        let per_user = Arc::new(RateLimiter::keyed(
            Quota::per_second(per_user.rate).allow_burst(per_user.burst),
        ));
        let router = Arc::new(router);
        Self {
            recorder: Recorder {
                metrics,
                router: router.clone(),
                usage: None,
            },
            router,
            cache,
            limits,
            write_timeout,
            per_user,
            in_flight,
            wind_down: CancellationToken::new(),
            flights: Flights::default(),
            debug_delay: DebugDelay::default(),
        }
    }

    /// Makes every chat request spend `delay` in calos's own code: an
    /// experiment's injected slowness (a no-op in release builds).
    pub fn with_debug_delay(mut self, delay: DebugDelay) -> Self {
        self.debug_delay = delay;
        self
    }

    /// Counts every request against its limits and in the usage ledger.
    pub fn with_usage(mut self, usage: accounting::Usage) -> Self {
        self.recorder.usage = Some(usage);
        self
    }

    /// The usage ledger and limits, when kept.
    pub fn usage(&self) -> Option<&accounting::Usage> {
        self.recorder.usage.as_ref()
    }

    /// Ends every open stream with a final `shutting_down` error event (and
    /// every one opened after). Called by the server as its grace period runs out.
    pub fn wind_down(&self) {
        self.wind_down.cancel();
    }

    /// The routing table, shared (Mission Control reads its providers).
    pub fn router(&self) -> &Arc<ModelRouter> {
        &self.router
    }

    /// The rate limit, the key's and account's limits and budgets, the
    /// in-flight cap (before any queueing: a user at the cap must not take a
    /// place in a provider's queue either), then the route.
    async fn admit(
        &self,
        ctx: &ChatContext,
        params: &ChatParams,
    ) -> Result<(Plan, InFlight), ChatError> {
        if let Err(not_until) = self.per_user.check_key(&ctx.user_id) {
            return Err(ChatError::RateLimited(
                not_until.wait_time_from(DefaultClock::default().now()),
            ));
        }
        if let Some(usage) = &self.recorder.usage {
            let caller = Caller {
                user_id: &ctx.user_id,
                key: ctx.key_id.as_deref().map(|id| (id, ctx.key_limits)),
            };
            usage.admit(&caller).await?;
        }
        let in_flight = self.in_flight.enter(&ctx.user_id)?;
        let mut plan =
            self.router
                .route(&params.model)
                .map_err(|provider| ChatError::NoSuchProvider {
                    model: params.model.clone(),
                    provider,
                })?;
        // A key limited to some models is not answered by a fallback
        // outside them (it may cost more, or be a model it must not use).
        if plan.steps.len() > 1 && ctx.key_models.is_some() {
            plan.steps
                .retain(|step| step.fallback.as_deref().is_none_or(|m| ctx.allows_model(m)));
        }
        Ok((plan, in_flight))
    }

    /// Admits the request and starts its breakdown with what authentication
    /// cost: where it may go, the breakdown so far, and the user's in-flight
    /// slot (held until the reply ends). A refusal by a limit or budget is a
    /// ledger row too (the client was answered).
    async fn begin(
        &self,
        ctx: &ChatContext,
        params: &ChatParams,
    ) -> Result<(Plan, Breakdown, InFlight), ChatError> {
        let (plan, in_flight) = match self.admit(ctx, params).await {
            Ok(admitted) => admitted,
            Err(refused) => {
                if let (ChatError::Limited(_), Some(usage)) = (&refused, &self.recorder.usage) {
                    usage.finish(ledger_row(
                        ctx,
                        &params.model,
                        "",
                        &Breakdown::default(),
                        refused.status(),
                        Some(refused.code()),
                        Tokens::default(),
                    ));
                }
                return Err(refused);
            }
        };
        // Only debug builds pause here: calos's own time, for experiments.
        self.debug_delay.pause().await;
        let head = Breakdown {
            auth: ms(ctx.auth),
            database: ms(ctx.db),
            attempts: 0,
            ..Default::default()
        };
        Ok((plan, head, in_flight))
    }

    /// Finds a deployment that answers (`failover`: queues, attempts,
    /// fallbacks) and waits for its first token, filling in the queue,
    /// connect, TTFT and attempt figures and naming the deployment. A failure
    /// here is returned (before any byte reached the client) for the caller
    /// to record. Also returns when the whole reply is due (the total limit's
    /// deadline) and which provider answered (or failed last).
    async fn upstream(
        &self,
        plan: &Plan,
        params: &ChatParams,
        breakdown: &mut Breakdown,
    ) -> Result<
        (
            impl Stream<Item = RelayEvent> + Send + use<>,
            tokio::time::Instant,
            String,
        ),
        (ChatError, String),
    > {
        let asked = Instant::now();
        match failover::open(plan, params, self.limits).await {
            Ok(opened) => {
                trace_opened(params, asked, &opened);
                let started = opened.started;
                breakdown.queue = ms(opened.queue);
                breakdown.upstream_connect = Some(ms(started.connect));
                breakdown.ttft = started.ttft.map(ms);
                breakdown.attempts = started.attempts;
                let deployment = opened.lease.ticket.deployment();
                breakdown.deployment = Some(deployment.name.clone());
                breakdown.fallback = opened.fallback.as_deref().map(str::to_string);
                breakdown.tried = opened.tried;
                let provider = deployment.provider.name().to_string();
                let deadline = tokio::time::Instant::from_std(started.sent_at) + self.limits.total;
                let events = relay::relay(started, self.limits, Some(opened.lease));
                Ok((events, deadline, provider))
            }
            Err(failed) => {
                trace_not_opened(params, plan, asked, &failed);
                breakdown.queue = ms(failed.queue);
                breakdown.attempts = failed
                    .tried
                    .iter()
                    .filter(|a| a.outcome != "queue_full")
                    .count() as u32;
                breakdown.tried = failed.tried;
                Err((failed.error.into(), failed.provider))
            }
        }
    }

    /// A whole answer (`stream: false`): served from the cache when the same user
    /// asked the same thing recently.
    pub async fn complete(
        &self,
        ctx: &ChatContext,
        mut params: ChatParams,
    ) -> Result<Complete, ChatError> {
        params.trace = ctx.trace.clone();
        let (plan, mut breakdown, _in_flight) = self.begin(ctx, &params).await?;
        let key = ResponseCache::key(&ctx.user_id, &params);
        if self.cache.enabled() && ctx.fresh {
            breakdown.cache_status = CacheStatus::Bypass;
        } else if self.cache.enabled() {
            let looked = Instant::now();
            let hit = self.cache.get(&key).await;
            breakdown.cache = ms(looked.elapsed());
            ctx.trace.phase("cache", looked, Instant::now());
            breakdown.cache_status = CacheStatus::Miss;
            if let Some(hit) = hit {
                breakdown.cache_status = CacheStatus::Hit;
                // Served by calos: no provider spent a token on it.
                let ending = Ending::ok(Tokens::default());
                self.recorder
                    .finish(ctx, &params.model, &hit.provider, &mut breakdown, ending);
                return Ok(Complete {
                    text: hit.text.clone(),
                    usage: hit.usage,
                    provider: hit.provider.clone(),
                    model: params.model,
                    breakdown,
                });
            }
        }
        // Shared with the fetch, which may outlive this request (others wait on it).
        let params = Arc::new(params);
        let waited = Instant::now();
        // A client asking for a fresh answer gets its own upstream call, made
        // in place; only a fetch others may join is boxed and owns its parts.
        let (fetched, role) = if ctx.fresh {
            (self.fetch_whole(&plan, &params, key).await, Role::Started)
        } else {
            let (service, shared_params) = (self.clone(), params.clone());
            let fetch = move || {
                async move { service.fetch_whole(&plan, &shared_params, key).await }.boxed()
            };
            self.flights.run(key, fetch).await
        };
        let (text, summary, provider) = match (fetched, role) {
            (Ok(whole), Role::Started) => {
                copy_upstream_phases(&whole.phases, &mut breakdown);
                (whole.text, whole.summary, whole.provider)
            }
            (Ok(whole), Role::Joined) => {
                // Served by another request's upstream call: no provider
                // spent a token on this one, and its wait was a queue.
                breakdown.cache_status = CacheStatus::Shared;
                breakdown.queue = ms(waited.elapsed());
                ctx.trace.phase("queue", waited, Instant::now());
                breakdown.deployment = whole.phases.deployment;
                breakdown.fallback = whole.phases.fallback;
                let usage = whole.summary.usage.unwrap_or_default();
                let provider = whole.provider;
                self.recorder.finish(
                    ctx,
                    &params.model,
                    &provider,
                    &mut breakdown,
                    Ending::ok(Tokens::default()),
                );
                return Ok(Complete {
                    text: whole.text,
                    usage,
                    provider,
                    model: params.model.clone(),
                    breakdown,
                });
            }
            (Err(failed), role) => {
                let tokens = if role == Role::Started {
                    copy_upstream_phases(&failed.phases, &mut breakdown);
                    failed
                        .partial_chars
                        .map(|chars| estimated(prompt_chars(&params), chars))
                        .unwrap_or_default()
                } else {
                    breakdown.cache_status = CacheStatus::Shared;
                    breakdown.queue = ms(waited.elapsed());
                    Tokens::default()
                };
                if let Some(ending) = Ending::failed(&failed.error, tokens) {
                    self.recorder.finish(
                        ctx,
                        &params.model,
                        &failed.provider,
                        &mut breakdown,
                        ending,
                    );
                }
                return Err(failed.error);
            }
        };
        let usage = summary.usage.unwrap_or_default();
        let tokens =
            Tokens::reported_or_estimated(summary.usage, prompt_chars(&params), text.len());
        self.recorder.finish(
            ctx,
            &params.model,
            &provider,
            &mut breakdown,
            Ending::ok(tokens),
        );
        Ok(Complete {
            text,
            usage,
            provider,
            model: params.model.clone(),
            breakdown,
        })
    }

    /// Fetches a whole answer from upstream and caches it: the part of a
    /// whole request that identical concurrent requests share.
    async fn fetch_whole(&self, plan: &Plan, params: &ChatParams, key: CacheKey) -> Fetched {
        let mut phases = Breakdown::default();
        let (events, provider) = match self.upstream(plan, params, &mut phases).await {
            Ok((events, _deadline, provider)) => (events, provider),
            Err((error, provider)) => {
                return Err(FetchFailed {
                    error,
                    phases,
                    partial_chars: None,
                    provider,
                })
            }
        };
        let mut events = Box::pin(events);
        let mut text = String::new();
        let mut summary = Summary::default();
        while let Some(event) = events.next().await {
            match event {
                RelayEvent::Delta(delta) => text.push_str(&delta),
                RelayEvent::Finished(s) => summary = s,
                RelayEvent::Failed(e) => {
                    if let Some(trace) = params.trace.get() {
                        trace.capture_output(&text);
                        trace.llm_ended(LlmEnd::failed(Instant::now(), e.code()));
                    }
                    return Err(FetchFailed {
                        error: e.into(),
                        phases,
                        partial_chars: Some(text.len()),
                        provider,
                    });
                }
            }
        }
        phases.llm = Some(ms(summary.llm));
        phases.upstream = summary.upstream;
        if let Some(trace) = params.trace.get() {
            trace.capture_output(&text);
            trace.llm_ended(llm_finished(&summary));
        }
        if self.cache.enabled() {
            self.cache
                .put(
                    key,
                    CachedReply {
                        text: text.clone(),
                        usage: summary.usage.unwrap_or_default(),
                        provider: provider.clone(),
                    },
                )
                .await;
        }
        Ok(Whole {
            text,
            summary,
            phases,
            provider,
        })
    }

    /// A streamed answer: resolves once the first token is in (so failures before
    /// it are proper HTTP errors), then yields deltas and a final `Done`.
    pub async fn stream(
        &self,
        ctx: &ChatContext,
        mut params: ChatParams,
    ) -> Result<Streaming, ChatError> {
        params.trace = ctx.trace.clone();
        let (plan, mut head, in_flight) = self.begin(ctx, &params).await?;
        let (events, deadline, provider) = match self.upstream(&plan, &params, &mut head).await {
            Ok(opened) => opened,
            Err((error, provider)) => {
                if let Some(ending) = Ending::failed(&error, Tokens::default()) {
                    self.recorder
                        .finish(ctx, &params.model, &provider, &mut head, ending);
                }
                return Err(error);
            }
        };
        let (ctx_end, head_end, model, prov) = (
            ctx.clone(),
            head.clone(),
            params.model.clone(),
            provider.clone(),
        );
        let recorder = self.recorder.clone();
        let trace = params.trace.clone();
        // Live as long as the stream: the active-streams gauge counts it, and
        // the user's in-flight slot is held, until it finishes, fails, or the
        // client hangs up or stops reading.
        let open = self.recorder.metrics.exporter().stream_opened();
        let held = (open, in_flight);
        // Set once the reply's outcome is recorded, so that a client too slow
        // to take the very last event is not counted a second time.
        let recorded = Arc::new(AtomicBool::new(false));
        let recorded_cut = recorded.clone();
        // The text streamed so far, for an estimate of what a reply that
        // ends early spent.
        let prompt = prompt_chars(&params);
        let streamed = Arc::new(AtomicUsize::new(0));
        let (streamed_wd, streamed_cut) = (streamed.clone(), streamed.clone());
        let (ctx_cut, head_cut, model_cut, prov_cut, recorder_cut) = (
            ctx.clone(),
            head.clone(),
            params.model.clone(),
            provider.clone(),
            self.recorder.clone(),
        );
        let items = events.map(move |event| {
            let _held = &held;
            match event {
                RelayEvent::Delta(text) => {
                    streamed.fetch_add(text.len(), Ordering::Relaxed);
                    if let Some(trace) = trace.get() {
                        trace.capture_output(&text);
                    }
                    StreamItem::Delta(text)
                }
                RelayEvent::Finished(summary) => {
                    recorded.store(true, Ordering::Relaxed);
                    if let Some(trace) = trace.get() {
                        trace.llm_ended(llm_finished(&summary));
                    }
                    let mut breakdown = head_end.clone();
                    breakdown.llm = Some(ms(summary.llm));
                    breakdown.upstream = summary.upstream;
                    let tokens = Tokens::reported_or_estimated(
                        summary.usage,
                        prompt,
                        streamed.load(Ordering::Relaxed),
                    );
                    recorder.finish(&ctx_end, &model, &prov, &mut breakdown, Ending::ok(tokens));
                    StreamItem::Done {
                        usage: summary.usage.unwrap_or_default(),
                        breakdown,
                    }
                }
                RelayEvent::Failed(e) => {
                    recorded.store(true, Ordering::Relaxed);
                    if let Some(trace) = trace.get() {
                        trace.llm_ended(LlmEnd::failed(Instant::now(), e.code()));
                    }
                    let mut breakdown = head_end.clone();
                    let ending = Ending {
                        outcome: e.code(),
                        status: 200,
                        tokens: estimated(prompt, streamed.load(Ordering::Relaxed)),
                    };
                    recorder.finish(&ctx_end, &model, &prov, &mut breakdown, ending);
                    StreamItem::Failed(e)
                }
            }
        });
        let recorded_wind_down = recorded_cut.clone();
        let (ctx_wd, head_wd, model_wd, prov_wd, recorder_wd) = (
            ctx_cut.clone(),
            head_cut.clone(),
            model_cut.clone(),
            prov_cut.clone(),
            recorder_cut.clone(),
        );
        let items = until_wind_down(items, self.wind_down.clone(), move || {
            if !recorded_wind_down.swap(true, Ordering::Relaxed) {
                let mut breakdown = head_wd;
                recorder_wd.finish(
                    &ctx_wd,
                    &model_wd,
                    &prov_wd,
                    &mut breakdown,
                    Ending {
                        outcome: "shutting_down",
                        status: 200,
                        tokens: estimated(prompt, streamed_wd.load(Ordering::Relaxed)),
                    },
                );
            }
            StreamItem::ShuttingDown
        });
        let limits = DeliveryLimits {
            write_timeout: self.write_timeout,
            deadline,
        };
        let items = delivery::deliver(
            items,
            limits,
            move |why| {
                // A client that hangs up has always gone unrecorded (it saw no
                // answer to count); one that stopped reading is calos's decision.
                if why == Abandoned::TooSlow && !recorded_cut.load(Ordering::Relaxed) {
                    tracing::warn!(request_id = %ctx_cut.request_id, user_id = %ctx_cut.user_id, "the client stopped reading a streamed reply; dropped it");
                    let mut breakdown = head_cut;
                    recorder_cut.finish(
                        &ctx_cut,
                        &model_cut,
                        &prov_cut,
                        &mut breakdown,
                        Ending {
                            outcome: "client_too_slow",
                            status: 200,
                            tokens: estimated(prompt, streamed_cut.load(Ordering::Relaxed)),
                        },
                    );
                }
            },
            StreamItem::Cut,
        );
        Ok(Streaming {
            provider,
            model: params.model,
            head,
            items,
        })
    }
}

/// `items` until they end, or until `wind_down` fires first: then `last()` is
/// the final item and the rest (and the upstream reply behind them) is dropped.
fn until_wind_down<S, T, F>(
    items: S,
    wind_down: CancellationToken,
    last: F,
) -> impl Stream<Item = T> + Send + 'static
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(items), Some(last), wind_down),
        |(mut items, mut last, wind_down)| async move {
            let ending = last.take()?;
            tokio::select! {
                biased;
                item = items.next() => item.map(|item| (item, (items, Some(ending), wind_down))),
                _ = wind_down.cancelled() => Some((ending(), (items, None, wind_down))),
            }
        },
    )
}

/// What recording a finished request needs: the metrics, the router to
/// tell a model it knows from a name a client made up, and the usage ledger.
#[derive(Clone)]
struct Recorder {
    metrics: Metrics,
    router: Arc<ModelRouter>,
    usage: Option<accounting::Usage>,
}

/// How a request ended, for the metrics, the log and the ledger.
struct Ending {
    outcome: &'static str,
    /// The HTTP status the client got (200 once a stream has begun).
    status: u16,
    /// What the provider spent on it.
    tokens: Tokens,
}

impl Ending {
    fn ok(tokens: Tokens) -> Self {
        Self {
            outcome: "ok",
            status: 200,
            tokens,
        }
    }

    /// How a request that no upstream answered ended, when that is the
    /// upstreams' doing (a full queue is recorded by its own metric).
    fn failed(error: &ChatError, tokens: Tokens) -> Option<Self> {
        matches!(error, ChatError::Provider(_) | ChatError::Unavailable(_)).then(|| Self {
            outcome: error.code(),
            status: error.status(),
            tokens,
        })
    }
}

impl Recorder {
    /// Closes the breakdown (its total ends now), records it in the metrics,
    /// writes the one structured line per chat request (the original guide's
    /// `[Performance]` log) and hands the ledger its row.
    fn finish(
        &self,
        ctx: &ChatContext,
        model: &str,
        provider: &str,
        b: &mut Breakdown,
        ending: Ending,
    ) {
        b.total = ms(ctx.started.elapsed());
        let known = self.router.knows(model);
        self.metrics
            .record(provider, model, known, b, ending.outcome);
        self.metrics.record_tokens(provider, model, &ending.tokens);
        log_performance(ctx, model, provider, b, ending.outcome);
        if let Some(usage) = &self.usage {
            let error = (ending.outcome != "ok").then_some(ending.outcome);
            usage.finish(ledger_row(
                ctx,
                model,
                provider,
                b,
                ending.status,
                error,
                ending.tokens,
            ));
        }
    }
}

/// The queue wait and the start of the model call, into the request's
/// trace. The queue span ends when the first attempt was sent (that wait is
/// what the breakdown's queue figure measures for a first attempt).
fn trace_opened(params: &ChatParams, asked: Instant, opened: &failover::Opened) {
    let Some(trace) = params.trace.get() else {
        return;
    };
    let sent_at = opened.started.sent_at;
    let queued_from = sent_at
        .checked_sub(opened.queue)
        .unwrap_or(asked)
        .max(asked);
    trace.phase("queue", queued_from, sent_at);
    let deployment = opened.lease.ticket.deployment();
    let mut call = LlmCall::new(&deployment.provider, &params.model, sent_at);
    call.response_model = deployment
        .upstream_model
        .clone()
        .or_else(|| opened.fallback.as_deref().map(str::to_string));
    call.deployment = Some(deployment.name.clone());
    call.ttft = opened.started.ttft;
    call.attempts = opened.started.attempts;
    call.temperature = params.temperature;
    call.max_tokens = params.max_tokens;
    if trace.capture_content {
        call.input = Some(params.messages.clone());
    }
    trace.llm_started(call);
}

/// A model call that never produced a first token: its span, failed, from
/// when a deployment was asked for.
fn trace_not_opened(
    params: &ChatParams,
    plan: &Plan,
    asked: Instant,
    failed: &failover::NotOpened,
) {
    let Some(trace) = params.trace.get() else {
        return;
    };
    let provider = plan
        .steps
        .first()
        .and_then(|s| s.group.deployments().first())
        .map(|d| d.provider.clone());
    if let Some(provider) = provider {
        let mut call = LlmCall::new(&provider, &params.model, asked);
        call.attempts = failed.tried.len() as u32;
        trace.llm_started(call);
        let code = ChatError::from(failed.error.clone()).code();
        trace.llm_ended(LlmEnd::failed(Instant::now(), code));
    }
}

/// A model call that finished: it ended when its answer was complete
/// (`summary.llm` counts from the first send, as the breakdown does).
fn llm_finished(summary: &Summary) -> LlmEnd {
    LlmEnd::ok(summary.llm, summary.usage)
}

/// What the upstream call took, into the breakdown of the request that made it.
fn copy_upstream_phases(phases: &Breakdown, breakdown: &mut Breakdown) {
    breakdown.queue = phases.queue;
    breakdown.upstream_connect = phases.upstream_connect;
    breakdown.ttft = phases.ttft;
    breakdown.attempts = phases.attempts;
    breakdown.llm = phases.llm;
    breakdown.upstream = phases.upstream;
    breakdown.deployment.clone_from(&phases.deployment);
    breakdown.fallback.clone_from(&phases.fallback);
    breakdown.tried.clone_from(&phases.tried);
}

/// A request's ledger row.
fn ledger_row(
    ctx: &ChatContext,
    model: &str,
    provider: &str,
    b: &Breakdown,
    status: u16,
    error: Option<&'static str>,
    tokens: Tokens,
) -> UsageRecord {
    UsageRecord {
        at: chrono::Utc::now(),
        request_id: ctx.request_id.clone(),
        user_id: ctx.user_id.clone(),
        key_id: ctx.key_id.clone(),
        model: model.to_string(),
        provider: provider.to_string(),
        upstream_model: (!provider.is_empty())
            .then(|| b.fallback.as_deref().unwrap_or(model).to_string()),
        status,
        error_code: error.map(str::to_string),
        tokens,
        ttft_ms: b.ttft,
        total_ms: b.total,
        cache: b.cache_status.as_str(),
    }
}

/// Characters of a request's messages (for a token estimate).
fn prompt_chars(params: &ChatParams) -> usize {
    params.messages.iter().map(|m| m.content.len()).sum()
}

/// What a reply that failed or was cut spent, as far as calos can tell: the
/// prompt and the text that had arrived, estimated.
fn estimated(prompt_chars: usize, completion_chars: usize) -> Tokens {
    Tokens::reported_or_estimated(None, prompt_chars, completion_chars)
}

fn log_performance(
    ctx: &ChatContext,
    model: &str,
    provider: &str,
    b: &Breakdown,
    outcome: &'static str,
) {
    tracing::info!(
        target: "calos::performance",
        request_id = %ctx.request_id,
        user_id = %ctx.user_id,
        model = ?model,
        provider,
        outcome,
        auth_ms = b.auth,
        db_ms = b.database,
        queue_ms = b.queue,
        cache_ms = b.cache,
        cache = b.cache_status.as_str(),
        connect_ms = b.upstream_connect,
        ttft_ms = b.ttft,
        llm_ms = b.llm,
        total_ms = b.total,
        attempts = b.attempts,
        deployment = b.deployment.as_deref(),
        fallback = b.fallback.as_deref(),
        tried = tried_summary(&b.tried).as_deref(),
        "[Performance]"
    );
}

/// The attempts of a request that needed more than one, as
/// `deployment:outcome:ms` items (one attempt is `deployment` alone).
fn tried_summary(tried: &[crate::observability::timing::Attempt]) -> Option<String> {
    use std::fmt::Write;
    (tried.len() > 1).then(|| {
        let mut out = String::new();
        for (i, a) in tried.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}{}:{}:{:.1}ms", a.deployment, a.outcome, a.ms);
        }
        out
    })
}
