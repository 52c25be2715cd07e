//! Which provider serves a model: ordered glob rules over the model name, first
//! match wins. Defaults: `sim*` → sim; `gpt-oss*` → ollama (an open-weights
//! family Ollama serves); `gpt-*`, `chatgpt-*`, `o1*`, `o3*`, `o4*` → openai;
//! `deepseek-chat`, `deepseek-reasoner` → deepseek (DeepSeek's API models; other
//! `deepseek-*` names such as `deepseek-r1:7b` are Ollama tags); anything else →
//! ollama. `CALOS_MODEL_ROUTES="pattern=provider,…"` adds rules in front.

use super::queue::ProviderQueue;
use super::Provider;
use std::collections::HashMap;
use std::sync::Arc;

/// A provider with its own concurrency queue.
#[derive(Debug)]
pub struct ProviderSlot {
    pub provider: Provider,
    pub queue: ProviderQueue,
}

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

#[derive(Debug, Clone)]
pub struct ModelRouter {
    rules: Vec<Rule>,
    providers: HashMap<String, Arc<ProviderSlot>>,
}

impl ModelRouter {
    pub fn new(extra_rules: Vec<Rule>, providers: Vec<ProviderSlot>) -> Self {
        let mut rules = extra_rules;
        rules.extend(DEFAULT_RULES.iter().map(|(p, prov)| Rule {
            pattern: p.to_string(),
            provider: prov.to_string(),
        }));
        let providers = providers
            .into_iter()
            .map(|slot| (slot.provider.name().to_string(), Arc::new(slot)))
            .collect();
        Self { rules, providers }
    }

    /// The provider for `model`, or the name of the provider a rule named but
    /// that does not exist.
    pub fn route(&self, model: &str) -> Result<Arc<ProviderSlot>, String> {
        let rule = self.rules.iter().find(|r| glob_match(&r.pattern, model));
        let name = rule.map(|r| r.provider.as_str()).unwrap_or("ollama");
        self.providers
            .get(name)
            .cloned()
            .ok_or_else(|| name.to_string())
    }

    /// Whether a rule names this model exactly (not by a wildcard): such a name
    /// is the operator's, not a client's invention, and may label metrics.
    pub fn knows(&self, model: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.pattern == model && !r.pattern.contains(['*', '?']))
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderSlot>> {
        self.providers.values()
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
