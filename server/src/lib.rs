//! calos server library: everything behind the `calos` binary, so integration
//! tests build and start exactly what users run.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod json;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod users_cli;
