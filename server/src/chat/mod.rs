//! Chat: the service every chat endpoint calls (validate, cache, queue, call the
//! provider, time each phase), and how it is built from configuration.

pub mod cache;
mod coalesce;
pub mod debug_delay;
mod delivery;
pub mod inflight;
mod service;
pub mod setup;
pub mod shared_cache;
pub mod validation;

pub use service::*;
