//! The stream monitor: opens the upstream (one attempt; `failover` retries
//! while nothing has been relayed), waits for the first token, then relays the rest under idle and
//! total limits, measuring connect, TTFT and LLM time on a monotonic clock.
//!
//! Cancellation is structural: everything (the upstream body, the queue permit)
//! lives inside the returned stream, so whoever drops the stream closes the
//! upstream connection at once and frees the slot. For a streamed reply that
//! is `chat::delivery`'s task, which drops it as soon as the client hangs up,
//! or once the client has stopped reading for the write timeout.

use super::error::ProviderError;
use super::failover::Lease;
use super::types::{Chunk, UpstreamTimings, Usage};
use super::{ChunkStream, Provider};
use crate::llm::types::ChatParams;
use futures::{Stream, StreamExt};
use std::time::{Duration, Instant};

/// Limits for one upstream call.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub first_token: Duration,
    pub idle: Duration,
    pub total: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

/// An upstream that has produced its first token (or finished without one).
pub struct Started {
    /// Upstream send → response headers, for the first attempt that succeeded.
    pub connect: Duration,
    /// Upstream send (first attempt) → first non-empty token.
    pub ttft: Option<Duration>,
    pub attempts: u32,
    pub sent_at: Instant,
    /// Chunks read while waiting for the first token, that token included.
    buffered: Vec<Chunk>,
    rest: Option<ChunkStream>,
    provider: String,
    address: String,
}

/// What the HTTP layer relays.
#[derive(Debug)]
pub enum RelayEvent {
    Delta(String),
    Finished(Summary),
    Failed(ProviderError),
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub usage: Option<Usage>,
    pub upstream: Option<UpstreamTimings>,
    pub ttft: Option<Duration>,
    /// Upstream send → the upstream's answer is complete.
    pub llm: Duration,
    pub output_chars: usize,
    pub output_deltas: u32,
}

fn timeout_error(provider: &Provider, phase: &'static str, after: Duration) -> ProviderError {
    ProviderError::Timeout {
        provider: provider.name().to_string(),
        address: provider.address(),
        phase,
        after,
    }
}

/// One attempt: opens the upstream as `model` and waits for the first token.
/// `sent_at` is when the request's first attempt went out (its TTFT counts
/// from there, failed attempts included). Retrying, and where, is
/// `failover`'s decision.
pub async fn start(
    provider: &Provider,
    params: &ChatParams,
    model: &str,
    limits: StreamLimits,
    sent_at: Instant,
) -> Result<Started, ProviderError> {
    let attempt_started = Instant::now();
    let mut stream = provider.open(params, model).await?;
    let connect = attempt_started.elapsed();
    let mut buffered = Vec::new();
    let deadline = tokio::time::Instant::now() + limits.first_token;
    let (ttft, rest) = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(timeout_error(
                    provider,
                    "the first token",
                    limits.first_token,
                ))
            }
            Ok(None) => break (None, None),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(chunk))) => {
                let first = matches!(&chunk, Chunk::Delta(t) if !t.is_empty());
                buffered.push(chunk);
                if first {
                    break (Some(sent_at.elapsed()), Some(stream));
                }
            }
        }
    };
    Ok(Started {
        connect,
        ttft,
        attempts: 1,
        sent_at,
        buffered,
        rest,
        provider: provider.name().to_string(),
        address: provider.address(),
    })
}

/// Relays an upstream that has started: buffered chunks first, then the rest
/// under the idle and total limits; ends with `Finished` or `Failed`. `lease`
/// (the queue slot and the deployment's ticket) is held until the stream ends
/// or is dropped, and a failure after the first token counts against the
/// deployment's breaker.
pub fn relay(
    started: Started,
    limits: StreamLimits,
    lease: Option<Lease>,
) -> impl Stream<Item = RelayEvent> + Send {
    struct State {
        buffered: std::vec::IntoIter<Chunk>,
        rest: Option<ChunkStream>,
        summary: Summary,
        sent_at: Instant,
        deadline: tokio::time::Instant,
        limits: StreamLimits,
        provider: String,
        address: String,
        done: bool,
        lease: Option<Lease>,
    }
    let state = State {
        buffered: started.buffered.into_iter(),
        rest: started.rest,
        summary: Summary {
            ttft: started.ttft,
            ..Default::default()
        },
        sent_at: started.sent_at,
        deadline: tokio::time::Instant::from_std(started.sent_at) + limits.total,
        limits,
        provider: started.provider,
        address: started.address,
        done: false,
        lease,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let next = match s.buffered.next() {
                Some(chunk) => Some(Ok(chunk)),
                None => match s.rest.as_mut() {
                    None => None,
                    Some(rest) => {
                        let idle_deadline =
                            (tokio::time::Instant::now() + s.limits.idle).min(s.deadline);
                        match tokio::time::timeout_at(idle_deadline, rest.next()).await {
                            Ok(item) => item,
                            Err(_) => {
                                let (phase, after) = if tokio::time::Instant::now() >= s.deadline {
                                    ("the whole reply", s.limits.total)
                                } else {
                                    ("the next token", s.limits.idle)
                                };
                                s.done = true;
                                s.rest = None;
                                let error = ProviderError::Timeout {
                                    provider: s.provider.clone(),
                                    address: s.address.clone(),
                                    phase,
                                    after,
                                };
                                tracing::warn!(provider = %s.provider, error = %error, "stream stalled");
                                if let Some(lease) = s.lease.as_mut() {
                                    lease.ticket.failed(&error);
                                }
                                return Some((RelayEvent::Failed(error), s));
                            }
                        }
                    }
                },
            };
            match next {
                None => {
                    s.done = true;
                    s.rest = None;
                    // The LLM's time runs until the upstream finishes its answer
                    // (Ollama's final object comes after the last token).
                    s.summary.llm = s.sent_at.elapsed();
                    return Some((RelayEvent::Finished(std::mem::take(&mut s.summary)), s));
                }
                Some(Err(e)) => {
                    s.done = true;
                    s.rest = None;
                    tracing::warn!(provider = %s.provider, error = %e, "stream failed after the first token");
                    if let Some(lease) = s.lease.as_mut() {
                        lease.ticket.failed(&e);
                    }
                    return Some((RelayEvent::Failed(e), s));
                }
                Some(Ok(Chunk::Delta(text))) => {
                    if text.is_empty() {
                        continue;
                    }
                    s.summary.llm = s.sent_at.elapsed();
                    s.summary.output_chars += text.chars().count();
                    s.summary.output_deltas += 1;
                    return Some((RelayEvent::Delta(text), s));
                }
                Some(Ok(Chunk::Usage(usage))) => s.summary.usage = Some(usage),
                Some(Ok(Chunk::Timings(t))) => {
                    s.summary.upstream = Some(merge(s.summary.upstream, t))
                }
            }
        }
    })
}

fn merge(old: Option<UpstreamTimings>, new: UpstreamTimings) -> UpstreamTimings {
    let old = old.unwrap_or_default();
    UpstreamTimings {
        load_ms: new.load_ms.or(old.load_ms),
        prompt_eval_ms: new.prompt_eval_ms.or(old.prompt_eval_ms),
        eval_ms: new.eval_ms.or(old.eval_ms),
        total_ms: new.total_ms.or(old.total_ms),
        processing_ms: new.processing_ms.or(old.processing_ms),
        tokens_per_second: new.tokens_per_second.or(old.tokens_per_second),
    }
}
