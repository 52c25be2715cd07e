//! The per-request timing breakdown. The type is part of the wire contract
//! (`app::wire`), so the server, the pages, the CLI and the tests share one
//! definition; what each figure means is in `docs/metrics.md`.

pub use app::wire::{ms, Attempt, Breakdown, CacheStatus, UpstreamTimings};
