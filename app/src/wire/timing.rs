//! The per-request timing breakdown, as the server sends it and clients read it.

use serde::{Deserialize, Serialize};

/// The timing breakdown as clients read it (the server's `timings` object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub auth: f64,
    pub database: f64,
    pub queue: f64,
    pub cache: f64,
    #[serde(default)]
    pub cache_status: String,
    #[serde(default)]
    pub upstream_connect: Option<f64>,
    #[serde(default)]
    pub ttft: Option<f64>,
    #[serde(default)]
    pub llm: Option<f64>,
    pub total: f64,
    #[serde(default)]
    pub attempts: u32,
}
