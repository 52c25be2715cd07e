//! `GET /api/health`: liveness plus the database's answer and latency.
//! 200 `status:"ok"` when the database answers, 503 `status:"degraded"` when it
//! does not; it recovers by itself because each check asks the pool afresh.
//! From the moment shutdown begins it answers 503 `status:"draining"`, so a
//! balancer checking it stops sending new requests to a replica on its way out
//! while that replica finishes what it has (`--drain-secs`).
//!
//! Load balancers and monitors call this often and all at once, so callers that
//! arrive while a check is in flight share its answer instead of each sending
//! `select 1` ([`DatabaseProbe`]): the answer is never older than one check,
//! and a flood of health checks costs the database one query at a time.

use crate::db::Db;
use crate::http::operator::Viewer;
use crate::http::state::{AppState, Runtime};
use app::wire::{DatabaseHealth, HealthComponents, HealthResponse};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// A database slower than this to answer `select 1` counts as down.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/health", get(health))
}

/// One database check's outcome: its latency, or why it failed.
type Check = Result<Duration, &'static str>;

/// Runs `select 1` for whoever asks, one at a time: callers that arrive while a
/// check is in flight await that check.
#[derive(Clone)]
pub struct DatabaseProbe {
    db: Db,
    in_flight: Arc<Mutex<Option<Shared<BoxFuture<'static, Check>>>>>,
}

impl DatabaseProbe {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            in_flight: Arc::default(),
        }
    }

    async fn check(&self) -> Check {
        let check = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.as_ref() {
                // Still running: share it.
                Some(check) if check.peek().is_none() => check.clone(),
                _ => {
                    let db = self.db.clone();
                    let check = async move {
                        match tokio::time::timeout(DB_CHECK_TIMEOUT, db.ping()).await {
                            Ok(Ok(latency)) => Ok(latency),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "health: database check failed");
                                Err("database did not answer")
                            }
                            Err(_) => Err("database check timed out"),
                        }
                    }
                    .boxed()
                    .shared();
                    *in_flight = Some(check.clone());
                    check
                }
            }
        };
        check.await
    }
}

#[utoipa::path(get, path = "/api/health", tag = "health",
    responses(
        (status = 200, description = "Up. Operators (loopback clients, administrators, the metrics token) see every component; anyone else only `status`", body = HealthResponse),
        (status = 503, description = "Degraded (the database does not answer) or draining (shutting down: send new requests elsewhere)", body = HealthResponse),
    ))]
async fn health(
    State(probe): State<DatabaseProbe>,
    State(runtime): State<Runtime>,
    viewer: Viewer,
) -> impl IntoResponse {
    let backend = probe.db.backend();
    let database = match probe.check().await {
        Ok(latency) => DatabaseHealth {
            backend: backend.into(),
            error: None,
            latency_ms: Some((latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
            status: "ok".into(),
        },
        Err(error) => DatabaseHealth {
            backend: backend.into(),
            error: Some(error.into()),
            latency_ms: None,
            status: "down".into(),
        },
    };
    let draining = runtime.draining.is_cancelled();
    let healthy = database.is_ok() && !draining;
    let status = if draining {
        "draining"
    } else if healthy {
        "ok"
    } else {
        "degraded"
    };
    // The public learns up or degraded; what is behind it is for operators.
    let body = if viewer.is_operator() {
        HealthResponse {
            components: Some(HealthComponents { database }),
            status: status.into(),
            uptime_seconds: Some(runtime.started.elapsed().as_secs()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }
    } else {
        HealthResponse {
            components: None,
            status: status.into(),
            uptime_seconds: None,
            version: None,
        }
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
