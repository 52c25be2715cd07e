//! Mission Control (`/dashboard` on the dashboard port, admins only): health
//! tiles, the latest figures, latency and error-rate charts (SVG drawn by the
//! server with plotters, refreshed each second), managed processes with
//! start/stop/restart, the log feed with level and text filters and pause,
//! sign-up invites, an on-demand CPU flamegraph, and "What changed" (the
//! last 15 minutes against the hour before, `super::what_changed`), and, when
//! replicas share state, one tile per replica with the cluster's sums.
//! Everything arrives over one WebSocket (`/api/monitor/ws`), which starts with
//! a snapshot, so a fresh page is never empty.

use super::{hydration_flag, Header};
use crate::wire::{ComponentHealth, LogLine, MetricsSample, MonitorMessage, ProcessView};
use leptos::prelude::*;
use std::collections::VecDeque;

/// Log lines kept in the page.
const LOG_LINES: usize = 1_000;
/// Lines shown at once.
const LOG_SHOWN: usize = 300;

/// A latency quantile of one phase from a metrics sample, as text.
fn phase_ms(
    sample: &MetricsSample,
    phase: &str,
    quantile: fn(&crate::wire::Quantiles) -> f64,
) -> Option<String> {
    sample
        .latency
        .get(phase)
        .map(|q| format!("{:.1} ms", quantile(q)))
}

