//! Model output rendered as Markdown, safely.
//!
//! Model text is untrusted (OWASP API10; the Open WebUI XSS advisories in
//! docs/security.md). Raw HTML in the text is shown as text, never parsed; link
//! targets must be http, https or mailto (anything else, `javascript:` and
//! `data:` included, becomes an inert `#`); images become plain links, so no
//! request leaves the page without a click. The HTML is produced by
//! pulldown-cmark's writer, which escapes text and attributes.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

pub fn to_safe_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
    );
    let events = parser.map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        // Images become links: the same destination check, and nothing loads without a click.
        Event::Start(
            Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }
            | Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            },
        ) => {
            let dest_url = if safe_url(&dest_url) {
                dest_url
            } else {
                CowStr::Borrowed("#")
            };
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            })
        }
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    // A copy button before each code block: calos's own markup, never the
    // model's (the model's HTML became text above). The page's one click
    // listener copies the block after the button.
    let events = events.flat_map(|event| {
        let button = matches!(event, Event::Start(Tag::CodeBlock(_))).then(|| {
            Event::Html(CowStr::Borrowed(
                "<button type=\"button\" class=\"link copy-code\" title=\"Copy this code\">Copy code</button>",
            ))
        });
        button.into_iter().chain(std::iter::once(event))
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_block_keeps_its_language_and_gets_a_copy_button() {
        let html = to_safe_html("```rust\nfn main() {}\n```");
        assert!(html.contains("<code class=\"language-rust\">"), "{html}");
        assert!(
            html.starts_with("<button type=\"button\" class=\"link copy-code\""),
            "{html}"
        );
        // The model's own button is text, not a button.
        let sneaky = to_safe_html("<button class=\"copy-code\">x</button>");
        assert!(!sneaky.contains("<button"), "{sneaky}");
    }

    #[test]
    fn markdown_renders() {
        let html = to_safe_html("**bold** and `code`\n\n- item\n\n[docs](https://example.com)");
        assert!(
            html.contains("<strong>bold</strong>")
                && html.contains("<code>code</code>")
                && html.contains("<li>item</li>")
        );
        assert!(
            html.contains(r#"<a href="https://example.com">docs</a>"#),
            "{html}"
        );
    }

    #[test]
    fn model_output_cannot_inject_html_scripts_or_script_links() {
        let attacks = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "![pic](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "text <iframe src=https://evil.example.com></iframe>",
        ];
        for attack in attacks {
            let html = to_safe_html(attack).to_ascii_lowercase();
            assert!(!html.contains("<script"), "{attack} → {html}");
            assert!(!html.contains("<img"), "{attack} → {html}");
            assert!(!html.contains("<iframe"), "{attack} → {html}");
            assert!(!html.contains("<a href=\"javascript:"), "{attack} → {html}");
            assert!(!html.contains("<a href=\"data:"), "{attack} → {html}");
        }
    }

    /// Every tag in `html` is one pulldown-cmark writes for Markdown, and every
    /// link goes to http, https, mailto or nowhere.
    fn only_markdown_tags(html: &str) -> Result<(), String> {
        const ALLOWED: &[&str] = &[
            "p",
            "em",
            "strong",
            "del",
            "a",
            "code",
            "pre",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "ul",
            "ol",
            "li",
            "blockquote",
            "hr",
            "br",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
        ];
        for (at, _) in html.match_indices('<') {
            let tag = &html[at + 1..];
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !ALLOWED.contains(&name.as_str()) {
                return Err(format!("<{name} in {html:?}"));
            }
            // Only real tags have attributes; `href="` in escaped text is text.
            if let Some(href) = tag.find("href=\"") {
                let url = &tag[href + 6..];
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("mailto:")
                    || url.starts_with('#'))
                {
                    return Err(format!("href {url:?} in {html:?}"));
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_yields_raw_html(text in "\\PC{0,200}") {
            proptest::prop_assert_eq!(only_markdown_tags(&to_safe_html(&text)), Ok(()));
        }

        #[test]
        fn planted_html_and_scripts_stay_text(
            before in "[a-z *_`#>\\[\\]()\n-]{0,40}",
            attack in proptest::sample::select(vec![
                "<script>alert(1)</script>",
                "<img src=x onerror=alert(1)>",
                "<iframe src=\"https://example.com\"></iframe>",
                "[x](javascript:alert(1))",
                "![x](data:text/html,<script>alert(1)</script>)",
                "<a href=\"javascript:alert(1)\">x</a>",
                "[x]( JAVASCRIPT:alert(1))",
                "<svg onload=alert(1)>",
            ]),
            after in "[a-z *_`#>\\[\\]()\n-]{0,40}",
        ) {
            let html = to_safe_html(&format!("{before}{attack}{after}"));
            proptest::prop_assert_eq!(only_markdown_tags(&html), Ok(()));
        }
    }
}
