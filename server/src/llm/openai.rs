//! OpenAI-compatible chat completions over SSE: OpenAI, DeepSeek, and any
//! compatible server (vLLM, llama.cpp, LM Studio).
//!
//! Streams ask for `stream_options.include_usage`; `: keep-alive` comments (what
//! DeepSeek sends while a request is queued) and blank lines are skipped, never
//! mistaken for tokens. OpenAI's `openai-processing-ms` header is kept as the
//! provider's own account of its time.

use super::error::ProviderError;
use super::http::{send, Upstream};
use super::lines::lines;
use super::types::{ChatParams, Chunk, UpstreamTimings, Usage};
use super::ChunkStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// What one SSE line means.
#[derive(Debug, PartialEq)]
pub enum SseLine {
    Chunks(Vec<Chunk>),
    Done,
    Skip,
}

pub fn parse_line(line: &str) -> Result<SseLine, String> {
    let line = line.trim_end();
    if line.is_empty() || line.starts_with(':') {
        return Ok(SseLine::Skip);
    }
    let Some(data) = line.strip_prefix("data:") else {
        // `event:`, `id:`, `retry:` fields carry nothing we use.
        return Ok(SseLine::Skip);
    };
    let data = data.trim_start();
    if data == "[DONE]" {
        return Ok(SseLine::Done);
    }
    let chunk: StreamChunk =
        serde_json::from_str(data).map_err(|e| format!("bad SSE data: {e}"))?;
    if let Some(error) = chunk.error {
        return Err(format!("error event: {error}"));
    }
    let mut chunks: Vec<Chunk> = chunk
        .choices
        .into_iter()
        .filter_map(|c| c.delta.and_then(|d| d.content))
        .map(Chunk::Delta)
        .collect();
    if let Some(usage) = chunk.usage {
        chunks.push(Chunk::Usage(usage));
    }
    Ok(SseLine::Chunks(chunks))
}

pub async fn open(upstream: &Upstream, params: &ChatParams) -> Result<ChunkStream, ProviderError> {
    let mut body = json!({
        "model": params.model,
        "messages": params.messages,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(t) = params.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = params.max_tokens {
        body["max_tokens"] = json!(n);
    }
    let mut request = upstream
        .client
        .post(upstream.url("/chat/completions"))
        .json(&body);
    if let Some(key) = &upstream.api_key {
        request = request.bearer_auth(key.expose());
    }
    let response = send(upstream, request, &params.model).await?;
    let processing_ms = response
        .headers()
        .get("openai-processing-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    let (provider, address) = (upstream.name.clone(), upstream.base.clone());
    let protocol = move |message: String| ProviderError::Protocol {
        provider: provider.clone(),
        address: address.clone(),
        message,
    };
    let header_timings = processing_ms.map(|ms| {
        Chunk::Timings(UpstreamTimings {
            processing_ms: Some(ms),
            ..Default::default()
        })
    });
    let body = lines(response.bytes_stream())
        .map(move |line| match line {
            Ok(line) => parse_line(&line).map_err(&protocol),
            Err(e) => Err(protocol(e.to_string())),
        })
        // Everything after [DONE] is ignored.
        .take_while(|item| futures::future::ready(!matches!(item, Ok(SseLine::Done))))
        .flat_map(|item| {
            let items: Vec<Result<Chunk, ProviderError>> = match item {
                Ok(SseLine::Chunks(chunks)) => chunks.into_iter().map(Ok).collect(),
                Ok(_) => Vec::new(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        });
    Ok(Box::pin(
        futures::stream::iter(header_timings.map(Ok)).chain(body),
    ))
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

pub async fn models(upstream: &Upstream) -> Result<Vec<String>, ProviderError> {
    let mut request = upstream.client.get(upstream.url("/models"));
    if let Some(key) = &upstream.api_key {
        request = request.bearer_auth(key.expose());
    }
    let response = send(upstream, request, "").await?;
    let list: ModelList = response.json().await.map_err(|e| ProviderError::Protocol {
        provider: upstream.name.clone(),
        address: upstream.base.clone(),
        message: format!("bad /models answer: {e}"),
    })?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alives_and_role_only_deltas_are_not_tokens() {
        assert_eq!(parse_line(": keep-alive"), Ok(SseLine::Skip));
        assert_eq!(parse_line(""), Ok(SseLine::Skip));
        assert_eq!(parse_line("data: [DONE]"), Ok(SseLine::Done));
        let role = r#"data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#;
        assert_eq!(parse_line(role), Ok(SseLine::Chunks(vec![])));
        let token = r#"data: {"choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}"#;
        assert_eq!(
            parse_line(token),
            Ok(SseLine::Chunks(vec![Chunk::Delta("Hel".into())]))
        );
        let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
        assert_eq!(
            parse_line(usage),
            Ok(SseLine::Chunks(vec![Chunk::Usage(Usage::new(3, 5))]))
        );
    }

    #[test]
    fn malformed_data_is_an_error() {
        assert!(parse_line("data: {not json").is_err());
        assert!(parse_line(r#"data: {"error":{"message":"overloaded"}}"#).is_err());
    }
}
