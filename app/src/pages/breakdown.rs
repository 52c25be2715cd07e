//! The timing breakdown under each reply: where the milliseconds went, as
//! numbers and a stacked bar. The split is [`Components::from_breakdown`]'s,
//! the one `calos perf`, `calos load` and Mission Control use, so the page
//! cannot attribute a millisecond differently from them. Network is what the
//! browser measured minus what the server accounted for.

use crate::verdict::Components;
use crate::wire::Breakdown as Timings;
use leptos::prelude::*;

/// One segment of the bar.
pub struct Segment {
    pub label: &'static str,
    pub class: &'static str,
    pub ms: f64,
}

/// Splits a reply's time into non-overlapping segments that add up to the
/// browser's total: auth, db, queue, cache, time to first token, generation,
/// calos's own overhead, network.
pub fn segments(t: &Timings, client_total_ms: f64) -> Vec<Segment> {
    bar_of(&Components::from_breakdown(t, Some(client_total_ms)))
}

/// The bar's segments for a split request. The bar keeps its one "TTFT"
/// segment (upstream connect plus the model's first token): that is the
/// figure people compare with other tools; the per-component differences
/// against a pinned baseline show the two apart.
fn bar_of(c: &Components) -> Vec<Segment> {
    let segment = |label, class, ms| Segment { label, class, ms };
    vec![
        segment("auth", "seg-auth", c.auth),
        segment("db", "seg-db", c.database),
        segment("queue", "seg-queue", c.queue),
        segment("cache", "seg-cache", c.cache),
        segment("TTFT", "seg-ttft", c.connect + c.first_token),
        segment("generation", "seg-gen", c.generation),
        segment("calos", "seg-overhead", c.code),
        segment("network", "seg-net", c.network),
    ]
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[component]
pub fn Breakdown(timings: Timings, client_total_ms: f64) -> impl IntoView {
    let parts = segments(&timings, client_total_ms);
    let sum: f64 = parts.iter().map(|s| s.ms).sum::<f64>().max(0.001);
    let bar = parts
        .iter()
        .filter(|s| s.ms > 0.0)
        .map(|s| {
            let style = format!("width:{:.3}%", s.ms / sum * 100.0);
            let title = format!("{} {}", s.label, fmt_ms(s.ms));
            view! { <span class=format!("seg {}", s.class) style=style title=title></span> }
        })
        .collect_view();
    let numbers = parts
        .into_iter()
        .map(|s| view! { <li><span class=format!("dot {}", s.class)></span>{s.label}" "<strong>{fmt_ms(s.ms)}</strong></li> })
        .collect_view();
    view! {
        <div class="breakdown" data-testid="breakdown">
            <div class="bar" aria-hidden="true">{bar}</div>
            <ul class="numbers">
                {numbers}
                <li class="total">"total "<strong>{fmt_ms(client_total_ms)}</strong>
                    " (server "{fmt_ms(timings.total)}", cache "{timings.cache_status.as_str()}")"</li>
            </ul>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_add_up_to_the_browsers_total() {
        let t = Timings {
            auth: 1.0,
            database: 2.0,
            queue: 3.0,
            cache: 0.5,
            ttft: Some(100.0),
            llm: Some(400.0),
            total: 410.0,
            ..Default::default()
        };
        let parts = segments(&t, 450.0);
        let sum: f64 = parts.iter().map(|s| s.ms).sum();
        assert!((sum - 450.0).abs() < 1e-9, "{sum}");
        let network = parts.iter().find(|s| s.label == "network").map(|s| s.ms);
        assert_eq!(network, Some(40.0));
    }

    #[test]
    fn the_ttft_segment_is_upstream_connect_plus_first_token() {
        let t = Timings {
            upstream_connect: Some(30.0),
            ttft: Some(100.0),
            llm: Some(150.0),
            total: 160.0,
            ..Default::default()
        };
        let parts = segments(&t, 160.0);
        let ms = |label| parts.iter().find(|s| s.label == label).map(|s| s.ms);
        assert_eq!(ms("TTFT"), Some(100.0));
        assert_eq!(ms("generation"), Some(50.0));
        assert_eq!(ms("calos"), Some(10.0));
    }
}
