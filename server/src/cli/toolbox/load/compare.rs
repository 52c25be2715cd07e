//! `calos load --baseline`: this run's per-component percentiles against a
//! saved run's, from the server's breakdowns, and the same rank-test verdict
//! `calos perf --baseline` gives. Under load the tail matters as much as the
//! median, so the table shows p50, p90 and p99 of each component; the
//! verdict's test compares whole distributions (every kept request).

use crate::cli::toolbox::baseline::{render_change, BaselineArgs, BaselineInfo, SavedRuns};
use app::verdict::change::column;
use app::verdict::stats::quantile;
use app::verdict::{Change, Component, Components};
use serde::Serialize;
use std::path::Path;

/// Three points of one component's distribution, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    fn of(values: &[f64]) -> Self {
        let q = |p| quantile(values, p).unwrap_or(0.0);
        Self {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPercentiles {
    pub component: Component,
    pub baseline: Percentiles,
    pub current: Percentiles,
}

/// The comparison a load report carries when `--baseline` was given.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadComparison {
    pub baseline: BaselineInfo,
    pub percentiles: Vec<ComponentPercentiles>,
    pub change: Change,
}

/// Holds `runs` (this run's kept requests) against `saved`.
pub fn compare(
    saved: &SavedRuns,
    path: Option<&Path>,
    runs: &[Components],
    args: &BaselineArgs,
    model: &str,
) -> Option<LoadComparison> {
    let change = args.compare(Some(saved), runs, model)?;
    let percentiles = Component::ALL
        .iter()
        .map(|&component| ComponentPercentiles {
            component,
            baseline: Percentiles::of(&column(&saved.runs, component)),
            current: Percentiles::of(&column(runs, component)),
        })
        .collect();
    Some(LoadComparison {
        baseline: BaselineInfo::of(saved, path),
        percentiles,
        change,
    })
}

/// The percentile table, the rank-test table and the verdict.
pub fn render(c: &LoadComparison) -> String {
    let b = &c.baseline;
    let mut out = format!(
        "\nAgainst {} ({} requests of a {} run of {}, saved {}):\n",
        b.path, b.runs, b.tool, b.url, b.saved_at
    );
    out.push_str(&format!(
        "{:<22}{:>24}{:>24}{:>24}\n",
        "component (ms)", "p50 before → now", "p90 before → now", "p99 before → now"
    ));
    for row in &c.percentiles {
        let pair = |before: f64, now: f64| format!("{before:.2} → {now:.2}");
        out.push_str(&format!(
            "{:<22}{:>24}{:>24}{:>24}\n",
            row.component.label(),
            pair(row.baseline.p50, row.current.p50),
            pair(row.baseline.p90, row.current.p90),
            pair(row.baseline.p99, row.current.p99),
        ));
    }
    out.push('\n');
    out.push_str(&render_change(&c.change));
    out.push_str(&format!(
        "\nVerdict: {}\nNext:    {}\n",
        c.change.verdict.summary, c.change.verdict.next_step
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(database: f64, n: usize) -> Vec<Components> {
        (0..n)
            .map(|i| {
                let jitter = (i % 7) as f64 * 0.3;
                let mut c = Components {
                    auth: 0.2,
                    database: database + jitter,
                    first_token: 20.0 + jitter,
                    code: 0.5,
                    ..Default::default()
                };
                c.total = c.auth + c.database + c.first_token + c.code;
                c
            })
            .collect()
    }

    #[test]
    fn a_slower_database_under_load_is_named_with_its_percentiles() {
        let saved = SavedRuns::new("load", "http://127.0.0.1:5001", "m", false, &runs(5.0, 300));
        let now = runs(55.0, 300);
        let c = compare(&saved, None, &now, &BaselineArgs::default(), "m").expect("compared");
        assert_eq!(c.change.named, Some(Component::Database));
        let db = c
            .percentiles
            .iter()
            .find(|p| p.component == Component::Database)
            .expect("a database row");
        assert!(
            (db.current.p50 - db.baseline.p50 - 50.0).abs() < 1.0,
            "{db:?}"
        );
        assert!(db.current.p99 >= db.current.p90 && db.current.p90 >= db.current.p50);
        let text = render(&c);
        assert!(text.contains("p99 before → now"), "{text}");
        assert!(text.contains("◀ named"), "{text}");
    }

    #[test]
    fn the_same_load_again_names_nothing() {
        let saved = SavedRuns::new("load", "http://127.0.0.1:5001", "m", false, &runs(5.0, 300));
        let c = compare(&saved, None, &runs(5.0, 300), &BaselineArgs::default(), "m")
            .expect("compared");
        assert_eq!(c.change.named, None);
        assert!(
            c.change.verdict.summary.starts_with("No change"),
            "{}",
            c.change.verdict.summary
        );
    }
}
