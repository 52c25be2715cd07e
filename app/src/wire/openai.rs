//! The OpenAI-compatible API under `/v1` as calos speaks it: the request it
//! accepts, the `chat.completion` and `chat.completion.chunk` it emits, the
//! model list and the in-stream error. The same types read upstream
//! OpenAI-compatible servers (lenient where providers differ) and drive the
//! toolbox, so the official SDKs, calos and its tools agree on one shape.
//!
//! Field order is the bytes calos has always sent (`json!` sorted keys, see
//! `wire::stream`); SDKs read fields by name.

use super::stream::sorted;
use serde::{Deserialize, Serialize};

/// Token counts, in OpenAI's field names (what SDKs and tools read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// `POST /v1/chat/completions`: the fields calos honours. Anything else is
/// refused rather than silently ignored (and no field can choose the upstream).
/// Also what calos sends upstream and what the toolbox sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<RequestMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// An end-user id for the provider's abuse tracking; calos has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ChatCompletionRequest {
    /// A plain request: text messages, nothing optional set.
    pub fn new(model: impl Into<String>, messages: Vec<RequestMessage>, stream: bool) -> Self {
        Self {
            model: model.into(),
            messages,
            stream,
            stream_options: None,
            temperature: None,
            max_tokens: None,
            max_completion_tokens: None,
            n: None,
            user: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestMessage {
    pub role: String,
    pub content: MessageContent,
}

impl RequestMessage {
    pub fn text(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: MessageContent::Text(content.into()),
        }
    }
}

/// A message's content: a string, or the array-of-parts form the SDKs also send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A whole answer (`object: "chat.completion"`). Reading (the toolbox, from
/// any OpenAI-compatible server), `created`, `id` and `object` default: servers
/// differ in which of them they send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatCompletion {
    pub choices: Vec<CompletionChoice>,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub object: String,
    #[serde(serialize_with = "sorted")]
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletionChoice {
    pub finish_reason: Option<String>,
    pub index: u32,
    pub message: AssistantMessage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssistantMessage {
    pub content: String,
    pub role: String,
}

impl ChatCompletion {
    pub fn new(id: String, created: u64, model: String, text: String, usage: Usage) -> Self {
        Self {
            choices: vec![CompletionChoice {
                finish_reason: Some("stop".into()),
                index: 0,
                message: AssistantMessage {
                    content: text,
                    role: "assistant".into(),
                },
            }],
            created,
            id,
            model,
            object: "chat.completion".into(),
            usage,
        }
    }
}

/// One streamed piece (`object: "chat.completion.chunk"`). Reading, only
/// `choices`, `usage` and calos's `timings` matter: the rest defaults, as
/// upstreams differ in what they send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatCompletionChunk {
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub object: String,
    /// calos only, on the usage chunk: OpenAI clients ignore it, calos tools read it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_timings"
    )]
    pub timings: Option<super::Breakdown>,
    /// Only on the last chunk, and only with `stream_options.include_usage`;
    /// absent otherwise (some upstreams send `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_usage"
    )]
    pub usage: Option<Usage>,
}

fn sorted_timings<S: serde::Serializer>(
    v: &Option<super::Breakdown>,
    s: S,
) -> Result<S::Ok, S::Error> {
    sorted(v, s)
}

fn sorted_usage<S: serde::Serializer>(v: &Option<Usage>, s: S) -> Result<S::Ok, S::Error> {
    sorted(v, s)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkChoice {
    #[serde(default)]
    pub delta: ChunkDelta,
    /// Always sent, `null` until the last content chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub index: u32,
}

/// What a chunk adds: the role on the first, text on the others, nothing on
/// the one that carries `finish_reason`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl ChatCompletionChunk {
    /// A chunk with one choice.
    pub fn choice(
        id: &str,
        created: u64,
        model: &str,
        delta: ChunkDelta,
        finish: Option<&str>,
    ) -> Self {
        Self {
            choices: vec![ChunkChoice {
                delta,
                finish_reason: finish.map(str::to_string),
                index: 0,
            }],
            created,
            id: id.to_string(),
            model: model.to_string(),
            object: "chat.completion.chunk".into(),
            timings: None,
            usage: None,
        }
    }

    /// The text this chunk adds (first choice), if any.
    pub fn content(&self) -> Option<&str> {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
    }
}

/// An error in the stream: `{"error":{"code","message","type"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenAiError {
    pub error: OpenAiErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenAiErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// What one `data:` of an OpenAI-style stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamData {
    Chunk(Box<ChatCompletionChunk>),
    /// `[DONE]`: nothing follows.
    Done,
    Error(OpenAiErrorBody),
}

/// Reading only: a chunk, or an error where a chunk was due.
#[derive(Deserialize)]
struct ChunkOrError {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

impl StreamData {
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        if data == crate::sse::DONE {
            return Ok(Self::Done);
        }
        // Errors are rare: tell them apart cheaply, then read the one shape.
        if serde_json::from_str::<ChunkOrError>(data)?.error.is_some() {
            let error = serde_json::from_str::<ErrorAny>(data)?;
            return Ok(Self::Error(error.into_body()));
        }
        serde_json::from_str(data).map(|c| Self::Chunk(Box::new(c)))
    }
}

