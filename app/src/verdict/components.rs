//! Where one request's time went, split into parts that do not overlap and add
//! up to the total the client saw. Every verdict (the decision tree, the
//! comparison against a baseline, the chat page's pinned reply) reads requests
//! through this one split, so they cannot disagree about what a part means.

use crate::wire::Breakdown;
use serde::{Deserialize, Serialize};

/// One part of a request's time, or the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum Component {
    /// Client total − server total: the path between the client and calos.
    Network,
    /// Checking the token or API key.
    Auth,
    /// Account lookups and conversation reads and writes on the request's path.
    Database,
    /// Waiting for a deployment's slot.
    Queue,
    /// The response cache lookup.
    Cache,
    /// Upstream request sent → its response headers.
    Connect,
    /// Upstream headers → first token: the model thinking.
    FirstToken,
    /// First token → last token.
    Generation,
    /// calos's own time outside every named phase.
    Code,
    /// What the client measured.
    Total,
}

impl Component {
    /// The parts, in the order of a request's life; they add up to [`Component::Total`].
    pub const PARTS: [Component; 9] = [
        Self::Network,
        Self::Auth,
        Self::Database,
        Self::Queue,
        Self::Cache,
        Self::Connect,
        Self::FirstToken,
        Self::Generation,
        Self::Code,
    ];

    /// Every part, then the total.
    pub const ALL: [Component; 10] = {
        let mut all = [Self::Total; 10];
        let mut i = 0;
        while i < Self::PARTS.len() {
            all[i] = Self::PARTS[i];
            i += 1;
        }
        all
    };
    /// The JSON spelling.
    pub fn key(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Auth => "auth",
            Self::Database => "database",
            Self::Queue => "queue",
            Self::Cache => "cache",
            Self::Connect => "connect",
            Self::FirstToken => "firstToken",
            Self::Generation => "generation",
            Self::Code => "code",
            Self::Total => "total",
        }
    }

    /// How a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Auth => "auth",
            Self::Database => "database",
            Self::Queue => "queue",
            Self::Cache => "cache",
            Self::Connect => "upstream connect",
            Self::FirstToken => "model's first token",
            Self::Generation => "generation",
            Self::Code => "calos's own code",
            Self::Total => "total",
        }
    }

    /// The coarse culprit this part belongs to: the decision tree's vocabulary
    /// (a slower first token and a slower connect are both "the LLM": the
    /// provider, as seen from calos).
    pub fn culprit(self) -> Culprit {
        match self {
            Self::Network => Culprit::Network,
            Self::Database => Culprit::Database,
            Self::Queue => Culprit::Queue,
            Self::Connect | Self::FirstToken | Self::Generation => Culprit::Llm,
            Self::Auth | Self::Cache | Self::Code => Culprit::Code,
            Self::Total => Culprit::None,
        }
    }
}

/// The coarse answer to "where did the time go".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Culprit {
    Llm,
    Network,
    Database,
    Queue,
    Code,
    /// Nothing is over its limit, or nothing changed beyond the noise.
    None,
}

impl Culprit {
    pub fn label(self) -> &'static str {
        match self {
            Self::Llm => "LLM",
            Self::Network => "network",
            Self::Database => "database",
            Self::Queue => "queue",
            Self::Code => "calos code",
            Self::None => "nothing",
        }
    }
}

/// One request's time, in milliseconds, per [`Component`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct Components {
    pub network: f64,
    pub auth: f64,
    pub database: f64,
    pub queue: f64,
    pub cache: f64,
    pub connect: f64,
    pub first_token: f64,
    pub generation: f64,
    pub code: f64,
    pub total: f64,
}

impl Components {
    /// From the server's breakdown and, when there is one, the client's own
    /// total (without it, network is 0 and the total is the server's).
    pub fn from_breakdown(t: &Breakdown, client_total: Option<f64>) -> Self {
        let ttft = t.ttft.unwrap_or(0.0);
        let connect = t.upstream_connect.unwrap_or(0.0).min(ttft.max(0.0));
        let llm = t.llm.unwrap_or(ttft).max(ttft);
        let named = t.auth + t.database + t.queue + t.cache + llm;
        let total = client_total.unwrap_or(t.total);
        Self {
            network: (total - t.total).max(0.0),
            auth: t.auth,
            database: t.database,
            queue: t.queue,
            cache: t.cache,
            connect,
            first_token: (ttft - connect).max(0.0),
            generation: llm - ttft,
            code: (t.total - named).max(0.0),
            total,
        }
    }

    pub fn get(&self, c: Component) -> f64 {
        match c {
            Component::Network => self.network,
            Component::Auth => self.auth,
            Component::Database => self.database,
            Component::Queue => self.queue,
            Component::Cache => self.cache,
            Component::Connect => self.connect,
            Component::FirstToken => self.first_token,
            Component::Generation => self.generation,
            Component::Code => self.code,
            Component::Total => self.total,
        }
    }

    pub fn set(&mut self, c: Component, ms: f64) {
        let slot = match c {
            Component::Network => &mut self.network,
            Component::Auth => &mut self.auth,
            Component::Database => &mut self.database,
            Component::Queue => &mut self.queue,
            Component::Cache => &mut self.cache,
            Component::Connect => &mut self.connect,
            Component::FirstToken => &mut self.first_token,
            Component::Generation => &mut self.generation,
            Component::Code => &mut self.code,
            Component::Total => &mut self.total,
        };
        *slot = ms;
    }

    /// The model's whole time: connect, first token and generation.
    pub fn llm(&self) -> f64 {
        self.connect + self.first_token + self.generation
    }

    /// calos's whole time: checking the credential plus its own code.
    pub fn calos(&self) -> f64 {
        self.auth + self.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_add_up_to_the_clients_total() {
        let t = Breakdown {
            auth: 1.0,
            database: 2.0,
            queue: 3.0,
            cache: 0.5,
            upstream_connect: Some(10.0),
            ttft: Some(100.0),
            llm: Some(400.0),
            total: 410.0,
            ..Default::default()
        };
        let c = Components::from_breakdown(&t, Some(450.0));
        let sum: f64 = Component::PARTS.iter().map(|p| c.get(*p)).sum();
        assert!((sum - 450.0).abs() < 1e-9, "{sum}");
        assert_eq!((c.network, c.connect, c.first_token), (40.0, 10.0, 90.0));
        assert_eq!((c.generation, c.code), (300.0, 3.5));
        assert!((c.llm() - 400.0).abs() < 1e-9);
    }

    #[test]
    fn a_cache_hit_has_no_model_time() {
        let t = Breakdown {
            auth: 0.2,
            cache: 0.1,
            total: 0.5,
            ..Default::default()
        };
        let c = Components::from_breakdown(&t, None);
        assert_eq!((c.llm(), c.network, c.total), (0.0, 0.0, 0.5));
        assert!((c.code - 0.2).abs() < 1e-9);
    }

    #[test]
    fn set_and_get_agree_on_every_component() {
        let mut c = Components::default();
        for (i, part) in Component::ALL.iter().enumerate() {
            c.set(*part, i as f64);
        }
        for (i, part) in Component::ALL.iter().enumerate() {
            assert_eq!(c.get(*part), i as f64);
        }
    }
}
