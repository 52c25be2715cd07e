//! calos server library: everything behind the `calos` binary, so integration
//! tests build and start exactly what users run.

pub mod auth;
pub mod chat;
pub mod chat_request;
pub mod config;
pub mod db;
pub mod error;
pub mod exporter;
pub mod identity_cli;
pub mod json;
pub mod llm;
pub mod log_feed;
pub mod logs;
pub mod metrics;
pub mod mock_llm;
pub mod mock_oauth;
pub mod monitor;
pub mod net;
pub mod processes;
pub mod providers;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod timing;
pub mod toolbox;
pub mod users_cli;
