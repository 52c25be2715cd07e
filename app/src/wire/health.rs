//! `GET /api/health` (both ports): liveness and the database's answer. Fields
//! in the order calos has always sent them (sorted, as `json!` wrote them).
//! Operators (loopback clients, administrators, the metrics token) get every
//! field; anyone else gets only `status`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<HealthComponents>,
    /// `ok`, or `degraded` (with 503) when the database does not answer.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthComponents {
    pub database: DatabaseHealth,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseHealth {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Why it is down; absent when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `null` when it did not answer.
    pub latency_ms: Option<f64>,
    /// `ok` or `down`.
    pub status: String,
}

impl DatabaseHealth {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}
