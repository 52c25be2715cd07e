//! The `[[deployment]]` and `[[fallback]]` tables of the config file, and
//! the checks they need on their own (`setup::build_router` checks what
//! needs the rest of the configuration, such as whether a fallback's model
//! exists).
//!
//! ```toml
//! [[deployment]]
//! model = "llama3.2"             # the name clients ask for
//! provider = "ollama"            # ollama | openai | deepseek | compat | sim
//! url = "http://gpu-a:11434"
//! upstream_model = "llama3.2:8b" # optional; defaults to `model`
//! weight = 2                     # optional, 1 by default
//! max_concurrency = 4            # optional, per deployment
//! name = "gpu-a"                 # optional; defaults to `llama3.2#1`
//! api_key_env = "GPU_A_KEY"      # optional: the variable holding its key
//!
//! [[fallback]]
//! model = "llama3.2"
//! to = ["gpt-4o-mini"]           # tried in order when llama3.2 cannot answer
//! ```

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;

/// The providers a deployment may name.
pub const PROVIDERS: &[&str] = &["ollama", "openai", "deepseek", "compat", "sim"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub model: String,
    pub provider: String,
    /// Required for `ollama` and `compat`; `openai` and `deepseek` default
    /// to their public APIs (or their `*_BASE_URL`).
    pub url: Option<String>,
    pub upstream_model: Option<String>,
    #[serde(default = "one")]
    pub weight: u32,
    pub max_concurrency: Option<NonZeroUsize>,
    pub name: Option<String>,
    /// The environment variable holding this deployment's API key (a key
    /// never goes in the file). Defaults to the provider's usual variable.
    pub api_key_env: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FallbackSpec {
    pub model: String,
    pub to: Vec<String>,
}

/// The deployments' names, in order: `name`, or `model#n` counting the
/// model's deployments from 1. Names label metrics and appear in replies,
/// which is why the default names no host.
pub fn names(deployments: &[DeploymentSpec]) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    deployments
        .iter()
        .map(|d| {
            let n = counts.entry(d.model.as_str()).or_default();
            *n += 1;
            d.name.clone().unwrap_or_else(|| format!("{}#{n}", d.model))
        })
        .collect()
}

/// Names a `[[deployment]]` may not take: the providers set by environment
/// are deployments under these names, and Mission Control's board has the
/// others.
const RESERVED: &[&str] = &[
    "ollama", "openai", "deepseek", "compat", "sim", "server", "database",
];

/// A name or model safe in a metric label, a header and a log line.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/#@+".contains(c))
}

/// Checks what the tables say on their own: known providers, sane values,
/// unique names, and fallbacks that do not loop.
pub fn check(deployments: &[DeploymentSpec], fallbacks: &[FallbackSpec]) -> anyhow::Result<()> {
    let names = names(deployments);
    let mut seen = HashSet::new();
    for (d, name) in deployments.iter().zip(&names) {
        anyhow::ensure!(
            plain(&d.model),
            "deployment model {:?}: use 1-128 of A-Z a-z 0-9 - _ . : / # @ +",
            d.model
        );
        anyhow::ensure!(
            plain(name),
            "deployment name {name:?}: use 1-128 of A-Z a-z 0-9 - _ . : / # @ +"
        );
        anyhow::ensure!(
            seen.insert(name.as_str()),
            "deployment {name:?} is declared twice"
        );
        anyhow::ensure!(
            !RESERVED.contains(&name.as_str()),
            "deployment name {name:?} is taken (by a provider or a health check); choose another"
        );
        // Names reach every client (replies, Server-Timing): an address
        // there would tell them where the model runs.
        anyhow::ensure!(
            !name.contains("://"),
            "deployment name {name:?} looks like an address; names are shown to clients, so use a plain one"
        );
        anyhow::ensure!(
            PROVIDERS.contains(&d.provider.as_str()),
            "deployment {name:?}: unknown provider {:?}; use one of {}",
            d.provider,
            PROVIDERS.join(", ")
        );
        anyhow::ensure!(
            d.url.is_some() || !matches!(d.provider.as_str(), "ollama" | "compat"),
            "deployment {name:?}: a {} deployment needs a url",
            d.provider
        );
        anyhow::ensure!(
            (1..=1000).contains(&d.weight),
            "deployment {name:?}: weight must be 1-1000"
        );
        if let Some(upstream) = &d.upstream_model {
            anyhow::ensure!(
                !upstream.trim().is_empty() && upstream.len() <= 256,
                "deployment {name:?}: upstream_model is empty or too long"
            );
        }
    }
    let mut graph: HashMap<&str, Vec<&str>> = HashMap::new();
    for f in fallbacks {
        anyhow::ensure!(
            plain(&f.model),
            "fallback model {:?}: not a model name",
            f.model
        );
        anyhow::ensure!(
            !f.to.is_empty(),
            "fallback for {:?} names no model",
            f.model
        );
        for to in &f.to {
            anyhow::ensure!(
                plain(to),
                "fallback {:?} → {to:?}: not a model name",
                f.model
            );
        }
        let edges = graph.entry(f.model.as_str()).or_default();
        anyhow::ensure!(
            edges.is_empty(),
            "fallback for {:?} is declared twice",
            f.model
        );
        edges.extend(f.to.iter().map(String::as_str));
    }
    if let Some(cycle) = find_cycle(&graph) {
        anyhow::bail!("fallbacks loop: {}", cycle.join(" → "));
    }
    Ok(())
}

