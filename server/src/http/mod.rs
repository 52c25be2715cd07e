//! The HTTP surface: the routers of both listeners, the extractors handlers use,
//! the one API error type (and how domain errors map to statuses), middleware,
//! and the accept loop that serves them with bounded connections.

pub mod client_ip;
pub mod error;
pub mod extract;
pub mod json;
pub mod middleware;
pub mod operator;
pub mod query;
pub mod routes;
pub mod serve;
pub mod sse;
pub mod state;
