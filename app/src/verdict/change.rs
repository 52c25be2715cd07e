//! The verdict about change: given a baseline set of requests and a current
//! one, did the total move beyond the noise, and which part moved with it?
//!
//! The rule, in order:
//! 1. The total changed only if the rank test says so (p < [`Thresholds::alpha`])
//!    *and* its shift is big enough to matter ([`Thresholds::min_change`]):
//!    on a shared machine two runs of the same code differ by a little, and
//!    that little is significant with enough samples. Otherwise the verdict
//!    is "nothing changed beyond the noise", and nothing is blamed.
//! 2. Each part that changed the same way, by the same test, is a candidate;
//!    the one with the largest shift is named, with the share of the total's
//!    change it explains.
//! 3. A total that moved with no part moving clearly is said to be spread
//!    across them.

use super::components::{Component, Components, Culprit};
use super::stats::{mann_whitney, quantile, shift};
use super::tree::{capitalised, next_step, Verdict};
use serde::{Deserialize, Serialize};

/// When a change counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// Significance level of each rank test.
    pub alpha: f64,
    /// Smallest shift of the total that counts, in ms…
    pub min_change_ms: f64,
    /// …or as a share of the baseline's median total, whichever is larger.
    pub min_change_ratio: f64,
}

impl Default for Thresholds {
    /// 10 %: runs taken minutes apart on a shared machine drift by a few
    /// percent without any cause worth naming (PostgreSQL's time on a 58 ms
    /// chat moved ±5 ms between trials of the attribution benchmark while
    /// nothing was changed), and the rank test, which assumes independent
    /// runs, cannot tell that drift from a change. A change a team acts on is
    /// larger; `--min-change-ms` and `--min-change-pct` lower the bar.
    fn default() -> Self {
        Self {
            alpha: 0.01,
            min_change_ms: 2.0,
            min_change_ratio: 0.10,
        }
    }
}

impl Thresholds {
    /// The smallest shift of the total that counts, for this baseline.
    pub fn min_change(&self, baseline_total_median: f64) -> f64 {
        self.min_change_ms
            .max(self.min_change_ratio * baseline_total_median.max(0.0))
    }
}

/// A set of requests' median and spread for one component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Spread {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Self> {
        Some(Self {
            median: quantile(values, 0.5)?,
            p25: quantile(values, 0.25)?,
            p75: quantile(values, 0.75)?,
            min: quantile(values, 0.0)?,
            max: quantile(values, 1.0)?,
        })
    }
}

/// Every component's values over a set of requests.
pub fn column(runs: &[Components], c: Component) -> Vec<f64> {
    runs.iter().map(|r| r.get(c)).collect()
}

/// The medians of every component: what the decision tree reads for a set.
pub fn medians(runs: &[Components]) -> Components {
    let mut out = Components::default();
    for c in Component::ALL {
        out.set(c, quantile(&column(runs, c), 0.5).unwrap_or(0.0));
    }
    out
}

/// One component, compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ComponentChange {
    pub component: Component,
    pub baseline: Spread,
    pub current: Spread,
    /// Hodges–Lehmann shift, current − baseline, in ms.
    pub shift: f64,
    /// Two-sided Mann–Whitney p-value.
    pub p: f64,
    /// Changed beyond the noise (the total: also by enough to matter).
    pub changed: bool,
}

/// The comparison of two sets of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub baseline_runs: usize,
    pub current_runs: usize,
    pub thresholds: Thresholds,
    /// Every part, then the total.
    pub components: Vec<ComponentChange>,
    /// The part whose change explains the total's (`null`: none).
    pub named: Option<Component>,
    /// The named part's shift as a share of the total's.
    pub explained: Option<f64>,
    pub verdict: Verdict,
}

