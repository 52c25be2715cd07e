//! Sends the requests: a closed loop (each of `users` workers sends its next
//! request when the last one is answered, like `ab` and the original guide's script) or an
//! open loop (sends scheduled at a fixed rate whatever the answers do, latency
//! measured from the scheduled time, so a stalled server cannot hide by slowing
//! the sender: no coordinated omission).

use super::conn::{Connections, Sender};
use crate::cli::toolbox::client::ChatApi;
use crate::cli::toolbox::figures::ServerFigures;
use crate::cli::toolbox::sse::read_stream;
use crate::cli::toolbox::ToolError;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, BodyStream, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
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
    pub connections: Connections,
    /// For messages.
    pub url: String,
    /// `Host` header and origin-form request target, computed once.
    authority: HeaderValue,
    path: hyper::Uri,
    /// Which API's replies to read.
    pub api: ChatApi,
    pub stream: bool,
    pub fresh: bool,
    pub timeout: Duration,
    /// One bearer header per account; request `n` uses `auth[n % len]`.
    pub auth: Vec<HeaderValue>,
    /// The request body, serialised once.
    pub body: Bytes,
}

/// The `Server-Timing` header's figures; parsed only when the body had none.
fn header_figures(value: Option<&HeaderValue>) -> Option<ServerFigures> {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(ServerFigures::from_server_timing)
}

fn transport(e: impl std::fmt::Display) -> (Failure, String) {
    (Failure::Transport, e.to_string())
}

impl Target {
    fn request(&self, n: u64) -> Result<hyper::Request<Full<Bytes>>, (Failure, String)> {
        let mut request = hyper::Request::post(self.path.clone())
            .header(HOST, self.authority.clone())
            .header(CONTENT_TYPE, "application/json");
        if !self.auth.is_empty() {
            request = request.header(
                AUTHORIZATION,
                self.auth[n as usize % self.auth.len()].clone(),
            );
        }
        if self.fresh {
            request = request.header(CACHE_CONTROL, "no-cache");
        }
        request
            .body(Full::new(self.body.clone()))
            .map_err(transport)
    }

    async fn send(&self, n: u64, scheduled: Instant) -> Shot {
        let sent = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.exchange(n)).await {
            Ok(result) => result,
            Err(_) => Err((
                Failure::Timeout,
                format!(
                    "no complete answer within {:.1} s",
                    self.timeout.as_secs_f64()
                ),
            )),
        };
        Shot {
            scheduled,
            sent,
            done: Instant::now(),
            result,
        }
    }

    /// Sends on a pooled connection; if that connection turns out to be closed
    /// before the request left (a server's keep-alive timeout), once more on a
    /// new one.
    async fn send_request(
        &self,
        n: u64,
    ) -> Result<(Sender, hyper::Response<Incoming>), (Failure, String)> {
        let mut sender = self.connections.checkout().await.map_err(transport)?;
        let mut request = self.request(n)?;
        for attempt in 0..2 {
            if sender.ready().await.is_ok() {
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok((sender, response)),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if attempt == 0 => request = unsent,
                        _ => return Err(transport(e.into_error())),
                    },
                }
            }
            sender = self.connections.connect().await.map_err(transport)?;
        }
        Err(transport(
            "the connection closed twice before the request was sent",
        ))
    }

    async fn exchange(&self, n: u64) -> Result<Answer, (Failure, String)> {
        let (sender, response) = self.send_request(n).await?;
        let headers_at = Instant::now();
        let status = response.status();
        let server_timing = response.headers().get("server-timing").cloned();
        let body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            self.connections.checkin(sender);
            return Err((
                Failure::Status(status.as_u16()),
                crate::cli::toolbox::client::error_message(&bytes),
            ));
        }
        if self.stream {
            let frames = BodyStream::new(body).filter_map(|frame| async move {
                match frame {
                    Ok(frame) => frame.into_data().ok().map(Ok),
                    Err(e) => Some(Err(e)),
                }
            });
            let outcome = read_stream(self.api, frames).await;
            if let Some(error) = outcome.error {
                return Err((Failure::Stream, error));
            }
            self.connections.checkin(sender);
            return Ok(Answer {
                first_byte: outcome.first_byte,
                content_at: outcome.content_at,
                completion_tokens: outcome.completion_tokens,
                figures: outcome
                    .figures
                    .or_else(|| header_figures(server_timing.as_ref())),
            });
        }
        let bytes = body.collect().await.map_err(transport)?.to_bytes();
        self.connections.checkin(sender);
        let reply = self
            .api
            .read_reply(&bytes)
            .map_err(|e| (Failure::Stream, format!("unexpected answer: {e}")))?;
        Ok(Answer {
            first_byte: Some(headers_at),
            content_at: Vec::new(),
            completion_tokens: reply.completion_tokens,
            figures: reply
                .figures
                .or_else(|| header_figures(server_timing.as_ref())),
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
pub fn target(
    base: &str,
    api: ChatApi,
    request: (&str, &str, bool),
    fresh: bool,
    timeout: Duration,
    tokens: &[String],
) -> Result<Target, ToolError> {
    let (model, prompt, stream) = request;
    let auth = tokens
        .iter()
        .map(|t| {
            HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                ToolError::Other(anyhow::anyhow!("the token is not a valid header value"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = serde_json::to_vec(&api.body(model, prompt, stream)).map_err(anyhow::Error::from)?;
    let url = format!("{}{}", base.trim_end_matches('/'), api.path());
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| ToolError::Other(anyhow::anyhow!("{base:?} is not a URL: {e}")))?;
    let bad = |e: String| ToolError::Other(anyhow::anyhow!(e));
    let authority = HeaderValue::from_str(parsed.authority()).map_err(|e| bad(e.to_string()))?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    Ok(Target {
        connections: Connections::new(&parsed).map_err(bad)?,
        url,
        authority,
        path: path
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?,
        api,
        stream,
        fresh,
        timeout,
        auth,
        body: Bytes::from(body),
    })
}
