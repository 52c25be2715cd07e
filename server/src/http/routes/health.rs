//! `GET /api/health`: liveness plus the database's answer and latency.
//! 200 `status:"ok"` when the database answers, 503 `status:"degraded"` when it
//! does not; it recovers by itself because each check asks the pool afresh.

use crate::db::Db;
use crate::http::state::Runtime;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
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
    let database = match check {
        Ok(Ok(latency)) => json!({
            "status": "ok",
            "backend": db.backend(),
            "latencyMs": (latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: database check failed");
            json!({ "status": "down", "backend": db.backend(), "latencyMs": null, "error": "database did not answer" })
        }
        Err(_) => {
            json!({ "status": "down", "backend": db.backend(), "latencyMs": null, "error": "database check timed out" })
        }
    };
    let healthy = database["status"] == "ok";
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": runtime.started.elapsed().as_secs(),
        "components": { "database": database },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
