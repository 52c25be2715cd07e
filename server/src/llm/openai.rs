//! OpenAI-compatible chat completions over SSE: OpenAI, DeepSeek, and any
//! compatible server (vLLM, llama.cpp, LM Studio).
//!
//! Streams ask for `stream_options.include_usage`; `: keep-alive` comments (what
//! DeepSeek sends while a request is queued) and blank lines are skipped, never
//! mistaken for tokens. OpenAI's `openai-processing-ms` header is kept as the
//! provider's own account of its time.

use super::error::ProviderError;
use super::http::{send, Upstream};
use super::types::{ChatParams, Chunk, UpstreamTimings};
use super::ChunkStream;
use app::wire::openai::{
    ChatCompletionChunk, ChatCompletionRequest, ModelList, RequestMessage, StreamData,
    StreamOptions,
};
use futures::StreamExt;

/// What one event's `data` adds to the answer; `None` at `[DONE]`, after which
/// nothing is read.
pub fn chunks_of(data: &str) -> Option<Result<Vec<Chunk>, String>> {
    let chunk = match StreamData::parse(data) {
        Ok(StreamData::Done) => return None,
        Ok(StreamData::Error(e)) => return Some(Err(format!("error event: {}", e.message))),
        Ok(StreamData::Chunk(chunk)) => chunk,
        Err(e) => return Some(Err(format!("bad SSE data: {e}"))),
    };
    let ChatCompletionChunk { choices, usage, .. } = *chunk;
    // Role-only deltas carry no content: not tokens.
    let mut chunks: Vec<Chunk> = choices
        .into_iter()
        .filter_map(|c| c.delta.content)
        .map(Chunk::Delta)
        .collect();
    if let Some(usage) = usage {
        chunks.push(Chunk::Usage(usage));
    }
    Some(Ok(chunks))
}

/// `model` is the name sent upstream (a deployment may rename the one asked for).
pub async fn open(
    upstream: &Upstream,
    params: &ChatParams,
    model: &str,
) -> Result<ChunkStream, ProviderError> {
    let messages = params
        .messages
        .iter()
        .map(|m| RequestMessage::text(&m.role, &m.content))
        .collect();
    let mut body = ChatCompletionRequest::new(model, messages, true);
    body.stream_options = Some(StreamOptions {
        include_usage: true,
    });
    body.temperature = params.temperature;
    body.max_tokens = params.max_tokens;
    let mut request = upstream
        .client
        .post(upstream.url("/chat/completions"))
        .json(&body);
    if let Some(key) = &upstream.api_key {
        request = request.bearer_auth(key.expose());
    }
    // W3C trace context: the upstream's own spans join calos's trace.
    if let Some(trace) = params.trace.get() {
        request = request.header("traceparent", trace.upstream_traceparent());
    }
    let response = send(upstream, request, model).await?;
    let processing_ms = response
        .headers()
        .get("openai-processing-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    let (provider, address) = (upstream.name.clone(), upstream.shown.clone());
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
    let body = app::sse::decode(response.bytes_stream())
        .map(move |data| match data {
            Ok(data) => chunks_of(&data).map(|c| c.map_err(&protocol)),
            Err(e) => Some(Err(protocol(e.to_string()))),
        })
        // Everything after [DONE] is ignored.
        .take_while(|item| futures::future::ready(item.is_some()))
        .flat_map(|item| {
            let items: Vec<Result<Chunk, ProviderError>> = match item {
                Some(Ok(chunks)) => chunks.into_iter().map(Ok).collect(),
                Some(Err(e)) => vec![Err(e)],
                None => Vec::new(),
            };
            futures::stream::iter(items)
        });
    Ok(Box::pin(
        futures::stream::iter(header_timings.map(Ok)).chain(body),
    ))
}

pub async fn models(upstream: &Upstream) -> Result<Vec<String>, ProviderError> {
    let mut request = upstream.client.get(upstream.url("/models"));
    if let Some(key) = &upstream.api_key {
        request = request.bearer_auth(key.expose());
    }
    let response = send(upstream, request, "").await?;
    let list: ModelList = response.json().await.map_err(|e| ProviderError::Protocol {
        provider: upstream.name.clone(),
        address: upstream.shown.clone(),
        message: format!("bad /models answer: {e}"),
    })?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::Usage;

    async fn read(body: &str) -> Vec<Result<Vec<Chunk>, String>> {
        let bytes = futures::stream::iter([Ok::<_, std::io::Error>(body.as_bytes().to_vec())]);
        app::sse::decode(bytes)
            .map(|d| chunks_of(&d.unwrap_or_default()))
            .take_while(|c| futures::future::ready(c.is_some()))
            .filter_map(|c| async move { c })
            .collect()
            .await
    }

    #[tokio::test]
    async fn keep_alives_and_role_only_deltas_are_not_tokens() {
        let body = concat!(
            ": keep-alive\n\n",
            "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n",
            ": keep-alive\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,\"total_tokens\":8}}\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"after done\"}}]}\n\n",
        );
        assert_eq!(
            read(body).await,
            vec![
                Ok(vec![]),
                Ok(vec![Chunk::Delta("Hel".into())]),
                Ok(vec![Chunk::Usage(Usage::new(3, 5))]),
            ]
        );
    }

    #[test]
    fn malformed_data_and_error_events_are_errors() {
        assert!(matches!(chunks_of("{not json"), Some(Err(_))));
        assert!(
            matches!(chunks_of(r#"{"error":{"message":"overloaded"}}"#), Some(Err(m)) if m.contains("overloaded"))
        );
        assert_eq!(chunks_of("[DONE]"), None);
    }
}
