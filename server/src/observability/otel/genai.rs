//! The model call's span under the OpenTelemetry GenAI semantic conventions
//! ([`super::SEMCONV_VERSION`]): span name `chat {model}`, kind CLIENT, the
//! provider, the models asked and answering, token counts, time to the first
//! chunk. Message content is recorded only when configured
//! (`CALOS_OTEL_CAPTURE_CONTENT`; see `docs/tracing.md`).

use super::request::RequestTrace;
use super::span::{Kind, Outcome, SpanRecord, Value};
use crate::llm::types::{ChatMessage, Usage};
use crate::llm::Provider;
use std::time::{Duration, Instant};

/// `gen_ai.operation.name` for a chat completion.
pub const OPERATION_CHAT: &str = "chat";

/// A model call in progress: what is known once its first token is in (or
/// once it failed to get one).
#[derive(Debug, Clone)]
pub struct LlmCall {
    /// The model the client asked for.
    pub request_model: String,
    /// The model that answers, when calos knows it differs in name (a
    /// deployment's upstream name, or a fallback).
    pub response_model: Option<String>,
    /// `gen_ai.provider.name`: the kind of API calos spoke.
    pub provider_name: &'static str,
    /// calos's own name for the provider and the deployment used.
    pub provider: String,
    pub deployment: Option<String>,
    pub server: Option<(String, u16)>,
    /// When the first attempt was sent upstream: the span's start.
    pub sent_at: Instant,
    pub ttft: Option<Duration>,
    pub attempts: u32,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// The messages sent, when content capture is on.
    pub input: Option<Vec<ChatMessage>>,
    /// The reply as it arrived (empty unless content capture is on).
    pub output: String,
}

/// How a model call ended.
#[derive(Debug, Clone)]
pub struct LlmEnd {
    pub at: Instant,
    /// First send → the answer complete, as the breakdown's `llm` figure
    /// measured it: when known, the span ends exactly there.
    pub took: Option<Duration>,
    pub usage: Option<Usage>,
    /// The error code it failed with (`error.type`), if it failed.
    pub error: Option<String>,
}

impl LlmEnd {
    pub fn ok(took: Duration, usage: Option<Usage>) -> Self {
        Self {
            at: Instant::now(),
            took: Some(took),
            usage,
            error: None,
        }
    }

    pub fn failed(at: Instant, code: &str) -> Self {
        Self {
            at,
            took: None,
            usage: None,
            error: Some(code.to_string()),
        }
    }

    /// The client went away before the reply ended.
    pub fn cut(at: Instant) -> Self {
        Self::failed(at, "client_gone")
    }
}

impl LlmCall {
    /// The call as its provider and deployment describe it.
    pub fn new(provider: &Provider, request_model: &str, sent_at: Instant) -> Self {
        Self {
            request_model: request_model.to_string(),
            response_model: None,
            provider_name: provider_name(provider),
            provider: provider.name().to_string(),
            deployment: None,
            server: server_of(provider),
            sent_at,
            ttft: None,
            attempts: 0,
            temperature: None,
            max_tokens: None,
            input: None,
            output: String::new(),
        }
    }

    /// The finished span, a CLIENT child of the request's server span.
    pub fn finish(self, trace: &RequestTrace, end: LlmEnd) -> SpanRecord {
        let mut attributes: Vec<(&'static str, Value)> = vec![
            ("gen_ai.operation.name", OPERATION_CHAT.into()),
            ("gen_ai.provider.name", self.provider_name.into()),
            ("gen_ai.request.model", self.request_model.as_str().into()),
            ("calos.provider", self.provider.as_str().into()),
            ("calos.upstream.attempts", self.attempts.into()),
        ];
        let response_model = self
            .response_model
            .clone()
            .unwrap_or_else(|| self.request_model.clone());
        if end.error.is_none() {
            attributes.push(("gen_ai.response.model", response_model.into()));
        }
        if let Some(deployment) = &self.deployment {
            attributes.push(("calos.deployment", deployment.as_str().into()));
        }
        if let Some((address, port)) = &self.server {
            attributes.push(("server.address", address.as_str().into()));
            attributes.push(("server.port", (*port).into()));
        }
        if let Some(ttft) = self.ttft {
            attributes.push((
                "gen_ai.response.time_to_first_chunk",
                ttft.as_secs_f64().into(),
            ));
        }
        if let Some(t) = self.temperature {
            attributes.push(("gen_ai.request.temperature", f64::from(t).into()));
        }
        if let Some(n) = self.max_tokens {
            attributes.push(("gen_ai.request.max_tokens", n.into()));
        }
        if let Some(usage) = end.usage {
            attributes.push(("gen_ai.usage.input_tokens", usage.prompt_tokens.into()));
            attributes.push(("gen_ai.usage.output_tokens", usage.completion_tokens.into()));
        }
        if let Some(input) = &self.input {
            attributes.push(("gen_ai.input.messages", input_messages(input).into()));
            let finish_reason = if end.error.is_some() { "error" } else { "stop" };
            attributes.push((
                "gen_ai.output.messages",
                output_messages(&self.output, finish_reason).into(),
            ));
        }
        let outcome = match &end.error {
            Some(code) => {
                attributes.push(("error.type", code.as_str().into()));
                Outcome::Error(code.clone())
            }
            None => Outcome::Unset,
        };
        SpanRecord {
            name: format!("{OPERATION_CHAT} {}", self.request_model),
            kind: Kind::Client,
            span_id: trace.llm_span,
            parent: Some(trace.server_span),
            start: trace.clock.at(self.sent_at),
            end: match end.took {
                Some(took) => trace.clock.plus(self.sent_at, took),
                None => trace.clock.at(end.at.max(self.sent_at)),
            },
            attributes,
            outcome,
        }
    }
}

/// `gen_ai.input.messages` (semantic conventions 1.37.0): each message's
/// role and its text as one `text` part.
fn input_messages(messages: &[ChatMessage]) -> String {
    let messages: Vec<_> = messages
        .iter()
        .map(|m| serde_json::json!({ "role": m.role, "parts": [{ "type": "text", "content": m.content }] }))
        .collect();
    serde_json::Value::from(messages).to_string()
}

/// `gen_ai.output.messages`: the reply as one assistant message.
fn output_messages(text: &str, finish_reason: &str) -> String {
    serde_json::json!([{
        "role": "assistant",
        "parts": [{ "type": "text", "content": text }],
        "finish_reason": finish_reason,
    }])
    .to_string()
}

/// `gen_ai.provider.name`: the semantic conventions' name for the API calos
/// spoke. Any OpenAI-compatible server is `openai` (that is the API), and
/// calos's own simulator has a name of its own.
pub fn provider_name(provider: &Provider) -> &'static str {
    match provider {
        Provider::OpenAi(_) => "openai",
        Provider::Ollama(_) => "ollama",
        Provider::Sim(_) => "calos.sim",
        Provider::Unconfigured { .. } => "unconfigured",
    }
}

/// The upstream's host and port (`server.address`, `server.port`), never
/// its credentials or path.
fn server_of(provider: &Provider) -> Option<(String, u16)> {
    let (Provider::OpenAi(upstream) | Provider::Ollama(upstream)) = provider else {
        return None;
    };
    let url = reqwest::Url::parse(&upstream.base).ok()?;
    Some((url.host_str()?.to_string(), url.port_or_known_default()?))
}
