//! The server's own account of one request, read back by the toolbox: from the
//! `timings` object calos puts in a body or a stream's final event, or else from
//! the `Server-Timing` header any calos response carries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Server-side phases of one chat request, in milliseconds. Deserialises
/// straight from calos's `timings` object (other fields are skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerFigures {
    pub auth: f64,
    pub database: f64,
    pub queue: f64,
    pub cache: f64,
    pub upstream_connect: Option<f64>,
    pub ttft: Option<f64>,
    pub llm: Option<f64>,
    pub total: Option<f64>,
}

impl ServerFigures {
    /// From calos's `timings` object (`auth`, `database`, …, camelCase); `None`
    /// unless it has a `total`.
    pub fn from_timings(v: &Value) -> Option<Self> {
        Self::deserialize(v).ok().filter(Self::is_complete)
    }

    /// A breakdown is only worth aggregating with its total.
    pub fn is_complete(&self) -> bool {
        self.total.is_some()
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
    use serde_json::json;

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
    fn timings_object_is_read_in_camel_case() {
        let v = json!({"auth":1.0,"database":2.0,"queue":0.0,"cache":0.1,"upstreamConnect":3.0,"ttft":50.0,"llm":400.0,"total":404.0});
        let f = ServerFigures::from_timings(&v);
        assert_eq!(f.and_then(|f| f.upstream_connect), Some(3.0));
        assert!(ServerFigures::from_timings(&json!({"auth": 1})).is_none());
    }
}
