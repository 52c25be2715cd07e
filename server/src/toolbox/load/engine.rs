//! Sends the requests: a closed loop (each of `users` workers sends its next
//! request when the last one is answered, like `ab` and the seed's script) or an
//! open loop (sends scheduled at a fixed rate whatever the answers do, latency
//! measured from the scheduled time, so a stalled server cannot hide by slowing
//! the sender: no coordinated omission).

use crate::toolbox::client::{describe_send_error, ChatApi};
use crate::toolbox::figures::ServerFigures;
use crate::toolbox::sse::read_stream;
use crate::toolbox::ToolError;
use bytes::Bytes;
use reqwest::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    Closed {
        users: usize,
        per_user: u64,
    },
    Open {
        rate: f64,
        duration: Duration,
        max_in_flight: usize,
    },
}

impl Plan {
    /// Requests the plan will send when not interrupted.
    pub fn total(&self) -> u64 {
        match *self {
            Self::Closed { users, per_user } => users as u64 * per_user,
            Self::Open { rate, duration, .. } => (rate * duration.as_secs_f64()).round() as u64,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    Status(u16),
    Timeout,
    Transport,
    Stream,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "status {s}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Transport => f.write_str("transport"),
            Self::Stream => f.write_str("stream error"),
        }
    }
}

/// What a successful request told us.
#[derive(Debug, Default)]
pub struct Answer {
    /// First body byte.
    pub first_byte: Option<Instant>,
    /// Parse time of each non-empty content event (streams).
    pub content_at: Vec<Instant>,
    pub completion_tokens: Option<u32>,
    pub figures: Option<ServerFigures>,
}

/// One request's outcome.
#[derive(Debug)]
pub struct Shot {
    /// Intended send time (= `sent` in a closed loop).
    pub scheduled: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub result: Result<Answer, (Failure, String)>,
}

/// Everything a request needs, shared by all workers.
pub struct Target {
    pub client: reqwest::Client,
    pub url: String,
    pub stream: bool,
    pub fresh: bool,
    pub timeout: Duration,
    /// One bearer header per account; request `n` uses `auth[n % len]`.
    pub auth: Vec<HeaderValue>,
    /// The request body, serialised once.
    pub body: Bytes,
}

fn server_timing(response: &reqwest::Response) -> Option<ServerFigures> {
    response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(ServerFigures::from_server_timing)
}

impl Target {
    async fn send(&self, n: u64, scheduled: Instant) -> Shot {
        let mut request = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(self.body.clone())
            .timeout(self.timeout);
        if !self.auth.is_empty() {
            request = request.header(
                AUTHORIZATION,
                self.auth[n as usize % self.auth.len()].clone(),
            );
        }
        if self.fresh {
            request = request.header(CACHE_CONTROL, "no-cache");
        }
        let sent = Instant::now();
        let result = self.exchange(request).await;
        Shot {
            scheduled,
            sent,
            done: Instant::now(),
            result,
        }
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, (Failure, String)> {
        let failed = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                Failure::Timeout
            } else {
                Failure::Transport
            };
            (kind, describe_send_error(&self.url, &e).to_string())
        };
        let response = request.send().await.map_err(failed)?;
        let headers_at = Instant::now();
        let status = response.status();
        let header_figures = server_timing(&response);
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err((
                Failure::Status(status.as_u16()),
                crate::toolbox::client::error_message(&body),
            ));
        }
        if self.stream {
            let outcome = read_stream(response).await;
            if let Some(error) = outcome.error {
                return Err((Failure::Stream, error));
            }
            return Ok(Answer {
                first_byte: outcome.first_byte,
                content_at: outcome.content_at,
                completion_tokens: outcome.completion_tokens,
                figures: outcome.figures.or(header_figures),
            });
        }
        let body = response.bytes().await.map_err(failed)?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let Some(parsed) = parsed else {
            return Err((Failure::Stream, "the answer is not JSON".into()));
        };
        Ok(Answer {
            first_byte: Some(headers_at),
            content_at: Vec::new(),
            completion_tokens: parsed
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
                .map(|t| t as u32),
            figures: parsed
                .get("timings")
                .and_then(ServerFigures::from_timings)
                .or(header_figures),
        })
    }
}

/// Runs `plan` against `target`, sending every outcome to `shots`. Returns when
/// the plan is done or `stop` is cancelled (in-flight requests are abandoned).
pub async fn run(
    target: Arc<Target>,
    plan: Plan,
    shots: mpsc::UnboundedSender<Shot>,
    stop: CancellationToken,
) -> Result<(), ToolError> {
    let mut tasks = JoinSet::new();
    match plan {
        Plan::Closed { users, per_user } => {
            for user in 0..users {
                let (target, shots) = (target.clone(), shots.clone());
                tasks.spawn(async move {
                    for i in 0..per_user {
                        let now = Instant::now();
                        let n = user as u64 + i * users as u64;
                        let shot = target.send(n, now).await;
                        if shots.send(shot).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        Plan::Open {
            rate,
            max_in_flight,
            ..
        } => {
            let total = plan.total();
            let period = Duration::from_secs_f64(1.0 / rate.max(1e-6));
            let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
            let start = Instant::now();
            for n in 0..total {
                let scheduled = start + period.mul_f64(n as f64);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(scheduled.into()) => {}
                }
                let permit = tokio::select! {
                    _ = stop.cancelled() => break,
                    permit = slots.clone().acquire_owned() => permit,
                };
                let Ok(permit) = permit else { break };
                let (target, shots) = (target.clone(), shots.clone());
                tasks.spawn(async move {
                    let shot = target.send(n, scheduled).await;
                    let _ = shots.send(shot);
                    drop(permit);
                });
                // Reap finished tasks so a long run's JoinSet stays small.
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    drop(shots);
    tokio::select! {
        _ = stop.cancelled() => tasks.abort_all(),
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
    Ok(())
}

/// Builds the shared [`Target`].
#[allow(clippy::too_many_arguments)]
pub fn target(
    client: reqwest::Client,
    base: &str,
    api: ChatApi,
    model: &str,
    prompt: &str,
    stream: bool,
    fresh: bool,
    timeout: Duration,
    tokens: &[String],
) -> Result<Target, ToolError> {
    let auth = tokens
        .iter()
        .map(|t| {
            HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                ToolError::Other(anyhow::anyhow!("the token is not a valid header value"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = serde_json::to_vec(&api.body(model, prompt, stream)).map_err(anyhow::Error::from)?;
    Ok(Target {
        client,
        url: format!("{}{}", base.trim_end_matches('/'), api.path()),
        stream,
        fresh,
        timeout,
        auth,
        body: Bytes::from(body),
    })
}