/// A loop in the fallback graph, as the models along it (first repeated last).
fn find_cycle<'a>(graph: &HashMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        graph: &HashMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|&n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for &next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut starts: Vec<&str> = graph.keys().copied().collect();
    starts.sort_unstable();
    let mut done = HashSet::new();
    starts
        .into_iter()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Tables {
            #[serde(default, rename = "deployment")]
            deployments: Vec<DeploymentSpec>,
            #[serde(default, rename = "fallback")]
            fallbacks: Vec<FallbackSpec>,
        }
        let t: Tables = toml::from_str(text)?;
        check(&t.deployments, &t.fallbacks)
    }

    fn error(text: &str) -> String {
        parse(text).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_documented_example_is_accepted_and_named() {
        let doc = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("[[deployment]]"))
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&doc).is_ok(), "{doc}\n{:?}", parse(&doc));
        let at = |url: &str| DeploymentSpec {
            model: "m".into(),
            provider: "ollama".into(),
            url: Some(url.into()),
            upstream_model: None,
            weight: 1,
            max_concurrency: None,
            name: None,
            api_key_env: None,
        };
        let two = [at("http://a"), at("http://b")];
        assert_eq!(names(&two), vec!["m#1", "m#2"]);
    }

    #[test]
    fn unknown_providers_duplicates_and_bad_values_are_refused() {
        let unknown = "[[deployment]]\nmodel='m'\nprovider='bedrock'\nurl='http://a'\n";
        assert!(
            error(unknown).contains("unknown provider \"bedrock\""),
            "{}",
            error(unknown)
        );
        let no_url = "[[deployment]]\nmodel='m'\nprovider='ollama'\n";
        assert!(error(no_url).contains("needs a url"));
        let twice = "[[deployment]]\nname='a'\nmodel='m'\nprovider='sim'\n[[deployment]]\nname='a'\nmodel='n'\nprovider='sim'\n";
        assert!(error(twice).contains("declared twice"));
        let weight = "[[deployment]]\nmodel='m'\nprovider='sim'\nweight=0\n";
        assert!(error(weight).contains("weight"));
        let typo = "[[deployment]]\nmodel='m'\nprovider='sim'\nwieght=2\n";
        assert!(error(typo).contains("wieght"), "{}", error(typo));
        let taken = "[[deployment]]\nname='ollama'\nmodel='m'\nprovider='sim'\n";
        assert!(error(taken).contains("is taken"), "{}", error(taken));
        let address = "[[deployment]]\nname='http://10.0.0.5:11434'\nmodel='m'\nprovider='sim'\n";
        assert!(
            error(address).contains("looks like an address"),
            "{}",
            error(address)
        );
        let quote = "[[deployment]]\nmodel='m\"x'\nprovider='sim'\n";
        assert!(error(quote).contains("use 1-128"));
    }

    #[test]
    fn fallback_cycles_are_refused_with_the_loop_named() {
        let cycle = "[[fallback]]\nmodel='a'\nto=['b']\n[[fallback]]\nmodel='b'\nto=['c']\n[[fallback]]\nmodel='c'\nto=['a']\n";
        assert_eq!(error(cycle), "fallbacks loop: a → b → c → a");
        let to_itself = "[[fallback]]\nmodel='a'\nto=['a']\n";
        assert_eq!(error(to_itself), "fallbacks loop: a → a");
        let chain = "[[fallback]]\nmodel='a'\nto=['b', 'c']\n[[fallback]]\nmodel='b'\nto=['c']\n";
        assert!(parse(chain).is_ok(), "a diamond is not a loop");
        assert!(error("[[fallback]]\nmodel='a'\nto=[]\n").contains("names no model"));
    }
}
