//! `calos perf`: the original guide's `test-streaming-performance.js`, done properly. Signs
//! in (timed), sends one chat with its timings requested and the cache bypassed,
//! and lines up the client's clock against the server's account: auth, database,
//! queue, LLM (TTFT and generation), calos's own time, and network = client
//! total − server total. Ends with the decision tree's verdict.
//!
//! With `--runs N` it repeats the chat and reports each component's median and
//! spread; with `--baseline FILE` (a run saved by `--save`) it says whether
//! the total changed beyond the noise and which component explains it
//! (`app::verdict::change`).

use super::baseline::{render_change, BaselineArgs, BaselineInfo, SavedRuns};
use super::client::{
    describe_send_error, error_message, http_client, ChatApi, ChatBody, ChatTargetArgs, Gateway,
};
use super::figures::ServerFigures;
use super::render::{banner, bar, ms};
use super::sse::read_stream;
use super::ToolError;
use crate::config::{duration, Unit, Zero};
use app::verdict::{decide, medians, Change, Component, Components, Spread, Verdict};
use app::wire::{CompleteResponse, ConversationView, CreateConversationRequest};
use clap::Args;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct PerfArgs {
    #[command(flatten)]
    pub target: ChatTargetArgs,
    /// Stream the reply (adds client-side TTFT).
    #[arg(long)]
    pub stream: bool,
    /// Let calos answer from its cache (by default perf asks for a fresh answer).
    #[arg(long)]
    pub allow_cache: bool,
    /// Seconds to wait for the whole reply (or e.g. `3m`).
    #[arg(long, default_value = "180", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub timeout: Duration,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Repeat the chat N times and report each component's median and spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub runs: u32,
    /// Chats sent first and not counted (default: 1 with several runs or a
    /// baseline, else 0): a fresh connection's setup is not the steady state.
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Ask each question in a new conversation, as the chat page does, so
    /// reading and writing it is on the request's path (its database time).
    /// The conversation is deleted afterwards.
    #[arg(long)]
    pub conversation: bool,
    #[command(flatten)]
    pub compare: BaselineArgs,
}

impl PerfArgs {
    /// One chat, reported as always, when nothing asks for more.
    fn single(&self) -> bool {
        self.runs == 1 && self.compare.save.is_none() && self.compare.baseline.is_none()
    }

    fn warmup_runs(&self) -> u32 {
        self.warmup.unwrap_or(u32::from(!self.single()))
    }
}

/// What the client measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTimes {
    pub total: f64,
    /// First response byte (headers for a whole reply).
    pub ttfb: f64,
    /// First non-empty content event (streams only).
    pub ttft: Option<f64>,
    pub output_tokens: Option<u32>,
}

/// One `calos perf` run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerfReport {
    pub url: String,
    pub model: String,
    pub provider: Option<String>,
    pub stream: bool,
    pub cache_status: Option<String>,
    pub login_ms: Option<f64>,
    pub client: ClientTimes,
    pub server: ServerFigures,
    pub server_timing: Option<String>,
    pub components: Components,
    pub verdict: Verdict,
    pub response_preview: String,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One request's components from both clocks: the server's account of its
/// phases and the client's own total (network = client total − server total).
pub fn components(client_total: f64, server: &ServerFigures) -> Components {
    Components::from_breakdown(&server.as_breakdown(client_total), Some(client_total))
}

/// A signed-in perf client.
pub struct Session {
    gateway: Gateway,
    token: String,
    login_ms: Option<f64>,
}

/// Signs in once for every chat that follows.
pub async fn sign_in(args: &PerfArgs) -> Result<Session, ToolError> {
    let gateway = Gateway::new(&args.target.url, http_client(4)?);
    let credentials = args.target.sign_in.credentials()?;
    let signed_in = gateway.sign_in(&credentials).await?;
    let Some(token) = signed_in.token else {
        return Err(ToolError::Other(anyhow::anyhow!(
            "calos perf needs an account: --email or --username with --password-stdin / CALOS_PASSWORD, or --token"
        )));
    };
    Ok(Session {
        gateway,
        token,
        login_ms: signed_in.took.map(millis),
    })
}

/// Runs the measurement once (no printing).
pub async fn measure(args: &PerfArgs) -> Result<PerfReport, ToolError> {
    let session = sign_in(args).await?;
    for _ in 0..args.warmup_runs() {
        chat_once(&session, args).await?;
    }
    chat_once(&session, args).await
}

