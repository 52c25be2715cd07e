//! Exact summaries of a handful of samples (diag runs a few probes, so sorting
//! beats a histogram). p50 is the lower median, as `ping` and oha report it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub avg: f64,
    pub p50: f64,
    pub max: f64,
}

pub fn summarise(samples: impl IntoIterator<Item = f64>) -> Option<Summary> {
    let mut values: Vec<f64> = samples.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(Summary {
        count: n,
        min: values[0],
        avg: values.iter().sum::<f64>() / n as f64,
        p50: values[(n - 1) / 2],
        max: values[n - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_exact() {
        let s = summarise([4.0, 1.0, 3.0, 2.0]);
        assert_eq!(
            s,
            Some(Summary {
                count: 4,
                min: 1.0,
                avg: 2.5,
                p50: 2.0,
                max: 4.0
            })
        );
        assert_eq!(summarise([]), None);
    }
}
