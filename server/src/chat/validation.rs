//! Validating chat requests into [`ChatParams`], the same rules for
//! `/api/llm/complete` and `/v1/chat/completions`, before any upstream call.

use crate::llm::types::{ChatMessage, ChatParams};
use app::wire::{
    MAX_MESSAGES, MAX_MESSAGE_CHARS, MAX_MODEL_NAME, MAX_OUTPUT_TOKENS, MAX_TOTAL_CHARS,
};

/// A chat request calos will not send upstream: which field, a stable code for
/// scripts and a message for people. The HTTP layer answers it with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    pub code: &'static str,
    pub field: &'static str,
    pub message: String,
}

impl InvalidRequest {
    fn new(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            field,
            message: message.into(),
        }
    }
}

const ROLES: &[&str] = &["system", "user", "assistant"];

pub fn validate(
    model: &str,
    messages: Vec<ChatMessage>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
) -> Result<ChatParams, InvalidRequest> {
    let model = validate_model_name(model)?;
    validate_messages(&messages)?;
    validate_sampling(temperature, max_tokens)?;
    Ok(ChatParams {
        model: model.to_string(),
        messages,
        temperature,
        max_tokens,
        trace: Default::default(),
    })
}

/// A model name: 1-128 letters, digits and `. _ : / - @`, surrounding spaces trimmed.
pub fn validate_model_name(model: &str) -> Result<&str, InvalidRequest> {
    let model = model.trim();
    let model_ok = !model.is_empty()
        && model.len() <= MAX_MODEL_NAME
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-@".contains(&b));
    if !model_ok {
        return Err(InvalidRequest::new(
            "invalid_model",
            "model",
            format!(
                "`model` must be 1-{MAX_MODEL_NAME} characters of letters, digits and . _ : / - @"
            ),
        ));
    }
    Ok(model)
}

/// 1-256 messages with known roles, within the size limits.
pub fn validate_messages(messages: &[ChatMessage]) -> Result<(), InvalidRequest> {
    if messages.is_empty() {
        return Err(InvalidRequest::new(
            "invalid_messages",
            "messages",
            "`messages` must hold at least one message",
        ));
    }
    if messages.len() > MAX_MESSAGES {
        return Err(InvalidRequest::new(
            "too_many_messages",
            "messages",
            format!("at most {MAX_MESSAGES} messages per request"),
        ));
    }
    let mut total = 0;
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(InvalidRequest::new(
                "invalid_role",
                "messages",
                format!("messages[{i}].role must be system, user or assistant"),
            ));
        }
        let chars = m.content.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(InvalidRequest::new(
                "message_too_long",
                "messages",
                format!("messages[{i}] has {chars} characters; the limit is {MAX_MESSAGE_CHARS}"),
            ));
        }
        total += chars;
    }
    if total > MAX_TOTAL_CHARS {
        return Err(InvalidRequest::new(
            "conversation_too_long",
            "messages",
            format!("the messages hold {total} characters; the limit is {MAX_TOTAL_CHARS}"),
        ));
    }
    Ok(())
}

/// `temperature` and `max_tokens`, when given.
pub fn validate_sampling(
    temperature: Option<f32>,
    max_tokens: Option<u32>,
) -> Result<(), InvalidRequest> {
    if let Some(t) = temperature {
        if !(0.0..=2.0).contains(&t) || t.is_nan() {
            return Err(InvalidRequest::new(
                "invalid_temperature",
                "temperature",
                "`temperature` must be between 0 and 2",
            ));
        }
    }
    if let Some(n) = max_tokens {
        if n == 0 || n > MAX_OUTPUT_TOKENS {
            return Err(InvalidRequest::new(
                "invalid_max_tokens",
                "max_tokens",
                format!("`max_tokens` must be between 1 and {MAX_OUTPUT_TOKENS}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn limits_are_enforced_with_a_field_error() {
        assert!(validate("llama3.2", vec![msg("user", "hi")], None, None).is_ok());
        assert!(validate("", vec![msg("user", "hi")], None, None).is_err());
        assert!(validate("http://evil/x y", vec![msg("user", "hi")], None, None).is_err());
        assert!(validate("m", vec![], None, None).is_err());
        assert!(validate("m", vec![msg("wizard", "hi")], None, None).is_err());
        assert!(validate("m", vec![msg("user", "hi"); MAX_MESSAGES + 1], None, None).is_err());
        assert!(validate(
            "m",
            vec![msg("user", &"x".repeat(MAX_MESSAGE_CHARS + 1))],
            None,
            None
        )
        .is_err());
        assert!(validate("m", vec![msg("user", "hi")], Some(3.0), None).is_err());
        assert!(validate(
            "m",
            vec![msg("user", "hi")],
            None,
            Some(MAX_OUTPUT_TOKENS + 1)
        )
        .is_err());
        assert!(validate("m", vec![msg("user", "hi")], None, Some(0)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_requests_are_answered_never_panicked_on(
            model in proptest::prop_oneof!["\\PC{0,80}", "[a-z0-9.:/@ -]{0,20}"],
            messages in proptest::collection::vec(
                (proptest::prop_oneof!["user|system|assistant", "\\PC{0,12}"], "\\PC{0,64}"),
                0..4,
            ),
            temperature in proptest::option::of(proptest::prelude::any::<f32>()),
            max_tokens in proptest::option::of(proptest::prelude::any::<u32>()),
        ) {
            let messages = messages.into_iter().map(|(r, c)| msg(&r, &c)).collect();
            if let Ok(params) = validate(&model, messages, temperature, max_tokens) {
                // What passes is what a provider may be sent.
                proptest::prop_assert!(!params.model.is_empty());
                proptest::prop_assert!(params.model.bytes().all(|b| b.is_ascii_graphic()));
                proptest::prop_assert!(params.temperature.is_none_or(|t| t.is_finite()));
                proptest::prop_assert!(!params.messages.is_empty());
            }
        }
    }
}
