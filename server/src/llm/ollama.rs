//! Ollama's native API: `POST /api/chat` streaming NDJSON, `GET /api/tags`.
//!
//! We use the native route rather than Ollama's OpenAI-compatible one because
//! only the native final object carries Ollama's own durations (load, prompt
//! evaluation, generation), which the breakdown shows beside our measurements.

use super::error::ProviderError;
use super::http::{send, Upstream};
use super::lines::lines;
use super::types::{nanos_to_ms, ChatParams, Chunk, UpstreamTimings, Usage};
use super::ChunkStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    error: Option<String>,
    total_duration: Option<u64>,
    load_duration: Option<u64>,
    prompt_eval_duration: Option<u64>,
    eval_duration: Option<u64>,
    prompt_eval_count: Option<u32>,
    eval_count: Option<u32>,
}

#[derive(Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: String,
}

/// Parses one NDJSON line into the chunks it carries.
pub fn parse_line(line: &str) -> Result<Vec<Chunk>, String> {
    if line.trim().is_empty() {
        return Ok(Vec::new());
    }
    let parsed: Line = serde_json::from_str(line).map_err(|e| format!("bad NDJSON line: {e}"))?;
    if let Some(error) = parsed.error {
        return Err(error);
    }
    let mut chunks = Vec::new();
    let text = parsed
        .message
        .map(|m| m.content)
        .or(parsed.response)
        .unwrap_or_default();
    chunks.push(Chunk::Delta(text));
    if parsed.done {
        chunks.push(Chunk::Usage(Usage::new(
            parsed.prompt_eval_count.unwrap_or(0),
            parsed.eval_count.unwrap_or(0),
        )));
        let tokens_per_second = match (parsed.eval_count, parsed.eval_duration) {
            (Some(n), Some(d)) if d > 0 => Some(n as f64 / d as f64 * 1e9),
            _ => None,
        };
        chunks.push(Chunk::Timings(UpstreamTimings {
            load_ms: parsed.load_duration.map(nanos_to_ms),
            prompt_eval_ms: parsed.prompt_eval_duration.map(nanos_to_ms),
            eval_ms: parsed.eval_duration.map(nanos_to_ms),
            total_ms: parsed.total_duration.map(nanos_to_ms),
            processing_ms: None,
            tokens_per_second,
        }));
    }
    Ok(chunks)
}

/// `model` is the name sent upstream (a deployment may rename the one asked for).
pub async fn open(
    upstream: &Upstream,
    params: &ChatParams,
    model: &str,
) -> Result<ChunkStream, ProviderError> {
    let mut options = serde_json::Map::new();
    if let Some(t) = params.temperature {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(n) = params.max_tokens {
        options.insert("num_predict".into(), json!(n));
    }
    let body =
        json!({ "model": model, "messages": params.messages, "stream": true, "options": options });
    let mut request = upstream.client.post(upstream.url("/api/chat")).json(&body);
    // W3C trace context, for a proxy or collector in front of Ollama.
    if let Some(trace) = params.trace.get() {
        request = request.header("traceparent", trace.upstream_traceparent());
    }
    let response = send(upstream, request, model).await?;
    let (provider, address) = (upstream.name.clone(), upstream.shown.clone());
    let stream = lines(response.bytes_stream()).flat_map(move |line| {
        let result: Vec<Result<Chunk, ProviderError>> = match line {
            Ok(line) => match parse_line(&line) {
                Ok(chunks) => chunks.into_iter().map(Ok).collect(),
                Err(message) => vec![Err(ProviderError::Protocol {
                    provider: provider.clone(),
                    address: address.clone(),
                    message,
                })],
            },
            Err(e) => vec![Err(ProviderError::Protocol {
                provider: provider.clone(),
                address: address.clone(),
                message: e.to_string(),
            })],
        };
        futures::stream::iter(result)
    });
    Ok(Box::pin(stream))
}

#[derive(Deserialize)]
struct Tags {
    models: Vec<TagModel>,
}

#[derive(Deserialize)]
struct TagModel {
    name: String,
}

pub async fn models(upstream: &Upstream) -> Result<Vec<String>, ProviderError> {
    let response = send(upstream, upstream.client.get(upstream.url("/api/tags")), "").await?;
    let tags: Tags = response.json().await.map_err(|e| ProviderError::Protocol {
        provider: upstream.name.clone(),
        address: upstream.shown.clone(),
        message: format!("bad /api/tags answer: {e}"),
    })?;
    Ok(tags.models.into_iter().map(|m| m.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_line_carries_ollamas_own_durations() {
        let last = r#"{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"total_duration":2000000000,"load_duration":500000000,"prompt_eval_count":12,"prompt_eval_duration":100000000,"eval_count":40,"eval_duration":1000000000}"#;
        let chunks = parse_line(last).unwrap_or_default();
        assert!(chunks.contains(&Chunk::Usage(Usage::new(12, 40))));
        let timings = chunks.iter().find_map(|c| match c {
            Chunk::Timings(t) => Some(*t),
            _ => None,
        });
        let t = timings.unwrap_or_default();
        assert_eq!(
            (t.load_ms, t.eval_ms, t.total_ms),
            (Some(500.0), Some(1000.0), Some(2000.0))
        );
        assert_eq!(t.tokens_per_second, Some(40.0));
    }

    #[test]
    fn an_error_line_after_the_stream_started_is_an_error() {
        assert!(parse_line(r#"{"error":"model crashed"}"#).is_err());
        assert!(parse_line("not json").is_err());
        assert_eq!(
            parse_line(r#"{"message":{"content":"Hi"},"done":false}"#).ok(),
            Some(vec![Chunk::Delta("Hi".into())])
        );
    }
}
