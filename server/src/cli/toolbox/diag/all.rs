//! `calos diag all --url …`: the original guide's five diagnosis steps in one run. Network
//! to the gateway, the database, the provider called directly, and a streamed
//! `calos perf` through the gateway, lined up so the gateway's added time is
//! plain (through calos − direct), ending with the decision tree's verdict.

use super::db::{DbArgs, DbReport};
use super::llm::{LlmDiagArgs, LlmReport};
use super::network::{NetworkArgs, NetworkReport};
use crate::cli::toolbox::client::ChatTargetArgs;
use crate::cli::toolbox::perf::{PerfArgs, PerfReport};
use crate::cli::toolbox::ToolError;
use crate::config::{LlmArgs, StoreArgs};
use app::verdict::tree::{DATABASE_LIMIT_MS, NETWORK_LIMIT_MS};
use app::verdict::{Components, Culprit, Verdict};
use clap::Args;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    /// The calos to diagnose, as whom, and the chat to time.
    #[command(flatten)]
    pub target: ChatTargetArgs,
    /// Probes / queries per step.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub count: u32,
    /// Skip the database step (when this machine cannot reach calos's database).
    #[arg(long)]
    pub skip_db: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[arg(long)]
    pub json: bool,
}

/// One figure measured both ways.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub figure: &'static str,
    pub direct: Option<f64>,
    pub through_calos: Option<f64>,
    pub added: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllReport {
    pub network: Result<NetworkReport, String>,
    pub database: Option<Result<DbReport, String>>,
    pub llm_direct: Result<LlmReport, String>,
    pub perf: Result<PerfReport, String>,
    pub comparison: Vec<Comparison>,
    /// Problems the separate steps found on their own.
    pub findings: Vec<String>,
    pub verdict: Option<Verdict>,
}

fn compare(figure: &'static str, direct: Option<f64>, through: Option<f64>) -> Comparison {
    Comparison {
        figure,
        direct,
        through_calos: through,
        added: direct.zip(through).map(|(d, t)| t - d),
    }
}

pub async fn measure(args: &AllArgs) -> Result<AllReport, ToolError> {
    let url = args.target.url.trim_end_matches('/');
    let network = super::network::measure(&NetworkArgs {
        url: format!("{url}/api/health"),
        count: args.count,
        timeout: Duration::from_secs(5),
        json: false,
    })
    .await;
    // A gateway nobody can reach cannot be diagnosed further.
    if let Err(e @ ToolError::Unreachable(_)) = network {
        return Err(e);
    }
    let database = if args.skip_db {
        None
    } else {
        let report = super::db::measure(&DbArgs {
            store: args.store.clone(),
            lookup: "diag-probe".into(),
            count: args.count,
            json: false,
        })
        .await;
        Some(report.map_err(|e| e.to_string()))
    };
    let llm_direct = super::llm::measure(&LlmDiagArgs {
        model: args.target.model.clone(),
        prompt: args.target.prompt.clone(),
        count: 1,
        llm: args.llm.clone(),
        config: None,
        json: false,
    })
    .await
    .map_err(|e| e.to_string());
    let perf = crate::cli::toolbox::perf::measure(&PerfArgs {
        target: args.target.clone(),
        stream: true,
        allow_cache: false,
        timeout: Duration::from_secs(180),
        json: false,
        runs: 1,
        warmup: None,
        conversation: false,
        compare: Default::default(),
    })
    .await
    .map_err(|e| e.to_string());
    let network = network.map_err(|e| e.to_string());

    let direct = llm_direct.as_ref().ok().and_then(|r| r.calls.first());
    let through = perf.as_ref().ok();
    let comparison = vec![
        compare(
            "TTFT",
            direct.and_then(|d| d.ttft),
            through.and_then(|p| p.client.ttft),
        ),
        compare(
            "total",
            direct.map(|d| d.total),
            through.map(|p| p.client.total),
        ),
    ];
    let mut findings = Vec::new();
    if let Some(avg) = network.as_ref().ok().and_then(|n| n.latency).map(|l| l.avg) {
        if avg > NETWORK_LIMIT_MS {
            findings.push(format!(
                "network: {avg:.1} ms average to {url}/api/health (> {NETWORK_LIMIT_MS:.0} ms)"
            ));
        }
    }
    if let Some(Ok(db)) = &database {
        if !db.uses_index || db.user_lookup.is_some_and(|l| l.avg > DATABASE_LIMIT_MS) {
            findings.push(format!("database: {}", db.advice));
        }
    }
    let runs = through.map(|p| std::slice::from_ref(&p.components));
    let verdict = final_verdict(runs.unwrap_or_default(), &args.target.model);
    Ok(AllReport {
        network,
        database,
        llm_direct,
        perf,
        comparison,
        findings,
        verdict,
    })
}

/// The closing verdict: `calos perf`'s over the chats sent through calos
/// (one, here), so diag all, `perf --runs` and Mission Control judge the same
/// requests alike; `None` when no chat got through.
pub fn final_verdict(runs: &[Components], model: &str) -> Option<Verdict> {
    (!runs.is_empty()).then(|| crate::cli::toolbox::perf::series_verdict(runs, None, model))
}

pub fn render(r: &AllReport) -> String {
    let mut out = crate::cli::toolbox::render::banner("calos diag all");
    let section = |title: &str, body: Result<String, &String>| match body {
        Ok(text) => format!("\n{text}"),
        Err(e) => format!("\n{title}: not measured: {e}\n"),
    };
    out.push_str(&section(
        "Network",
        r.network.as_ref().map(super::network::render),
    ));
    if let Some(db) = &r.database {
        out.push_str(&section("Database", db.as_ref().map(super::db::render)));
    }
    out.push_str(&section(
        "LLM direct",
        r.llm_direct.as_ref().map(super::llm::render),
    ));
    out.push_str(&section(
        "Through calos",
        r.perf.as_ref().map(crate::cli::toolbox::perf::render),
    ));
    out.push_str("\nSide by side (ms)        direct   through calos      added\n");
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for c in &r.comparison {
        out.push_str(&format!(
            "  {:<20}{:>10}{:>16}{:>11}\n",
            c.figure,
            cell(c.direct),
            cell(c.through_calos),
            c.added.map_or("-".into(), |a| format!("{a:+.1}"))
        ));
    }
    for f in &r.findings {
        out.push_str(&format!("Also found: {f}\n"));
    }
    match &r.verdict {
        Some(v) => out.push_str(&format!(
            "\nVerdict: {}{}\nNext:    {}\n",
            v.summary,
            if v.culprit == Culprit::None && !r.findings.is_empty() {
                " (but see the findings above)"
            } else {
                ""
            },
            v.next_step
        )),
        None => out.push_str("\nVerdict: none (the run through calos failed; see above)\n"),
    }
    out
}

pub async fn run(args: AllArgs) -> Result<(), ToolError> {
    let report = measure(&args).await?;
    super::print(&report, args.json, render)?;
    if let Err(e) = &report.perf {
        return Err(ToolError::Refused(format!(
            "the run through calos failed: {e}"
        )));
    }
    Ok(())
}
