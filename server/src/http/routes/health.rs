//! `GET /api/health`: liveness plus the database's answer and latency.
//! 200 `status:"ok"` when the database answers, 503 `status:"degraded"` when it
//! does not; it recovers by itself because each check asks the pool afresh.

use crate::db::Db;
use crate::http::state::Runtime;
use app::wire::{DatabaseHealth, HealthComponents, HealthResponse};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

/// A database slower than this to answer `select 1` counts as down.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Db: axum::extract::FromRef<S>,
    Runtime: axum::extract::FromRef<S>,
{
    Router::new().route("/api/health", get(health))
}

async fn health(State(db): State<Db>, State(runtime): State<Runtime>) -> impl IntoResponse {
    let check = tokio::time::timeout(DB_CHECK_TIMEOUT, db.ping()).await;
    let down = |error: &str| DatabaseHealth {
        backend: db.backend().into(),
        error: Some(error.into()),
        latency_ms: None,
        status: "down".into(),
    };
    let database = match check {
        Ok(Ok(latency)) => DatabaseHealth {
            backend: db.backend().into(),
            error: None,
            latency_ms: Some((latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
            status: "ok".into(),
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: database check failed");
            down("database did not answer")
        }
        Err(_) => down("database check timed out"),
    };
    let healthy = database.is_ok();
    let body = HealthResponse {
        components: HealthComponents { database },
        status: if healthy { "ok" } else { "degraded" }.into(),
        uptime_seconds: runtime.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
