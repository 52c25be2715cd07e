//! Getting one request to a deployment that answers, before anything has
//! reached the client: the balancer picks a deployment of the model asked
//! for; a failure moves on to another one, then to the fallback models'; only
//! a deployment with nowhere else to go is retried in place, with backoff or
//! after the upstream's `Retry-After`. A deployment whose breaker is open is
//! passed over without an attempt. Every attempt is written down (deployment,
//! model, outcome, time) for the breakdown and the log.
//!
//! Once the first token is in, the request stays where it is: a reply is
//! never switched to another deployment half-way (`relay` ends it with an
//! error event instead).

use super::balance::NoPick;
use super::deployment::{request_at_fault, Deployment, Ticket};
use super::error::ProviderError;
use super::queue::QueueFull;
use super::relay::{self, Started, StreamLimits};
use super::router::Plan;
use super::types::ChatParams;
use crate::observability::timing::{ms, Attempt};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// What an answering upstream holds until its reply ends: the queue slot
/// and the deployment's ticket.
#[derive(Debug)]
pub struct Lease {
    pub permit: OwnedSemaphorePermit,
    pub ticket: Ticket,
}

/// An upstream that produced its first token.
pub struct Opened {
    pub started: Started,
    pub lease: Lease,
    /// Time spent waiting in deployments' queues, all attempts together.
    pub queue: Duration,
    pub tried: Vec<Attempt>,
    /// The fallback model that answered, when the asked one could not.
    pub fallback: Option<Arc<str>>,
}

/// No deployment answered.
#[derive(Debug)]
pub struct NotOpened {
    pub error: Unopened,
    pub tried: Vec<Attempt>,
    pub queue: Duration,
    /// The provider of the last deployment tried (or of the first planned).
    pub provider: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Unopened {
    /// The one deployment there was failed: its error, as the client has
    /// always seen it.
    #[error(transparent)]
    Provider(ProviderError),
    #[error("{provider} is busy: {full}")]
    QueueFull { provider: String, full: QueueFull },
    #[error(transparent)]
    Unavailable(Unavailable),
}

/// Several deployments (or fallbacks) were planned and none could answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.message())]
pub struct Unavailable {
    pub model: String,
    /// Each deployment and what became of it.
    pub tried: Vec<(String, String)>,
    /// When the first skipped deployment may take requests again.
    pub retry_after: Option<Duration>,
}

impl Unavailable {
    fn message(&self) -> String {
        let mut out = format!(
            "no deployment of {:?} could take the request; tried ",
            self.model
        );
        for (i, (deployment, why)) in self.tried.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{deployment} ({why})");
        }
        out
    }
}

