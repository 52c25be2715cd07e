//! Small-sample statistics for comparing two sets of timings: the
//! Mann–Whitney rank test (is one set shifted against the other?) and the
//! Hodges–Lehmann estimate of by how much.
//!
//! Why a rank test: request timings are skewed and have outliers (a GC pause,
//! a noisy neighbour), so a t-test's normal assumption fails, and with five
//! runs a bootstrap interval is too coarse to trust. The rank test assumes
//! nothing about the shape, is exact for small samples, and one slow outlier
//! moves it no more than any other slower run. No randomness either: the same
//! samples always give the same verdict.

/// The `q` quantile (0–1) of `values`, linearly interpolated; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(quantile_sorted(&sorted, q))
}

fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// Above this many pairs the shift is the difference of the medians (the
/// Hodges–Lehmann estimate needs every pair; a load run has thousands).
const MAX_PAIRS: usize = 250_000;

/// How much `after` is shifted against `before`: the median of every pairwise
/// difference (Hodges–Lehmann), robust to outliers on either side.
pub fn shift(before: &[f64], after: &[f64]) -> Option<f64> {
    if before.is_empty() || after.is_empty() {
        return None;
    }
    if before.len() * after.len() > MAX_PAIRS {
        return Some(median(after)? - median(before)?);
    }
    let differences: Vec<f64> = after
        .iter()
        .flat_map(|a| before.iter().map(move |b| a - b))
        .collect();
    median(&differences)
}

/// Largest samples for which the exact distribution is computed (m·n pairs).
const MAX_EXACT_PAIRS: usize = 1_600;

/// The two-sided p-value of the Mann–Whitney U test that `before` and `after`
/// come from the same distribution. Exact for small samples without ties;
/// otherwise the normal approximation with tie and continuity corrections.
/// 1 when either side is empty or every value is the same.
pub fn mann_whitney(before: &[f64], after: &[f64]) -> f64 {
    let (m, n) = (before.len(), after.len());
    if m == 0 || n == 0 {
        return 1.0;
    }
    let (u, tie_sizes) = u_statistic(before, after);
    let pairs = (m * n) as f64;
    if tie_sizes.is_empty() && m * n <= MAX_EXACT_PAIRS {
        return exact_p(m, n, u);
    }
    let total = (m + n) as f64;
    let ties: f64 = tie_sizes.iter().map(|&t| (t * t * t - t) as f64).sum();
    let variance = pairs / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let distance = ((u - pairs / 2.0).abs() - 0.5).max(0.0);
    (2.0 * normal_tail(distance / variance.sqrt())).min(1.0)
}

/// U of `after` (the number of pairs where it is larger, ties counting a
/// half) and the sizes of the groups of tied values.
fn u_statistic(before: &[f64], after: &[f64]) -> (f64, Vec<usize>) {
    let mut all: Vec<(f64, bool)> = before
        .iter()
        .map(|&v| (v, false))
        .chain(after.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_after = 0.0;
    let mut ties = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let rank = (i + j + 2) as f64 / 2.0;
        rank_sum_after += rank * all[i..=j].iter().filter(|(_, after)| *after).count() as f64;
        if j > i {
            ties.push(j - i + 1);
        }
        i = j + 1;
    }
    let n = after.len() as f64;
    (rank_sum_after - n * (n + 1.0) / 2.0, ties)
}

/// Exact two-sided p-value of U for samples of sizes m and n: the share of
/// the C(m+n, n) equally likely orderings at least as far from m·n/2.
fn exact_p(m: usize, n: usize, u: f64) -> f64 {
    let max_u = m * n;
    // ways[k][u]: orderings of k values of one side against `m` of the
    // other with statistic u, built up one value at a time.
    let mut ways = vec![vec![0.0f64; max_u + 1]; n + 1];
    // previous[j][u] for m' = i - 1; start with m' = 0: one ordering, U = 0.
    for row in ways.iter_mut() {
        row[0] = 1.0;
    }
    for i in 1..=m {
        let mut next = vec![vec![0.0f64; max_u + 1]; n + 1];
        next[0][0] = 1.0;
        for j in 1..=n {
            for k in 0..=i * j {
                // The largest value is either from `after` (U gains i) or not.
                let from_after = if k >= i { next[j - 1][k - i] } else { 0.0 };
                next[j][k] = from_after + ways[j][k];
            }
        }
        ways = next;
    }
    let counts = &ways[n];
    let all: f64 = counts.iter().sum();
    let centre = max_u as f64 / 2.0;
    let distance = (u - centre).abs();
    let extreme: f64 = counts
        .iter()
        .enumerate()
        .filter(|(k, _)| (*k as f64 - centre).abs() >= distance - 1e-9)
        .map(|(_, c)| c)
        .sum();
    (extreme / all).min(1.0)
}

/// P(Z > z) for a standard normal Z (Abramowitz–Stegun 7.1.26 through erfc,
/// accurate to about 1e-7: far finer than any decision here needs).
fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    erfc / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_and_skip_nothing_finite() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
        assert_eq!(quantile(&[0.0, 10.0], 0.25), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_shift_ignores_one_outlier() {
        let before = [10.0, 11.0, 12.0, 10.5, 11.5];
        let after = [60.0, 61.0, 62.0, 60.5, 900.0];
        let s = shift(&before, &after).unwrap_or_default();
        assert!((49.0..=51.5).contains(&s), "{s}");
    }

    #[test]
    fn exact_p_values_match_the_tables() {
        // Complete separation of 5 and 5: 2 / C(10,5) = 2/252.
        let p = mann_whitney(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        // Perfectly interleaved: no evidence at all.
        let p = mann_whitney(&[1.0, 3.0, 5.0, 7.0], &[2.0, 4.0, 6.0, 8.0]);
        assert!(p > 0.5, "{p}");
        // Separation of 3 and 3: 2 / C(6,3) = 0.1, never significant at 0.05.
        let p = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((p - 0.1).abs() < 1e-12, "{p}");
    }

    #[test]
    fn the_normal_approximation_agrees_with_the_exact_test() {
        let before: Vec<f64> = (0..30).map(|i| f64::from(i) * 1.3).collect();
        let after: Vec<f64> = (0..30).map(|i| f64::from(i) * 1.3 + 9.1).collect();
        let exact = exact_p(30, 30, u_statistic(&before, &after).0);
        let approx = {
            // Same data with one tie forces the approximation.
            let mut b = before.clone();
            b[0] = after[0];
            mann_whitney(&b, &after)
        };
        assert!(exact < 0.01 && approx < 0.01, "{exact} {approx}");
        assert!((exact.ln() - approx.ln()).abs() < 1.0, "{exact} {approx}");
    }

    #[test]
    fn identical_samples_are_no_evidence() {
        assert_eq!(mann_whitney(&[0.0; 5], &[0.0; 20]), 1.0);
        assert_eq!(mann_whitney(&[], &[1.0]), 1.0);
    }

    #[test]
    fn the_normal_tail_is_accurate() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_tail(-1.0) - 0.841_344_7).abs() < 1e-6);
    }
}
