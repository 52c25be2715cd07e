//! The one Server-Sent Events decoder, for every reader of a stream: the
//! server's upstream providers, the CLI toolbox, the API tests and the WASM
//! chat page. Framing is `eventsource-stream`'s (the WHATWG algorithm:
//! multi-line `data:`, `:` comments such as DeepSeek's `: keep-alive`, CRLF,
//! a BOM, events split anywhere across reads); this module adds the line-length
//! cap calos has always applied to upstreams and hands out each event's `data`.
//! What the data means is for the wire types (`wire::CompleteEvent::parse`,
//! `wire::openai::StreamData::parse`).

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

/// Longest line accepted: a peer sending a 10 MB line cannot grow our memory
/// without bound (the framer buffers until a line ends).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What the `data:` of OpenAI-style streams says after the last chunk.
pub const DONE: &str = "[DONE]";

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// The body failed to arrive (the transport's own message).
    Transport(String),
    /// A line longer than [`MAX_LINE_BYTES`].
    TooLong,
    /// Invalid UTF-8 or an unparseable line.
    Malformed(String),
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "read error: {e}"),
            Self::TooLong => write!(f, "a line longer than {MAX_LINE_BYTES} bytes"),
            Self::Malformed(e) => write!(f, "malformed event stream: {e}"),
        }
    }
}

impl std::error::Error for SseError {}

/// Counts the bytes of the line being read across chunks, so an endless line
/// is refused before it is buffered whole.
struct LineBudget(usize);

impl LineBudget {
    fn admit(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        match bytes.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
            Some(last) => self.0 = bytes.len() - last - 1,
            None => self.0 += bytes.len(),
        }
        if self.0 > MAX_LINE_BYTES {
            return Err(SseError::TooLong);
        }
        Ok(())
    }
}

/// The `data` of each event of an SSE body, in order, as each is complete.
/// Comments, `event:`/`id:`/`retry:` fields and events without data are
/// skipped; a multi-line `data` comes joined with `\n`. The first error ends
/// the stream. No `Send` bound of its own: the browser's body is not `Send`,
/// a server body is and so is what this returns.
pub fn decode<S, B, E>(body: S) -> impl Stream<Item = Result<String, SseError>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut budget = LineBudget(0);
    let mut over = false;
    let checked = body
        .map(move |chunk| match chunk {
            Ok(bytes) => budget.admit(bytes.as_ref()).map(|()| bytes),
            Err(e) => Err(SseError::Transport(e.to_string())),
        })
        // Stop reading at the first error: nothing after it can be framed.
        .take_while(move |item| {
            let go = !over;
            over |= item.is_err();
            futures::future::ready(go)
        });
    let mut failed = false;
    checked
        .eventsource()
        .map(|event| match event {
            Ok(event) => Ok(event.data),
            Err(EventStreamError::Transport(e)) => Err(e),
            Err(EventStreamError::Utf8(e)) => Err(SseError::Malformed(e.to_string())),
            Err(EventStreamError::Parser(e)) => Err(SseError::Malformed(e.to_string())),
        })
        .take_while(move |item| {
            let go = !failed;
            failed |= item.is_err();
            futures::future::ready(go)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn run(pieces: &[&str]) -> Vec<Result<String, SseError>> {
        let body = futures::stream::iter(
            pieces
                .iter()
                .map(|p| Ok::<_, std::io::Error>(p.as_bytes().to_vec())),
        );
        block_on(decode(body).collect())
    }

    fn ok(data: &[&str]) -> Vec<Result<String, SseError>> {
        data.iter().map(|d| Ok(d.to_string())).collect()
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(run(&["data: {\"a\":\ndata: 1}\n\n"]), ok(&["{\"a\":\n1}"]));
    }

    #[test]
    fn comments_and_other_fields_are_not_events() {
        assert_eq!(
            run(&[
                ": keep-alive\n\n",
                "event: x\nid: 7\nretry: 5\ndata: hi\n\n",
                ":\n\n"
            ]),
            ok(&["hi"])
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_frame_events() {
        assert_eq!(
            run(&["data: one\r\n\r\ndata: two\r\rdata: [DONE]\r\n\r\n"]),
            ok(&["one", "two", DONE])
        );
    }

    #[test]
    fn an_event_split_anywhere_across_reads_arrives_once_whole() {
        assert_eq!(
            run(&[
                "da",
                "ta: {\"delta\"",
                ":\"h\u{e9}",
                "\"}\r",
                "\n\r\nda",
                "ta: [DO",
                "NE]\n\n"
            ]),
            ok(&["{\"delta\":\"h\u{e9}\"}", DONE])
        );
        // A multi-byte character cut between reads.
        let bytes = "data: \u{e9}\n\n".as_bytes();
        let body = futures::stream::iter([
            Ok::<_, std::io::Error>(bytes[..7].to_vec()),
            Ok(bytes[7..].to_vec()),
        ]);
        let got: Vec<_> = block_on(decode(body).collect());
        assert_eq!(got, ok(&["\u{e9}"]));
    }

    #[test]
    fn done_is_plain_data_and_an_unfinished_event_is_dropped() {
        assert_eq!(run(&["data: [DONE]\n\ndata: cut"]), ok(&[DONE]));
    }

    #[test]
    fn an_endless_line_is_an_error_not_unbounded_memory() {
        let big = "x".repeat(MAX_LINE_BYTES / 2);
        let got = run(&["data: a\n\n", "data: ", &big, &big, "y"]);
        assert_eq!(got, vec![Ok("a".to_string()), Err(SseError::TooLong)]);
        // Long, but in lines under the cap: fine.
        let line = format!("data: {big}\n");
        let got = run(&[&line, &line, "\n"]);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_transport_error_ends_the_stream() {
        let body = futures::stream::iter([
            Ok(b"data: a\n\n".to_vec()),
            Err(std::io::Error::other("reset")),
            Ok(b"data: b\n\n".to_vec()),
        ]);
        let got: Vec<_> = block_on(decode(body).collect());
        assert_eq!(got[0], Ok("a".to_string()));
        assert!(matches!(&got[1], Err(SseError::Transport(m)) if m.contains("reset")));
        assert_eq!(got.len(), 2);
    }

    /// Cuts `bytes` into pieces at the given offsets (each taken modulo the length).
    fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Result<Vec<u8>, std::io::Error>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.windows(2)
            .map(|w| Ok(bytes[w[0]..w[1]].to_vec()))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_in_arbitrary_pieces_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            let body = futures::stream::iter(pieces(&bytes, &cuts));
            let _: Vec<_> = block_on(decode(body).collect());
        }

        #[test]
        fn how_a_body_is_cut_never_changes_its_events(
            events in proptest::collection::vec("[a-zA-Z0-9 {}\":,é]{0,40}", 0..6),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            let body: String = events.iter().map(|e| format!("data: {e}\r\n\n")).collect();
            let whole: Vec<_> = block_on(decode(futures::stream::iter(pieces(body.as_bytes(), &[]))).collect());
            let cut: Vec<_> = block_on(decode(futures::stream::iter(pieces(body.as_bytes(), &cuts))).collect());
            proptest::prop_assert_eq!(&whole, &cut);
            let data: Vec<String> = whole.into_iter().map(|e| e.unwrap_or_default()).collect();
            proptest::prop_assert_eq!(data, events);
        }
    }
}
