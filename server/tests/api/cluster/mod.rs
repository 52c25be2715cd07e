//! Several `calos serve` processes as one service: HAProxy (Debian's, started
//! here on loopback ports with the repository's own `deploy/haproxy.cfg`)
//! round-robins over two replicas that share a fresh PostgreSQL database and
//! a private `redis-server`, which the tests may stop and start again.
//!
//! Replicas are real processes of the real binary, so SIGTERM, SIGKILL and
//! failover are the real thing.

mod lifecycle;
mod shared_state;

use crate::helpers::PgDatabase;
use server::emulators::mock_llm::MockServer;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_calos");
/// Every replica signs with this (a test value, long enough for calos).
const JWT_SECRET: &str = "cluster-test-secret-0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A child process killed (SIGKILL) when dropped, unless it already ended.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}

/// A `redis-server` of the test's own: nothing on disk, stoppable.
pub struct Redis {
    pub port: u16,
    process: Option<Owned>,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            process: None,
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again) on its port and waits until it answers.
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.process = Some(Owned(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Stops it abruptly, as a crash would.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// One `redis-cli` command's output.
    pub fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

/// One `calos serve` process.
pub struct Replica {
    pub name: String,
    pub api: String,
    pub dashboard: String,
    pub api_port: u16,
    pub dashboard_port: u16,
    process: Option<Owned>,
    log: PathBuf,
}

impl Replica {
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.0.id())
    }

    /// SIGTERM: the graceful way out.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "TERM");
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Waits for the process to exit; its status, or None after `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        let process = self.process.as_mut()?;
        while started.elapsed() < deadline {
            if let Ok(Some(status)) = process.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What the replica logged (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How a cluster is made.
#[derive(Clone, Default)]
pub struct Plan {
    /// Extra environment for every replica.
    pub env: Vec<(String, String)>,
    /// A config file's text (e.g. `[[process]]` tables) given to every replica.
    pub config: Option<String>,
    /// Environment for one replica only, by index.
    pub per_replica: Vec<Vec<(String, String)>>,
    /// The mock model's tokens per second (0: as fast as it can).
    pub tokens_per_sec: f64,
}

/// HAProxy, two replicas, their PostgreSQL database and their Redis.
pub struct Cluster {
    pub balancer: String,
    pub replicas: Vec<Replica>,
    pub redis: Redis,
    pub pg: PgDatabase,
    pub mock: MockServer,
    pub client: reqwest::Client,
    dir: tempfile::TempDir,
    plan: Plan,
    _haproxy: Owned,
}

/// Skips (with a message) where HAProxy or Redis is not installed: `./dev
/// test` installs both, so CI always runs these.
pub fn tools_present() -> bool {
    let present = have("haproxy") && have("redis-server") && have("redis-cli");
    if !present {
        eprintln!(
            "skipping: haproxy, redis-server and redis-cli are needed (./dev setup installs them)"
        );
    }
    present
}

impl Cluster {
    pub async fn start(plan: Plan) -> Self {
        let redis = Redis::start();
        let pg = PgDatabase::create().await;
        let mock = crate::helpers::mock(5, plan.tokens_per_sec, 8).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let balancer_port = free_port();
        let balancer = format!("http://127.0.0.1:{balancer_port}");
        if let Some(config) = &plan.config {
            std::fs::write(dir.path().join("calos.toml"), config).expect("config written");
        }
        let cluster_dir = dir;
        let replicas: Vec<Replica> = (1..=2)
            .map(|n| {
                spawn_replica(
                    n - 1,
                    &cluster_dir,
                    &pg.url,
                    &redis.url(),
                    &mock,
                    &balancer,
                    &plan,
                )
            })
            .collect();
        let haproxy = start_haproxy(&cluster_dir, balancer_port, &replicas);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let cluster = Self {
            balancer,
            replicas,
            redis,
            pg,
            mock,
            client,
            dir: cluster_dir,
            plan,
            _haproxy: haproxy,
        };
        cluster.wait_until_both_answer_through_the_balancer().await;
        cluster
    }

    async fn wait_until_both_answer_through_the_balancer(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = std::collections::BTreeSet::new();
        while Instant::now() < deadline && seen.len() < self.replicas.len() {
            if let Ok(response) = self.client.get(self.url("/api/health")).send().await {
                if response.status() == 200 {
                    if let Some(name) = replica_of(&response) {
                        seen.insert(name);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            seen.len(),
            self.replicas.len(),
            "both replicas answer through HAProxy; logs:\n{}",
            self.logs()
        );
    }

    /// `path` through the balancer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.balancer)
    }

    /// Every replica's log, for assertion messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}", r.name, r.log()))
            .collect()
    }

    /// Starts a replica again under its old name (new ports, not behind
    /// the balancer).
    pub fn restart(&mut self, index: usize) {
        self.replicas[index] = spawn_replica(
            index,
            &self.dir,
            &self.pg.url,
            &self.redis.url(),
            &self.mock,
            &self.balancer,
            &self.plan,
        );
    }

    /// Registers and signs in an account through the balancer; its token.
    pub async fn new_user(&self, prefix: &str) -> (String, String) {
        let username = crate::helpers::unique(prefix);
        let password = "correct horse battery staple";
        let registered = self
            .client
            .post(self.url("/api/auth/register"))
            .json(&serde_json::json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": password,
            }))
            .send()
            .await
            .expect("register");
        assert!(
            registered.status().is_success(),
            "{:?}",
            registered.text().await
        );
        let login = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), 200);
        let body: serde_json::Value = login.json().await.expect("login body");
        let token = body["token"].as_str().expect("token").to_string();
        (username, token)
    }

    /// Makes `username` an administrator, in the database.
    pub async fn promote(&self, username: &str) {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&self.pg.url)
            .await
            .expect("database");
        sqlx::query("update users set role = 'admin' where username = $1")
            .bind(username)
            .execute(&mut db)
            .await
            .expect("promoted");
    }

    /// `user_id` of the account behind `token`.
    pub async fn user_id(&self, token: &str) -> String {
        let me: serde_json::Value = self
            .client
            .get(self.url("/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("me")
            .json()
            .await
            .expect("me body");
        me["user"]["userId"].as_str().expect("userId").to_string()
    }
}

/// The replica that answered.
pub fn replica_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-calos-replica")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn spawn_replica(
    index: usize,
    dir: &tempfile::TempDir,
    database_url: &str,
    redis_url: &str,
    mock: &MockServer,
    public_url: &str,
    plan: &Plan,
) -> Replica {
    let name = &format!("r{}", index + 1);
    let data = dir.path().join(name);
    std::fs::create_dir_all(&data).expect("data dir");
    let log = dir.path().join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let compat = format!("{}/v1", mock.url());
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--local", "--port", "0", "--dashboard-port", "0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CALOS_DATA_DIR", &data)
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("CALOS_REPLICA_ID", name)
        .env("CALOS_JWT_SECRET", JWT_SECRET)
        .env("CALOS_PUBLIC_URL", public_url)
        .env("CALOS_TRUSTED_PROXIES", "127.0.0.1")
        .env("OLLAMA_URL", mock.url())
        .env("CALOS_COMPAT_URL", &compat)
        .env("CALOS_MODEL_ROUTES", "mock-gpt=compat")
        .env("CALOS_RETRY_BACKOFF_MS", "20")
        .env("CALOS_PROBE_INTERVAL_SECS", "1")
        .env("LOG_LEVEL", "info")
        .envs(plan.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(
            plan.per_replica
                .get(index)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    if plan.config.is_some() {
        command.env("CALOS_CONFIG", dir.path().join("calos.toml"));
    }
    let mut child = command.spawn().expect("calos starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let urls: Vec<String> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| w.starts_with("http://"))
        .map(str::to_string)
        .collect();
    let process = Owned(child);
    assert_eq!(
        urls.len(),
        2,
        "{name} prints where it listens; got {line:?}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let port = |url: &str| -> u16 {
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    };
    Replica {
        name: name.to_string(),
        api_port: port(&urls[0]),
        dashboard_port: port(&urls[1]),
        api: urls[0].clone(),
        dashboard: urls[1].clone(),
        process: Some(process),
        log,
    }
}

/// HAProxy with the repository's own configuration, pointed at the replicas
/// by its environment variables, checking health every 2 s.
fn start_haproxy(dir: &tempfile::TempDir, port: u16, replicas: &[Replica]) -> Owned {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy.cfg");
    let address = |p: u16| format!("127.0.0.1:{p}");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .env("CALOS_LB_BIND", address(port))
        .env("CALOS_LB_DASHBOARD_BIND", address(free_port()))
        .env("CALOS_LB_STATS_BIND", address(free_port()))
        .env("CALOS_REPLICA_1", address(replicas[0].api_port))
        .env("CALOS_REPLICA_2", address(replicas[1].api_port))
        .env(
            "CALOS_REPLICA_1_DASHBOARD",
            address(replicas[0].dashboard_port),
        )
        .env(
            "CALOS_REPLICA_2_DASHBOARD",
            address(replicas[1].dashboard_port),
        )
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is installed");
    Owned(child)
}

/// Asserts `check` becomes true within `limit`; returns how long it took.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
