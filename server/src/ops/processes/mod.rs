//! The process manager: starts the processes declared in the config file,
//! captures their output into the log feed, restarts them PM2-style (on
//! failure or always, with exponential backoff reset by a stable run), gives up
//! on a crash loop, takes start/stop/restart orders from Mission Control, and
//! stops them (SIGTERM, then SIGKILL) when calos shuts down.
//!
//! Among several replicas only the leader runs them (`cluster::leader`): the
//! others keep every supervisor on standby and take over when the leader goes.

pub mod config;

use crate::observability::exporter::Exporter;
use crate::observability::logs::LogRing;
use app::wire::{ProcessStatus as Status, ProcessView, RestartPolicy};
use config::ProcessSpec;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Start,
    Stop,
    Restart,
}

struct State {
    status: Status,
    pid: Option<u32>,
    since: Option<Instant>,
    restarts: u32,
    last_exit_code: Option<i32>,
    last_error: Option<String>,
}

struct Managed {
    spec: ProcessSpec,
    state: Mutex<State>,
    orders: mpsc::Sender<Order>,
}

impl Managed {
    fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock());
    }

    fn view(&self) -> ProcessView {
        let s = self.state.lock();
        let (status, pid, uptime, restarts, code, error) = (
            s.status,
            s.pid,
            s.since
                .filter(|_| s.status == Status::Running)
                .map(|t| t.elapsed().as_secs_f64()),
            s.restarts,
            s.last_exit_code,
            s.last_error.clone(),
        );
        drop(s);
        ProcessView {
            name: self.spec.name.clone(),
            command: std::iter::once(self.spec.command.clone())
                .chain(self.spec.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            status,
            pid,
            uptime_secs: uptime,
            restarts,
            last_exit_code: code,
            last_error: error,
            health: self.spec.health.clone(),
            restart: self.spec.restart,
        }
    }
}

/// Handle to every managed process. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProcessManager {
    processes: Arc<Vec<Arc<Managed>>>,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
    shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
#[error("no managed process is called {0:?}")]
pub struct NoSuchProcess(pub String);

impl ProcessManager {
    /// Starts a supervisor per process. Each runs its process while `leading`
    /// holds `true`, and stands by while it holds `false`.
    pub fn start(
        specs: Vec<ProcessSpec>,
        logs: LogRing,
        exporter: Exporter,
        leading: watch::Receiver<bool>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut processes = Vec::new();
        for spec in specs {
            let (orders, inbox) = mpsc::channel(8);
            let managed = Arc::new(Managed {
                spec,
                state: Mutex::new(State {
                    status: Status::Starting,
                    pid: None,
                    since: None,
                    restarts: 0,
                    last_exit_code: None,
                    last_error: None,
                }),
                orders,
            });
            let supervisor = Supervisor {
                managed: managed.clone(),
                logs: logs.clone(),
                exporter: exporter.clone(),
                shutdown: shutdown.clone(),
                leading: leading.clone(),
            };
            tasks.spawn(supervisor.run(inbox));
            processes.push(managed);
        }
        Self {
            processes: Arc::new(processes),
            tasks: Arc::new(Mutex::new(Some(tasks))),
            shutdown,
        }
    }

    pub fn list(&self) -> Vec<ProcessView> {
        self.processes.iter().map(|m| m.view()).collect()
    }

    pub async fn order(&self, name: &str, order: Order) -> Result<(), NoSuchProcess> {
        let managed = self
            .processes
            .iter()
            .find(|m| m.spec.name == name)
            .ok_or_else(|| NoSuchProcess(name.to_string()))?;
        let _ = managed.orders.send(order).await;
        Ok(())
    }

