//! The dashboard listener's data: `/metrics` for scrapers, and the admin-only
//! `/api/monitor/*` (Bearer token or the session cookie, cross-site cookie
//! writes refused): the live feed's WebSocket, managed processes and orders to
//! them, recent logs, the in-process latency percentiles, and the verdict
//! over the recent requests.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AdminUser;
use crate::http::operator::Viewer;
use crate::http::query::ApiQuery;
use crate::http::state::AppState;
use crate::ops::processes::Order;
use app::wire::{
    DeploymentTile, ErrorResponse, LogLine, ProcessView, SuccessResponse, WindowVerdict,
};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

/// `/metrics`: unauthenticated, like most exporters (it carries counts and
/// bounded labels only).
pub fn public() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Mission Control's data: administrators only.
pub fn admin() -> Router<AppState> {
    Router::new()
        .route("/api/monitor/processes", get(processes))
        .route("/api/monitor/deployments", get(deployments))
        .route("/api/monitor/cluster", get(cluster))
        .route("/api/monitor/processes/{name}/{action}", post(order))
        .route("/api/monitor/logs", get(logs))
        .route("/api/monitor/latency", get(latency))
        .route("/api/monitor/verdict", get(verdict))
        .route("/api/monitor/ws", get(socket))
        .route("/api/monitor/chart.svg", get(chart))
        .route("/api/monitor/profile", get(profile))
}

#[derive(Debug, Deserialize)]
struct ProfileQuery {
    seconds: Option<u64>,
    /// The page's cache-buster; ignored.
    #[serde(default, rename = "n")]
    _n: Option<String>,
}

#[utoipa::path(get, path = "/api/monitor/profile", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    params(
        ("seconds" = Option<u64>, Query, description = "How long to sample, 1-60 (default 10)"),
        ("n" = Option<String>, Query, description = "Ignored (a cache-buster)"),
    ),
    responses(
        (status = 200, description = "A flamegraph", content_type = "image/svg+xml", body = String,
            headers(("X-Profile-Samples" = u64, description = "Samples the graph rests on"))),
        (status = 400, description = "`seconds` out of range", body = ErrorResponse),
        (status = 409, description = "Another profile is running", body = ErrorResponse),
    ))]
/// A CPU flamegraph (SVG) of the next `seconds` (1-60, default 10); the
/// `X-Profile-Samples` header says how many samples it rests on.
async fn profile(
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<ProfileQuery>,
) -> ApiResult<Response> {
    use crate::ops::profile::{cpu, ProfileError, MAX_SECONDS};
    let seconds = query.seconds.unwrap_or(10);
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(ApiError::invalid_field(
            "invalid_seconds",
            "seconds",
            format!("seconds must be 1-{MAX_SECONDS}"),
        ));
    }
    match cpu(seconds).await {
        Ok(profile) => Ok((
            [
                (header::CONTENT_TYPE, "image/svg+xml".to_string()),
                (
                    header::HeaderName::from_static("x-profile-samples"),
                    profile.samples.to_string(),
                ),
            ],
            profile.svg,
        )
            .into_response()),
        Err(ProfileError::Busy) => Err(ApiError::Conflict {
            code: "profile_running",
            message: ProfileError::Busy.to_string(),
            field: None,
        }),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(e))),
    }
}

#[derive(Debug, Deserialize)]
struct ChartQuery {
    kind: String,
    /// The page's cache-buster; ignored.
    #[serde(default, rename = "n")]
    _n: Option<String>,
}

#[utoipa::path(get, path = "/api/monitor/chart.svg", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    params(
        ("kind" = String, Query, description = "`latency` or `errors`"),
        ("n" = Option<String>, Query, description = "Ignored (a cache-buster)"),
    ),
    responses(
        (status = 200, description = "The chart", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Unknown `kind`", body = ErrorResponse),
    ))]