/// Starts a conversation for one chat (untimed), when asked to.
async fn open_conversation(
    session: &Session,
    args: &PerfArgs,
) -> Result<Option<String>, ToolError> {
    if !args.conversation {
        return Ok(None);
    }
    let url = session.gateway.url("/api/conversations");
    let response = session
        .gateway
        .client
        .post(&url)
        .bearer_auth(&session.token)
        .json(&CreateConversationRequest {
            title: Some("calos perf".into()),
            model: Some(args.target.model.clone()),
        })
        .send()
        .await
        .map_err(|e| describe_send_error(&url, &e))?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ToolError::Refused(format!(
            "starting a conversation failed ({}): {}",
            status.as_u16(),
            error_message(&body)
        )));
    }
    let made: ConversationView = serde_json::from_slice(&body)
        .map_err(|e| ToolError::Refused(format!("the new conversation is not calos's: {e}")))?;
    Ok(Some(made.id))
}

/// Deletes a conversation perf made. Best effort: the measurement is done.
async fn close_conversation(session: &Session, id: &str) {
    let url = session.gateway.url(&format!("/api/conversations/{id}"));
    let _ = session
        .gateway
        .client
        .delete(&url)
        .bearer_auth(&session.token)
        .send()
        .await;
}

/// One timed chat (in a conversation of its own with `--conversation`).
pub async fn chat_once(session: &Session, args: &PerfArgs) -> Result<PerfReport, ToolError> {
    let conversation = open_conversation(session, args).await?;
    let report = timed_chat(session, args, conversation.clone()).await;
    if let Some(id) = conversation {
        close_conversation(session, &id).await;
    }
    report
}

async fn timed_chat(
    session: &Session,
    args: &PerfArgs,
    conversation: Option<String>,
) -> Result<PerfReport, ToolError> {
    let gateway = &session.gateway;
    let url = gateway.url(ChatApi::Calos.path());
    let mut body = ChatApi::Calos.body(&args.target.model, &args.target.prompt, args.stream);
    if let ChatBody::Calos(request) = &mut body {
        request.conversation_id = conversation;
    }
    let mut request = gateway
        .client
        .post(&url)
        .bearer_auth(&session.token)
        .header("X-Timing-Detail", "true")
        .json(&body)
        .timeout(args.timeout);
    if !args.allow_cache {
        request = request.header(reqwest::header::CACHE_CONTROL, "no-cache");
    }
    let sent = Instant::now();
    let response = request
        .send()
        .await
        .map_err(|e| describe_send_error(&url, &e))?;
    let ttfb = millis(sent.elapsed());
    let status = response.status();
    let server_timing = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(ToolError::Refused(format!(
            "the chat request failed ({}): {}",
            status.as_u16(),
            error_message(&body)
        )));
    }
    let header_figures = server_timing
        .as_deref()
        .and_then(ServerFigures::from_server_timing);
    let (client, server, provider, cache_status, preview) = if args.stream {
        let outcome = read_stream(ChatApi::Calos, response.bytes_stream()).await;
        let total = millis(sent.elapsed());
        if let Some(error) = outcome.error {
            return Err(ToolError::Refused(format!("the stream failed: {error}")));
        }
        let client = ClientTimes {
            total,
            ttfb: outcome
                .first_byte
                .map(|t| millis(t.duration_since(sent)))
                .unwrap_or(ttfb),
            ttft: outcome
                .content_at
                .first()
                .map(|t| millis(t.duration_since(sent))),
            output_tokens: outcome.completion_tokens,
        };
        let server = outcome.figures.or(header_figures).unwrap_or_default();
        let status = if args.allow_cache {
            None
        } else {
            Some("bypass".to_string())
        };
        (client, server, None, status, String::new())
    } else {
        let body = response
            .bytes()
            .await
            .map_err(|e| describe_send_error(&url, &e))?;
        let total = millis(sent.elapsed());
        let answer: CompleteResponse = serde_json::from_slice(&body).map_err(|e| {
            ToolError::Refused(format!("the chat answer is not calos's reply: {e}"))
        })?;
        let timings = answer.timings.as_ref();
        let server = timings
            .map(ServerFigures::from_timings)
            .or(header_figures)
            .unwrap_or_default();
        let client = ClientTimes {
            total,
            ttfb,
            ttft: None,
            output_tokens: Some(answer.usage.completion_tokens),
        };
        (
            client,
            server,
            Some(answer.provider),
            timings.map(|t| t.cache_status.as_str().to_string()),
            answer.text.chars().take(100).collect(),
        )
    };
    let components = components(client.total, &server);
    Ok(PerfReport {
        url,
        model: args.target.model.clone(),
        provider,
        stream: args.stream,
        cache_status,
        login_ms: session.login_ms,
        verdict: decide(&components, &args.target.model),
        client,
        server,
        server_timing,
        components,
        response_preview: preview,
    })
}

