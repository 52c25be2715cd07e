//! The one redactor. Every log line calos writes or shows passes through
//! [`clean`] first: stderr in text or JSON, Mission Control's feed, and the
//! managed processes' output.
//!
//! What it removes:
//! - **Values of secret keys** (`password`, `passwd`, `secret`, `token`,
//!   `api_key`, `calos_session`, and any key ending in one of them, such as
//!   `access_token` or `client_secret`), in every shape a log line gives them:
//!   `password=x`, `password: x`, `token="x"`, JSON `"password": "x"`, and JSON
//!   inside a quoted field (`\"password\":\"x\"`).
//! - **Credentials after a scheme**: `Authorization: Basic …` and `Bearer …`
//!   keep the scheme and lose the credential; `Cookie:`/`Set-Cookie:` lose
//!   every cookie value.
//! - **Secrets recognisable by themselves**, wherever they stand: provider keys
//!   (`sk-…`), calos API keys (`calos_sk_…`), JWTs (`eyJ….….…`), OAuth codes in
//!   a query (`?code=`, `&code=`) and the password in a URL (`user:pass@host`).
//! - **Control characters** (CR, LF, ESC, NUL…; not tab), which are escaped, so
//!   no logged value can forge a line or drive a terminal.
//!
//! It scans once with one automaton (`aho-corasick`, ASCII case-insensitive), so
//! a line without a marker costs one pass and no allocation. Every cut falls on
//! an ASCII byte or an end of the line, so it never splits a character: property
//! tests check that it never panics, never lets a planted secret through, and
//! leaves ordinary text alone.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::borrow::Cow;
use std::sync::LazyLock;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// How the text after a marker is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A key whose value is secret; a separator (`=` or `:`) must follow.
    Key,
    /// `Authorization`: the value is a scheme and a credential.
    Authorization,
    /// `Cookie`/`Set-Cookie`: the whole value, every cookie in it.
    Cookie,
    /// A secret that starts with these exact characters (case matters) and
    /// runs over token characters, at least `min` of them after the prefix.
    Prefix { min: usize },
    /// `Bearer` outside an Authorization header: the next word, when it looks
    /// like a token (8 or more token characters).
    Bearer,
    /// `://`: the password of a URL's `user:password@`.
    UrlCredentials,
}

const MARKERS: &[(&str, Marker)] = &[
    ("password", Marker::Key),
    ("passwd", Marker::Key),
    ("secret", Marker::Key),
    ("token", Marker::Key),
    ("api_key", Marker::Key),
    ("api-key", Marker::Key),
    ("apikey", Marker::Key),
    ("calos_session", Marker::Key),
    ("?code", Marker::Key),
    ("&code", Marker::Key),
    ("authorization", Marker::Authorization),
    ("cookie", Marker::Cookie),
    ("sk-", Marker::Prefix { min: 16 }),
    ("calos_sk_", Marker::Prefix { min: 16 }),
    ("eyJ", Marker::Prefix { min: 16 }),
    ("bearer", Marker::Bearer),
    ("://", Marker::UrlCredentials),
];

#[expect(
    clippy::expect_used,
    reason = "the markers are fixed, short literals; a unit test builds the automaton"
)]
static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(MARKERS.iter().map(|(pattern, _)| pattern))
        .expect("the redaction markers are a valid automaton")
});

/// The line with secrets replaced by `[redacted]` and control characters
/// (except tab) escaped; borrowed when there was nothing to change.
pub fn clean(line: &str) -> Cow<'_, str> {
    let redacted = redact(line);
    match escape_controls(&redacted) {
        Cow::Borrowed(_) => redacted,
        Cow::Owned(escaped) => Cow::Owned(escaped),
    }
}

