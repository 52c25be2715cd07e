//! The command line: the clap tree of every subcommand (each subcommand owns its
//! arguments; this module only names them), and the account, identity and toolbox
//! commands themselves.

pub mod identity;
pub mod keys;
pub mod toolbox;
pub mod users;

use crate::config::ServeArgs;
use crate::observability::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "calos",
    version,
    about = "calos: a self-hosted LLM chat gateway that tells you where every millisecond of a reply goes",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `calos` with no subcommand is `calos serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the pages and API (default port 5001) and Mission Control (3003).
    Serve(Box<ServeArgs>),
    /// Manage accounts in the configured database.
    Users(users::UsersArgs),
    /// API keys: make one for an account, list them, revoke one.
    Keys(keys::KeysArgs),
    /// A real HTTP upstream emulator (Ollama and OpenAI wire formats) for tests and benchmarks.
    MockLlm(crate::emulators::mock_llm::MockArgs),
    /// A real HTTP OAuth 2.0 / OpenID provider emulator (Google, GitHub and Apple flavours) for tests.
    MockOauth(crate::emulators::mock_oauth::MockOAuthArgs),
    /// A delaying TCP proxy (a userspace `tc netem`): adds latency, jitter and a bandwidth cap to every connection.
    MockNet(crate::emulators::mock_net::MockNetArgs),
    /// Ed25519 identities: make a key, show it, sign in with it (no email, no password).
    Identity(identity::IdentityArgs),
    /// Sign in and time one chat; split it into auth, database, queue, LLM, network; name the culprit.
    Perf(Box<toolbox::perf::PerfArgs>),
    /// Load-test a chat endpoint (closed or open loop, streamed or not) with HDR percentiles.
    Load(Box<toolbox::load::LoadArgs>),
    /// Measure each layer on its own: network, database, the LLM directly, or all of them.
    Diag(Box<toolbox::diag::DiagArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log verbosity: error, warn, info, debug or trace.
    #[arg(
        long = "log-level",
        env = "LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub level: String,
    /// Log line format: `text` or `json`.
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text", global = true, value_parser = parse_log_format)]
    pub format: LogFormat,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "text" | "pretty" | "" => Ok(LogFormat::Text),
        other => Err(format!("unknown log format {other:?}; use text or json")),
    }
}

/// Runs the parsed command line to its exit code.
pub async fn run(cli: Cli) -> std::process::ExitCode {
    let result = match cli.command {
        Some(Command::Users(args)) => users::run(args, &mut std::io::stdout()).await,
        Some(Command::Keys(args)) => keys::run(args, &mut std::io::stdout()).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::MockLlm(args)) => crate::emulators::mock_llm::run(args).await,
        Some(Command::MockOauth(args)) => crate::emulators::mock_oauth::run(args).await,
        Some(Command::MockNet(args)) => crate::emulators::mock_net::run(args).await,
        Some(Command::Identity(args)) => identity::run(args).await,
        Some(Command::Perf(args)) => return tool(toolbox::perf::run(*args).await.map(|()| 0)),
        Some(Command::Load(args)) => return tool(toolbox::load::run(*args).await),
        Some(Command::Diag(args)) => return tool(toolbox::diag::run(*args).await.map(|()| 0)),
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calos: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The toolbox's exit codes: 0 fine, 1 failed, 2 target unreachable or refused,
/// 130 interrupted.
fn tool(result: Result<u8, toolbox::ToolError>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("calos: {e:#}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.check_config {
        print!("{}", check_config(&args)?);
        return Ok(());
    }
    let app = crate::startup::Application::build(&args).await?;
    let (api, dashboard) = (app.api_addr(), app.dashboard_addr());
    tracing::info!(%api, %dashboard, "calos listening");
    // Scripts and tests read this line to find the ports (port 0 picks free ones).
    println!("calos listening on http://{api} (dashboard http://{dashboard})");
    let shutdown = tokio_util::sync::CancellationToken::new();
    crate::shutdown::cancel_on_signals(shutdown.clone());
    app.run(shutdown).await
}

/// `calos serve --check-config`: reads the config file as `serve` would and
/// returns the routing table it makes (an error says what is wrong).
fn check_config(args: &ServeArgs) -> anyhow::Result<String> {
    let config = crate::ops::processes::config::load_or_default(args.config.as_deref())?;
    let router = crate::chat::setup::build_router(&args.llm, &(&config).into())?;
    let source = args
        .config
        .as_ref()
        .map_or("no config file".to_string(), |p| p.display().to_string());
    Ok(format!(
        "config ok ({source}): {} processes, {} targets\n{}",
        config.processes.len(),
        config.targets.len(),
        router.table()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn bare_calos_means_serve_with_the_documented_ports() {
        let cli = Cli::try_parse_from(["calos"]).map_err(|e| e.to_string());
        let Ok(cli) = cli else { panic!("{cli:?}") };
        assert!(cli.command.is_none());
        assert_eq!((cli.serve.port, cli.serve.dashboard_port), (5001, 3003));
    }

    #[test]
    fn local_binds_loopback_only() {
        let cli = Cli::try_parse_from(["calos", "serve", "--local", "--port", "0"])
            .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Some(Command::Serve(args)),
            ..
        }) = cli
        else {
            panic!("{cli:?}")
        };
        assert_eq!(args.bind_ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(args.port, 0);
    }
}
