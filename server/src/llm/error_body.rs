//! Reading an upstream's error body with a size and a time limit.
//!
//! An error status comes with a body we only want a message from, and the
//! connect timeout has already run out its use once the headers are in. A
//! provider (or a proxy in front of it) answering 500 with a 2 GB HTML page, or
//! with a body that never ends, must cost neither that memory nor the request's
//! time: we keep the first [`MAX_ERROR_BODY_BYTES`] and stop reading after
//! [`ERROR_BODY_TIME`], whatever has arrived by then is the message.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::time::Duration;

/// The most of an error body kept (messages are short; HTML pages are not).
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How long an error body may take to arrive.
pub const ERROR_BODY_TIME: Duration = Duration::from_secs(5);

/// At most `max_bytes` of `body`, read for at most `within`. A read error or
/// the deadline ends the read; what arrived before is kept. Dropping the body
/// early closes its connection rather than draining it.
pub async fn read_bounded<S, E>(body: S, max_bytes: usize, within: Duration) -> Vec<u8>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut kept = Vec::new();
    futures::pin_mut!(body);
    while kept.len() < max_bytes {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                let room = max_bytes - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            // The end, a broken body, or out of time.
            Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::time::Instant;

    #[tokio::test]
    async fn an_oversized_body_is_cut_at_the_limit() {
        let pieces = (0..100).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'x'; 1000])));
        let kept = read_bounded(futures::stream::iter(pieces), 4096, ERROR_BODY_TIME).await;
        assert_eq!(kept.len(), 4096);
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_off_by_time() {
        let first = futures::stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"overloaded"))]);
        let endless = first.chain(futures::stream::pending());
        let started = Instant::now();
        let kept = read_bounded(endless, MAX_ERROR_BODY_BYTES, Duration::from_millis(200)).await;
        let took = started.elapsed();
        assert_eq!(kept, b"overloaded", "what arrived in time is kept");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_short_body_is_read_whole() {
        let body = futures::stream::iter([Ok::<_, Infallible>(Bytes::from_static(
            b"{\"error\":\"no\"}",
        ))]);
        assert_eq!(
            read_bounded(body, MAX_ERROR_BODY_BYTES, ERROR_BODY_TIME).await,
            b"{\"error\":\"no\"}"
        );
    }
}