/// An upstream's error: OpenAI's object, or a bare string some servers send.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct ErrorAny {
    error: serde_json::Value,
}

impl ErrorAny {
    fn into_body(self) -> OpenAiErrorBody {
        match serde_json::from_value::<OpenAiErrorBody>(self.error.clone()) {
            Ok(body) if !body.message.is_empty() => body,
            _ => OpenAiErrorBody {
                code: None,
                message: self.error.to_string(),
                kind: None,
            },
        }
    }
}

/// One model from `GET /v1/models`. Reading an upstream's list only `id` is
/// required (servers differ in the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelInfo {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub owned_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelList {
    #[serde(default)]
    pub object: String,
    pub data: Vec<ModelInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Breakdown;
    use serde_json::json;

    fn text(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }

    /// The bytes `/v1` sent when the handlers built these with `json!`.
    #[test]
    fn emitted_shapes_are_byte_for_byte_what_json_macro_built() {
        let usage = Usage::new(3, 5);
        let whole = ChatCompletion::new("c1".into(), 7, "m".into(), "Hi".into(), usage);
        assert_eq!(
            text(&whole),
            json!({
                "id": "c1", "object": "chat.completion", "created": 7, "model": "m",
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hi" }, "finish_reason": "stop" }],
                "usage": usage,
            })
            .to_string()
        );
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            json!({
                "id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            })
        };
        let ours = |delta, finish| ChatCompletionChunk::choice("c1", 7, "m", delta, finish);
        let opening = ChunkDelta {
            content: Some(String::new()),
            role: Some("assistant".into()),
        };
        assert_eq!(
            text(&ours(opening, None)),
            chunk(json!({ "role": "assistant", "content": "" }), None).to_string()
        );
        let token = ChunkDelta {
            content: Some("t".into()),
            role: None,
        };
        assert_eq!(
            text(&ours(token, None)),
            chunk(json!({ "content": "t" }), None).to_string()
        );
        assert_eq!(
            text(&ours(ChunkDelta::default(), Some("stop"))),
            chunk(json!({}), Some("stop")).to_string()
        );
        let b = Breakdown {
            total: 4.0,
            ttft: Some(1.0),
            ..Default::default()
        };
        let mut last = ours(ChunkDelta::default(), None);
        last.choices.clear();
        last.usage = Some(usage);
        last.timings = Some(b.clone());
        let mut old = chunk(json!({}), None);
        old["choices"] = json!([]);
        old["usage"] = json!(usage);
        old["timings"] = json!(b);
        assert_eq!(text(&last), old.to_string());
        let error = OpenAiError {
            error: OpenAiErrorBody {
                code: Some("upstream_timeout".into()),
                message: "slow".into(),
                kind: Some("upstream_error".into()),
            },
        };
        assert_eq!(
            text(&error),
            json!({ "error": { "message": "slow", "type": "upstream_error", "code": "upstream_timeout" } })
                .to_string()
        );
    }

    #[test]
    fn upstream_data_reads_as_chunks_done_or_errors() {
        assert_eq!(StreamData::parse("[DONE]").ok(), Some(StreamData::Done));
        let role = r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#;
        let Ok(StreamData::Chunk(c)) = StreamData::parse(role) else {
            panic!("not a chunk")
        };
        assert_eq!(c.content(), None);
        let token = r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}"#;
        let Ok(StreamData::Chunk(c)) = StreamData::parse(token) else {
            panic!("not a chunk")
        };
        assert_eq!((c.content(), c.usage), (Some("Hel"), None));
        let usage =
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
        let Ok(StreamData::Chunk(c)) = StreamData::parse(usage) else {
            panic!("not a chunk")
        };
        assert_eq!(c.usage, Some(Usage::new(3, 5)));
        let Ok(StreamData::Error(e)) = StreamData::parse(r#"{"error":{"message":"overloaded"}}"#)
        else {
            panic!("not an error")
        };
        assert_eq!(e.message, "overloaded");
        let Ok(StreamData::Error(e)) = StreamData::parse(r#"{"error":"bare"}"#) else {
            panic!("not an error")
        };
        assert_eq!(e.message, "\"bare\"");
        assert!(StreamData::parse("{not json").is_err());
    }

    #[test]
    fn the_request_refuses_unknown_fields_and_takes_content_parts() {
        let parsed: Result<ChatCompletionRequest, _> = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"api_base":"x"}"#,
        );
        assert!(parsed.is_err());
        let parsed: Result<ChatCompletionRequest, _> = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,"stream_options":{"include_usage":true},"n":1,"user":"u"}"#,
        );
        assert!(parsed.is_ok_and(|r| r.stream && r.stream_options.is_some()));
    }
}
