//! calos server library: everything behind the `calos` binary, so integration
//! tests build and start exactly what users run.
//!
//! The layers, top to bottom (a module only uses the ones below it):
//! - `cli`: the command line (`calos serve|users|identity|perf|load|diag|mock-*`);
//! - `startup`: builds the state and serves both listeners;
//! - `http`: routes, extractors, the API error type, middleware;
//! - `ops`: Mission Control's feed, health checks, processes, profiles;
//! - `chat`: the chat service (validation, cache, queue) over `llm`'s providers;
//! - `auth`: accounts, tokens, OAuth, Ed25519 sign-in;
//! - `emulators`: `calos mock-llm` and `calos mock-oauth`;
//! - `config`: the server's own settings; `db`: storage; `observability`: logs,
//!   metrics, timing; `charts`: plotting; `shutdown`: signals.

pub mod auth;
pub mod charts;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conversations;
pub mod db;
pub mod emulators;
pub mod http;
pub mod llm;
pub mod observability;
pub mod ops;
pub mod shutdown;
pub mod startup;
pub mod usage;
