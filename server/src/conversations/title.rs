//! A conversation's title from its first message: a local rule, no model
//! call. The first line that has words, with markdown's leading marks and
//! surrounding space taken off, cut at a word boundary near 60 characters.

/// What a conversation is called before its first message.
pub const PLACEHOLDER: &str = "New chat";

/// Titles made from a message stop near here (a person's rename may be longer).
const AUTO_TITLE_CHARS: usize = 60;

/// The title a first message gives its conversation.
pub fn from_first_message(text: &str) -> String {
    let line = text
        .lines()
        .map(|line| {
            line.trim()
                .trim_start_matches(['#', '>', '-', '*', '`', ' '])
                .trim()
        })
        .find(|line| line.chars().any(char::is_alphanumeric))
        .unwrap_or("");
    let words: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.is_empty() {
        return PLACEHOLDER.to_string();
    }
    if words.chars().count() <= AUTO_TITLE_CHARS {
        return words;
    }
    let cut: String = words.chars().take(AUTO_TITLE_CHARS).collect();
    // Back to the last whole word, unless that leaves too little.
    let at_word = match cut.rfind(' ') {
        // `space` is a byte index; the floor is in characters.
        Some(space) if cut[..space].chars().count() >= AUTO_TITLE_CHARS / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end_matches([',', '.', ';', ':', ' ']))
}

/// A title a person gave: trimmed, 1-200 characters, no control characters.
pub fn clean(title: &str) -> Option<String> {
    let title = title.trim();
    let chars = title.chars().count();
    let printable = !title.chars().any(char::is_control);
    ((1..=app::wire::MAX_TITLE_CHARS).contains(&chars) && printable).then(|| title.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_first_line_is_the_title() {
        assert_eq!(
            from_first_message("  What is Rust?\nTell me more."),
            "What is Rust?"
        );
        assert_eq!(
            from_first_message("\n\n# Plan a trip\nto Lisbon"),
            "Plan a trip"
        );
        assert_eq!(
            from_first_message("```\n\n```\nfix   this  bug"),
            "fix this bug"
        );
    }

    #[test]
    fn a_long_line_is_cut_at_a_word_with_an_ellipsis() {
        let long = "Explain how the borrow checker decides whether two mutable references overlap in a loop";
        let title = from_first_message(long);
        assert!(title.ends_with('…'));
        assert!(title.chars().count() <= AUTO_TITLE_CHARS + 1);
        assert!(long.starts_with(title.trim_end_matches('…')));
        assert!(!title.trim_end_matches('…').ends_with(' '));
        // Cyrillic, two bytes a letter: a space 20 letters in is too early
        // to cut at, though it is 40 bytes in.
        let cyrillic = format!("{} {}", "я".repeat(20), "б".repeat(50));
        assert_eq!(
            from_first_message(&cyrillic),
            format!("{} {}…", "я".repeat(20), "б".repeat(39))
        );
        let unbroken = "x".repeat(200);
        assert_eq!(
            from_first_message(&unbroken).chars().count(),
            AUTO_TITLE_CHARS + 1
        );
    }

    #[test]
    fn a_message_without_words_keeps_the_placeholder() {
        assert_eq!(from_first_message("   \n ... \n"), PLACEHOLDER);
    }

    #[test]
    fn a_given_title_is_trimmed_and_bounded() {
        assert_eq!(clean("  Trip  ").as_deref(), Some("Trip"));
        assert_eq!(clean("   "), None);
        assert_eq!(clean("a\u{7}b"), None);
        assert!(clean(&"é".repeat(200)).is_some());
        assert_eq!(clean(&"é".repeat(201)), None);
    }
}
