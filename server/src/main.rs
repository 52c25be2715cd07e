//! The `calos` binary: parse the command line, start logging, hand over to the library.

use clap::Parser;
use server::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    server::observability::telemetry::init(&cli.log.level, cli.log.format);
    server::cli::run(cli).await
}
