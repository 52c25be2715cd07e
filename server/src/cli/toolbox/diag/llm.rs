//! `calos diag llm --model M`: the original guide's "test Ollama directly" step. Routes the
//! model the way the gateway would (same configuration, same provider client)
//! but calls the provider straight from here, streamed, and reports its connect
//! time, TTFT and total beside the provider's own account (Ollama's load /
//! prompt-eval / eval durations; OpenAI's `openai-processing-ms`).
//!
//! A model with several `[[deployment]]`s (`--config`) has each one checked,
//! so the slow or dead one is named.

use super::stats::{summarise, Summary};
use crate::cli::toolbox::ToolError;
use crate::config::LlmArgs;
use crate::llm::types::{ChatMessage, ChatParams, Chunk, UpstreamTimings, Usage};
use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct LlmDiagArgs {
    /// The model to call (routed as calos routes it).
    #[arg(long)]
    pub model: String,
    #[arg(long, default_value = "Hello")]
    pub prompt: String,
    /// Calls to make.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub count: u32,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// The config file whose `[[deployment]]`s the gateway routes by.
    #[arg(long, env = "CALOS_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// One direct call, in ms.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectCall {
    /// Request sent → response headers (the stream is open).
    pub connect: f64,
    /// Request sent → first non-empty token.
    pub ttft: Option<f64>,
    pub total: f64,
    pub deltas: u32,
    pub usage: Option<Usage>,
    /// The provider's own durations.
    pub provider_timings: Option<UpstreamTimings>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmReport {
    pub model: String,
    /// The deployment called (a provider's name for an implicit one).
    pub deployment: String,
    pub provider: String,
    pub address: String,
    pub calls: Vec<DirectCall>,
    pub ttft: Option<Summary>,
    pub total: Option<Summary>,
    /// Why this deployment could not be measured (with several deployments
    /// one failing does not stop the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The model's other deployments, measured the same way.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<LlmReport>,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn call(
    provider: &crate::llm::Provider,
    params: &ChatParams,
    model: &str,
) -> Result<DirectCall, ToolError> {
    let sent = Instant::now();
    let mut stream = provider.open(params, model).await.map_err(|e| {
        ToolError::Unreachable(format!(
            "{} ({}) failed: {e}",
            provider.name(),
            provider.address()
        ))
    })?;
    let mut result = DirectCall {
        connect: ms(sent.elapsed()),
        ..Default::default()
    };
    while let Some(chunk) = stream.next().await {
        match chunk
            .map_err(|e| ToolError::Refused(format!("{} broke off: {e}", provider.name())))?
        {
            Chunk::Delta(text) if !text.is_empty() => {
                result.ttft.get_or_insert_with(|| ms(sent.elapsed()));
                result.deltas += 1;
            }
            Chunk::Delta(_) => {}
            Chunk::Usage(usage) => result.usage = Some(usage),
            Chunk::Timings(t) => result.provider_timings = Some(t),
        }
    }
    result.total = ms(sent.elapsed());
    Ok(result)
}

pub async fn measure(args: &LlmDiagArgs) -> Result<LlmReport, ToolError> {
    let config = crate::ops::processes::config::load_or_default(args.config.as_deref())?;
    let router = crate::chat::setup::build_router(&args.llm, &(&config).into())?;
    let deployments = router.deployments_of(&args.model).map_err(|provider| {
        anyhow::anyhow!(
            "model {:?} routes to {provider:?}, which is not configured",
            args.model
        )
    })?;
    let params = ChatParams {
        model: args.model.clone(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: args.prompt.clone(),
        }],
        temperature: None,
        max_tokens: None,
        trace: Default::default(),
    };
    let several = deployments.len() > 1;
    let mut reports = Vec::new();
    for deployment in &deployments {
        let provider = &deployment.provider;
        let upstream_model = deployment.upstream_model.as_deref().unwrap_or(&args.model);
        let mut calls = Vec::new();
        let mut error = None;
        for _ in 0..args.count.max(1) {
            match call(provider, &params, upstream_model).await {
                Ok(c) => calls.push(c),
                // One deployment: its failure is the answer, as it always was.
                Err(e) if !several => return Err(e),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        reports.push(LlmReport {
            model: args.model.clone(),
            deployment: deployment.name.clone(),
            provider: provider.name().to_string(),
            address: provider.address(),
            ttft: summarise(calls.iter().filter_map(|c| c.ttft)),
            total: summarise(calls.iter().map(|c| c.total)),
            calls,
            error,
            others: Vec::new(),
        });
    }
    let mut reports = reports.into_iter();
    let mut first = reports
        .next()
        .ok_or_else(|| anyhow::anyhow!("model {:?} has no deployment", args.model))?;
    first.others = reports.collect();
    Ok(first)
}

pub fn render(r: &LlmReport) -> String {
    let mut out = render_one(r);
    for other in &r.others {
        out.push_str(&render_one(other));
    }
    out
}

fn render_one(r: &LlmReport) -> String {
    let named = if r.deployment == r.provider {
        String::new()
    } else {
        format!(" (deployment {})", r.deployment)
    };
    let mut out = format!(
        "LLM direct: {} via {} at {}{named} (calos bypassed)\n",
        r.model, r.provider, r.address
    );
    if let Some(error) = &r.error {
        out.push_str(&format!("  ✗ {error}\n  → this deployment is down or refusing: the gateway's breaker will skip it\n"));
        return out;
    }
    for (i, c) in r.calls.iter().enumerate() {
        out.push_str(&format!(
            "  #{:<2} connect {:>8.1} ms   TTFT {:>8} ms   total {:>8.1} ms   {} deltas{}\n",
            i + 1,
            c.connect,
            c.ttft.map_or("-".into(), |t| format!("{t:.1}")),
            c.total,
            c.deltas,
            c.usage
                .map(|u| format!(", {} tokens", u.completion_tokens))
                .unwrap_or_default()
        ));
        if let Some(t) = &c.provider_timings {
            let parts: Vec<String> = [
                ("load", t.load_ms),
                ("prompt eval", t.prompt_eval_ms),
                ("eval", t.eval_ms),
                ("total", t.total_ms),
                ("processing", t.processing_ms),
            ]
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n} {v:.1} ms")))
            .chain(t.tokens_per_second.map(|v| format!("{v:.1} tokens/s")))
            .collect();
            if !parts.is_empty() {
                out.push_str(&format!("      provider says: {}\n", parts.join(", ")));
            }
        }
    }
    out.push_str(if direct_verdict(r).culprit == app::verdict::Culprit::Llm {
        "  → the model itself is slow: use a smaller model or a GPU; not your code\n"
    } else {
        "  → the provider answers in good time\n"
    });
    out
}

/// The decision tree's verdict on the direct calls alone (their average
/// TTFT and total, all of it the model's): the same judgement `calos perf`
/// and `calos diag all` make, so this section cannot contradict theirs.
pub fn direct_verdict(r: &LlmReport) -> app::verdict::Verdict {
    let total = r.total.map_or(0.0, |t| t.avg);
    let first_token = r.ttft.map_or(total, |t| t.avg).min(total);
    let components = app::verdict::Components {
        first_token,
        generation: total - first_token,
        total,
        ..Default::default()
    };
    app::verdict::decide(&components, &r.model)
}

pub async fn run(args: LlmDiagArgs) -> Result<(), ToolError> {
    let report = measure(&args).await?;
    super::print(&report, args.json, render)
}
