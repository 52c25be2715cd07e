//! `calos perf`: the original guide's `test-streaming-performance.js`, done properly. Signs
//! in (timed), sends one chat with its timings requested and the cache bypassed,
//! and lines up the client's clock against the server's account: auth, database,
//! queue, LLM (TTFT and generation), calos's own time, and network = client
//! total − server total. Ends with the decision tree's verdict.

use super::client::{
    describe_send_error, error_message, http_client, ChatApi, ChatTargetArgs, Gateway,
};
use super::figures::ServerFigures;
use super::render::{banner, bar, ms};
use super::sse::read_stream;
use super::verdict::{decide, Components, Verdict};
use super::ToolError;
use crate::config::{duration, Unit, Zero};
use app::wire::CompleteResponse;
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

/// The components of the decision tree from both clocks.
pub fn components(client_total: f64, server: &ServerFigures) -> Components {
    let server_total = server.total.unwrap_or(client_total);
    Components {
        total: client_total,
        network: (client_total - server_total).max(0.0),
        database: server.database,
        queue: server.queue,
        llm: server.llm.unwrap_or(0.0),
        code: server.auth + server.own_code().unwrap_or(0.0),
    }
}

/// Runs the measurement (no printing).
pub async fn measure(args: &PerfArgs) -> Result<PerfReport, ToolError> {
    let gateway = Gateway::new(&args.target.url, http_client(4)?);
    let credentials = args.target.sign_in.credentials()?;
    let signed_in = gateway.sign_in(&credentials).await?;
    let Some(token) = signed_in.token else {
        return Err(ToolError::Other(anyhow::anyhow!(
            "calos perf needs an account: --email or --username with --password-stdin / CALOS_PASSWORD, or --token"
        )));
    };
    let url = gateway.url(ChatApi::Calos.path());
    let mut request = gateway
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("X-Timing-Detail", "true")
        .json(&ChatApi::Calos.body(&args.target.model, &args.target.prompt, args.stream))
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
        login_ms: signed_in.took.map(millis),
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
    out.push_str(&line(
        "├─",
        "calos code:",
        r.components.code - r.server.auth,
    ));
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

pub async fn run(args: PerfArgs) -> Result<(), ToolError> {
    let report = measure(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?
        );
    } else {
        print!("{}", render(&report));
    }
    Ok(())
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
        assert!(
            (c.code - 1.0).abs() < 1e-9,
            "auth 0.2 + unaccounted 0.8: {}",
            c.code
        );
        assert_eq!(c.llm, 900.0);
    }
}
