//! The `calos` binary: parse the command line, start logging, hand over to the library.

use clap::Parser;
use server::cli::Cli;

/// jemalloc instead of glibc's malloc: see the README's Performance section
/// for the side-by-side run that chose it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    server::observability::telemetry::init(&cli.log.level, cli.log.format);
    server::cli::run(cli).await
}