/// Compares `current` against `baseline` (see the module's rule).
pub fn compare(
    baseline: &[Components],
    current: &[Components],
    thresholds: Thresholds,
    model: &str,
) -> Change {
    let components: Vec<ComponentChange> = Component::ALL
        .iter()
        .map(|&c| {
            let (before, after) = (column(baseline, c), column(current, c));
            let p = mann_whitney(&before, &after);
            ComponentChange {
                component: c,
                baseline: Spread::of(&before).unwrap_or_default(),
                current: Spread::of(&after).unwrap_or_default(),
                shift: shift(&before, &after).unwrap_or(0.0),
                p,
                changed: p < thresholds.alpha,
            }
        })
        .collect();
    let mut change = Change {
        baseline_runs: baseline.len(),
        current_runs: current.len(),
        thresholds,
        named: None,
        explained: None,
        verdict: Verdict {
            culprit: Culprit::None,
            summary: String::new(),
            next_step: next_step(Culprit::None, model),
        },
        components,
    };
    let Some(total) = change
        .components
        .iter()
        .position(|c| c.component == Component::Total)
    else {
        return change;
    };
    let floor = thresholds.min_change(change.components[total].baseline.median);
    let t = &mut change.components[total];
    t.changed &= t.shift.abs() >= floor;
    let (total_shift, total_changed, before, after, p) =
        (t.shift, t.changed, t.baseline.median, t.current.median, t.p);
    if baseline.is_empty() || current.is_empty() {
        change.verdict.summary = "Nothing to compare: one of the two sets has no requests.".into();
        return change;
    }
    if !total_changed {
        change.verdict.summary = format!(
            "No change beyond the noise: total {before:.1} → {after:.1} ms (shift {total_shift:+.1} ms, {}; a change counts from {floor:.1} ms at p < {}).",
            p_value(p),
            thresholds.alpha
        );
        for c in &mut change.components {
            c.changed = false;
        }
        return change;
    }
    // Parts that moved the way the total did, by the same test.
    let named = change
        .components
        .iter()
        .filter(|c| c.component != Component::Total && c.changed)
        .filter(|c| c.shift.signum() == total_shift.signum() && c.shift != 0.0)
        .max_by(|a, b| a.shift.abs().total_cmp(&b.shift.abs()))
        .map(|c| (c.component, c.shift));
    let direction = if total_shift > 0.0 {
        "slower"
    } else {
        "faster"
    };
    match named {
        Some((component, part_shift)) => {
            let explained = part_shift / total_shift;
            change.named = Some(component);
            change.explained = Some(explained);
            let culprit = component.culprit();
            change.verdict = Verdict {
                culprit: if total_shift > 0.0 {
                    culprit
                } else {
                    Culprit::None
                },
                summary: format!(
                    "{} by {:.1} ms ({before:.1} → {after:.1} ms, {}): {} {} by {:.1} ms, {:.0}% of it.",
                    capitalised(direction),
                    total_shift.abs(),
                    p_value(p),
                    component.label(),
                    if part_shift > 0.0 { "grew" } else { "shrank" },
                    part_shift.abs(),
                    100.0 * explained.clamp(0.0, 9.99)
                ),
                next_step: if total_shift > 0.0 {
                    next_step(culprit, model)
                } else {
                    "Nothing to fix: it got faster.".into()
                },
            };
        }
        None => {
            change.verdict.summary = format!(
                "{} by {:.1} ms ({before:.1} → {after:.1} ms, {}), spread across the parts: none of them moved clearly on its own.",
                capitalised(direction),
                total_shift.abs(),
                p_value(p)
            );
            change.verdict.next_step =
                "Run more requests (`--runs`) so the parts' changes stand out from the noise."
                    .into();
        }
    }
    change
}

