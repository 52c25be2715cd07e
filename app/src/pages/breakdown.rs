//! The timing breakdown under each reply: where the milliseconds went, as
//! numbers and a stacked bar. Network is what the browser measured minus what
//! the server accounted for.

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
    let ttft = t.ttft.unwrap_or(0.0);
    let llm = t.llm.unwrap_or(ttft);
    let generation = (llm - ttft).max(0.0);
    let accounted = t.auth + t.database + t.queue + t.cache + llm;
    let overhead = (t.total - accounted).max(0.0);
    let network = (client_total_ms - t.total).max(0.0);
    vec![
        Segment {
            label: "auth",
            class: "seg-auth",
            ms: t.auth,
        },
        Segment {
            label: "db",
            class: "seg-db",
            ms: t.database,
        },
        Segment {
            label: "queue",
            class: "seg-queue",
            ms: t.queue,
        },
        Segment {
            label: "cache",
            class: "seg-cache",
            ms: t.cache,
        },
        Segment {
            label: "TTFT",
            class: "seg-ttft",
            ms: ttft,
        },
        Segment {
            label: "generation",
            class: "seg-gen",
            ms: generation,
        },
        Segment {
            label: "calos",
            class: "seg-overhead",
            ms: overhead,
        },
        Segment {
            label: "network",
            class: "seg-net",
            ms: network,
        },
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
}
