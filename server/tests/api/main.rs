//! API tests: the real server over real HTTP, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod attribution;
mod chat;
mod chat_bounds;
mod cluster;
mod connections;
mod contract;
mod conversations;
mod error_bodies;
mod helpers;
mod identity;
mod keys;
mod metrics_bounds;
mod monitor;
mod oauth;
mod pages;
mod process;
mod public_routes;
mod registration;
mod requests;
mod routing;
mod sessions;
mod toolbox;
mod tracing_export;
mod usage;
