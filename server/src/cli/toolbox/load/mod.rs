//! `calos load`: many chats at once, closed loop (`-c USERS -n REQUESTS_PER_USER`,
//! like the original guide's script; note `ab -n` counts all requests) or open loop
//! (`--rate R --duration D`), streamed or not, with a live progress line and a
//! report of `ab`'s figures, HDR percentiles, streaming figures and the server's
//! own breakdown. `--ephemeral-users` makes throwaway accounts and removes them
//! at the end, also after Ctrl-C.

pub mod compare;
pub mod conn;
pub mod engine;
pub mod report;
pub mod stats;

use super::baseline::{BaselineArgs, SavedRuns};
use super::client::{http_client, ChatApi, Gateway, SignInArgs};
use super::ToolError;
use crate::config::{duration, Unit, Zero};
use clap::Args;
use engine::{Failure, Plan};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use report::{LoadReport, Setup};
use stats::Recorder;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Exit code after Ctrl-C / SIGTERM, as shells report 128 + SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;
/// The username prefix of `--ephemeral-users` (what `calos users prune` takes).
pub const EPHEMERAL_PREFIX: &str = "test-user-";

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The server to load: a calos, or any OpenAI-compatible server with `--api openai`.
    #[arg(long, env = "CALOS_URL", default_value = "http://localhost:5001")]
    pub url: String,
    #[command(flatten)]
    pub sign_in: SignInArgs,
    /// Register one throwaway account per user (`test-user-<ms>-<n>`) and delete them at the end.
    #[arg(long, conflicts_with_all = ["email", "username", "token"])]
    pub ephemeral_users: bool,
    /// Which chat API to call.
    #[arg(long, value_enum, default_value = "calos")]
    pub api: ChatApi,
    #[arg(long, default_value = "llama3.2")]
    pub model: String,
    #[arg(long, default_value = "Hello")]
    pub prompt: String,
    /// Stream replies and measure TTFT, inter-token latency and TPOT.
    #[arg(long)]
    pub stream: bool,
    /// Concurrent users (closed loop) / accounts to spread requests over (open loop).
    #[arg(short = 'c', long = "users", default_value_t = 10)]
    pub users: usize,
    /// Requests per user (closed loop).
    #[arg(short = 'n', long = "requests", default_value_t = 10)]
    pub requests_per_user: u64,
    /// Open loop: requests per second, sent on schedule whatever the answers do.
    #[arg(long, requires = "duration")]
    pub rate: Option<f64>,
    /// Open loop: how long to send, e.g. `30s`, `500ms`, `2m`.
    #[arg(long, value_parser = duration(Unit::Secs, Zero::Refused), requires = "rate")]
    pub duration: Option<Duration>,
    /// Open loop: most requests in flight at once (more wait, and count as late).
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// Requests sent before measuring, excluded from every figure.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Seconds before one request counts as timed out (or e.g. `2m`).
    #[arg(long, default_value = "120", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub timeout: Duration,
    /// Ask calos for fresh answers (`Cache-Control: no-cache`).
    #[arg(long)]
    pub no_cache: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Draw the latency histogram and latency over time to FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub compare: BaselineArgs,
}

/// A throwaway account.
struct Ephemeral {
    username: String,
    password: String,
    token: String,
}

fn random_password() -> String {
    use rand::Rng;
    let bytes: [u8; 18] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// Registers `count` accounts, four at a time, stopping early on `stop`. Every
/// account made is in `made` even when a later one fails.
async fn register_users(
    gateway: &Gateway,
    count: usize,
    made: &Mutex<Vec<Ephemeral>>,
    stop: &CancellationToken,
) -> Result<(), ToolError> {
    let stamp = chrono::Utc::now().timestamp_millis();
    let mut pending = futures::stream::iter(0..count)
        .map(|n| async move {
            let username = format!("{EPHEMERAL_PREFIX}{stamp}-{n}");
            let password = random_password();
            let token = gateway.register(&username, &password).await?;
            Ok::<_, ToolError>(Ephemeral {
                username,
                password,
                token,
            })
        })
        .buffer_unordered(4);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            next = pending.next() => next,
        };
        match next {
            Some(Ok(user)) => made.lock().push(user),
            Some(Err(e)) => return Err(e),
            None => return Ok(()),
        }
    }
}

/// Deletes the accounts; says which could not be deleted and how to finish.
async fn remove_users(gateway: &Gateway, users: Vec<Ephemeral>, quiet: bool) {
    if users.is_empty() {
        return;
    }
    let total = users.len();
    let failed: Vec<String> = futures::stream::iter(users)
        .map(|u| async move {
            match gateway.delete_account(&u.token, &u.password).await {
                Ok(()) => None,
                Err(e) => Some(format!("{} ({e})", u.username)),
            }
        })
        .buffer_unordered(4)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    if !failed.is_empty() {
        eprintln!(
            "calos load: {} of {total} ephemeral account(s) could not be deleted: {}; remove them with `calos users prune {EPHEMERAL_PREFIX}`",
            failed.len(),
            failed.join(", ")
        );
    } else if !quiet {
        eprintln!("calos load: deleted the {total} ephemeral account(s)");
    }
}