/// An optional number as a table cell: empty when absent.
fn cell<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
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
    health: RwSignal<Vec<ComponentHealth>>,
    logs: RwSignal<VecDeque<LogLine>>,
    latest: RwSignal<Option<MetricsSample>>,
    processes: RwSignal<Vec<ProcessView>>,
    top_users: RwSignal<Vec<crate::wire::TopUser>>,
    deployments: RwSignal<Vec<crate::wire::DeploymentTile>>,
    verdict: RwSignal<Option<crate::wire::WindowVerdict>>,
    /// Every replica, when there are several (absent: this one runs alone).
    cluster: RwSignal<Option<crate::wire::ClusterView>>,
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
            top_users: RwSignal::new(Vec::new()),
            deployments: RwSignal::new(Vec::new()),
            verdict: RwSignal::new(None),
            cluster: RwSignal::new(None),
            tick: RwSignal::new(0),
            live: RwSignal::new(false),
        }
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn apply(&self, message: &str) {
        // A frame this build cannot read (a newer server's message type) is
        // skipped: the rest of the feed still works.
        let Ok(message) = serde_json::from_str::<MonitorMessage>(message) else {
            return;
        };
        match message {
            MonitorMessage::Health { components } => self.health.set(components),
            MonitorMessage::Process { processes } => self.processes.set(processes),
            MonitorMessage::Usage { top_users } => self.top_users.set(top_users),
            MonitorMessage::Deployments { deployments } => self.deployments.set(deployments),
            MonitorMessage::Verdict { verdict } => self.verdict.set(Some(*verdict)),
            MonitorMessage::Cluster { cluster } => self.cluster.set(Some(cluster)),
            MonitorMessage::Log { lines } => self.logs.update(|logs| {
                logs.extend(lines);
                while logs.len() > LOG_LINES {
                    logs.pop_front();
                }
            }),
            MonitorMessage::Metrics { mut samples } => {
                if let Some(last) = samples.pop() {
                    self.latest.set(Some(last));
                    self.tick.update(|t| *t += 1);
                }
            }
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
            <Cluster feed/>
            <Deployments feed/>
            <Figures feed/>
            <super::what_changed::WhatChanged verdict=feed.verdict/>
            <section class="charts">
                <img data-testid="latency-chart" alt="Latency p50/p95/p99 over 15 minutes"
                    src=move || format!("/api/monitor/chart.svg?kind=latency&n={}", feed.tick.get())/>
                <img data-testid="errors-chart" alt="Requests and error rate over 15 minutes"
                    src=move || format!("/api/monitor/chart.svg?kind=errors&n={}", feed.tick.get())/>
            </section>
            <TopUsers feed/>
            <Processes feed/>
            <Logs feed/>
            <super::invites::Invites/>
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
            <For each=move || feed.health.get() key=|c| c.name.clone() let:c>
                {
                    let status = c.status.as_str();
                    let latency = c.latency_ms;
                    let (up, checks) = c.history.iter().fold((0u64, 0u64), |(u, n), r| {
                        (u + u64::from(r.up), n + u64::from(r.checks))
                    });
                    let uptime = (checks > 0).then(|| format!("{:.1}% up", 100.0 * up as f64 / checks as f64));
                    // The last hour, a bar per minute (Uptime Kuma's strip).
                    let skip = c.history.len().saturating_sub(STRIP_MINUTES);
                    let recent = c.history[skip..].to_vec();
                    view! {
                        <div class=format!("tile {status}") data-testid="health-tile" data-name=c.name.clone()>
                            <strong>{c.name.clone()}</strong>
                            <span class="kind">{c.kind.as_str()}</span>
                            <span class="status">{status}" · "{format!("{latency:.1} ms")}</span>
                            <small>{c.message.clone()}</small>
                            <small>{uptime}</small>
                            <div class="strip" data-testid="health-strip" aria-label="status per minute, last hour">
                                {recent.into_iter().map(|r| {
                                    let (up, checks) = (r.up, r.checks);
                                    let class = if checks == 0 { "none" } else if up == checks { "up" } else if up == 0 { "down" } else { "partial" };
                                    let title = format!("{} UTC: {up}/{checks} checks up", clock(r.minute));
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
    let figure = move |f: fn(&MetricsSample) -> Option<String>| {
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
                {figure(|s| Some(format!("{:.1}", s.requests_per_sec)))}
            </strong></div>
            <div><span>"error rate"</span><strong>
                {figure(|s| Some(format!("{:.1}%", 100.0 * s.error_rate)))}
            </strong></div>
            <div><span>"total p50"</span><strong data-testid="total-p50">{figure(|s| phase_ms(s, "total", |q| q.p50))}</strong></div>
            <div><span>"total p95"</span><strong>{figure(|s| phase_ms(s, "total", |q| q.p95))}</strong></div>
            <div><span>"total p99"</span><strong>{figure(|s| phase_ms(s, "total", |q| q.p99))}</strong></div>
            <div><span>"TTFT p50"</span><strong>{figure(|s| phase_ms(s, "ttft", |q| q.p50))}</strong></div>
            <div><span>"database p50"</span><strong>{figure(|s| phase_ms(s, "database", |q| q.p50))}</strong></div>
            <div><span>"active streams"</span><strong>
                {figure(|s| Some(s.active_streams.to_string()))}
            </strong></div>
            <div><span>"queue depth"</span><strong>
                {figure(|s| Some(s.queue_depth.to_string()))}
            </strong></div>
            <div><span>"tokens/min"</span><strong data-testid="tokens-per-minute">
                {figure(|s| Some(s.tokens_per_minute.to_string()))}
            </strong></div>
            <div><span>"cache hits"</span><strong>
                {figure(|s| s.cache_hit_rate.map(|x| format!("{:.0}%", 100.0 * x)))}
            </strong></div>
        </section>
    }
}

/// Today's heaviest users by tokens (UTC day), from the usage ledger.
/// What a deployment tile says of its breaker: the state, and while open,
/// how long until a probe is let through.
fn breaker_line(tile: &crate::wire::DeploymentTile) -> String {
    match tile.open_for_secs {
        Some(secs) => format!("{} · probe in {secs:.0} s", tile.state),
        None => tile.state.clone(),
    }
}

#[component]
fn Deployments(feed: Feed) -> impl IntoView {
    view! {
        <section class="deployments" data-testid="deployments">
            <h2>"Deployments"</h2>
            <div class="tiles">
                <For each=move || feed.deployments.get() key=|d| format!("{d:?}") let:d>
                    <div class=format!("tile deployment {}", d.state) data-testid="deployment-tile" data-name=d.name.clone() data-state=d.state.clone()>
                        <strong>{d.name.clone()}</strong>
                        <span class="kind">{d.provider.clone()}{d.model.clone().map(|m| format!(" · {m}"))}{(d.weight != 1).then(|| format!(" · weight {}", d.weight))}</span>
                        <span class="status">{breaker_line(&d)}</span>
                        <small>{format!("{} in flight · {:.0}% errors · p50 TTFT {}", d.in_flight, d.error_rate * 100.0, d.p50_ttft_ms.map_or("–".to_string(), |t| format!("{t:.0} ms")))}</small>
                        <small>{d.why.clone()}</small>
                    </div>
                </For>
            </div>
        </section>
    }
}

/// One tile per replica (this one first) and the cluster's sums; nothing
/// while this replica runs alone.
#[component]
fn Cluster(feed: Feed) -> impl IntoView {
    let tiles = move || feed.cluster.get().map(|c| c.replicas).unwrap_or_default();
    let sums = move || {
        feed.cluster.get().map(|c| {
            format!(
                "{} up · {} down · {:.1} req/s · {} requests in 15 min",
                c.up, c.down, c.requests_per_sec, c.requests_15m
            )
        })
    };
    view! {
        <Show when=move || feed.cluster.get().is_some()>
            <section class="cluster" data-testid="cluster">
                <h2>"Replicas"</h2>
                <p class="sums" data-testid="cluster-sums">{sums}</p>
                <div class="tiles">
                    <For each=tiles key=|r| format!("{r:?}") let:r>
                        <div class=format!("tile replica {}", r.status.as_str()) data-testid="replica-tile"
                            data-name=r.name.clone() data-status=r.status.as_str()>
                            <strong>{r.name.clone()}{r.this.then_some(" (this one)")}</strong>
                            <span class="status">{format!("{} · {}", r.status.as_str(), r.health)}</span>
                            <small>{format!("{:.1} req/s · {} in 15 min · {:.0}% errors", r.requests_per_sec, r.requests_15m, r.error_rate * 100.0)}</small>
                            <small>{format!("p95 {} · {} streams · up {} s · seen {:.1} s ago",
                                r.p95_ms.map_or("–".to_string(), |p| format!("{p:.0} ms")),
                                r.active_streams, r.uptime_secs, r.last_seen_secs)}</small>
                        </div>
                    </For>
                </div>
            </section>
        </Show>
    }
}

#[component]
fn TopUsers(feed: Feed) -> impl IntoView {
    view! {
        <section class="top-users" data-testid="top-users">
            <h2>"Top users today"</h2>
            <table>
                <thead><tr><th>"user"</th><th>"requests"</th><th>"tokens"</th></tr></thead>
                <tbody>
                    {move || feed.top_users.get().into_iter().map(|user| view! {
                        <tr data-user=user.user_id.clone()>
                            <td>{user.username.unwrap_or_else(|| format!("{} (deleted)", user.user_id))}</td>
                            <td>{user.requests}</td>
                            <td>{user.total_tokens}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn Processes(feed: Feed) -> impl IntoView {
    let order = move |name: String, action: &'static str| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let url = format!("/api/monitor/processes/{name}/{action}");
            // The order is all in the path and the endpoint reads no body:
            // unit says so (it goes out as `null`).
            let _ = crate::browser::post_json(&url, &()).await;
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
                        <For each=move || feed.processes.get() key=|p| (p.name.clone(), p.status, p.restarts) let:p>
                            {
                                let name = p.name.clone();
                                let (n1, n2, n3) = (name.clone(), name.clone(), name.clone());
                                let uptime = cell(p.uptime_secs.map(|s| format!("{s:.0} s")));
                                let status = p.status.as_str();
                                view! {
                                    <tr data-name=name.clone()>
                                        <td>{name.clone()}</td>
                                        <td class=format!("pstatus {status}")>{status}</td>
                                        <td>{cell(p.pid)}</td>
                                        <td>{uptime}</td>
                                        <td>{p.restarts}</td>
                                        <td>{cell(p.last_exit_code)}</td>
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
    let frozen: RwSignal<Option<VecDeque<LogLine>>> = RwSignal::new(None);
    let shown = move || {
        let min = level_rank(&level.get());
        let needle = needle.get().to_lowercase();
        let lines = frozen.get().unwrap_or_else(|| feed.logs.get());
        let has = |text: &str| text.to_lowercase().contains(&needle);
        let mut matching: Vec<LogLine> = lines
            .into_iter()
            .filter(|l| level_rank(&l.level) >= min)
            .filter(|l| {
                needle.is_empty()
                    || has(&l.message)
                    || has(&l.source)
                    || l.target.as_deref().is_some_and(has)
                    || l.request_id.as_deref().is_some_and(has)
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
                {move || shown().into_iter().map(|l| {
                    let clock = l.time.get(11..23).unwrap_or_default().to_string();
                    let class = format!("log {}", l.level);
                    let target = l.target.unwrap_or_default();
                    // calos's own events name their module; process lines their process.
                    let origin = if target.is_empty() { l.source } else { target.clone() };
                    view! {
                        <li class=class data-testid="log-line">
                            <time>{clock}</time>
                            <span class="lvl">{l.level}</span>
                            <span class="src" title=target>{origin}</span>
                            <span class="rid" data-testid="log-request-id">{l.request_id.unwrap_or_default()}</span>
                            <span class="msg">{l.message}</span>
                        </li>
                    }
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