/// Only the redaction half of [`clean`].
pub fn redact(line: &str) -> Cow<'_, str> {
    let bytes = line.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    for found in AUTOMATON.find_iter(line) {
        if found.start() < copied {
            continue;
        }
        let (pattern, marker) = MARKERS[found.pattern().as_usize()];
        let span = match marker {
            Marker::Key => key_value(bytes, found.end()),
            Marker::Authorization => authorization_value(bytes, found.end()),
            Marker::Cookie => cookie_value(bytes, found.end()),
            Marker::Prefix { min } => {
                prefixed_secret(bytes, found.start(), found.end(), pattern, min)
            }
            Marker::Bearer => bearer_credential(bytes, found.start(), found.end()),
            Marker::UrlCredentials => url_password(bytes, found.end()),
        };
        if let Some((start, end)) = span.filter(|(start, end)| end > start && *start >= copied) {
            let out = out.get_or_insert_with(|| String::with_capacity(line.len()));
            out.push_str(&line[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
    }
    match out {
        None => Cow::Borrowed(line),
        Some(mut out) => {
            out.push_str(&line[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Escapes control characters (CR, LF, ESC, NUL…) except tab.
pub fn escape_controls(line: &str) -> Cow<'_, str> {
    if !line.chars().any(is_escaped_control) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if is_escaped_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_escaped_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Characters of a bare token: base64url, base64, JWT dots, token68.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b)
}

/// Where a bare (unquoted) value ends.
fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b"\"',;&}])>\\".contains(&b) || b.is_ascii_control()
}

/// After a key: its own closing quote (`"password":`, `\"password\":`),
/// spaces, `=` or `:`, spaces. Returns where the value starts.
fn separator(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) == Some(&b'\\') && matches!(bytes.get(at + 1), Some(b'"' | b'\'')) {
        at += 2;
    } else if matches!(bytes.get(at), Some(b'"' | b'\'')) {
        at += 1;
    }
    at = skip_spaces(bytes, at);
    if !matches!(bytes.get(at), Some(b'=' | b':')) {
        return None;
    }
    Some(skip_spaces(bytes, at + 1))
}

fn skip_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| *b == b' ' || *b == b'\t') {
        at += 1;
    }
    at
}

/// A value that starts at `at`: the inside of its quotes (`"…"`, `'…'`, or
/// `\"…\"` within an escaped string; to the end of the line when a quote is
/// never closed), or a bare word.
fn value_span(bytes: &[u8], at: usize) -> (usize, usize) {
    match (bytes.get(at), bytes.get(at + 1)) {
        (Some(b'\\'), Some(quote @ (b'"' | b'\''))) => {
            let start = at + 2;
            let end = (start..bytes.len())
                .find(|&i| bytes[i] == b'\\' && bytes.get(i + 1) == Some(quote))
                .unwrap_or(bytes.len());
            (start, end)
        }
        (Some(quote @ (b'"' | b'\'')), _) => {
            let start = at + 1;
            (start, closing_quote(bytes, start, *quote))
        }
        _ => (at, bare_end(bytes, at)),
    }
}

/// The next unescaped `quote` from `from`, or the end of the line.
fn closing_quote(bytes: &[u8], from: usize, quote: u8) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn bare_end(bytes: &[u8], from: usize) -> usize {
    (from..bytes.len())
        .find(|&i| is_value_end(bytes[i]))
        .unwrap_or(bytes.len())
}

fn key_value(bytes: &[u8], after_key: usize) -> Option<(usize, usize)> {
    separator(bytes, after_key).map(|at| value_span(bytes, at))
}

/// `Authorization: Basic xyz` → the `xyz`; a value without a scheme goes whole.
fn authorization_value(bytes: &[u8], after_key: usize) -> Option<(usize, usize)> {
    let at = separator(bytes, after_key)?;
    let (start, end) = value_span(bytes, at);
    let quoted = start != at;
    let scheme_end = (start..end)
        .find(|&i| !bytes[i].is_ascii_alphabetic())
        .unwrap_or(end);
    let has_scheme = scheme_end > start && bytes.get(scheme_end) == Some(&b' ');
    if !has_scheme {
        return Some((start, end));
    }
    let credential = skip_spaces(bytes, scheme_end);
    if quoted {
        Some((credential, end))
    } else {
        Some((credential, bare_end(bytes, credential)))
    }
}

/// Every cookie of a `Cookie:` or `Set-Cookie:` value: to its closing quote,
/// or to the end of the line (cookies are separated by `; `).
fn cookie_value(bytes: &[u8], after_key: usize) -> Option<(usize, usize)> {
    let at = separator(bytes, after_key)?;
    let (start, end) = value_span(bytes, at);
    if start != at {
        return Some((start, end));
    }
    let end = (at..bytes.len())
        .find(|&i| matches!(bytes[i], b'"' | b'\'' | b'\\') || bytes[i].is_ascii_control())
        .unwrap_or(bytes.len());
    Some((at, end))
}

/// `sk-…`, `calos_sk_…`, `eyJ…`: the prefix must match exactly (case matters),
/// stand at the start of a word, and be followed by at least `min` token
/// characters; the whole run goes.
fn prefixed_secret(
    bytes: &[u8],
    start: usize,
    after: usize,
    pattern: &str,
    min: usize,
) -> Option<(usize, usize)> {
    if &bytes[start..after] != pattern.as_bytes() {
        return None;
    }
    if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
        return None;
    }
    let end = (after..bytes.len())
        .find(|&i| !is_token_byte(bytes[i]))
        .unwrap_or(bytes.len());
    (end - after >= min).then_some((start, end))
}

