//! A conversation as a file: Markdown for people, JSON for programs (the same
//! shape `GET /api/conversations/{id}` answers with).

use app::wire::{ConversationDetail, MessageStatus};
use std::fmt::Write as _;

/// The formats `?format=` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "markdown" | "md" => Some(Self::Markdown),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Json => "application/json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Json => "json",
        }
    }
}

/// The file's contents.
pub fn render(detail: &ConversationDetail, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(detail).unwrap_or_default(),
        Format::Markdown => markdown(detail),
    }
}

fn markdown(detail: &ConversationDetail) -> String {
    let c = &detail.conversation;
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", c.title);
    let _ = writeln!(
        out,
        "_Exported from calos. Started {}, {} messages._\n",
        c.created_at, c.message_count
    );
    for m in &detail.messages {
        let who = match m.role.as_str() {
            "user" => "You".to_string(),
            "system" => "System".to_string(),
            _ => match (&m.model, m.timings.as_ref()) {
                (Some(model), Some(t)) => format!("Assistant ({model}, {:.0} ms)", t.total),
                (Some(model), None) => format!("Assistant ({model})"),
                _ => "Assistant".to_string(),
            },
        };
        let _ = writeln!(out, "## {who}\n");
        if !m.content.is_empty() {
            let _ = writeln!(out, "{}\n", m.content.trim_end());
        }
        match m.status {
            MessageStatus::Complete => {}
            MessageStatus::Stopped => {
                let _ = writeln!(out, "_(stopped)_\n");
            }
            MessageStatus::Failed => {
                let code = m.error_code.as_deref().unwrap_or("error");
                let _ = writeln!(out, "_(failed: {code})_\n");
            }
        }
    }
    out
}

/// A file name from the title: lowercase ASCII words joined by `-`, never
/// empty, never anything a header or a path could be confused by.
pub fn file_name(title: &str, format: Format) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() {
        "conversation"
    } else {
        slug
    };
    format!("{slug}.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::wire::{Breakdown, ConversationView, MessageView};

    fn message(role: &str, content: &str, status: MessageStatus) -> MessageView {
        MessageView {
            id: "m".into(),
            role: role.into(),
            content: content.into(),
            status,
            error_code: (status == MessageStatus::Failed).then(|| "upstream_timeout".into()),
            model: (role == "assistant").then(|| "mock-llama".into()),
            provider: None,
            prompt_tokens: None,
            completion_tokens: None,
            timings: (role == "assistant").then(|| Breakdown {
                total: 812.4,
                ..Default::default()
            }),
            request_id: None,
            created_at: "2026-12-04T00:00:00Z".into(),
        }
    }

    fn detail() -> ConversationDetail {
        ConversationDetail {
            conversation: ConversationView {
                id: "c".into(),
                title: "Trip: Lisbon / Porto?".into(),
                model: Some("mock-llama".into()),
                created_at: "2026-12-04T00:00:00Z".into(),
                updated_at: "2026-12-04T00:00:00Z".into(),
                message_count: 3,
            },
            messages: vec![
                message("user", "Plan it", MessageStatus::Complete),
                message(
                    "assistant",
                    "Day 1: ```rust\nfn main(){}\n```",
                    MessageStatus::Complete,
                ),
                message("assistant", "Day 2", MessageStatus::Failed),
            ],
        }
    }

    #[test]
    fn markdown_has_the_title_each_speaker_and_what_went_wrong() {
        let md = render(&detail(), Format::Markdown);
        assert!(md.starts_with("# Trip: Lisbon / Porto?\n"));
        assert!(md.contains("## You\n\nPlan it\n"));
        assert!(md.contains("## Assistant (mock-llama, 812 ms)"));
        assert!(md.contains("```rust\nfn main(){}\n```"));
        assert!(md.contains("_(failed: upstream_timeout)_"));
    }

    #[test]
    fn json_is_the_detail_itself() {
        let json = render(&detail(), Format::Json);
        let back: ConversationDetail = serde_json::from_str(&json).unwrap();
        assert_eq!(back, detail());
    }

    #[test]
    fn the_file_name_is_a_safe_slug() {
        assert_eq!(
            file_name("Trip: Lisbon / Porto?", Format::Markdown),
            "trip-lisbon-porto.md"
        );
        assert_eq!(file_name("\"; rm -rf /", Format::Json), "rm-rf.json");
        assert_eq!(file_name("日本語", Format::Json), "conversation.json");
    }
}