/// A p-value as a reader wants it: three decimals, and no "p = 0.000".
fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise: a small linear congruential generator, so the
    /// tests are the same on every run.
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `n` requests of a mock-like setup, each part jittered by ±`jitter`
    /// (a share), with `extra` ms added to the given parts.
    fn requests(
        noise: &mut Noise,
        n: usize,
        jitter: f64,
        extra: &[(Component, f64)],
    ) -> Vec<Components> {
        (0..n)
            .map(|_| {
                let mut c = Components {
                    network: 0.6,
                    auth: 0.1,
                    database: 2.0,
                    queue: 0.0,
                    cache: 0.05,
                    connect: 1.0,
                    first_token: 5.0,
                    generation: 20.0,
                    code: 0.8,
                    total: 0.0,
                };
                for part in Component::PARTS {
                    let v = c.get(part) * (1.0 + jitter * (2.0 * noise.next() - 1.0));
                    c.set(part, v);
                }
                for &(part, ms) in extra {
                    c.set(part, c.get(part) + ms);
                }
                c.total = Component::PARTS.iter().map(|p| c.get(*p)).sum();
                c
            })
            .collect()
    }

    #[test]
    fn a_clear_shift_is_detected_and_named() {
        let mut noise = Noise(1);
        let base = requests(&mut noise, 20, 0.3, &[]);
        for part in [
            Component::Network,
            Component::Database,
            Component::FirstToken,
            Component::Code,
        ] {
            let now = requests(&mut noise, 5, 0.3, &[(part, 50.0)]);
            let change = compare(&base, &now, Thresholds::default(), "m");
            assert_eq!(change.named, Some(part), "{:#?}", change.verdict);
            assert_eq!(change.verdict.culprit, part.culprit());
            let explained = change.explained.unwrap_or_default();
            assert!((0.8..1.2).contains(&explained), "{explained}");
        }
    }

    #[test]
    fn pure_noise_is_not_blamed() {
        let mut noise = Noise(7);
        let mut blamed = 0;
        for _ in 0..200 {
            let base = requests(&mut noise, 20, 0.3, &[]);
            let now = requests(&mut noise, 5, 0.3, &[]);
            let change = compare(&base, &now, Thresholds::default(), "m");
            if change.named.is_some() || change.verdict.culprit != Culprit::None {
                blamed += 1;
            }
        }
        assert!(
            blamed <= 2,
            "{blamed} of 200 noise-only comparisons blamed something"
        );
    }

    #[test]
    fn a_small_significant_drift_is_still_noise() {
        // A 2 % slower total is significant with these many samples, but it
        // is below the smallest change that counts.
        let mut noise = Noise(3);
        let base = requests(&mut noise, 200, 0.02, &[]);
        let now = requests(&mut noise, 200, 0.02, &[(Component::Generation, 0.6)]);
        let change = compare(&base, &now, Thresholds::default(), "m");
        assert_eq!(change.named, None, "{}", change.verdict.summary);
        assert!(change.verdict.summary.starts_with("No change"));
    }

    #[test]
    fn of_two_shifted_parts_the_larger_is_named() {
        let mut noise = Noise(11);
        let base = requests(&mut noise, 20, 0.2, &[]);
        let now = requests(
            &mut noise,
            8,
            0.2,
            &[(Component::Database, 20.0), (Component::Network, 60.0)],
        );
        let change = compare(&base, &now, Thresholds::default(), "m");
        assert_eq!(change.named, Some(Component::Network));
        assert_eq!(change.verdict.culprit, Culprit::Network);
    }

    #[test]
    fn faster_is_reported_without_blame() {
        let mut noise = Noise(5);
        let base = requests(&mut noise, 20, 0.2, &[(Component::FirstToken, 50.0)]);
        let now = requests(&mut noise, 5, 0.2, &[]);
        let change = compare(&base, &now, Thresholds::default(), "m");
        assert_eq!(change.named, Some(Component::FirstToken));
        assert_eq!(change.verdict.culprit, Culprit::None);
        assert!(
            change.verdict.summary.starts_with("Faster"),
            "{}",
            change.verdict.summary
        );
    }

    #[test]
    fn empty_sets_compare_to_nothing() {
        let change = compare(&[], &[], Thresholds::default(), "m");
        assert_eq!(change.named, None);
        assert_eq!(change.verdict.culprit, Culprit::None);
    }
}
