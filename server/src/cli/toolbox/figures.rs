//! The server's own account of one request, read back by the toolbox: from the
//! `timings` object calos puts in a body or a stream's final event (the wire
//! [`Breakdown`]), or else from the `Server-Timing` header any calos response
//! carries.

use app::wire::Breakdown;
use serde::Serialize;

/// Server-side phases of one chat request, in milliseconds: the toolbox's
/// aggregate of a [`Breakdown`] or a `Server-Timing` header. Serialised as
/// `server` in `calos perf --json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerFigures {
    pub auth: f64,
    pub database: f64,
    pub queue: f64,
    pub cache: f64,
    pub upstream_connect: Option<f64>,
    pub ttft: Option<f64>,
    pub llm: Option<f64>,
    /// Optional because a stream's header is sent before the total is known.
    pub total: Option<f64>,
}

impl ServerFigures {
    /// From calos's `timings` object, read as the wire [`Breakdown`] (which
    /// always has its total).
    pub fn from_timings(timings: &Breakdown) -> Self {
        Self {
            auth: timings.auth,
            database: timings.database,
            queue: timings.queue,
            cache: timings.cache,
            upstream_connect: timings.upstream_connect,
            ttft: timings.ttft,
            llm: timings.llm,
            total: Some(timings.total),
        }
    }

    /// From a W3C `Server-Timing` value (`auth;dur=0.2, db;dur=1.1, …`). A
    /// stream's header holds only the phases before its first byte.
    pub fn from_server_timing(header: &str) -> Option<Self> {
        let mut figures = Self::default();
        let mut any = false;
        for metric in header.split(',') {
            let mut parts = metric.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let Some(dur) = parts
                .filter_map(|p| p.strip_prefix("dur="))
                .find_map(|d| d.trim_matches('"').parse::<f64>().ok())
            else {
                continue;
            };
            any = true;
            match name {
                "auth" => figures.auth = dur,
                "db" => figures.database = dur,
                "queue" => figures.queue = dur,
                "cache" => figures.cache = dur,
                "upstream" => figures.upstream_connect = Some(dur),
                "llm_ttft" => figures.ttft = Some(dur),
                "llm" => figures.llm = Some(dur),
                "total" => figures.total = Some(dur),
                _ => {}
            }
        }
        any.then_some(figures)
    }

    /// As the wire breakdown, for the verdict's split. A stream's header
    /// carries no total: the client's stands in (so its network is 0).
    pub fn as_breakdown(&self, client_total: f64) -> Breakdown {
        Breakdown {
            auth: self.auth,
            database: self.database,
            queue: self.queue,
            cache: self.cache,
            upstream_connect: self.upstream_connect,
            ttft: self.ttft,
            llm: self.llm,
            total: self.total.unwrap_or(client_total),
            ..Default::default()
        }
    }

    /// The server's time not in any named phase: routing, validation, the cache
    /// write, serialisation: "your code" in the original guide's decision tree.
    pub fn own_code(&self) -> Option<f64> {
        let named = self.auth + self.database + self.queue + self.cache + self.llm.unwrap_or(0.0);
        self.total.map(|t| (t - named).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_header_maps_to_named_phases() {
        let f = ServerFigures::from_server_timing(
            r#"auth;dur=0.250, db;dur=1.500, queue;dur=0.001, cache;dur=0.010;desc="miss", upstream;dur=2.0, llm_ttft;dur=100.5, llm;dur=900, total;dur=905.5"#,
        );
        let Some(f) = f else { panic!("no figures") };
        assert_eq!((f.auth, f.database, f.cache), (0.25, 1.5, 0.01));
        assert_eq!(
            (f.ttft, f.llm, f.total),
            (Some(100.5), Some(900.0), Some(905.5))
        );
        let code = f.own_code().unwrap_or_default();
        assert!((code - 3.739).abs() < 1e-9, "{code}");
        assert!(ServerFigures::from_server_timing("garbage").is_none());
    }

    #[test]
    fn timings_object_is_read_as_the_wire_breakdown() {
        let text = r#"{"auth":1.0,"database":2.0,"queue":0.0,"cache":0.1,"cacheStatus":"miss","upstreamConnect":3.0,"ttft":50.0,"llm":400.0,"total":404.0,"attempts":1}"#;
        let Ok(timings) = serde_json::from_str::<Breakdown>(text) else {
            panic!("not a breakdown")
        };
        let f = ServerFigures::from_timings(&timings);
        assert_eq!((f.upstream_connect, f.total), (Some(3.0), Some(404.0)));
    }
}
