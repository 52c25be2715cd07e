//! `/usage`: a signed-in person's tokens per day as a bar chart, a table by
//! model and by key, and what is left of their budget. It reads `/api/usage`
//! once hydrated (three groupings of the last 30 days).

use super::{hydration_flag, Header};
use crate::wire::{BudgetView, ErrorDetail, LimitsView, UsageResponse, UsageRow};
use leptos::prelude::*;

#[derive(Clone, Copy)]
struct Ledger {
    by_day: RwSignal<Option<UsageResponse>>,
    by_model: RwSignal<Vec<UsageRow>>,
    by_key: RwSignal<Vec<UsageRow>>,
    error: RwSignal<Option<ErrorDetail>>,
}

/// A bar's height in percent of the tallest day's.
fn bar_height(tokens: u64, tallest: u64) -> f64 {
    if tallest == 0 {
        0.0
    } else {
        (tokens as f64 / tallest as f64 * 100.0).clamp(0.0, 100.0)
    }
}

/// The caller's rate limits in a few words (the budget has its own).
fn limits_text(limits: &LimitsView) -> String {
    let rates = LimitsView {
        budget_tokens: None,
        budget_period: None,
        ..limits.clone()
    };
    match rates.describe() {
        none if none.is_empty() => "no rate limits".into(),
        some => some,
    }
}

fn budget_text(budget: Option<&BudgetView>) -> String {
    match budget {
        Some(b) => format!(
            "{} of {} tokens left this {} ({} spent)",
            b.remaining,
            b.tokens,
            if b.period == "total" {
                "account's life"
            } else {
                &b.period
            },
            b.spent
        ),
        None => "no token budget".into(),
    }
}

/// A table of sums, one row per group.
#[component]
fn SumsTable(
    title: &'static str,
    rows: RwSignal<Vec<UsageRow>>,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <h2>{title}</h2>
        <table data-testid=testid>
            <thead><tr><th>{title}</th><th>"requests"</th><th>"errors"</th><th>"prompt"</th><th>"completion"</th><th>"total"</th><th>"budget left"</th></tr></thead>
            <tbody>
                {move || rows.get().into_iter().map(|row| {
                    let name = row.label.clone().unwrap_or_else(|| row.group.clone());
                    let left = row.budget.as_ref().map_or("-".to_string(), |b| format!("{} / {}", b.remaining, b.tokens));
                    view! {
                        <tr data-group=row.group.clone()>
                            <td>{name}</td>
                            <td>{row.requests}</td>
                            <td>{row.errors}</td>
                            <td>{row.prompt_tokens}</td>
                            <td>{row.completion_tokens}</td>
                            <td class="total">{row.total_tokens}</td>
                            <td>{left}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn UsagePage() -> impl IntoView {
    let hydrated = hydration_flag();
    let ledger = Ledger {
        by_day: RwSignal::new(None),
        by_model: RwSignal::new(Vec::new()),
        by_key: RwSignal::new(Vec::new()),
        error: RwSignal::new(None),
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| load(ledger));
    view! {
        <Header/>
        <main class="page usage" data-hydrated=move || hydrated.get().to_string()>
            <h1>"Usage"</h1>
            <p class="muted">"Tokens your requests spent at the providers over the last 30 days (UTC), by session and by API key. Replies served from calos's cache cost nothing. A request is allowed when every limit that applies to it, its key's and your account's, has room."</p>
            {move || ledger.error.get().map(|e| view! { <p class="form-error" role="alert">{e.message}</p> })}
            {move || ledger.by_day.get().map(|usage| {
                let tallest = usage.rows.iter().map(|r| r.total_tokens).max().unwrap_or(0);
                let limits = usage.limits.as_ref().map(limits_text).unwrap_or_default();
                let budget = budget_text(usage.budget.as_ref());
                view! {
                    <p data-testid="usage-summary">
                        <strong data-testid="usage-total">{usage.totals.total_tokens}</strong>" tokens in "
                        {usage.totals.requests}" requests, "{usage.from}" to "{usage.to}". "
                        <span data-testid="usage-budget">{budget}</span>"; "{limits}"."
                    </p>
                    <div class="bars" role="img" aria-label="tokens per day" data-testid="usage-chart">
                        {usage.rows.into_iter().map(|day| {
                            let height = format!("height: {:.1}%", bar_height(day.total_tokens, tallest));
                            let tip = format!("{}: {} tokens", day.group, day.total_tokens);
                            view! { <div class="bar" style=height title=tip data-day=day.group></div> }
                        }).collect_view()}
                    </div>
                }
            })}
            <SumsTable title="model" rows=ledger.by_model testid="usage-by-model"/>
            <SumsTable title="key" rows=ledger.by_key testid="usage-by-key"/>
        </main>
    }
}

#[cfg(feature = "hydrate")]
fn load(ledger: Ledger) {
    leptos::task::spawn_local(async move {
        let get = |group: &'static str| async move {
            crate::browser::get_json_for::<UsageResponse>(&format!("/api/usage?groupBy={group}"))
                .await
        };
        match (get("day").await, get("model").await, get("key").await) {
            (Ok(day), Ok(model), Ok(key)) => {
                ledger.by_day.set(Some(day));
                ledger.by_model.set(model.rows);
                ledger.by_key.set(key.rows);
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => ledger.error.set(Some(e)),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_tallest_day() {
        assert_eq!(bar_height(0, 0), 0.0);
        assert_eq!(bar_height(50, 200), 25.0);
        assert_eq!(bar_height(200, 200), 100.0);
    }

    #[test]
    fn budgets_and_limits_read_as_words() {
        let budget = BudgetView {
            tokens: 100,
            period: "day".into(),
            spent: 30,
            remaining: 70,
        };
        assert_eq!(
            budget_text(Some(&budget)),
            "70 of 100 tokens left this day (30 spent)"
        );
        assert_eq!(budget_text(None), "no token budget");
        assert_eq!(
            limits_text(&LimitsView {
                rpm: Some(5),
                ..Default::default()
            }),
            "5 requests/min"
        );
    }
}
