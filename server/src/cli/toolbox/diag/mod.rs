//! `calos diag`: each layer measured on its own, the original guide's "Diagnosing Delays"
//! steps as commands: `network` (DNS, connect, TLS, first byte), `db` (query
//! times and the lookup's plan), `llm` (the provider called directly), and
//! `all` (everything, beside a `calos perf` run through the gateway).

pub mod all;
pub mod db;
pub mod llm;
pub mod network;
pub mod stats;

use super::ToolError;
use clap::Subcommand;
use serde::Serialize;

#[derive(Debug, Clone, Subcommand)]
pub enum DiagCommand {
    /// Time repeated requests to a URL: DNS, connect, TLS, first byte, total, loss.
    Network(network::NetworkArgs),
    /// Time `SELECT 1` and the user lookup, and check the lookup uses its index.
    Db(db::DbArgs),
    /// Call the provider behind a model directly, bypassing the gateway.
    Llm(Box<llm::LlmDiagArgs>),
    /// All of the above plus `calos perf`, side by side, with a verdict.
    All(Box<all::AllArgs>),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DiagArgs {
    #[command(subcommand)]
    pub command: DiagCommand,
}

pub async fn run(args: DiagArgs) -> Result<(), ToolError> {
    match args.command {
        DiagCommand::Network(a) => network::run(a).await,
        DiagCommand::Db(a) => db::run(a).await,
        DiagCommand::Llm(a) => llm::run(*a).await,
        DiagCommand::All(a) => all::run(*a).await,
    }
}

/// Prints `report` as pretty JSON or through `render`.
pub fn print<T: Serialize>(
    report: &T,
    json: bool,
    render: fn(&T) -> String,
) -> Result<(), ToolError> {
    if json {
        let text = serde_json::to_string_pretty(report).map_err(anyhow::Error::from)?;
        println!("{text}");
    } else {
        print!("{}", render(report));
    }
    Ok(())
}