/// Finds an answering deployment for `params` along `plan`.
pub async fn open(
    plan: &Plan,
    params: &ChatParams,
    limits: StreamLimits,
) -> Result<Opened, NotOpened> {
    // When the first attempt left (after its queue): TTFT counts from there.
    let mut sent_at: Option<Instant> = None;
    let mut tried: Vec<Attempt> = Vec::new();
    let mut skipped: Vec<(String, Instant)> = Vec::new();
    // What the skipped deployments last failed with.
    let mut skipped_errors: Vec<ProviderError> = Vec::new();
    let mut queue = Duration::ZERO;
    let mut last: Option<Unopened> = None;
    let mut last_provider: Option<String> = None;
    for (step_index, step) in plan.steps.iter().enumerate() {
        let model: &str = step.fallback.as_deref().unwrap_or(&params.model);
        let later_steps = step_index + 1 < plan.steps.len();
        let mut passed: Vec<Arc<Deployment>> = Vec::new();
        'pick: loop {
            let mut ticket = match step.group.pick(&passed, Instant::now()) {
                Ok(ticket) => ticket,
                Err(why) => {
                    if let NoPick::AllSkipping(_) = why {
                        let now = Instant::now();
                        for d in step.group.deployments() {
                            let untried = !passed.iter().any(|p| Arc::ptr_eq(p, d));
                            if let (true, Some(until)) = (untried, d.breaker.skipping_until(now)) {
                                skipped.push((d.name.clone(), until));
                                skipped_errors.extend(d.breaker.last_error(now));
                                last_provider.get_or_insert_with(|| d.provider.name().to_string());
                            }
                        }
                    }
                    break 'pick;
                }
            };
            let deployment = ticket.deployment().clone();
            last_provider = Some(deployment.provider.name().to_string());
            let upstream_model = deployment.upstream_model.as_deref().unwrap_or(model);
            let mut retries = 0;
            loop {
                let began = Instant::now();
                let note = |outcome: &str| Attempt {
                    deployment: deployment.name.clone(),
                    model: model.to_string(),
                    outcome: outcome.to_string(),
                    ms: ms(began.elapsed()),
                };
                let (permit, waited) = match deployment.queue.acquire().await {
                    Ok(slot) => slot,
                    Err(full) => {
                        tried.push(note("queue_full"));
                        last = Some(Unopened::QueueFull {
                            provider: deployment.provider.name().to_string(),
                            full,
                        });
                        passed.push(deployment);
                        continue 'pick;
                    }
                };
                queue += waited;
                let sent_at = *sent_at.get_or_insert_with(Instant::now);
                match relay::start(
                    &deployment.provider,
                    params,
                    upstream_model,
                    limits,
                    sent_at,
                )
                .await
                {
                    Ok(mut started) => {
                        ticket.succeeded(started.ttft);
                        tried.push(note("ok"));
                        started.attempts = upstream_attempts(&tried);
                        return Ok(Opened {
                            started,
                            lease: Lease { permit, ticket },
                            queue,
                            tried,
                            fallback: step.fallback.clone(),
                        });
                    }
                    Err(error) => {
                        drop(permit);
                        ticket.failed(&error);
                        tried.push(note(error.code()));
                        let moves_on = !request_at_fault(&error);
                        // Retried in place only when it may pass on a second
                        // try, and when it did not ask for a longer wait than
                        // calos holds a request for.
                        let asked = error.retry_after().map(Duration::from_secs);
                        let retry_here =
                            error.is_retryable() && asked.is_none_or(|wait| wait <= MAX_RETRY_WAIT);
                        let wait = retry_wait(&error, limits, retries);
                        last = Some(Unopened::Provider(error));
                        if !moves_on {
                            break;
                        }
                        let now = Instant::now();
                        let elsewhere = later_steps
                            || step.group.deployments().iter().any(|d| {
                                !Arc::ptr_eq(d, &deployment)
                                    && !passed.iter().any(|p| Arc::ptr_eq(p, d))
                                    && d.breaker.available(now)
                            });
                        if elsewhere || !retry_here || retries >= limits.retries {
                            passed.push(deployment.clone());
                            drop(ticket);
                            continue 'pick;
                        }
                        // Nowhere else to go: wait as told, then try it again.
                        retries += 1;
                        tracing::warn!(deployment = %deployment.name, retries, wait_ms = wait.as_millis() as u64, "upstream failed before the first token; retrying");
                        drop(ticket);
                        tokio::time::sleep(wait).await;
                        ticket = deployment.ticket_unchecked(false);
                    }
                }
            }
            // A failure that says the request itself is wrong: no other
            // deployment would answer it differently.
            let provider = last_provider.unwrap_or_default();
            let error = last.unwrap_or_else(|| {
                Unopened::Unavailable(unavailable_detail(params, &tried, &skipped))
            });
            return Err(NotOpened {
                error,
                tried,
                queue,
                provider,
            });
        }
    }
    let one_deployment = skipped.is_empty()
        && tried
            .first()
            .is_some_and(|first| tried.iter().all(|a| a.deployment == first.deployment));
    let error = match last {
        Some(error) if one_deployment => error,
        // The only deployment there is, cooling down: what it last failed
        // with (its hint says how to fix it), at once, without an attempt.
        None if skipped.len() == 1 && skipped_errors.len() == 1 => {
            Unopened::Provider(skipped_errors.remove(0))
        }
        _ => Unopened::Unavailable(unavailable_detail(params, &tried, &skipped)),
    };
    let provider = last_provider.unwrap_or_else(|| {
        plan.steps
            .first()
            .and_then(|s| s.group.deployments().first())
            .map(|d| d.provider.name().to_string())
            .unwrap_or_default()
    });
    Err(NotOpened {
        error,
        tried,
        queue,
        provider,
    })
}

fn unavailable_detail(
    params: &ChatParams,
    tried: &[Attempt],
    skipped: &[(String, Instant)],
) -> Unavailable {
    let now = Instant::now();
    let mut list: Vec<(String, String)> = tried
        .iter()
        .map(|a| {
            let what = if a.model == params.model {
                a.outcome.clone()
            } else {
                format!("fallback {}: {}", a.model, a.outcome)
            };
            (a.deployment.clone(), what)
        })
        .collect();
    let mut earliest: Option<Instant> = None;
    for (name, until) in skipped {
        let left = until.saturating_duration_since(now);
        list.push((
            name.clone(),
            format!("circuit open, {} s left", left.as_secs_f64().ceil()),
        ));
        earliest = Some(earliest.map_or(*until, |e| e.min(*until)));
    }
    Unavailable {
        model: params.model.clone(),
        tried: list,
        // Whole seconds, rounded up, at least one: what a Retry-After says.
        retry_after: earliest.map(|e| {
            Duration::from_secs(
                e.saturating_duration_since(now)
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
            )
        }),
    }
}

/// Attempts that reached an upstream (a full queue is not one).
fn upstream_attempts(tried: &[Attempt]) -> u32 {
    tried.iter().filter(|a| a.outcome != "queue_full").count() as u32
}

/// The longest calos waits before trying the same deployment again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// How long to wait before trying the same deployment again: what it asked
/// for, or exponential backoff, at most [`MAX_RETRY_WAIT`].
fn retry_wait(error: &ProviderError, limits: StreamLimits, retries: u32) -> Duration {
    let backoff = limits.backoff * 2u32.saturating_pow(retries);
    error
        .retry_after()
        .map(Duration::from_secs)
        .unwrap_or(backoff)
        .min(MAX_RETRY_WAIT)
}