/// A chart of the last 15 minutes as SVG (`kind=latency|errors`).
async fn chart(
    _admin: AdminUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ChartQuery>,
) -> ApiResult<Response> {
    let kind =
        crate::ops::monitor::chart::Kind::parse(&query.kind).ok_or(ApiError::BadRequest {
            code: "invalid_query",
            message: "kind must be latency or errors".into(),
            field: Some("kind"),
        })?;
    let samples = state.monitor.samples();
    let svg =
        tokio::task::spawn_blocking(move || crate::ops::monitor::chart::render(kind, &samples))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("chart task: {e}")))?
            .map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// How often a socket re-checks that its user is still a signed-in admin.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A socket whose client does not take a message within this long is dropped.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Close codes (4000-4999 are the application's).
const CLOSE_NOT_ADMIN: u16 = 4003;
const CLOSE_TOO_SLOW: u16 = 4008;

#[utoipa::path(get, path = "/api/monitor/ws", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 101, description = "The live feed: JSON `MonitorMessage`s, one per WebSocket text message"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorResponse),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorResponse),
    ))]
/// The live feed. Browsers always send `Origin` on a WebSocket handshake, and a
/// cookie rides along on cross-site ones too, so the origin must be ours.
async fn socket(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    if crate::http::extract::origin_matches_host(&headers) == Some(false) {
        return Err(ApiError::Forbidden("Cross-site WebSocket refused.".into()));
    }
    let token = match crate::http::extract::credential(&headers)? {
        Some(credential) => credential.token().to_string(),
        None => return Err(crate::http::extract::authentication_required()),
    };
    Ok(upgrade
        .max_message_size(MAX_INCOMING_MESSAGE_BYTES)
        .max_frame_size(MAX_INCOMING_MESSAGE_BYTES)
        .on_upgrade(move |socket| feed(socket, state, token)))
}

/// The page sends nothing but pings and the close; anything bigger than this
/// closes the socket (1009) instead of being buffered (the library's default
/// would take 64 MiB per message).
const MAX_INCOMING_MESSAGE_BYTES: usize = 4 * 1024;

async fn feed(socket: WebSocket, state: AppState, token: String) {
    let (mut sink, mut incoming) = socket.split();
    // Subscribe before the snapshot so nothing published in between is lost.
    let mut live = state.monitor.subscribe();
    let snapshot = state
        .monitor
        .snapshot(&state.logs, &state.processes, state.metrics.recent());
    for text in snapshot {
        if !send(&mut sink, text).await {
            return;
        }
    }
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    loop {
        tokio::select! {
            message = live.recv() => match message {
                Ok(text) => if !send(&mut sink, text).await { return },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    close(&mut sink, CLOSE_TOO_SLOW, "too slow: reconnect to resume").await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = recheck.tick() => {
                let still_admin = state
                    .auth
                    .authenticate_fresh(&token)
                    .await
                    .is_ok_and(|a| a.user.role == app::wire::Role::Admin);
                if !still_admin {
                    close(&mut sink, CLOSE_NOT_ADMIN, "signed out or no longer an administrator").await;
                    return;
                }
            }
            from_client = incoming.next() => match from_client {
                // Pings are answered by axum; the page sends nothing else.
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send(sink: &mut SplitSink<WebSocket, WsMessage>, text: std::sync::Arc<str>) -> bool {
    let message = WsMessage::Text(text.as_ref().into());
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

async fn close(sink: &mut SplitSink<WebSocket, WsMessage>, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
}

#[utoipa::path(get, path = "/metrics", tag = "monitor",
    security((), ("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Prometheus/OpenMetrics text, for loopback scrapers, the metrics token or administrators", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "No credential from a remote address", body = ErrorResponse),
        (status = 403, description = "A credential that is neither the metrics token nor an administrator's", body = ErrorResponse),
    ))]
/// Prometheus/OpenMetrics text, for operators only ([`Viewer`]): a local
/// scraper, `Authorization: Bearer <CALOS_METRICS_TOKEN>`, or an administrator.
async fn metrics(viewer: Viewer, State(state): State<AppState>) -> ApiResult<Response> {
    viewer.require_operator()?;
    let exporter = &state.metrics.exporter();
    let now = std::time::Instant::now();
    for deployment in state.chat.router().deployments() {
        exporter.queue(
            &deployment.name,
            deployment.queue.waiting(),
            deployment.queue.running(),
        );
        exporter.deployment(&deployment.view(now));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            crate::observability::exporter::CONTENT_TYPE,
        )],
        exporter.render(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/monitor/cluster", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Every replica heard from over Redis (this one first) and the sums", body = app::wire::ClusterView),
        (status = 404, description = "This replica runs alone (no REDIS_URL)", body = app::wire::ErrorResponse),
    ))]
async fn cluster(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Result<Json<app::wire::ClusterView>, crate::http::error::ApiError> {
    state.monitor.cluster().map(Json).ok_or_else(|| {
        crate::http::error::ApiError::NotFound(
            "This replica runs alone: set REDIS_URL on every replica for the cluster view.".into(),
        )
    })
}

#[utoipa::path(get, path = "/api/monitor/deployments", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Every deployment: its breaker, in-flight requests, error rate and median TTFT", body = Vec<DeploymentTile>)))]
async fn deployments(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Json<Vec<DeploymentTile>> {
    Json(crate::ops::monitor::deployment_tiles(state.chat.router()))
}

#[utoipa::path(get, path = "/api/monitor/processes", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The managed processes", body = Vec<ProcessView>)))]
async fn processes(_admin: AdminUser, State(state): State<AppState>) -> Json<Vec<ProcessView>> {
    Json(state.processes.list())
}

#[utoipa::path(post, path = "/api/monitor/processes/{name}/{action}", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    params(
        ("name" = String, Path, description = "A process from the process file"),
        ("action" = String, Path, description = "`start`, `stop` or `restart`"),
    ),
    responses(
        (status = 200, description = "Done", body = SuccessResponse),
        (status = 404, description = "No such process or action", body = ErrorResponse),
    ))]
