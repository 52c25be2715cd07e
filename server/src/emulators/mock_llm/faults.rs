//! Fault switches, and the accept loop that can refuse connections outright.

use super::MockState;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Accept the TCP connection and close it at once.
    Refuse,
    /// Answer every request with this HTTP status.
    Status(u16),
    /// 429 with `Retry-After: N`.
    RateLimit(u64),
    /// Stop sending (but keep the connection) after N tokens.
    StallAfter(u32),
    /// Cut the connection after N tokens.
    DropAfter(u32),
    /// Send a malformed chunk after N tokens.
    MalformedAfter(u32),
    /// HTTP 500 for the first N requests, then normal answers.
    FailFirst(u32),
    /// 200 with an HTML page (a captive portal, a proxy's login page).
    Html,
    /// 200 whose stream carries bytes that are not UTF-8.
    InvalidUtf8,
    /// 302 to another address (which must never be followed with the key).
    Redirect,
}

pub fn parse(s: &str) -> Result<Fault, String> {
    let (name, arg) = s
        .split_once(':')
        .map(|(n, a)| (n, Some(a)))
        .unwrap_or((s, None));
    let num = |a: Option<&str>| {
        a.and_then(|a| a.trim().parse::<u64>().ok())
            .ok_or(format!("fault {name:?} needs a number, like {name}:3"))
    };
    Ok(match name.trim() {
        "none" | "" => Fault::None,
        "refuse" => Fault::Refuse,
        "status" => Fault::Status(num(arg)?.clamp(100, 599) as u16),
        "rate-limit" => Fault::RateLimit(num(arg).unwrap_or(1)),
        "stall-after" => Fault::StallAfter(num(arg)? as u32),
        "drop-after" => Fault::DropAfter(num(arg)? as u32),
        "malformed-after" => Fault::MalformedAfter(num(arg)? as u32),
        "fail-first" => Fault::FailFirst(num(arg)? as u32),
        "html" => Fault::Html,
        "invalid-utf8" => Fault::InvalidUtf8,
        "redirect" => Fault::Redirect,
        other => return Err(format!("unknown fault {other:?}")),
    })
}

/// Accepts connections, except while the fault is `refuse`: then each one is
/// closed immediately (what a crashed upstream looks like from outside).
pub struct FaultyListener {
    pub inner: TcpListener,
    pub state: Arc<MockState>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((socket, addr)) => {
                    if self.state.fault() == Fault::Refuse {
                        drop(socket);
                        continue;
                    }
                    let _ = socket.set_nodelay(true);
                    return (socket, addr);
                }
                // Out of file descriptors and the like: back off briefly.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: Arc<MockState>,
    shutdown: CancellationToken,
) {
    let listener = FaultyListener {
        inner: listener,
        state,
    };
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_their_cli_spelling() {
        assert_eq!(parse("stall-after:3"), Ok(Fault::StallAfter(3)));
        assert_eq!(parse("status:503"), Ok(Fault::Status(503)));
        assert_eq!(parse("rate-limit:2"), Ok(Fault::RateLimit(2)));
        assert_eq!(parse("refuse"), Ok(Fault::Refuse));
        assert!(parse("drop-after").is_err());
        assert!(parse("explode").is_err());
    }
}