fn progress(total: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Sends `plan` and collects the outcomes, updating the progress bar.
async fn measure(
    target: Arc<engine::Target>,
    plan: Plan,
    stop: CancellationToken,
    bar: ProgressBar,
) -> Result<Recorder, ToolError> {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sender = tokio::spawn(engine::run(target, plan, tx, stop));
    let mut recorder = Recorder::new(started);
    let mut shown = Instant::now();
    while let Some(shot) = rx.recv().await {
        recorder.add(shot);
        bar.inc(1);
        if shown.elapsed() >= Duration::from_millis(200) {
            shown = Instant::now();
            let q = |p: f64| recorder.latency.value_at_quantile(p) as f64 / 1000.0;
            bar.set_message(format!(
                "{:.1} req/s | errors {} | p50 {:.1} ms | p99 {:.1} ms",
                recorder.rate(shown),
                recorder.failed(),
                q(0.5),
                q(0.99)
            ));
        }
    }
    bar.finish_and_clear();
    sender
        .await
        .map_err(|e| anyhow::anyhow!("the load generator stopped: {e}"))??;
    Ok(recorder)
}

/// Runs the load test and returns the process exit code.
pub async fn run(args: LoadArgs) -> Result<u8, ToolError> {
    if args.users == 0 {
        return Err(anyhow::anyhow!("--users must be at least 1").into());
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(anyhow::anyhow!("--rate must be a positive number").into());
    }
    // Signing in and the ephemeral accounts go through reqwest; the load itself
    // through the connections in `conn`.
    let gateway = Gateway::new(&args.url, http_client(4)?);
    let stop = CancellationToken::new();
    let watcher = stop.clone();
    let signals = tokio::spawn(async move {
        crate::shutdown::stop_signal().await;
        watcher.cancel();
    });
    let made = Mutex::new(Vec::new());
    let outcome = load(&args, &gateway, &made, &stop).await;
    signals.abort();
    let users = std::mem::take(&mut *made.lock());
    remove_users(&gateway, users, args.json).await;
    outcome
}

async fn load(
    args: &LoadArgs,
    gateway: &Gateway,
    made: &Mutex<Vec<Ephemeral>>,
    stop: &CancellationToken,
) -> Result<u8, ToolError> {
    // A wrong baseline path should not cost a whole run.
    let baseline = args.compare.read_baseline()?;
    let tokens = if args.ephemeral_users {
        register_users(gateway, args.users, made, stop).await?;
        made.lock().iter().map(|u| u.token.clone()).collect()
    } else {
        let signed_in = gateway.sign_in(&args.sign_in.credentials()?).await?;
        signed_in.token.into_iter().collect::<Vec<_>>()
    };
    if stop.is_cancelled() {
        return Ok(EXIT_INTERRUPTED);
    }
    let target = Arc::new(engine::target(
        &args.url,
        args.api,
        (&args.model, &args.prompt, args.stream),
        args.no_cache,
        args.timeout,
        &tokens,
    )?);
    let quiet = args.json;
    let mut warmed = 0;
    if args.warmup > 0 {
        let users = args.users.min(args.warmup as usize).max(1);
        let plan = Plan::Closed {
            users,
            per_user: args.warmup.div_ceil(users as u64),
        };
        let recorder = measure(
            target.clone(),
            plan,
            stop.clone(),
            progress(plan.total(), true),
        )
        .await?;
        warmed = recorder.total();
    }
    let plan = match (args.rate, args.duration) {
        (Some(rate), Some(duration)) => Plan::Open {
            rate,
            duration,
            max_in_flight: args.max_in_flight,
        },
        _ => Plan::Closed {
            users: args.users,
            per_user: args.requests_per_user,
        },
    };
    let recorder = measure(target, plan, stop.clone(), progress(plan.total(), quiet)).await?;
    let interrupted = stop.is_cancelled();
    let setup = Setup {
        url: format!("{}{}", gateway.base, args.api.path()),
        model: args.model.clone(),
        stream: args.stream,
        users: args.users,
        requests_per_user: args.rate.is_none().then_some(args.requests_per_user),
        rate: args.rate,
        warmup: warmed,
    };
    let mut report = LoadReport::build(&setup, &recorder, interrupted);
    let runs = recorder.components.runs();
    if let Some(path) = &args.compare.save {
        if runs.is_empty() {
            eprintln!("calos load: no response carried the server's timings; nothing to save");
        } else {
            SavedRuns::new("load", &setup.url, &args.model, args.stream, runs).write(path)?;
        }
    }
    if let Some(saved) = &baseline {
        report.comparison = compare::compare(
            saved,
            args.compare.baseline.as_deref(),
            runs,
            &args.compare,
            &args.model,
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?
        );
    } else {
        print!("{}", report::render(&report));
    }
    if let Some(path) = &args.plot {
        let title = format!("calos load: {} ({})", setup.url, report.mode);
        crate::charts::plot::draw(path, &recorder.timeline, &title)?;
        if !quiet {
            eprintln!("calos load: chart written to {}", path.display());
        }
    }
    if interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    let total = recorder.total();
    if total > 0 && recorder.ok == 0 {
        let only_transport = recorder
            .failures
            .keys()
            .all(|f| matches!(f, Failure::Transport | Failure::Timeout));
        let example = recorder
            .failure_samples
            .values()
            .next()
            .cloned()
            .unwrap_or_default();
        return Err(if only_transport {
            ToolError::Unreachable(example)
        } else {
            ToolError::Refused(format!("every request failed, e.g. {example}"))
        });
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        // `--duration` uses the shared duration parser.
        let parse_duration = duration(Unit::Secs, Zero::Refused);
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn open_and_closed_plans_count_their_requests() {
        assert_eq!(
            Plan::Closed {
                users: 10,
                per_user: 10
            }
            .total(),
            100
        );
        let open = Plan::Open {
            rate: 50.0,
            duration: Duration::from_secs(2),
            max_in_flight: 10,
        };
        assert_eq!(open.total(), 100);
    }
}