async fn order(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<Json<SuccessResponse>> {
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
    Ok(Json(SuccessResponse::OK))
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

#[utoipa::path(get, path = "/api/monitor/logs", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    params(
        ("after" = Option<u64>, Query, description = "Only lines with a sequence number at least this"),
        ("limit" = Option<usize>, Query, description = "At most this many lines (default 500)"),
    ),
    responses(
        (status = 200, description = "Recent log lines, redacted", body = Vec<LogLine>),
        (status = 400, description = "A malformed query", body = ErrorResponse),
    ))]
async fn logs(
    _admin: AdminUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Json<Vec<LogLine>>> {
    // The published contract types both as int64 (what JSON Schema tools and
    // most clients handle); a larger number is refused rather than read.
    for (field, value) in [("after", query.after), ("limit", query.limit as u64)] {
        if value > i64::MAX as u64 {
            return Err(ApiError::invalid_field(
                "invalid_query",
                field,
                format!("{field} must be at most {}", i64::MAX),
            ));
        }
    }
    Ok(Json(state.logs.recent(
        query.after,
        query.limit.min(crate::observability::logs::CAPACITY),
    )))
}

#[utoipa::path(get, path = "/api/monitor/latency", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Latency summaries and outcome counts per provider and model", body = crate::observability::metrics::Snapshot)))]
async fn latency(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Json<crate::observability::metrics::Snapshot> {
    Json(state.metrics.snapshot())
}

#[utoipa::path(get, path = "/api/monitor/verdict", tag = "monitor",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "What changed: the decision tree over the last 15 minutes of answered chat requests, and those minutes against the hour before (the same verdict as `calos perf --baseline`)", body = WindowVerdict)))]
/// The verdict the dashboard's "What changed" shows, judged now.
async fn verdict(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> ApiResult<Json<WindowVerdict>> {
    let recent = state.metrics.recent().clone();
    let now = chrono::Utc::now().timestamp();
    // Rank tests over up to 19 200 requests: off the runtime's threads.
    let judged = tokio::task::spawn_blocking(move || {
        crate::ops::monitor::verdict::dashboard_verdict(&recent, now)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("verdict task: {e}")))?;
    Ok(Json(judged))
}
