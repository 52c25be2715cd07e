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
