//! Saved runs: what `calos perf --save` and `calos load --save` write and
//! `--baseline` reads back, so today's run can be held against yesterday's.
//! One JSON file: where and what was measured, and every request's
//! [`Components`]. A load run keeps an evenly spaced subset, so the file
//! stays small however long the run.

use super::ToolError;
use app::verdict::{Change, Components, Thresholds};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file format's version; a file from a newer calos is refused.
const VERSION: u32 = 1;
/// Most requests kept in a file.
pub const MAX_SAVED_RUNS: usize = 5_000;

/// `--save`, `--baseline` and the thresholds of the comparison.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// Write this run's timings to FILE (JSON), to compare against later.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Compare against a run saved with --save, and name the component whose
    /// change explains the change in total.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Significance level of the comparison's rank tests.
    #[arg(long, default_value_t = Thresholds::default().alpha, value_parser = probability)]
    pub alpha: f64,
    /// Smallest change of the total worth naming, in ms (or --min-change-pct
    /// of the baseline's median total, whichever is larger).
    #[arg(long, default_value_t = Thresholds::default().min_change_ms, value_parser = non_negative)]
    pub min_change_ms: f64,
    /// Smallest change of the total worth naming, in percent of the
    /// baseline's median total (or --min-change-ms, whichever is larger).
    #[arg(long, default_value_t = Thresholds::default().min_change_ratio * 100.0, value_parser = non_negative)]
    pub min_change_pct: f64,
}

impl Default for BaselineArgs {
    /// No saving, no baseline, the default thresholds: a plain run.
    fn default() -> Self {
        Self {
            save: None,
            baseline: None,
            alpha: Thresholds::default().alpha,
            min_change_ms: Thresholds::default().min_change_ms,
            min_change_pct: Thresholds::default().min_change_ratio * 100.0,
        }
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a number of 0 or more")),
    }
}

fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
        _ => Err(format!("`{s}` is not a probability between 0 and 1")),
    }
}

impl BaselineArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            alpha: self.alpha,
            min_change_ms: self.min_change_ms.max(0.0),
            min_change_ratio: self.min_change_pct.max(0.0) / 100.0,
        }
    }

    /// Reads the baseline, if one was given, before anything is measured (a
    /// wrong path should not cost a whole run).
    pub fn read_baseline(&self) -> Result<Option<SavedRuns>, ToolError> {
        self.baseline.as_deref().map(SavedRuns::read).transpose()
    }

    /// Compares `runs` against the baseline, if there is one.
    pub fn compare(
        &self,
        baseline: Option<&SavedRuns>,
        runs: &[Components],
        model: &str,
    ) -> Option<Change> {
        baseline.map(|b| app::verdict::compare(&b.runs, runs, self.thresholds(), model))
    }
}

/// The baseline a run was compared with, as the report names it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineInfo {
    pub path: String,
    pub tool: String,
    pub url: String,
    pub saved_at: String,
    pub runs: usize,
}

impl BaselineInfo {
    pub fn of(saved: &SavedRuns, path: Option<&Path>) -> Self {
        Self {
            path: path.map(|p| p.display().to_string()).unwrap_or_default(),
            tool: saved.tool.clone(),
            url: saved.url.clone(),
            saved_at: saved.saved_at.clone(),
            runs: saved.runs.len(),
        }
    }
}

/// The per-component comparison table (`calos perf` and `calos load`).
pub fn render_change(change: &Change) -> String {
    let mut out = format!(
        "{:<22}{:>11}{:>11}{:>11}{:>9}\n",
        "component (ms)", "baseline", "now", "shift", "p"
    );
    for c in &change.components {
        let named = change.named == Some(c.component);
        out.push_str(&format!(
            "{:<22}{:>11.2}{:>11.2}{:>+11.2}{:>9.3}{}\n",
            c.component.label(),
            c.baseline.median,
            c.current.median,
            c.shift,
            c.p,
            if named {
                "  ◀ named"
            } else if c.changed {
                "  changed"
            } else {
                ""
            }
        ));
    }
    out
}

/// A saved set of runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedRuns {
    /// The format's version.
    pub calos_timings: u32,
    /// `perf` or `load`.
    pub tool: String,
    pub url: String,
    pub model: String,
    pub stream: bool,
    /// RFC 3339.
    pub saved_at: String,
    pub runs: Vec<Components>,
}

impl SavedRuns {
    pub fn new(tool: &str, url: &str, model: &str, stream: bool, runs: &[Components]) -> Self {
        Self {
            calos_timings: VERSION,
            tool: tool.into(),
            url: url.into(),
            model: model.into(),
            stream,
            saved_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            runs: evenly_spaced(runs, MAX_SAVED_RUNS),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), ToolError> {
        let text = serde_json::to_string_pretty(self).map_err(anyhow::Error::from)?;
        std::fs::write(path, text)
            .map_err(|e| ToolError::Other(anyhow::anyhow!("cannot write {}: {e}", path.display())))
    }

    pub fn read(path: &Path) -> Result<Self, ToolError> {
        let refuse = |why: String| {
            ToolError::Other(anyhow::anyhow!("the baseline {} {why}", path.display()))
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot be read: {e}")))?;
        let saved: Self = serde_json::from_str(&text).map_err(|e| {
            refuse(format!(
                "is not a file saved by `calos perf --save` or `calos load --save`: {e}"
            ))
        })?;
        if saved.calos_timings > VERSION {
            return Err(refuse(format!(
                "was saved by a newer calos (format {}; this one reads {VERSION})",
                saved.calos_timings
            )));
        }
        if saved.runs.is_empty() {
            return Err(refuse("holds no runs".into()));
        }
        Ok(saved)
    }
}

/// A uniform sample of a run's requests' components, of fixed size however
/// long the run (see [`crate::observability::reservoir`]).
pub type Reservoir = crate::observability::reservoir::Reservoir<Components>;

/// At most `limit` of `runs`, spread evenly over the whole run (a load run's
/// start and end are both in it).
fn evenly_spaced(runs: &[Components], limit: usize) -> Vec<Components> {
    if runs.len() <= limit {
        return runs.to_vec();
    }
    (0..limit).map(|i| runs[i * runs.len() / limit]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_reads_back_and_stays_bounded() {
        let runs: Vec<Components> = (0..12_000)
            .map(|i| Components {
                total: f64::from(i),
                ..Default::default()
            })
            .collect();
        let saved = SavedRuns::new("load", "http://127.0.0.1:5001", "m", false, &runs);
        assert_eq!(saved.runs.len(), MAX_SAVED_RUNS);
        assert_eq!(saved.runs[0].total, 0.0);
        assert!(saved.runs[MAX_SAVED_RUNS - 1].total > 11_990.0);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("base.json");
        saved.write(&path).expect("written");
        let back = SavedRuns::read(&path).expect("read back");
        assert_eq!(back.runs, saved.runs);
    }

    #[test]
    fn a_wrong_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("other.json");
        std::fs::write(&path, r#"{"hello":1}"#).expect("written");
        let e = SavedRuns::read(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("is not a file saved by"), "{e}");
        let e = SavedRuns::read(&dir.path().join("missing.json"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("cannot be read"), "{e}");
    }
}