/// The original guide's report, extended.
pub fn render(r: &PerfReport) -> String {
    let mut out = String::new();
    if let Some(login) = r.login_ms {
        out.push_str(&format!("✓ Login: {}\n\n", ms(login)));
    }
    out.push_str(&banner(if r.stream {
        "Streaming Chat Performance Test"
    } else {
        "Chat Performance Test"
    }));
    out.push_str(&format!(
        "POST {}  model {}{}{}\n\n",
        r.url,
        r.model,
        r.provider
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
        r.cache_status
            .as_deref()
            .map(|c| format!(", cache {c}"))
            .unwrap_or_default(),
    ));
    let total = r.client.total;
    let pct = |v: f64| if total > 0.0 { 100.0 * v / total } else { 0.0 };
    let line = |branch: &str, name: &str, v: f64| {
        format!(
            "{branch} {name:<12}{:>12}  {:>5.1}%  {}\n",
            ms(v),
            pct(v),
            bar(pct(v), 30)
        )
    };
    out.push_str(&format!(
        "Total Time:    {:>12}  (measured here)\n",
        ms(total)
    ));
    out.push_str(&line("├─", "Auth:", r.server.auth));
    out.push_str(&line("├─", "Database:", r.server.database));
    out.push_str(&line("├─", "Queue:", r.server.queue));
    if let Some(llm) = r.server.llm {
        out.push_str(&line("├─", "LLM:", llm));
        if let Some(ttft) = r.server.ttft {
            out.push_str(&format!("│  {:<12}{:>12}\n", "├─ TTFT:", ms(ttft)));
            out.push_str(&format!(
                "│  {:<12}{:>12}\n",
                "└─ Generate:",
                ms((llm - ttft).max(0.0))
            ));
        }
    } else {
        out.push_str("├─ LLM:         (not called: answered from the cache)\n");
    }
    out.push_str(&line("├─", "calos code:", r.components.code));
    out.push_str(&line("└─", "Network:", r.components.network));
    out.push_str(&format!(
        "   (network = client total − server total {})\n",
        r.server.total.map(ms).unwrap_or_else(|| "n/a".into())
    ));
    if let Some(ttft) = r.client.ttft {
        out.push_str(&format!(
            "\nClient TTFT:   {:>12}  (first token as seen here; TTFB {})\n",
            ms(ttft),
            ms(r.client.ttfb)
        ));
    }
    if let Some(tokens) = r.client.output_tokens {
        out.push_str(&format!("Output tokens:  {tokens:>9}\n"));
    }
    if let Some(st) = &r.server_timing {
        out.push_str(&format!("\n📊 Server-Timing: {st}\n"));
    }
    out.push_str(&format!(
        "\nVerdict: {}\nNext:    {}\n",
        r.verdict.summary, r.verdict.next_step
    ));
    if !r.response_preview.is_empty() {
        out.push_str(&format!("\nResponse: {}...\n", r.response_preview));
    }
    out
}

/// One component's median and spread over a series.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpread {
    pub component: Component,
    #[serde(flatten)]
    pub spread: Spread,
}

