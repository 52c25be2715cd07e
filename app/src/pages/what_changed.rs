//! Mission Control's "What changed": the server's verdict over its own recent
//! chat requests (`MonitorMessage::Verdict`, from `ops::monitor::verdict`).
//! The decision tree's line over the last 15 minutes, then each component's
//! median in the previous hour and in the last 15 minutes with the rank
//! test's shift and p-value; the component that explains a change in total
//! is highlighted. The same verdict `calos perf --baseline` prints, so the
//! page and the terminal never disagree about the same requests.

use crate::verdict::{Component, ComponentChange};
use crate::wire::WindowVerdict;
use leptos::prelude::*;

/// Milliseconds as a cell.
fn ms(value: f64) -> String {
    format!("{value:.1} ms")
}

/// A p-value as a cell: three decimals, and no "0.000".
fn p_cell(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// One table row: the component, both medians, the shift and p (the last
/// three `–` without a baseline), and whether it is the one named.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    component: Component,
    baseline: String,
    current: String,
    shift: String,
    p: String,
    named: bool,
    changed: bool,
}

/// The table's rows: from the comparison when there is one, else the
/// current window's medians alone.
fn rows(verdict: &WindowVerdict) -> Vec<Row> {
    let dash = || "–".to_string();
    match &verdict.change {
        Some(change) => change
            .components
            .iter()
            .map(|c: &ComponentChange| Row {
                component: c.component,
                baseline: ms(c.baseline.median),
                current: ms(c.current.median),
                shift: format!("{:+.1} ms", c.shift),
                p: p_cell(c.p),
                named: change.named == Some(c.component),
                changed: c.changed,
            })
            .collect(),
        None => Component::ALL
            .iter()
            .map(|&component| Row {
                component,
                baseline: dash(),
                current: ms(verdict.current.get(component)),
                shift: dash(),
                p: dash(),
                named: false,
                changed: false,
            })
            .collect(),
    }
}

/// Why there is no comparison, when there is none.
fn no_comparison(verdict: &WindowVerdict) -> Option<String> {
    if verdict.change.is_some() {
        return None;
    }
    Some(if verdict.current_samples == 0 {
        format!(
            "No chat requests in the last {} minutes yet (cache hits and failures are not counted).",
            verdict.current_minutes
        )
    } else {
        format!(
            "No baseline yet: the previous hour has no requests to compare the last {} minutes with.",
            verdict.current_minutes
        )
    })
}

/// The section; `verdict` is the latest from the feed (`None` until the
/// first arrives).
#[component]
pub fn WhatChanged(verdict: RwSignal<Option<WindowVerdict>>) -> impl IntoView {
    view! {
        <section class="what-changed" data-testid="what-changed">
            <h2>"What changed"</h2>
            {move || match verdict.get() {
                None => view! { <p class="muted">"Waiting for the first verdict…"</p> }.into_any(),
                Some(v) => {
                    let counts = format!(
                        "Last {} min: {} requests · previous {} min: {} requests{}",
                        v.current_minutes,
                        v.current_samples,
                        v.baseline_minutes,
                        v.baseline_samples,
                        if v.model.is_empty() { String::new() } else { format!(" · model {}", v.model) },
                    );
                    let summary = v.change.as_ref().map(|c| (c.verdict.summary.clone(), c.verdict.next_step.clone()));
                    let missing = no_comparison(&v);
                    view! {
                        <p class="verdict-line" data-testid="verdict-line" data-culprit=format!("{:?}", v.verdict.culprit).to_lowercase()>
                            <strong>{v.verdict.summary.clone()}</strong>" "
                            <span class="muted">{v.verdict.next_step.clone()}</span>
                        </p>
                        <p class="muted" data-testid="verdict-counts">{counts}</p>
                        {missing.map(|text| view! { <p class="no-baseline" data-testid="no-baseline">{text}</p> })}
                        <table data-testid="verdict-table">
                            <thead><tr>
                                <th>"component"</th><th>"previous hour (median)"</th><th>"last 15 min (median)"</th>
                                <th>"shift"</th><th>"p"</th>
                            </tr></thead>
                            <tbody>
                                {rows(&v).into_iter().map(|r| {
                                    let class = match (r.named, r.changed) {
                                        (true, _) => "verdict-named",
                                        (false, true) => "verdict-changed",
                                        _ => "",
                                    };
                                    view! {
                                        <tr class=class data-component=r.component.key()>
                                            <td>{r.component.label()}</td>
                                            <td>{r.baseline}</td>
                                            <td>{r.current}</td>
                                            <td>{r.shift}</td>
                                            <td>{r.p}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        {summary.map(|(summary, next)| view! {
                            <p class="change-summary" data-testid="change-summary">
                                {summary}" "<span class="muted">{next}</span>
                            </p>
                        })}
                    }.into_any()
                }
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{compare, decide, Components, Thresholds};

    fn window(baseline: &[Components], current: &[Components]) -> WindowVerdict {
        let medians = crate::verdict::medians(current);
        WindowVerdict {
            current_minutes: 15,
            baseline_minutes: 60,
            current_samples: current.len(),
            baseline_samples: baseline.len(),
            model: "sim".into(),
            current: medians,
            verdict: decide(&medians, "sim"),
            change: (!baseline.is_empty() && !current.is_empty())
                .then(|| compare(baseline, current, Thresholds::default(), "sim")),
        }
    }

    fn chat(i: usize, database: f64) -> Components {
        let wobble = (i % 5) as f64 * 0.3;
        Components {
            database: database + wobble,
            first_token: 20.0 + wobble,
            total: database + 20.0 + 2.0 * wobble,
            ..Default::default()
        }
    }

    #[test]
    fn the_named_component_is_the_one_highlighted_row() {
        let before: Vec<_> = (0..20).map(|i| chat(i, 3.0)).collect();
        let after: Vec<_> = (0..10).map(|i| chat(i, 53.0)).collect();
        let rows = rows(&window(&before, &after));
        assert_eq!(rows.len(), Component::ALL.len());
        let named: Vec<_> = rows.iter().filter(|r| r.named).collect();
        assert_eq!(named.len(), 1, "{rows:?}");
        assert_eq!(named[0].component, Component::Database);
        assert!(named[0].shift.starts_with("+50"), "{:?}", named[0]);
    }

    #[test]
    fn without_a_baseline_it_says_so_and_shows_the_current_medians() {
        let after: Vec<_> = (0..5).map(|i| chat(i, 3.0)).collect();
        let v = window(&[], &after);
        assert!(no_comparison(&v).is_some_and(|t| t.starts_with("No baseline yet")));
        let rows = rows(&v);
        assert!(rows.iter().all(|r| !r.named && r.baseline == "–"));
        let total = rows.iter().find(|r| r.component == Component::Total);
        assert_eq!(total.map(|r| r.current.as_str()), Some("24.2 ms"));
        assert!(no_comparison(&window(&[], &[])).is_some_and(|t| t.starts_with("No chat")));
    }
}
