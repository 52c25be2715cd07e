//! Mission Control's "what changed": the server's own recent chat requests
//! ([`Recent`]) judged by the same verdict `calos perf` and `calos diag all`
//! give (`app::verdict`). The last [`CURRENT_MINUTES`] are the current set;
//! the [`BASELINE_MINUTES`] before them, the baseline. The decision tree
//! reads the current set's medians; the rank test holds it against the
//! baseline and names the component that explains a change in total.
//!
//! Minutes, not a rolling count of requests, so "the last 15 minutes" means
//! the same thing at three requests a minute and at three thousand.

use crate::observability::recent::{minute_of, Recent, Sample, KEEP_MINUTES};
use app::verdict::{compare, decide, medians, Components, Thresholds};
use app::wire::WindowVerdict;
use std::collections::BTreeMap;

/// The current window, in minutes (the minute under way included).
pub const CURRENT_MINUTES: i64 = 15;
/// The baseline window just before it.
pub const BASELINE_MINUTES: i64 = 60;

// The store keeps exactly what the two windows read.
const _: () = assert!(CURRENT_MINUTES + BASELINE_MINUTES == KEEP_MINUTES);

/// The verdict at `now` (Unix seconds) over what `recent` holds.
pub fn dashboard_verdict(recent: &Recent, now: i64) -> WindowVerdict {
    let end = minute_of(now) + 1;
    let split = end - CURRENT_MINUTES;
    let current = recent.between(split, end);
    let baseline = recent.between(split - BASELINE_MINUTES, split);
    window_verdict(&baseline, &current)
}

/// The verdict over two sets of samples: the part that does not depend on
/// the store or the clock, which the agreement test below holds against
/// `calos perf` and `calos diag all`.
pub fn window_verdict(baseline: &[Sample], current: &[Sample]) -> WindowVerdict {
    let model = most_frequent_model(current);
    let components =
        |samples: &[Sample]| -> Vec<Components> { samples.iter().map(|s| s.components).collect() };
    let (before, now) = (components(baseline), components(current));
    let middle = medians(&now);
    WindowVerdict {
        current_minutes: CURRENT_MINUTES as u32,
        baseline_minutes: BASELINE_MINUTES as u32,
        current_samples: now.len(),
        baseline_samples: before.len(),
        verdict: decide(&middle, &model),
        current: middle,
        change: (!before.is_empty() && !now.is_empty())
            .then(|| compare(&before, &now, Thresholds::default(), &model)),
        model,
    }
}