/// `calos perf --runs N`, `--save` or `--baseline`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesReport {
    pub url: String,
    pub model: String,
    pub stream: bool,
    pub conversation: bool,
    pub login_ms: Option<f64>,
    pub warmup: u32,
    /// Every counted run's components, in order.
    pub runs: Vec<Components>,
    pub spread: Vec<ComponentSpread>,
    /// The answer: the comparison's with a baseline, else the decision
    /// tree's over the medians.
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// Runs a series: warm-up, `--runs` timed chats, then the comparison.
pub async fn measure_series(args: &PerfArgs) -> Result<SeriesReport, ToolError> {
    let baseline = args.compare.read_baseline()?;
    let session = sign_in(args).await?;
    for _ in 0..args.warmup_runs() {
        chat_once(&session, args).await?;
    }
    let mut runs = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        runs.push(chat_once(&session, args).await?.components);
    }
    if let Some(path) = &args.compare.save {
        SavedRuns::new(
            "perf",
            &args.target.url,
            &args.target.model,
            args.stream,
            &runs,
        )
        .write(path)?;
    }
    let change = args
        .compare
        .compare(baseline.as_ref(), &runs, &args.target.model);
    let spread = Component::ALL
        .iter()
        .map(|&component| ComponentSpread {
            component,
            spread: Spread::of(&app::verdict::change::column(&runs, component)).unwrap_or_default(),
        })
        .collect();
    let verdict = series_verdict(&runs, change.as_ref(), &args.target.model);
    Ok(SeriesReport {
        url: args.target.url.clone(),
        model: args.target.model.clone(),
        stream: args.stream,
        conversation: args.conversation,
        login_ms: session.login_ms,
        warmup: args.warmup_runs(),
        runs,
        spread,
        verdict,
        baseline: baseline.map(|b| BaselineInfo::of(&b, args.compare.baseline.as_deref())),
        change,
    })
}

/// A series' answer: the comparison's when there was a baseline, else the
/// decision tree's over the runs' medians. `calos diag all` and Mission
/// Control reach the same verdict for the same runs (a test in
/// `ops::monitor::verdict` holds them to it).
pub fn series_verdict(runs: &[Components], change: Option<&Change>, model: &str) -> Verdict {
    match change {
        Some(change) => change.verdict.clone(),
        None => decide(&medians(runs), model),
    }
}

/// A series as a table of medians and spreads, then the comparison.
pub fn render_series(r: &SeriesReport) -> String {
    let mut out = banner("Chat Performance, repeated");
    out.push_str(&format!(
        "{} runs (after {} warm-up) of POST {}  model {}{}{}\n\n",
        r.runs.len(),
        r.warmup,
        r.url,
        r.model,
        if r.stream { ", streamed" } else { "" },
        if r.conversation {
            ", each in a new conversation"
        } else {
            ""
        },
    ));
    out.push_str(&format!(
        "{:<22}{:>10}{:>20}{:>20}\n",
        "component (ms)", "median", "p25 – p75", "min – max"
    ));
    for c in &r.spread {
        let s = c.spread;
        out.push_str(&format!(
            "{:<22}{:>10.2}{:>20}{:>20}\n",
            c.component.label(),
            s.median,
            format!("{:.2} – {:.2}", s.p25, s.p75),
            format!("{:.2} – {:.2}", s.min, s.max),
        ));
    }
    if let (Some(change), Some(base)) = (&r.change, &r.baseline) {
        out.push_str(&format!(
            "\nAgainst {} ({} {} runs of {}, saved {}):\n",
            base.path, base.runs, base.tool, base.url, base.saved_at
        ));
        out.push_str(&render_change(change));
    }
    out.push_str(&format!(
        "\nVerdict: {}\nNext:    {}\n",
        r.verdict.summary, r.verdict.next_step
    ));
    out
}

pub async fn run(args: PerfArgs) -> Result<(), ToolError> {
    if args.single() {
        let report = measure(&args).await?;
        return super::diag::print(&report, args.json, render);
    }
    let report = measure_series(&args).await?;
    super::diag::print(&report, args.json, render_series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_is_what_the_server_did_not_account_for() {
        let server = ServerFigures {
            auth: 0.2,
            database: 1.0,
            queue: 0.0,
            cache: 0.0,
            upstream_connect: Some(1.0),
            ttft: Some(200.0),
            llm: Some(900.0),
            total: Some(902.0),
        };
        let c = components(950.0, &server);
        assert!((c.network - 48.0).abs() < 1e-9);
        assert!((c.code - 0.8).abs() < 1e-9, "unaccounted: {}", c.code);
        assert!((c.calos() - 1.0).abs() < 1e-9, "auth 0.2 + unaccounted 0.8");
        assert_eq!(
            (c.connect, c.first_token, c.generation),
            (1.0, 199.0, 700.0)
        );
    }
}
