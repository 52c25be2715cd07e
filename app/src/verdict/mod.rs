//! Where the time went, and what changed: the one verdict `calos perf`,
//! `calos load`, `calos diag all`, Mission Control and the chat page all use.
//! Pure functions over timings, compiled into the server and the WASM bundle
//! alike, so no two places can judge the same samples differently.
//!
//! - [`components`]: one request's time, split into parts that add up.
//! - [`tree`]: fixed limits, for a single set of requests.
//! - [`change`]: a baseline against now, by rank test.
//! - [`stats`]: the statistics under [`change`].

pub mod change;
pub mod components;
pub mod stats;
pub mod tree;

pub use change::{compare, medians, Change, ComponentChange, Spread, Thresholds};
pub use components::{Component, Components, Culprit};
pub use tree::{decide, Verdict};
