//! `sim`: a built-in simulated model, so a fresh install chats with no LLM at all.
//!
//! It waits a configurable time to first token, then streams words at a
//! configurable rate. Its replies say they are simulated, and it is listed as
//! `calos (simulated)` wherever models are shown.

use super::types::{ChatParams, Chunk, UpstreamTimings, Usage};
use super::ChunkStream;
use futures::StreamExt;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct SimModel {
    pub ttft: Duration,
    pub tokens_per_sec: f64,
    /// Reply length in tokens when the request sets no `max_tokens`.
    pub tokens: u32,
}

const FILLER: &[&str] = &[
    "Every",
    "millisecond",
    "of",
    "this",
    "reply",
    "is",
    "accounted",
    "for:",
    "authentication,",
    "the",
    "database,",
    "the",
    "queue,",
    "the",
    "cache,",
    "and",
    "the",
    "model",
    "itself.",
    "Compare",
    "the",
    "server's",
    "breakdown",
    "with",
    "what",
    "your",
    "client",
    "measured",
    "to",
    "see",
    "the",
    "network.",
];

/// The words of a simulated reply to `params`.
pub fn reply_words(params: &ChatParams, tokens: u32) -> Vec<String> {
    let prompt = params
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.as_str())
        .unwrap_or("");
    let quoted: Vec<&str> = prompt.split_whitespace().take(8).collect();
    let mut words: Vec<String> = vec![
        "[simulated".into(),
        "reply".into(),
        "from".into(),
        "calos".into(),
        "sim]".into(),
    ];
    if !quoted.is_empty() {
        words.push("You".into());
        words.push("wrote:".into());
        words.push(format!("\"{}\".", quoted.join(" ")));
    }
    let mut filler = FILLER.iter().cycle();
    while words.len() < tokens as usize {
        words.push(filler.next().map(|w| w.to_string()).unwrap_or_default());
    }
    words.truncate(tokens as usize);
    words
}

impl SimModel {
    pub fn stream(&self, params: &ChatParams) -> ChunkStream {
        let tokens = params.max_tokens.unwrap_or(self.tokens).clamp(1, 4096);
        let words = reply_words(params, tokens);
        let prompt_tokens: u32 = params
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count() as u32)
            .sum();
        let gap = if self.tokens_per_sec > 0.0 {
            Duration::from_secs_f64(1.0 / self.tokens_per_sec)
        } else {
            Duration::ZERO
        };
        let ttft = self.ttft;
        let count = words.len() as u32;
        let deltas = futures::stream::iter(words.into_iter().enumerate()).then(
            move |(i, word)| async move {
                tokio::time::sleep(if i == 0 { ttft } else { gap }).await;
                Ok(Chunk::Delta(if i == 0 { word } else { format!(" {word}") }))
            },
        );
        let done = futures::stream::iter([
            Ok(Chunk::Usage(Usage::new(prompt_tokens, count))),
            Ok(Chunk::Timings(UpstreamTimings {
                tokens_per_second: (self.tokens_per_sec > 0.0).then_some(self.tokens_per_sec),
                ..Default::default()
            })),
        ]);
        Box::pin(deltas.chain(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::ChatMessage;

    #[test]
    fn sim_replies_say_they_are_simulated_and_respect_max_tokens() {
        let params = ChatParams {
            model: "sim".into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "Hello, how are you?".into(),
            }],
            temperature: None,
            max_tokens: Some(12),
            trace: Default::default(),
        };
        let words = reply_words(&params, 12);
        assert_eq!(words.len(), 12);
        assert!(words
            .join(" ")
            .starts_with("[simulated reply from calos sim]"));
    }
}
