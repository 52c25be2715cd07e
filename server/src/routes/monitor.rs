//! The dashboard listener's data: `/metrics` for scrapers, and the admin-only
//! `/api/monitor/*` (Bearer token or the session cookie, cross-site cookie
//! writes refused): managed processes and orders to them, recent logs, and the
//! in-process latency percentiles.

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult};
use crate::logs::LogLine;
use crate::processes::{Order, ProcessView};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/monitor/processes", get(processes))
        .route("/api/monitor/processes/{name}/{action}", post(order))
        .route("/api/monitor/logs", get(logs))
        .route("/api/monitor/latency", get(latency))
}

/// Prometheus/OpenMetrics text. Unauthenticated like most exporters: the
/// dashboard port is for operators (bind it with `--local` or a firewall).
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let exporter = &state.chat.metrics().exporter;
    for slot in state.chat.router().providers() {
        exporter.queue(
            slot.provider.name(),
            slot.queue.waiting(),
            slot.queue.running(),
        );
    }
    (
        [(header::CONTENT_TYPE, crate::exporter::CONTENT_TYPE)],
        exporter.render(),
    )
}

async fn processes(_admin: AdminUser, State(state): State<AppState>) -> Json<Vec<ProcessView>> {
    Json(state.processes.list())
}

async fn order(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let order = match action.as_str() {
        "start" => Order::Start,
        "stop" => Order::Stop,
        "restart" => Order::Restart,
        _ => {
            return Err(ApiError::NotFound(format!(
                "unknown action {action:?}: use start, stop or restart"
            )))
        }
    };
    state
        .processes
        .order(&name, order)
        .await
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    tracing::info!(process = %name, %action, admin = %admin.username, "process order");
    Ok(Json(json!({ "success": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    /// Only lines with a sequence number at least this.
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    500
}

async fn logs(
    _admin: AdminUser,
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<LogLine>>> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        message: e.body_text(),
        field: None,
    })?;
    Ok(Json(state.logs.recent(
        query.after,
        query.limit.min(crate::logs::CAPACITY),
    )))
}

async fn latency(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Json<crate::metrics::Snapshot> {
    Json(state.chat.metrics().snapshot())
}