/// `Bearer xyz` anywhere (a header echoed in an error, a curl line): the `xyz`.
fn bearer_credential(bytes: &[u8], start: usize, after: usize) -> Option<(usize, usize)> {
    if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        return None;
    }
    if bytes.get(after) != Some(&b' ') {
        return None;
    }
    let credential = skip_spaces(bytes, after);
    let end = (credential..bytes.len())
        .find(|&i| !is_token_byte(bytes[i]))
        .unwrap_or(bytes.len());
    (end - credential >= 8).then_some((credential, end))
}

/// `scheme://user:password@host`: the password.
fn url_password(bytes: &[u8], after: usize) -> Option<(usize, usize)> {
    let authority_end = (after..bytes.len())
        .find(|&i| matches!(bytes[i], b'/' | b'?' | b'#') || is_value_end(bytes[i]))
        .unwrap_or(bytes.len());
    let at = (after..authority_end).rev().find(|&i| bytes[i] == b'@')?;
    let colon = (after..at).find(|&i| bytes[i] == b':')?;
    Some((colon + 1, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_shape_of_a_secret_goes() {
        let cases = [
            ("login password=hunter2 ok", "login password=[redacted] ok"),
            ("password: hunter2", "password: [redacted]"),
            (r#"token="abc def""#, r#"token="[redacted]""#),
            (
                r#"{"password": "p\"w", "user":"a"}"#,
                r#"{"password": "[redacted]", "user":"a"}"#,
            ),
            (
                r#"body="{\"password\":\"pw\"}""#,
                r#"body="{\"password\":\"[redacted]\"}""#,
            ),
            (
                "access_token=abc&state=x",
                "access_token=[redacted]&state=x",
            ),
            ("client_secret: 's3'", "client_secret: '[redacted]'"),
            (
                "Authorization: Basic dXNlcjpwYXNz",
                "Authorization: Basic [redacted]",
            ),
            (
                "authorization=\"Bearer abc.def\"",
                "authorization=\"Bearer [redacted]\"",
            ),
            ("Authorization: abcdef", "Authorization: [redacted]"),
            ("Cookie: a=1; calos_session=xyz", "Cookie: [redacted]"),
            (
                "calos_session=abc; Path=/",
                "calos_session=[redacted]; Path=/",
            ),
            (
                "GET /cb?code=4/0AX-y&state=s",
                "GET /cb?code=[redacted]&state=s",
            ),
            ("key sk-abcdefghijklmnop1234 done", "key [redacted] done"),
            ("\"sk-abcdefghijklmnop1234\"", "\"[redacted]\""),
            ("calos_sk_0123456789abcdefABCDEF", "[redacted]"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
                "jwt [redacted]",
            ),
            (
                "sent Bearer abcdefgh123 to x",
                "sent Bearer [redacted] to x",
            ),
            (
                "postgres://calos:s3cret@db:5432/x",
                "postgres://calos:[redacted]@db:5432/x",
            ),
            ("line\r\nforged", "line\\r\\nforged"),
        ];
        for (line, want) in cases {
            assert_eq!(clean(line), want, "{line}");
        }
    }

    #[test]
    fn ordinary_words_that_contain_markers_stay() {
        for line in [
            "prompt_tokens=3 completion_tokens=5",
            "max_tokens: 100",
            "the secretary: Bob",
            "task-abcdefghijklmnopqrstuvwxyz",
            "error code=invalid_token",
            "the bearer of bad news",
            "https://example.com/a@b",
            "tokenizer=bpe",
        ] {
            assert_eq!(clean(line), line);
        }
    }

    #[test]
    fn a_cut_next_to_a_multibyte_character_does_not_panic() {
        // What crashed the old redactor: a marker followed by multi-byte text.
        let line = "reason=error_description=token=%20éééééééééé";
        assert_eq!(clean(line), "reason=error_description=token=[redacted]");
        assert_eq!(clean("token=é"), "token=[redacted]");
        assert_eq!(clean("password=\"ééé"), "password=\"[redacted]");
    }

    /// Shapes a secret takes in a log line (`{}` is the secret).
    const SHAPES: &[&str] = &[
        "password={}",
        "password: {}",
        "password = {}",
        "PASSWORD={}",
        "token=\"{}\"",
        "refresh_token='{}'",
        "\"password\": \"{}\"",
        "\"api_key\":\"{}\"",
        "{\\\"password\\\":\\\"{}\\\"}",
        "Authorization: Basic {}",
        "Authorization: Bearer {}",
        "authorization=\"Bearer {}\"",
        "x-api-key: {}",
        "Cookie: theme=dark; calos_session={}",
        "set-cookie: calos_session={}; HttpOnly",
        "calos_session={}",
        "/callback?code={}&state=abc",
        "/callback?state=abc&code={}",
        "sk-{}",
        "\"sk-{}\"",
        "calos_sk_{}",
        "Bearer {}",
        "https://user:{}@example.com/path",
        "client_secret={}",
    ];

    fn secret() -> impl Strategy<Value = String> {
        // Upper case and digits: ordinary text below is lower case, so a
        // secret can only appear in the output if the redactor let it through.
        "[A-Z0-9]{16,40}"
    }

    fn ordinary() -> impl Strategy<Value = String> {
        "[a-z ,.!?()]{0,60}"
    }

    proptest! {
        #[test]
        fn never_panics(line in any::<String>()) {
            let _ = clean(&line);
        }

        #[test]
        fn never_panics_near_markers(
            before in "\\PC{0,8}",
            marker in prop::sample::select(MARKERS.iter().map(|(p, _)| *p).collect::<Vec<_>>()),
            sep in prop::sample::select(vec!["", "=", ": ", "=\"", "\\\"", ":\"", " "]),
            after in "\\PC{0,12}",
        ) {
            let _ = clean(&format!("{before}{marker}{sep}{after}"));
        }

        #[test]
        fn a_planted_secret_never_comes_out(
            before in ordinary(),
            shape in prop::sample::select(SHAPES.to_vec()),
            secret in secret(),
            after in ordinary(),
        ) {
            let line = format!("{before} {} {after}", shape.replace("{}", &secret));
            let cleaned = clean(&line);
            prop_assert!(!cleaned.contains(&secret), "{line:?} -> {cleaned:?}");
            prop_assert!(cleaned.contains(REDACTED));
        }

        #[test]
        fn ordinary_text_is_left_alone(line in "[a-zA-Z0-9 ,.!?()_=:-]{0,80}") {
            // Without a marker word nothing may change; markers are words
            // like "token" that plain prose rarely glues to "=" or ":".
            prop_assume!(!AUTOMATON.is_match(&line));
            prop_assert_eq!(clean(&line), line.as_str());
        }

        #[test]
        fn no_control_character_survives(line in any::<String>()) {
            prop_assert!(!clean(&line).chars().any(is_escaped_control));
        }
    }
}
