//! Which deployments serve a model. Without a config file, a provider does,
//! by ordered glob rules over the model name, first match wins. Defaults: `sim*` → sim; `gpt-oss*` → ollama (an open-weights
//! family Ollama serves); `gpt-*`, `chatgpt-*`, `o1*`, `o3*`, `o4*` → openai;
//! `deepseek-chat`, `deepseek-reasoner` → deepseek (DeepSeek's API models; other
//! `deepseek-*` names such as `deepseek-r1:7b` are Ollama tags); anything else →
//! ollama. `CALOS_MODEL_ROUTES="pattern=provider,…"` adds rules in front.
//!
//! A model with `[[deployment]]`s in the config file goes to those instead,
//! and a `[[fallback]]` adds other models to try when none of them can answer.

use super::balance::Group;
use super::deployment::Deployment;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub pattern: String,
    pub provider: String,
}

pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("sim*", "sim"),
    ("gpt-oss*", "ollama"),
    ("gpt-*", "openai"),
    ("chatgpt-*", "openai"),
    ("o1*", "openai"),
    ("o3*", "openai"),
    ("o4*", "openai"),
    ("deepseek-chat", "deepseek"),
    ("deepseek-reasoner", "deepseek"),
    ("*", "ollama"),
];

/// One `pattern=provider` item of `CALOS_MODEL_ROUTES` (clap splits the list).
impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(pair: &str) -> Result<Self, String> {
        match pair.split_once('=') {
            Some((p, prov)) if !p.trim().is_empty() && !prov.trim().is_empty() => Ok(Rule {
                pattern: p.trim().to_string(),
                provider: prov.trim().to_string(),
            }),
            _ => Err(format!(
                "bad model route {:?}; expected pattern=provider",
                pair.trim()
            )),
        }
    }
}

/// `*` matches any run of characters; everything else literally, case-insensitively.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_lowercase(), name.to_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == n;
    }
    let mut rest = n.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else {
                return false;
            };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

/// Where one request may go, in order: the deployments of the model asked
/// for, then those of each fallback model.
#[derive(Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
}

#[derive(Debug)]
pub struct Step {
    /// The fallback model this step serves (`None`: the model asked for).
    pub fallback: Option<Arc<str>>,
    pub group: Arc<Group>,
}

#[derive(Debug)]
pub struct ModelRouter {
    rules: Vec<Rule>,
    /// Each provider configured by environment, by provider name.
    implicit: HashMap<String, Arc<Group>>,
    /// `[[deployment]]`s, by the model clients ask for.
    models: HashMap<String, Arc<Group>>,
    /// `[[fallback]]`s: the models to try, in order, for a model.
    fallbacks: HashMap<String, Vec<Arc<str>>>,
    /// Every deployment, implicit ones first, in a stable order.
    all: Vec<Arc<Deployment>>,
}

impl ModelRouter {
    /// `implicit`: one deployment per provider, named after it; `configured`:
    /// the `[[deployment]]`s; `fallbacks`: model → models to try instead.
    pub fn new(
        extra_rules: Vec<Rule>,
        implicit: Vec<Deployment>,
        configured: Vec<Deployment>,
        fallbacks: Vec<(String, Vec<String>)>,
    ) -> Self {
        let mut rules = extra_rules;
        rules.extend(DEFAULT_RULES.iter().map(|(p, prov)| Rule {
            pattern: p.to_string(),
            provider: prov.to_string(),
        }));
        let mut all = Vec::new();
        let mut implicit_groups = HashMap::new();
        for d in implicit {
            let d = Arc::new(d);
            all.push(d.clone());
            implicit_groups.insert(d.provider.name().to_string(), Arc::new(Group::new(vec![d])));
        }
        let mut by_model: Vec<(String, Vec<Arc<Deployment>>)> = Vec::new();
        for d in configured {
            let d = Arc::new(d);
            all.push(d.clone());
            let model = d.model.clone().unwrap_or_default();
            match by_model.iter_mut().find(|(m, _)| *m == model) {
                Some((_, list)) => list.push(d),
                None => by_model.push((model, vec![d])),
            }
        }
        let models = by_model
            .into_iter()
            .map(|(model, list)| (model, Arc::new(Group::new(list))))
            .collect();
        let fallbacks = fallbacks
            .into_iter()
            .map(|(model, to)| (model, to.into_iter().map(Arc::from).collect()))
            .collect();
        Self {
            rules,
            implicit: implicit_groups,
            models,
            fallbacks,
            all,
        }
    }

    /// The deployments of one model: its own `[[deployment]]`s, else the
    /// provider its rule names (or that provider's name, when it does not exist).
    fn group(&self, model: &str) -> Result<&Arc<Group>, String> {
        if let Some(group) = self.models.get(model) {
            return Ok(group);
        }
        let rule = self.rules.iter().find(|r| glob_match(&r.pattern, model));
        let name = rule.map(|r| r.provider.as_str()).unwrap_or("ollama");
        self.implicit.get(name).ok_or_else(|| name.to_string())
    }

