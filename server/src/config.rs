//! Configuration in one place: every flag has an environment variable, and its
//! `///` doc is the `--help` text. Secrets are never printed (`hide_env_values`).

use crate::db::DbTarget;
use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

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
    Serve(ServeArgs),
    /// Manage accounts in the configured database.
    Users(crate::users_cli::UsersArgs),
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

/// Where accounts are stored.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database and the generated JWT key.
    #[arg(long, env = "CALOS_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most database connections held open at once.
    #[arg(long, env = "CALOS_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

impl StoreArgs {
    pub fn target(&self) -> DbTarget {
        DbTarget::resolve(self.database_url.as_deref(), &self.data_dir)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Port for the pages and the API.
    #[arg(long, env = "CALOS_PORT", default_value_t = 5001)]
    pub port: u16,
    /// Port for Mission Control (the dashboard listener).
    #[arg(long, env = "CALOS_DASHBOARD_PORT", default_value_t = 3003)]
    pub dashboard_port: u16,
    /// Listen on 127.0.0.1 only.
    #[arg(long, env = "CALOS_LOCAL")]
    pub local: bool,
    /// Address to listen on when not `--local`.
    #[arg(long, env = "CALOS_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// HS256 signing key, at least 32 bytes. Unset: generated once into the data directory.
    #[arg(long, env = "CALOS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "CALOS_TOKEN_TTL_HOURS", default_value_t = 24)]
    pub token_ttl_hours: u64,
    /// Mark the session cookie Secure (serve over HTTPS).
    #[arg(long, env = "CALOS_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// Failed sign-ins an account may have in a row before it must wait.
    #[arg(long, env = "CALOS_LOGIN_FAILURE_BURST", default_value_t = 5)]
    pub login_failure_burst: u32,
    /// Seconds after which one more failed sign-in is allowed.
    #[arg(long, env = "CALOS_LOGIN_FAILURE_REFILL_SECS", default_value_t = 12.0)]
    pub login_failure_refill_secs: f64,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "CALOS_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl ServeArgs {
    pub fn bind_ip(&self) -> IpAddr {
        if self.local {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.host
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
