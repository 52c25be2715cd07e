//! What calos says about itself: log lines and the dashboard's log feed, the
//! per-request timing breakdown, in-process HDR metrics and the Prometheus
//! exporter, the recent requests Mission Control's verdict reads, and
//! OpenTelemetry trace export.

pub mod exporter;
pub mod feed;
pub mod logs;
pub mod metrics;
pub mod otel;
pub mod recent;
pub mod redact;
pub mod reservoir;
pub mod telemetry;
pub mod timing;