    /// Where a request for `model` may go: its deployments, then its
    /// fallbacks' (and theirs, depth first, each model once). Fails with the
    /// name of the provider a rule named but that does not exist.
    pub fn route(&self, model: &str) -> Result<Plan, String> {
        let first = Step {
            fallback: None,
            group: self.group(model)?.clone(),
        };
        let Some(direct) = self.fallbacks.get(model) else {
            return Ok(Plan { steps: vec![first] });
        };
        let mut steps = vec![first];
        let mut seen: HashSet<&str> = HashSet::from([model]);
        let mut pending: Vec<&Arc<str>> = direct.iter().rev().collect();
        while let Some(next) = pending.pop() {
            if !seen.insert(next) {
                continue;
            }
            if let Ok(group) = self.group(next) {
                steps.push(Step {
                    fallback: Some(next.clone()),
                    group: group.clone(),
                });
            }
            if let Some(more) = self.fallbacks.get(&**next) {
                pending.extend(more.iter().rev());
            }
        }
        Ok(Plan { steps })
    }

    /// Whether the operator named this model (a `[[deployment]]`, a fallback,
    /// or a rule without wildcards), rather than a client inventing it: such a
    /// name may label metrics.
    pub fn knows(&self, model: &str) -> bool {
        self.models.contains_key(model)
            || self
                .rules
                .iter()
                .any(|r| r.pattern == model && !r.pattern.contains(['*', '?']))
    }

    /// Whether a model is one calos was told about, for checking fallbacks: it
    /// has `[[deployment]]`s, or a rule other than the catch-all `*` sends it
    /// to a provider that exists.
    pub fn declares(&self, model: &str) -> bool {
        if self.models.contains_key(model) {
            return true;
        }
        self.rules
            .iter()
            .find(|r| glob_match(&r.pattern, model))
            .is_some_and(|r| r.pattern != "*" && self.implicit.contains_key(&r.provider))
    }

    /// Every deployment, implicit ones first.
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.all.iter()
    }

    /// The deployments a request for `model` would go to first.
    pub fn deployments_of(&self, model: &str) -> Result<Vec<Arc<Deployment>>, String> {
        Ok(self.group(model)?.deployments().to_vec())
    }

    /// The routing table, for `calos serve --check-config`.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut models: Vec<&String> = self.models.keys().collect();
        models.sort();
        for model in models {
            let _ = writeln!(out, "{model}");
            for d in self.models[model].deployments() {
                let upstream = d
                    .upstream_model
                    .as_deref()
                    .map(|m| format!(" as {m}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<24} {:<8} {}{upstream}  weight {}  max {} at once",
                    d.name,
                    d.provider.name(),
                    d.provider.address(),
                    d.weight,
                    d.queue.max_concurrency
                );
            }
        }
        let mut fallbacks: Vec<(&String, &Vec<Arc<str>>)> = self.fallbacks.iter().collect();
        fallbacks.sort();
        for (model, to) in fallbacks {
            let to: Vec<&str> = to.iter().map(|m| &**m).collect();
            let _ = writeln!(out, "{model} falls back to {}", to.join(", "));
        }
        let _ = writeln!(out, "other models, by rule (first match):");
        for rule in &self.rules {
            let state = if self.implicit.contains_key(&rule.provider) {
                ""
            } else {
                "  (not configured)"
            };
            let _ = writeln!(out, "  {:<24} {}{state}", rule.pattern, rule.provider);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        assert!(glob_match("gpt-*", "gpt-4o"));
        assert!(glob_match("*", "llama3.2"));
        assert!(glob_match("deepseek-chat", "DeepSeek-Chat"));
        assert!(glob_match("q*-coder*", "qwen2.5-coder:7b"));
        assert!(!glob_match("gpt-*", "chatgpt-4o"));
        assert!(!glob_match("o1*", "llama"));
    }

    #[test]
    fn default_routes_send_models_where_users_expect() {
        let rules: Vec<Rule> = DEFAULT_RULES
            .iter()
            .map(|(p, v)| Rule {
                pattern: p.to_string(),
                provider: v.to_string(),
            })
            .collect();
        let route = |m: &str| {
            rules
                .iter()
                .find(|r| glob_match(&r.pattern, m))
                .map(|r| r.provider.clone())
                .unwrap_or_default()
        };
        assert_eq!(route("gpt-4o-mini"), "openai");
        assert_eq!(route("gpt-oss:20b"), "ollama");
        assert_eq!(route("deepseek-chat"), "deepseek");
        assert_eq!(route("deepseek-r1:7b"), "ollama");
        assert_eq!(route("sim"), "sim");
        assert_eq!(route("llama3.2"), "ollama");
    }

    #[test]
    fn route_specs_parse_or_explain() {
        assert_eq!(
            " qwen*=compat".parse::<Rule>(),
            Ok(Rule {
                pattern: "qwen*".into(),
                provider: "compat".into()
            })
        );
        assert!("nonsense".parse::<Rule>().is_err());
        assert!("=ollama".parse::<Rule>().is_err());
    }
}
