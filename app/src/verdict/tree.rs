//! The decision tree, for when there is no baseline to compare with: fixed
//! limits, the same way a person reads one request's breakdown.
//!
//! ```text
//! total > 3 s and LLM > 2 s      → the LLM is slow (not your code)
//! else any component over limit → the one furthest over it
//!   network > 100 ms, database > 50 ms, queue > 100 ms, calos code > 200 ms
//! else total > 3 s               → the largest share, no single culprit
//! else                           → performance is good
//! ```
//!
//! Limits apply even when the total is fine: a 300 ms database on a 1 s reply
//! is still worth naming.

use super::components::{Components, Culprit};
use serde::{Deserialize, Serialize};

pub const SLOW_TOTAL_MS: f64 = 3000.0;
pub const SLOW_LLM_MS: f64 = 2000.0;
pub const NETWORK_LIMIT_MS: f64 = 100.0;
pub const DATABASE_LIMIT_MS: f64 = 50.0;
pub const QUEUE_LIMIT_MS: f64 = 100.0;
pub const CODE_LIMIT_MS: f64 = 200.0;

/// A verdict, from the tree or from a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub culprit: Culprit,
    pub summary: String,
    pub next_step: String,
}

fn over_limits(c: &Components) -> Vec<(Culprit, f64, f64)> {
    let mut over: Vec<(Culprit, f64, f64)> = [
        (Culprit::Network, c.network, NETWORK_LIMIT_MS),
        (Culprit::Database, c.database, DATABASE_LIMIT_MS),
        (Culprit::Queue, c.queue, QUEUE_LIMIT_MS),
        (Culprit::Code, c.calos(), CODE_LIMIT_MS),
    ]
    .into_iter()
    .filter(|(_, ms, limit)| ms > limit)
    .collect();
    over.sort_by(|a, b| (b.1 / b.2).total_cmp(&(a.1 / a.2)));
    over
}

/// What to do about a culprit.
pub fn next_step(culprit: Culprit, model: &str) -> String {
    match culprit {
        Culprit::Llm => format!(
            "Use a faster or smaller model than {model}, check the provider has a GPU (Ollama on CPU is slow); `calos diag llm --model {model}` times it without calos."
        ),
        Culprit::Network => "The path between you and calos is slow (VPN, proxy, distance): `calos diag network URL/api/health` times DNS, connect, TLS and first byte.".into(),
        Culprit::Database => "Run `calos diag db` (query times and EXPLAIN of the user lookup); check the database host's latency and the pool (CALOS_DB_MAX_CONNECTIONS).".into(),
        Culprit::Queue => "Requests wait for a provider slot: raise CALOS_OLLAMA_CONCURRENCY / CALOS_PROVIDER_CONCURRENCY if the provider can take it, or add capacity.".into(),
        Culprit::Code => "calos itself is slow here: check the host's CPU load, run a release build, and look at LOG_LEVEL=debug request logs.".into(),
        Culprit::None => "Nothing to fix.".into(),
    }
}

/// Applies the decision tree to one request's components (or to the medians
/// of several).
pub fn decide(c: &Components, model: &str) -> Verdict {
    let share = |ms: f64| {
        if c.total > 0.0 {
            100.0 * ms / c.total
        } else {
            0.0
        }
    };
    let llm = c.llm();
    if c.total > SLOW_TOTAL_MS && llm > SLOW_LLM_MS {
        return Verdict {
            culprit: Culprit::Llm,
            summary: format!(
                "The LLM is slow (not your code): {llm:.0} ms of {:.0} ms ({:.1}%).",
                c.total,
                share(llm)
            ),
            next_step: next_step(Culprit::Llm, model),
        };
    }
    if let Some(&(culprit, ms, limit)) = over_limits(c).first() {
        return Verdict {
            culprit,
            summary: format!(
                "{} takes {ms:.1} ms ({:.1}% of {:.0} ms), over its {limit:.0} ms limit.",
                capitalised(culprit.label()),
                share(ms),
                c.total
            ),
            next_step: next_step(culprit, model),
        };
    }
    if c.total > SLOW_TOTAL_MS {
        let (culprit, ms) = [
            (Culprit::Llm, llm),
            (Culprit::Network, c.network),
            (Culprit::Database, c.database),
            (Culprit::Queue, c.queue),
            (Culprit::Code, c.calos()),
        ]
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((Culprit::Llm, llm));
        return Verdict {
            culprit,
            summary: format!(
                "Slow overall ({:.0} ms) with no single component over its limit; the largest share is {} ({:.1}%).",
                c.total,
                culprit.label(),
                share(ms)
            ),
            next_step: next_step(culprit, model),
        };
    }
    Verdict {
        culprit: Culprit::None,
        summary: format!(
            "Performance is good ✓ ({:.0} ms in total, every component within its limit).",
            c.total
        ),
        next_step: next_step(Culprit::None, model),
    }
}

pub(super) fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(total: f64, network: f64, database: f64, llm: f64, code: f64) -> Components {
        Components {
            total,
            network,
            database,
            first_token: llm,
            code,
            ..Default::default()
        }
    }

    #[test]
    fn the_original_guides_example_is_the_llm() {
        let v = decide(&components(2500.0, 50.0, 20.0, 2400.0, 10.0), "llama3.2");
        assert_eq!(v.culprit, Culprit::None, "under 3 s and within limits");
        let v = decide(&components(3500.0, 50.0, 20.0, 3400.0, 10.0), "llama3.2");
        assert_eq!(v.culprit, Culprit::Llm);
        assert!(v.next_step.contains("llama3.2"));
    }

    #[test]
    fn the_component_furthest_over_its_limit_is_named() {
        let v = decide(&components(800.0, 120.0, 400.0, 200.0, 10.0), "m");
        assert_eq!(v.culprit, Culprit::Database, "{v:?}");
        let v = decide(&components(800.0, 450.0, 60.0, 200.0, 10.0), "m");
        assert_eq!(v.culprit, Culprit::Network, "{v:?}");
        let v = decide(&components(800.0, 10.0, 10.0, 100.0, 650.0), "m");
        assert_eq!(v.culprit, Culprit::Code, "{v:?}");
    }

    #[test]
    fn slow_without_a_culprit_names_the_largest_share() {
        let v = decide(&components(3200.0, 90.0, 40.0, 1900.0, 150.0), "m");
        assert_eq!(v.culprit, Culprit::Llm);
        assert!(v.summary.contains("largest share"), "{}", v.summary);
    }
}
