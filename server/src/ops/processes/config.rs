//! The config file given by `--config` / `CALOS_CONFIG`: the process
//! manager's `[[process]]` and `[[target]]` tables, and the routing's
//! `[[deployment]]` and `[[fallback]]` tables (their shape is in `llm::config`).
//!
//! ```toml
//! [[process]]
//! name = "ollama"
//! command = "ollama"
//! args = ["serve"]
//! restart = "on-failure"          # always | on-failure | never
//! health = "http://127.0.0.1:11434/api/tags"
//!
//! [[target]]
//! name = "minio"
//! url = "http://127.0.0.1:9000/minio/health/live"
//! ```

// `restart = "always" | "on-failure" | "never"`: the words Mission Control
// shows too, so the type is the wire one the dashboard reads.
use crate::llm::config::{DeploymentSpec, FallbackSpec};
use app::wire::RestartPolicy;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn default_restart_delay_ms() -> u64 {
    1_000
}
fn default_max_restart_delay_ms() -> u64 {
    60_000
}
fn default_stable_after_secs() -> u64 {
    30
}
fn default_crash_loop_restarts() -> u32 {
    10
}
fn default_crash_loop_window_secs() -> u64 {
    60
}
fn default_stop_timeout_secs() -> u64 {
    10
}

/// One managed process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// An HTTP URL answering 2xx when the process is healthy (shown in Mission Control).
    pub health: Option<String>,
    /// First restart delay; doubles on each quick failure (PM2's exponential backoff).
    #[serde(default = "default_restart_delay_ms")]
    pub restart_delay_ms: u64,
    #[serde(default = "default_max_restart_delay_ms")]
    pub max_restart_delay_ms: u64,
    /// A run this long resets the delay to `restart_delay_ms`.
    #[serde(default = "default_stable_after_secs")]
    pub stable_after_secs: u64,
    /// This many restarts within `crash_loop_window_secs` is a crash loop: stop trying.
    #[serde(default = "default_crash_loop_restarts")]
    pub crash_loop_restarts: u32,
    #[serde(default = "default_crash_loop_window_secs")]
    pub crash_loop_window_secs: u64,
    /// SIGTERM, then SIGKILL after this long.
    #[serde(default = "default_stop_timeout_secs")]
    pub stop_timeout_secs: u64,
}

/// Something else Mission Control should watch: `http(s)://…` (up on 2xx, e.g.
/// MinIO's `/minio/health/live`) or `tcp://host:port` (up when it accepts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, rename = "process")]
    pub processes: Vec<ProcessSpec>,
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetSpec>,
    #[serde(default, rename = "deployment")]
    pub deployments: Vec<DeploymentSpec>,
    #[serde(default, rename = "fallback")]
    pub fallbacks: Vec<FallbackSpec>,
}

/// Reads and checks the file: names present, unique and URL-safe; commands present.
pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The file at `path`, or an empty configuration without one.
pub fn load_or_default(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
    path.map_or_else(|| Ok(ConfigFile::default()), load)
}

pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
    let config: ConfigFile = toml::from_str(text)?;
    let mut seen = HashSet::new();
    for p in &config.processes {
        let valid_name = !p.name.is_empty()
            && p.name.len() <= 64
            && p.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        anyhow::ensure!(
            valid_name,
            "process name {:?}: use 1-64 of A-Z a-z 0-9 - _ .",
            p.name
        );
        anyhow::ensure!(
            seen.insert(p.name.clone()),
            "process {:?} is declared twice",
            p.name
        );
        anyhow::ensure!(
            !p.command.trim().is_empty(),
            "process {:?} has no command",
            p.name
        );
    }
    crate::llm::config::check(&config.deployments, &config.fallbacks)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_with_defaults() {
        let config = parse(
            r#"
            [[process]]
            name = "ollama"
            command = "ollama"
            args = ["serve"]
            restart = "on-failure"
            health = "http://127.0.0.1:11434/api/tags"
            "#,
        );
        let Ok(config) = config else {
            panic!("{config:?}")
        };
        let p = &config.processes[0];
        assert_eq!(
            (p.restart, p.restart_delay_ms, p.crash_loop_restarts),
            (RestartPolicy::OnFailure, 1000, 10)
        );
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let twice = "[[process]]\nname='a'\ncommand='x'\n[[process]]\nname='a'\ncommand='y'\n";
        assert!(parse(twice)
            .map_err(|e| e.to_string())
            .unwrap_err()
            .contains("twice"));
        assert!(parse("[[process]]\nname='../x'\ncommand='x'\n").is_err());
        assert!(parse("[[process]]\nname='a'\ncommand='x'\nrestrat='always'\n").is_err());
    }
}
