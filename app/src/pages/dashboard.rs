//! Mission Control (`/dashboard` on the dashboard port, admins only): health
//! tiles, the latest figures, latency and error-rate charts (SVG drawn by the
//! server with plotters, refreshed each second), managed processes with
//! start/stop/restart, and the log feed with level and text filters and pause.
//! Everything arrives over one WebSocket (`/api/monitor/ws`), which starts with
//! a snapshot, so a fresh page is never empty.

use super::{hydration_flag, Header};
use leptos::prelude::*;
use serde_json::Value;
use std::collections::VecDeque;

/// Log lines kept in the page.
const LOG_LINES: usize = 1_000;
/// Lines shown at once.
const LOG_SHOWN: usize = 300;

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A latency quantile from a metrics sample, as text.
fn phase_ms(v: &Value, phase: &str, q: &str) -> Option<String> {
    v.pointer(&format!("/latency/{phase}/{q}"))
        .and_then(Value::as_f64)
        .map(|x| format!("{x:.1} ms"))
}

fn level_rank(level: &str) -> u8 {
    match level {
        "error" => 3,
        "warn" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// The page's copy of the feed.
#[derive(Clone, Copy)]
struct Feed {
    health: RwSignal<Vec<Value>>,
    logs: RwSignal<VecDeque<Value>>,
    latest: RwSignal<Option<Value>>,
    processes: RwSignal<Vec<Value>>,
    /// Bumped per metrics message: the charts reload.
    tick: RwSignal<u64>,
    live: RwSignal<bool>,
}

impl Feed {
    fn new() -> Self {
        Self {
            health: RwSignal::new(Vec::new()),
            logs: RwSignal::new(VecDeque::new()),
            latest: RwSignal::new(None),
            processes: RwSignal::new(Vec::new()),
            tick: RwSignal::new(0),
            live: RwSignal::new(false),
        }
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn apply(&self, message: &str) {
        let Ok(v) = serde_json::from_str::<Value>(message) else {
            return;
        };
        let list = |key: &str| {
            v.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        match v.get("type").and_then(Value::as_str) {
            Some("health") => self.health.set(list("components")),
            Some("process") => self.processes.set(list("processes")),
            Some("log") => self.logs.update(|logs| {
                logs.extend(list("lines"));
                while logs.len() > LOG_LINES {
                    logs.pop_front();
                }
            }),
            Some("metrics") => {
                if let Some(last) = list("samples").pop() {
                    self.latest.set(Some(last));
                    self.tick.update(|t| *t += 1);
                }
            }
            _ => {}
        }
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let hydrated = hydration_flag();
    let feed = Feed::new();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        crate::browser::monitor_feed(
            move |text| feed.apply(&text),
            move |open| feed.live.set(open),
        );
    });
    view! {
        <Header/>
        <main class="page dashboard" data-hydrated=move || hydrated.get().to_string()>
            <div class="dash-title">
                <h1>"Mission Control"</h1>
                <span class="feed-status" data-testid="feed-status">
                    {move || if feed.live.get() { "live" } else { "connecting…" }}
                </span>
            </div>
            <HealthTiles feed/>
            <Figures feed/>
            <section class="charts">
                <img data-testid="latency-chart" alt="Latency p50/p95/p99 over 15 minutes"
                    src=move || format!("/api/monitor/chart.svg?kind=latency&n={}", feed.tick.get())/>
                <img data-testid="errors-chart" alt="Requests and error rate over 15 minutes"
                    src=move || format!("/api/monitor/chart.svg?kind=errors&n={}", feed.tick.get())/>
            </section>
            <Processes feed/>
            <Logs feed/>
            <Profiler/>
        </main>
    }
}

/// Minutes shown in a health tile's strip.
const STRIP_MINUTES: usize = 60;

/// `HH:MM` of a Unix time (UTC).
fn clock(unix_secs: i64) -> String {
    let minutes = unix_secs.rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[component]
fn HealthTiles(feed: Feed) -> impl IntoView {
    view! {
        <section class="tiles" data-testid="health">
            <For each=move || feed.health.get() key=|c| text(c, "name") let:c>
                {
                    let status = text(&c, "status");
                    let latency = c.get("latencyMs").and_then(Value::as_f64).unwrap_or(0.0);
                    let history = c.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
                    let (up, checks) = history.iter().fold((0, 0), |(u, n), r| {
                        (u + r.get("up").and_then(Value::as_u64).unwrap_or(0),
                         n + r.get("checks").and_then(Value::as_u64).unwrap_or(0))
                    });
                    let uptime = (checks > 0).then(|| format!("{:.1}% up", 100.0 * up as f64 / checks as f64));
                    // The last hour, a bar per minute (Uptime Kuma's strip).
                    let recent: Vec<Value> = history.iter().rev().take(STRIP_MINUTES).rev().cloned().collect();
                    view! {
                        <div class=format!("tile {status}") data-testid="health-tile" data-name=text(&c, "name")>
                            <strong>{text(&c, "name")}</strong>
                            <span class="kind">{text(&c, "kind")}</span>
                            <span class="status">{status.clone()}" · "{format!("{latency:.1} ms")}</span>
                            <small>{text(&c, "message")}</small>
                            <small>{uptime}</small>
                            <div class="strip" data-testid="health-strip" aria-label="status per minute, last hour">
                                {recent.into_iter().map(|r| {
                                    let up = r.get("up").and_then(Value::as_u64).unwrap_or(0);
                                    let checks = r.get("checks").and_then(Value::as_u64).unwrap_or(0);
                                    let class = if checks == 0 { "none" } else if up == checks { "up" } else if up == 0 { "down" } else { "partial" };
                                    let minute = r.get("minute").and_then(Value::as_i64).unwrap_or(0);
                                    let title = format!("{} UTC: {up}/{checks} checks up", clock(minute));
                                    view! { <span class=format!("bar {class}") title=title></span> }
                                }).collect_view()}
                            </div>
                        </div>
                    }
                }
            </For>
        </section>
    }
}

#[component]
fn Figures(feed: Feed) -> impl IntoView {
    let figure = move |f: fn(&Value) -> Option<String>| {
        move || {
            feed.latest
                .get()
                .as_ref()
                .and_then(f)
                .unwrap_or_else(|| "–".into())
        }
    };
    view! {
        <section class="figures" data-testid="figures">
            <div><span>"requests/s"</span><strong data-testid="rps">
                {figure(|v| v.get("requestsPerSec").and_then(Value::as_f64).map(|x| format!("{x:.1}")))}
            </strong></div>
            <div><span>"error rate"</span><strong>
                {figure(|v| v.get("errorRate").and_then(Value::as_f64).map(|x| format!("{:.1}%", 100.0 * x)))}
            </strong></div>
            <div><span>"total p50"</span><strong data-testid="total-p50">{figure(|v| phase_ms(v, "total", "p50"))}</strong></div>
            <div><span>"total p95"</span><strong>{figure(|v| phase_ms(v, "total", "p95"))}</strong></div>
            <div><span>"total p99"</span><strong>{figure(|v| phase_ms(v, "total", "p99"))}</strong></div>
            <div><span>"TTFT p50"</span><strong>{figure(|v| phase_ms(v, "ttft", "p50"))}</strong></div>
            <div><span>"database p50"</span><strong>{figure(|v| phase_ms(v, "database", "p50"))}</strong></div>
            <div><span>"active streams"</span><strong>
                {figure(|v| v.get("activeStreams").map(|x| x.to_string()))}
            </strong></div>
            <div><span>"queue depth"</span><strong>
                {figure(|v| v.get("queueDepth").map(|x| x.to_string()))}
            </strong></div>
            <div><span>"cache hits"</span><strong>
                {figure(|v| v.get("cacheHitRate").and_then(Value::as_f64).map(|x| format!("{:.0}%", 100.0 * x)))}
            </strong></div>
        </section>
    }
}

#[component]
fn Processes(feed: Feed) -> impl IntoView {
    let order = move |name: String, action: &'static str| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let url = format!("/api/monitor/processes/{name}/{action}");
            let _ = crate::browser::post_json(&url, &serde_json::json!({})).await;
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (name, action);
    };
    view! {
        <section class="processes">
            <h2>"Processes"</h2>
            <Show when=move || !feed.processes.get().is_empty()
                fallback=|| view! { <p class="muted">"No managed processes (declare [[process]] in the --config file)."</p> }>
                <table data-testid="processes">
                    <thead><tr><th>"name"</th><th>"status"</th><th>"pid"</th><th>"uptime"</th><th>"restarts"</th><th>"last exit"</th><th></th></tr></thead>
                    <tbody>
                        <For each=move || feed.processes.get() key=|p| (text(p, "name"), text(p, "status"), text(p, "restarts")) let:p>
                            {
                                let name = text(&p, "name");
                                let (n1, n2, n3) = (name.clone(), name.clone(), name.clone());
                                let uptime = p.get("uptimeSecs").and_then(Value::as_f64).map(|s| format!("{s:.0} s")).unwrap_or_default();
                                view! {
                                    <tr data-name=name.clone()>
                                        <td>{name.clone()}</td>
                                        <td class=format!("pstatus {}", text(&p, "status"))>{text(&p, "status")}</td>
                                        <td>{text(&p, "pid")}</td>
                                        <td>{uptime}</td>
                                        <td>{text(&p, "restarts")}</td>
                                        <td>{text(&p, "lastExitCode")}</td>
                                        <td class="actions">
                                            <button class="secondary" on:click=move |_| order(n1.clone(), "start")>"Start"</button>
                                            <button class="secondary" on:click=move |_| order(n2.clone(), "stop")>"Stop"</button>
                                            <button class="secondary" on:click=move |_| order(n3.clone(), "restart")>"Restart"</button>
                                        </td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </Show>
        </section>
    }
}

#[component]
fn Logs(feed: Feed) -> impl IntoView {
    let level = RwSignal::new(String::from("info"));
    let needle = RwSignal::new(String::new());
    let frozen: RwSignal<Option<VecDeque<Value>>> = RwSignal::new(None);
    let shown = move || {
        let min = level_rank(&level.get());
        let needle = needle.get().to_lowercase();
        let lines = frozen.get().unwrap_or_else(|| feed.logs.get());
        let mut matching: Vec<Value> = lines
            .into_iter()
            .filter(|l| level_rank(&text(l, "level")) >= min)
            .filter(|l| {
                needle.is_empty()
                    || text(l, "message").to_lowercase().contains(&needle)
                    || text(l, "source").to_lowercase().contains(&needle)
                    || text(l, "target").to_lowercase().contains(&needle)
                    || text(l, "requestId").to_lowercase().contains(&needle)
            })
            .collect();
        let skip = matching.len().saturating_sub(LOG_SHOWN);
        matching.drain(..skip);
        matching
    };
    view! {
        <section class="logs">
            <div class="log-controls">
                <h2>"Logs"</h2>
                <select aria-label="Lowest level shown" on:change=move |ev| level.set(event_target_value(&ev))>
                    <option value="debug">"all"</option>
                    <option value="info" selected>"info and above"</option>
                    <option value="warn">"warnings and errors"</option>
                    <option value="error">"errors"</option>
                </select>
                <input type="search" placeholder="filter text" aria-label="Filter log text"
                    on:input=move |ev| needle.set(event_target_value(&ev))/>
                <button class="secondary" data-testid="pause-logs" on:click=move |_| {
                    frozen.update(|f| *f = match f.take() { Some(_) => None, None => Some(feed.logs.get_untracked()) });
                }>{move || if frozen.get().is_some() { "Resume" } else { "Pause" }}</button>
            </div>
            <ol class="log-lines" data-testid="log-lines">
                // Re-rendered whole (at most LOG_SHOWN rows): a keyed <For> here
                // sometimes kept rows a new filter had excluded.
                {move || shown().into_iter().map(|l| view! {
                    <li class=format!("log {}", text(&l, "level")) data-testid="log-line">
                        <time>{text(&l, "time").get(11..23).unwrap_or_default().to_string()}</time>
                        <span class="lvl">{text(&l, "level")}</span>
                        <span class="src" title=text(&l, "target")>{
                            let target = text(&l, "target");
                            if target.is_empty() { text(&l, "source") } else { target }
                        }</span>
                        <span class="rid" data-testid="log-request-id">{text(&l, "requestId")}</span>
                        <span class="msg">{text(&l, "message")}</span>
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
}

/// An on-demand CPU flamegraph of the server. A plain GET form aimed at the
/// frame below, so it works before (and without) the WASM bundle.
#[component]
fn Profiler() -> impl IntoView {
    view! {
        <section class="profile">
            <h2>"CPU profile"</h2>
            <form method="get" action="/api/monitor/profile" target="profile-frame" class="inline">
                <label>"Seconds "
                    <input name="seconds" type="number" min="1" max="60" value="10" data-testid="profile-seconds"/>
                </label>
                <button type="submit" data-testid="profile-start">"Record flamegraph"</button>
            </form>
            <p class="muted">"Samples every thread at 99 Hz while calos serves requests; an idle server shows no samples."</p>
            <iframe name="profile-frame" title="CPU flamegraph" data-testid="profile-frame" class="flamegraph"></iframe>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn strip_minutes_are_labelled_in_utc() {
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(86_400 * 3 + 13 * 3_600 + 7 * 60 + 59), "13:07");
        assert_eq!(clock(-60), "23:59");
    }
}
