//! Fitting a stored history into what the model can take: the oldest
//! messages go first; the system prompt and the newest messages stay.
//!
//! calos does not know each model's context window, so the window is a
//! configured size in characters (`CALOS_CONVERSATION_CONTEXT_CHARS`), also
//! bounded by what one chat request may carry (messages and characters).

use crate::llm::types::ChatMessage;
use app::wire::MAX_MESSAGE_CHARS;

/// What may go to the model.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub max_chars: usize,
    pub max_messages: usize,
}

/// The history cut to the window: the messages to send and how many were left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub messages: Vec<ChatMessage>,
    pub dropped: usize,
}

/// Keeps the leading system messages, then as many of the newest others as fit.
/// The newest message always goes, even alone (the request's own limits
/// then judge it). A stored message longer than one chat message may be (a
/// long reply: replies have no such limit) goes cut to that length, or every
/// later turn of the conversation would be refused.
pub fn fit(mut history: Vec<ChatMessage>, window: Window) -> Fitted {
    for message in &mut history {
        if let Some((cut, _)) = message.content.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.content.truncate(cut);
        }
    }
    let system_end = history
        .iter()
        .position(|m| m.role != "system")
        .unwrap_or(history.len());
    let (system, rest) = history.split_at(system_end);
    let mut chars: usize = system.iter().map(|m| m.content.chars().count()).sum();
    let mut kept = 0;
    for (i, message) in rest.iter().enumerate().rev() {
        let size = message.content.chars().count();
        let newest = i + 1 == rest.len();
        let over = chars + size > window.max_chars || system.len() + kept + 1 > window.max_messages;
        if !newest && over {
            break;
        }
        chars += size;
        kept += 1;
    }
    let dropped = rest.len() - kept;
    let mut start = dropped;
    // A history that starts with a reply confuses some models: begin at a
    // user message when one is in what was kept.
    while start < rest.len() && rest[start].role == "assistant" && start + 1 < rest.len() {
        start += 1;
    }
    let mut messages = system.to_vec();
    messages.extend_from_slice(&rest[start..]);
    Fitted {
        messages,
        dropped: start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    fn roles(f: &Fitted) -> Vec<String> {
        f.messages
            .iter()
            .map(|m| format!("{}:{}", m.role, m.content))
            .collect()
    }

    #[test]
    fn a_history_that_fits_goes_whole() {
        let history = vec![
            m("system", "be brief"),
            m("user", "a"),
            m("assistant", "b"),
            m("user", "c"),
        ];
        let fitted = fit(
            history.clone(),
            Window {
                max_chars: 100,
                max_messages: 10,
            },
        );
        assert_eq!(fitted.messages, history);
        assert_eq!(fitted.dropped, 0);
    }

    #[test]
    fn the_oldest_go_first_and_the_system_prompt_stays() {
        let history = vec![
            m("system", "sys"),
            m("user", "1111"),
            m("assistant", "2222"),
            m("user", "3333"),
            m("assistant", "4444"),
            m("user", "5555"),
        ];
        let fitted = fit(
            history,
            Window {
                max_chars: 3 + 4 * 3,
                max_messages: 10,
            },
        );
        assert_eq!(
            roles(&fitted),
            vec!["system:sys", "user:3333", "assistant:4444", "user:5555"]
        );
        assert_eq!(fitted.dropped, 2);
    }

    #[test]
    fn a_cut_never_starts_at_a_reply() {
        let history = vec![m("user", "11"), m("assistant", "22"), m("user", "33")];
        let fitted = fit(
            history,
            Window {
                max_chars: 4,
                max_messages: 10,
            },
        );
        assert_eq!(roles(&fitted), vec!["user:33"]);
        assert_eq!(fitted.dropped, 2);
    }

    #[test]
    fn the_message_count_is_a_window_too_and_the_newest_always_goes() {
        let history: Vec<_> = (0..10).map(|i| m("user", &i.to_string())).collect();
        let fitted = fit(
            history,
            Window {
                max_chars: 1000,
                max_messages: 3,
            },
        );
        assert_eq!(roles(&fitted), vec!["user:7", "user:8", "user:9"]);
        let huge = vec![m("user", "old"), m("user", &"x".repeat(50))];
        let fitted = fit(
            huge,
            Window {
                max_chars: 10,
                max_messages: 10,
            },
        );
        assert_eq!(fitted.messages.len(), 1);
        assert_eq!(fitted.dropped, 1);
    }

    #[test]
    fn a_stored_reply_longer_than_a_message_may_be_goes_cut_to_that_length() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let history = vec![
            m("user", "write a lot"),
            m("assistant", &long),
            m("user", "more"),
        ];
        let fitted = fit(
            history,
            Window {
                max_chars: 4 * MAX_MESSAGE_CHARS,
                max_messages: 10,
            },
        );
        assert_eq!(fitted.messages.len(), 3);
        assert_eq!(
            fitted.messages[1].content.chars().count(),
            MAX_MESSAGE_CHARS
        );
        assert!(crate::chat::validation::validate("m", fitted.messages, None, None).is_ok());
    }
}
