//! One chat request as the ledger keeps it, and the token estimate used when
//! a provider reports no counts.

use chrono::{DateTime, Utc};

/// A ledger row: who asked what of whom, how it ended, what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub user_id: String,
    pub key_id: Option<String>,
    /// The model the client asked for.
    pub model: String,
    pub provider: String,
    /// The model the provider was asked for.
    pub upstream_model: Option<String>,
    /// The HTTP status the client got (200 for a stream that began, whatever
    /// its end).
    pub status: u16,
    /// `None` for success; the error code otherwise.
    pub error_code: Option<String>,
    pub tokens: Tokens,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    /// `hit`, `miss`, `bypass` or `off`.
    pub cache: &'static str,
}

/// Tokens a request spent at its provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    /// The provider reported none: these are calos's estimate.
    pub estimated: bool,
}

impl Tokens {
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }

    /// The provider's counts when it gave them, else an estimate from the text
    /// (see [`estimate`]).
    pub fn reported_or_estimated(
        reported: Option<app::wire::Usage>,
        prompt_chars: usize,
        completion_chars: usize,
    ) -> Self {
        match reported {
            Some(usage) if usage.prompt_tokens > 0 || usage.completion_tokens > 0 => Self {
                prompt: u64::from(usage.prompt_tokens),
                completion: u64::from(usage.completion_tokens),
                estimated: false,
            },
            _ => Self {
                prompt: estimate(prompt_chars),
                completion: estimate(completion_chars),
                estimated: true,
            },
        }
    }
}

/// About four characters of English per token, the rule of thumb OpenAI
/// documents for its tokenizers; rounded up so that any text costs something.
pub fn estimate(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_counts_win_and_missing_ones_are_estimated_and_marked() {
        let reported = Tokens::reported_or_estimated(Some(app::wire::Usage::new(5, 7)), 400, 400);
        assert_eq!(
            (reported.prompt, reported.completion, reported.estimated),
            (5, 7, false)
        );
        let guessed = Tokens::reported_or_estimated(None, 10, 3);
        assert_eq!(
            (guessed.prompt, guessed.completion, guessed.estimated),
            (3, 1, true)
        );
        assert_eq!(guessed.total(), 4);
        let zero = Tokens::reported_or_estimated(Some(app::wire::Usage::new(0, 0)), 0, 0);
        assert_eq!(zero.total(), 0);
        assert!(zero.estimated);
    }
}
