//! The `calos` binary: parse the command line, start logging, hand over to the library.

use clap::Parser;
use server::config::{Cli, Command};
use server::startup::{cancel_on_signals, Application};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    server::telemetry::init(&cli.log.level, cli.log.format);
    let result = match cli.command {
        Some(Command::Users(args)) => server::users_cli::run(args, &mut std::io::stdout()).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::MockLlm(args)) => server::mock_llm::run(args).await,
        Some(Command::MockOauth(args)) => server::mock_oauth::run(args).await,
        Some(Command::Identity(args)) => server::identity_cli::run(args).await,
        Some(Command::Perf(args)) => {
            return tool(server::toolbox::perf::run(*args).await.map(|()| 0))
        }
        Some(Command::Load(args)) => return tool(server::toolbox::load::run(*args).await),
        Some(Command::Diag(args)) => {
            return tool(server::toolbox::diag::run(*args).await.map(|()| 0))
        }
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
fn tool(result: Result<u8, server::toolbox::ToolError>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("calos: {e:#}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(args: server::config::ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(&args).await?;
    let (api, dashboard) = (app.api_addr(), app.dashboard_addr());
    tracing::info!(%api, %dashboard, "calos listening");
    // Scripts and tests read this line to find the ports (port 0 picks free ones).
    println!("calos listening on http://{api} (dashboard http://{dashboard})");
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone());
    app.run(shutdown).await
}