    /// Stops every process and waits for them (each within its stop timeout).
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let tasks = self.tasks.lock().take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

struct Supervisor {
    managed: Arc<Managed>,
    logs: LogRing,
    exporter: Exporter,
    shutdown: CancellationToken,
    /// Whether this replica is the one that runs managed processes.
    leading: watch::Receiver<bool>,
}

/// How a run ended.
enum Ended {
    Exited(Option<i32>),
    Ordered(Order),
    Shutdown,
    /// Another replica leads now.
    Deposed,
}

impl Supervisor {
    fn source(&self) -> String {
        format!("process:{}", self.managed.spec.name)
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let spec = &self.managed.spec;
        let mut command = Command::new(&spec.command);
        command
            .args(&spec.args)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn()?;
        if let Some(out) = child.stdout.take() {
            self.capture(out, "info");
        }
        if let Some(err) = child.stderr.take() {
            self.capture(err, "warn");
        }
        Ok(child)
    }

    /// Copies a pipe's lines into the log feed until it closes.
    fn capture(&self, pipe: impl AsyncRead + Unpin + Send + 'static, level: &'static str) {
        let (logs, source) = (self.logs.clone(), self.source());
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.push(level, &source, &line);
            }
        });
    }

    /// SIGTERM, then SIGKILL after the stop timeout.
    async fn stop(&self, child: &mut Child) -> Option<i32> {
        if let Some(pid) = child.id() {
            // `kill` the command: sending a signal from Rust needs unsafe libc calls.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let grace = Duration::from_secs(self.managed.spec.stop_timeout_secs);
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    async fn run_once(&mut self, child: &mut Child, inbox: &mut mpsc::Receiver<Order>) -> Ended {
        loop {
            tokio::select! {
                changed = self.leading.changed() => {
                    if changed.is_err() || !*self.leading.borrow() {
                        self.stop(child).await;
                        return Ended::Deposed;
                    }
                }
                status = child.wait() => return Ended::Exited(status.ok().and_then(|s| s.code())),
                order = inbox.recv() => match order {
                    Some(Order::Start) => continue,
                    Some(order) => {
                        self.stop(child).await;
                        return Ended::Ordered(order);
                    }
                    None => return Ended::Shutdown,
                },
                _ = self.shutdown.cancelled() => {
                    self.stop(child).await;
                    return Ended::Shutdown;
                }
            }
        }
    }

    /// Waits while stopped: for a start/restart order, or shutdown.
    async fn wait_for_start(&self, inbox: &mut mpsc::Receiver<Order>) -> bool {
        loop {
            tokio::select! {
                order = inbox.recv() => match order {
                    Some(Order::Start | Order::Restart) => return true,
                    Some(Order::Stop) => continue,
                    None => return false,
                },
                _ = self.shutdown.cancelled() => return false,
            }
        }
    }

    /// Stands by until this replica leads (true), or calos shuts down (false).
    /// Orders given meanwhile are dropped: the leader's copy is the one to order.
    async fn wait_to_lead(&mut self, inbox: &mut mpsc::Receiver<Order>) -> bool {
        if *self.leading.borrow_and_update() {
            return true;
        }
        self.managed.set(|s| {
            s.status = Status::Standby;
            s.pid = None;
        });
        let source = self.source();
        self.logs
            .push("info", &source, "standing by: another replica runs it");
        loop {
            tokio::select! {
                changed = self.leading.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    if *self.leading.borrow_and_update() {
                        self.logs.push("info", &source, "this replica leads now: starting");
                        return true;
                    }
                }
                order = inbox.recv() => if order.is_none() { return false },
                _ = self.shutdown.cancelled() => return false,
            }
        }
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Order>) {
        let spec = self.managed.spec.clone();
        let initial = Duration::from_millis(spec.restart_delay_ms.max(1));
        let mut delay = initial;
        let mut recent: VecDeque<Instant> = VecDeque::new();
        let source = self.source();
        loop {
            if !self.wait_to_lead(&mut inbox).await {
                self.managed.set(|s| s.status = Status::Stopped);
                return;
            }
            self.managed.set(|s| s.status = Status::Starting);
            let started = Instant::now();
            let ended = match self.spawn() {
                Ok(mut child) => {
                    let pid = child.id();
                    self.managed.set(|s| {
                        s.status = Status::Running;
                        s.pid = pid;
                        s.since = Some(started);
                    });
                    self.logs.push(
                        "info",
                        &source,
                        &format!("started (pid {})", pid.unwrap_or(0)),
                    );
                    tracing::info!(process = %spec.name, pid = pid.unwrap_or(0), "managed process started");
                    self.run_once(&mut child, &mut inbox).await
                }
                Err(e) => {
                    let why = format!("could not start {:?}: {e}", spec.command);
                    self.managed.set(|s| s.last_error = Some(why.clone()));
                    Ended::Exited(None)
                }
            };
            self.managed.set(|s| s.pid = None);
            let code = match ended {
                Ended::Shutdown => {
                    self.managed.set(|s| s.status = Status::Stopped);
                    return;
                }
                Ended::Deposed => {
                    delay = initial;
                    continue;
                }
                Ended::Ordered(Order::Restart) => {
                    delay = initial;
                    continue;
                }
                Ended::Ordered(_) => {
                    self.managed.set(|s| s.status = Status::Stopped);
                    self.logs
                        .push("info", &source, "stopped by an administrator");
                    if !self.wait_for_start(&mut inbox).await {
                        return;
                    }
                    delay = initial;
                    continue;
                }
                Ended::Exited(code) => code,
            };
            let failed = code != Some(0);
            self.managed.set(|s| {
                s.last_exit_code = code;
                if failed && s.last_error.is_none() {
                    s.last_error = Some(match code {
                        Some(c) => format!("exited with code {c}"),
                        None => "killed by a signal".into(),
                    });
                }
            });
            let level = if failed { "error" } else { "info" };
            self.logs.push(
                level,
                &source,
                &format!(
                    "exited (code {})",
                    code.map_or("none".into(), |c| c.to_string())
                ),
            );
            tracing::warn!(process = %spec.name, ?code, "managed process exited");
            let restart = match spec.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => failed,
                RestartPolicy::Never => false,
            };
            if !restart {
                self.managed.set(|s| s.status = Status::Exited);
                if !self.wait_for_start(&mut inbox).await {
                    return;
                }
                continue;
            }
            // A stable run forgives earlier failures (PM2's backoff reset).
            if started.elapsed() >= Duration::from_secs(spec.stable_after_secs) {
                delay = initial;
            }
            let window = Duration::from_secs(spec.crash_loop_window_secs);
            recent.push_back(Instant::now());
            while recent.front().is_some_and(|t| t.elapsed() > window) {
                recent.pop_front();
            }
            if recent.len() as u32 > spec.crash_loop_restarts {
                self.managed.set(|s| s.status = Status::CrashLoop);
                self.logs.push("error", &source, &format!(
                    "crash loop: {} restarts within {} s; not restarting until an administrator starts it",
                    recent.len(), spec.crash_loop_window_secs
                ));
                recent.clear();
                if !self.wait_for_start(&mut inbox).await {
                    return;
                }
                delay = initial;
                continue;
            }
            self.managed.set(|s| s.status = Status::Restarting);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                order = inbox.recv() => match order {
                    // Start or restart now: skip the rest of the delay.
                    Some(Order::Start | Order::Restart) => {}
                    Some(Order::Stop) => {
                        self.managed.set(|s| s.status = Status::Stopped);
                        if !self.wait_for_start(&mut inbox).await {
                            return;
                        }
                        delay = initial;
                        continue;
                    }
                    None => return,
                },
                _ = self.shutdown.cancelled() => {
                    self.managed.set(|s| s.status = Status::Stopped);
                    return;
                }
            }
            delay = (delay * 2).min(Duration::from_millis(spec.max_restart_delay_ms.max(1)));
            self.managed.set(|s| s.restarts += 1);
            self.exporter.process_restarted(&spec.name);
        }
    }
}