/// The model most requests asked for; ties go to the first name in order,
/// so the same samples always name the same model.
fn most_frequent_model(samples: &[Sample]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples {
        *counts.entry(&s.model).or_default() += 1;
    }
    counts
        .into_iter()
        .fold(None, |best: Option<(&str, usize)>, (model, n)| match best {
            Some((_, most)) if most >= n => best,
            _ => Some((model, n)),
        })
        .map(|(model, _)| model.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::verdict::Component;

    /// Deterministic noise (a small LCG), so the tests are the same every run.
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

    /// A chat as the server sees it (no network), each part jittered by
    /// ±20 %, with `extra_db` ms more database time.
    fn chat(noise: &mut Noise, extra_db: f64) -> Components {
        let mut c = Components {
            auth: 0.2,
            database: 3.0,
            queue: 0.0,
            cache: 0.1,
            connect: 1.0,
            first_token: 20.0,
            generation: 60.0,
            code: 1.5,
            ..Default::default()
        };
        for part in Component::PARTS {
            c.set(part, c.get(part) * (0.8 + 0.4 * noise.next()));
        }
        c.database += extra_db;
        c.total = Component::PARTS.iter().map(|p| c.get(*p)).sum();
        c
    }

    fn sample(components: Components, model: &str) -> Sample {
        Sample {
            components,
            model: model.into(),
        }
    }

    /// A store with `per_minute` chats in every minute of the last 75, the
    /// last 15 of them with `extra_db` ms more database time.
    fn store(now: i64, per_minute: usize, extra_db: f64) -> Recent {
        let recent = Recent::default();
        let mut noise = Noise(42);
        for ago in (0..KEEP_MINUTES).rev() {
            let extra = if ago < CURRENT_MINUTES { extra_db } else { 0.0 };
            for _ in 0..per_minute {
                recent.record(sample(chat(&mut noise, extra), "sim"), now - 60 * ago);
            }
        }
        recent
    }

    const NOW: i64 = 1_800_000_030;

    #[test]
    fn a_clear_database_shift_in_the_last_15_minutes_is_named() {
        let verdict = dashboard_verdict(&store(NOW, 4, 50.0), NOW);
        assert_eq!(
            (verdict.current_samples, verdict.baseline_samples),
            (60, 240)
        );
        assert_eq!(verdict.model, "sim");
        let Some(change) = verdict.change else {
            panic!("no comparison with both windows full")
        };
        assert_eq!(
            change.named,
            Some(Component::Database),
            "{}",
            change.verdict.summary
        );
        assert!(change.verdict.summary.starts_with("Slower"));
        // 53 ms of database is over its 50 ms limit: the tree says so too.
        assert_eq!(verdict.verdict.culprit, app::verdict::Culprit::Database);
    }

    #[test]
    fn equal_windows_name_nothing() {
        let verdict = dashboard_verdict(&store(NOW, 4, 0.0), NOW);
        let Some(change) = verdict.change else {
            panic!("no comparison with both windows full")
        };
        assert_eq!(change.named, None, "{}", change.verdict.summary);
        assert!(change.verdict.summary.starts_with("No change"));
        assert_eq!(verdict.verdict.culprit, app::verdict::Culprit::None);
    }

    #[test]
    fn the_windows_split_at_the_minute_15_minutes_back() {
        let recent = Recent::default();
        let mut noise = Noise(1);
        let minute = minute_of(NOW) * 60;
        // The oldest current minute, the newest baseline minute, and one
        // just out of reach.
        recent.record(sample(chat(&mut noise, 0.0), "a"), minute - 60 * 14);
        recent.record(sample(chat(&mut noise, 0.0), "b"), minute - 60 * 14 - 1);
        recent.record(sample(chat(&mut noise, 0.0), "b"), minute - 60 * 74);
        let verdict = dashboard_verdict(&recent, NOW);
        assert_eq!((verdict.current_samples, verdict.baseline_samples), (1, 2));
        assert_eq!(verdict.model, "a");
        // A minute later the oldest baseline minute is out of both windows.
        let later = dashboard_verdict(&recent, NOW + 60);
        assert_eq!((later.current_samples, later.baseline_samples), (0, 2));
        assert_eq!(later.model, "");
        assert!(later.change.is_none());
    }

    #[test]
    fn with_no_baseline_there_is_a_tree_verdict_and_no_comparison() {
        let recent = Recent::default();
        let mut noise = Noise(3);
        for _ in 0..5 {
            recent.record(sample(chat(&mut noise, 0.0), "sim"), NOW);
        }
        let verdict = dashboard_verdict(&recent, NOW);
        assert_eq!((verdict.current_samples, verdict.baseline_samples), (5, 0));
        assert!(verdict.change.is_none());
        assert!(
            verdict.verdict.summary.starts_with("Performance is good"),
            "{}",
            verdict.verdict.summary
        );
    }

    /// One implementation per behaviour: for the same requests, `calos perf
    /// --runs` (its series path), `calos diag all` (its closing verdict) and
    /// Mission Control say the same thing, without a baseline and with one.
    #[test]
    fn perf_diag_all_and_the_dashboard_agree_on_the_same_requests() {
        use crate::cli::toolbox::baseline::{BaselineArgs, SavedRuns};
        use crate::cli::toolbox::diag::all::final_verdict;
        use crate::cli::toolbox::perf::series_verdict;
        let mut noise = Noise(9);
        let slow_model = |noise: &mut Noise| {
            let mut c = chat(noise, 0.0);
            c.first_token += 4_000.0;
            c.total += 4_000.0;
            c
        };
        let sets: Vec<Vec<Components>> = vec![
            (0..5).map(|_| chat(&mut noise, 0.0)).collect(),
            (0..5).map(|_| chat(&mut noise, 80.0)).collect(),
            (0..7).map(|_| slow_model(&mut noise)).collect(),
            vec![chat(&mut noise, 0.0)],
            vec![slow_model(&mut noise)],
        ];
        let mut culprits = std::collections::BTreeSet::new();
        for runs in sets {
            let recent = Recent::default();
            for c in &runs {
                recent.record(sample(*c, "sim"), NOW);
            }
            let dashboard = dashboard_verdict(&recent, NOW);
            assert_eq!(dashboard.current_samples, runs.len());
            let perf = series_verdict(&runs, None, "sim");
            let diag = final_verdict(&runs, "sim");
            assert_eq!(dashboard.verdict, perf);
            assert_eq!(Some(&dashboard.verdict), diag.as_ref());
            culprits.insert(format!("{:?}", perf.culprit));
        }
        // The sets were chosen to reach different verdicts.
        assert_eq!(culprits.len(), 3, "{culprits:?}");

        // With a baseline, the dashboard's comparison is `perf --baseline`'s.
        let recent = store(NOW, 3, 50.0);
        let split = minute_of(NOW) + 1 - CURRENT_MINUTES;
        let runs = |from, to| -> Vec<Components> {
            recent
                .between(from, to)
                .iter()
                .map(|s| s.components)
                .collect()
        };
        let (before, now) = (runs(split - BASELINE_MINUTES, split), runs(split, i64::MAX));
        let saved = SavedRuns::new("perf", "http://127.0.0.1:3000", "sim", false, &before);
        let change = BaselineArgs::default().compare(Some(&saved), &now, "sim");
        let perf = series_verdict(&now, change.as_ref(), "sim");
        let dashboard = dashboard_verdict(&recent, NOW);
        assert_eq!(dashboard.change.as_ref(), change.as_ref());
        assert_eq!(dashboard.change.map(|c| c.verdict), Some(perf));
    }

    #[test]
    fn the_most_frequent_model_is_named_and_ties_are_stable() {
        let c = Components::default();
        let samples = [
            sample(c, "b"),
            sample(c, "a"),
            sample(c, "b"),
            sample(c, "a"),
        ];
        assert_eq!(most_frequent_model(&samples), "a");
        assert_eq!(most_frequent_model(&samples[..3]), "b");
        assert_eq!(most_frequent_model(&[]), "");
    }
}
