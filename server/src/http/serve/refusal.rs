//! The answer to a connection over a cap: a minimal `503` in the API's error
//! shape, then close.
//!
//! Dropping the socket at once would leave the client guessing (a reset looks
//! like a crash); a few hundred bytes tell it what happened and when to retry.
//! The answer is written in its own task, within [`ANSWER_TIME`], so a client
//! that never reads cannot hold the accept loop, and at most
//! [`REFUSALS_IN_FLIGHT`] such tasks run at once: past that, a flood's sockets
//! are simply closed, because answering them would cost what the cap protects.

use super::admission::Refusal;
use app::wire::{ErrorDetail, ErrorResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The error code of a refused connection.
pub const CODE: &str = "too_many_connections";

/// How long a refused client has to take its answer and hang up.
const ANSWER_TIME: Duration = Duration::from_secs(2);

/// Refusals answered at once; more are closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 1024;

/// What a client whose request arrives after the answer may still send, read and
/// thrown away so that closing does not reset the connection before the client
/// has read the 503 (the lingering close nginx does).
const DRAIN_BYTES: usize = 64 * 1024;

/// Answers refused connections, a bounded number at a time.
#[derive(Debug, Clone)]
pub struct Refuser {
    slots: Arc<Semaphore>,
}

impl Default for Refuser {
    fn default() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT)),
        }
    }
}

impl Refuser {
    /// Answers `stream` in a task of its own; never waits.
    pub fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(ANSWER_TIME, answer(stream, refusal)).await;
            drop(slot);
        });
    }
}

async fn answer(mut stream: TcpStream, refusal: Refusal) -> std::io::Result<()> {
    stream.write_all(&response(refusal)).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match stream.read(&mut sink).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// The whole HTTP/1.1 response, headers and JSON body.
fn response(refusal: Refusal) -> Vec<u8> {
    let message = match refusal {
        Refusal::Global => "calos has as many open connections as it allows; try again shortly.",
        Refusal::PerPeer => {
            "Your address has as many open connections as calos allows; close one or try again shortly."
        }
    };
    let body = serde_json::to_string(&ErrorResponse {
        success: false,
        error: ErrorDetail {
            kind: None,
            code: CODE.into(),
            message: message.into(),
            field: None,
        },
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         retry-after: 1\r\n\
         cache-control: private, no-store\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_a_complete_503_in_the_api_error_shape() {
        let text = String::from_utf8(response(Refusal::PerPeer)).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let parsed: Result<ErrorResponse, _> = serde_json::from_str(body);
        assert!(parsed.is_ok_and(|e| !e.success && e.error.code == CODE));
    }
}
