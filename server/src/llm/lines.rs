//! Incremental line framing for Ollama's NDJSON bodies (SSE is `app::sse`'s).
//!
//! Bytes arrive in arbitrary pieces: one read may hold several events, an event
//! may span reads. `tokio_util`'s `LinesCodec` re-frames them as they arrive (so
//! each event is timestamped when parsed, not per read) and caps a line's length,
//! so a provider sending a 10 MB line cannot grow our memory without bound.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

/// A line buffer's starting size.
const INITIAL_BUFFER_BYTES: usize = 512;
/// Longest line accepted from an upstream.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("a line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error("invalid UTF-8 or a read error: {0}")]
    Io(String),
}

pub fn lines<S, E>(body: S) -> impl Stream<Item = Result<String, LineError>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let reader = StreamReader::new(body.map_err(std::io::Error::other));
    // Start small (events are short) and grow on demand: the default 8 KiB per
    // open stream is most of an idle stream's memory at a thousand streams.
    let codec = LinesCodec::new_with_max_length(MAX_LINE_BYTES);
    FramedRead::with_capacity(reader, codec, INITIAL_BUFFER_BYTES).map(|line| {
        // Trim the CR in place: the line is already an owned String, and
        // copying it again would cost an allocation per upstream event.
        line.map(|mut l| {
            let kept = l.trim_end_matches('\r').len();
            l.truncate(kept);
            l
        })
        .map_err(|e| match e {
            LinesCodecError::MaxLineLengthExceeded => LineError::TooLong,
            LinesCodecError::Io(io) => LineError::Io(io.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_survive_arbitrary_chunking() {
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            ["da", "ta: {\"a\"", ":1}\r\n\ndata: [DO", "NE]\n"]
                .into_iter()
                .map(|s| Ok(Bytes::from(s)))
                .collect();
        let got: Vec<String> = lines(futures::stream::iter(pieces))
            .map(|l| l.unwrap_or_default())
            .collect()
            .await;
        assert_eq!(got, vec!["data: {\"a\":1}", "", "data: [DONE]"]);
    }

    #[tokio::test]
    async fn an_endless_line_is_an_error_not_unbounded_memory() {
        let big = Bytes::from(vec![b'x'; MAX_LINE_BYTES + 10]);
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![Ok(big)];
        let first = lines(futures::stream::iter(pieces)).next().await;
        assert!(matches!(first, Some(Err(LineError::TooLong))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_in_arbitrary_pieces_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            at.extend([0, bytes.len()]);
            at.sort_unstable();
            let pieces: Vec<Result<Bytes, std::io::Error>> = at
                .windows(2)
                .map(|w| Ok(Bytes::copy_from_slice(&bytes[w[0]..w[1]])))
                .collect();
            let got: Vec<_> = futures::executor::block_on(lines(futures::stream::iter(pieces)).collect());
            // Valid UTF-8 comes back as its lines; anything else ends in an error.
            if let Ok(text) = std::str::from_utf8(&bytes) {
                // (Empty lines aside: a final lone CR is no line to the codec.)
                let want: Vec<&str> = text
                    .lines()
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| !l.is_empty())
                    .collect();
                let got: Vec<String> = got
                    .into_iter()
                    .map(|l| l.unwrap_or_default())
                    .filter(|l| !l.is_empty())
                    .collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
