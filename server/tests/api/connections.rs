//! What one client can make calos hold: slow headers and slow bodies are cut
//! off, idle kept-alive connections are closed, and one address cannot open
//! more than its share of connections. Raw sockets, so the tests control every
//! byte and every pause; on both databases.

use crate::helpers::{ask, on_both_databases, TestApp};
use app::wire::CompleteEvent;
use app::wire::ErrorResponse;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GET_HEALTH: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: calos\r\n\r\n";

/// One response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error_code(&self) -> String {
        match serde_json::from_slice::<ErrorResponse>(&self.body) {
            Ok(error) => error.error.code,
            Err(e) => panic!(
                "not the API's error shape ({e}): {}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
}

/// Reads one response with a `Content-Length`; `None` if the socket closes first.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .expect("a Content-Length");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

/// Reads until the server closes the socket (end of file or reset); returns
/// what it sent before.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn get_health(stream: &mut TcpStream) -> Option<RawResponse> {
    stream.write_all(GET_HEALTH).await.ok()?;
    read_response(stream).await
}

on_both_databases! {
    async fn a_client_that_trickles_its_headers_is_disconnected(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--header-read-timeout-secs", "2"]).await;
        let stream = TcpStream::connect(app.addr).await.unwrap();
        let connected = Instant::now();
        let (mut reader, mut writer) = stream.into_split();
        writer.write_all(b"GET /api/health HTTP/1.1\r\n").await.unwrap();
        // One byte a second: 40 s of headers if nobody stops it.
        let trickle = tokio::spawn(async move {
            for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
                if writer.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let said = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut reader))
            .await
            .expect("the server closes a connection whose headers trickle in");
        let open_for = connected.elapsed();
        trickle.abort();
        assert!(
            open_for >= Duration::from_millis(1500) && open_for <= Duration::from_secs(5),
            "closed after {open_for:?}, the header-read timeout is 2 s"
        );
        assert!(
            !String::from_utf8_lossy(&said).contains(" 200 "),
            "the trickled request was answered: {}",
            String::from_utf8_lossy(&said)
        );
    }

    async fn a_body_that_stalls_gets_a_408_in_the_api_error_shape(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--body-read-timeout-secs", "1"]).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: calos\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username")
            .await
            .unwrap();
        let sent = Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream))
            .await
            .expect("an answer to a stalled body")
            .expect("an answer before the close");
        let waited = sent.elapsed();
        assert_eq!(response.status, 408);
        assert_eq!(response.error_code(), "request_timeout");
        assert_eq!(response.header("connection"), Some("close"));
        assert!(
            waited >= Duration::from_millis(900) && waited <= Duration::from_secs(4),
            "answered after {waited:?}, the body-read timeout is 1 s"
        );
        let rest = tokio::time::timeout(Duration::from_secs(3), read_until_closed(&mut stream))
            .await
            .expect("the connection closes after the 408");
        assert!(rest.is_empty());
    }

    async fn one_address_gets_its_cap_of_connections_and_the_next_gets_503(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--max-connections-per-ip", "4"]).await;
        let mut held = Vec::new();
        for n in 0..4 {
            let mut stream = TcpStream::connect(app.addr).await.unwrap();
            let answer = get_health(&mut stream).await.map(|r| r.status);
            assert_eq!(answer, Some(200), "connection {n} of 4");
            held.push(stream);
        }
        let mut fifth = TcpStream::connect(app.addr).await.unwrap();
        let _ = fifth.write_all(GET_HEALTH).await;
        let refused = tokio::time::timeout(Duration::from_secs(5), read_response(&mut fifth))
            .await
            .expect("an answer, not a hang")
            .expect("a 503, not a reset");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.error_code(), "too_many_connections");
        assert_eq!(refused.header("connection"), Some("close"));
        assert!(tokio::time::timeout(Duration::from_secs(3), read_until_closed(&mut fifth)).await.is_ok());

        // The held connections are still served.
        assert_eq!(get_health(&mut held[0]).await.map(|r| r.status), Some(200));
        // Closing one gives its place back (once the server has seen the close).
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            let mut stream = TcpStream::connect(app.addr).await.unwrap();
            let status = get_health(&mut stream).await.map(|r| r.status);
            if status == Some(200) || Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status, Some(200), "a new connection after one closed");
    }

    async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(backend: Backend) {
        // The header-read timeout stays at its 10 s: the idle timer is its own.
        let app = TestApp::spawn_with(backend, &["--keep-alive-timeout-secs", "1.5"]).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        assert_eq!(get_health(&mut stream).await.map(|r| r.status), Some(200));
        tokio::time::sleep(Duration::from_millis(800)).await;
        // A request within the timeout is served on the same connection and
        // starts the idle time again.
        assert_eq!(get_health(&mut stream).await.map(|r| r.status), Some(200));
        let answered = Instant::now();
        let said = tokio::time::timeout(Duration::from_secs(8), read_until_closed(&mut stream))
            .await
            .expect("the server closes an idle kept-alive connection");
        let idle = answered.elapsed();
        assert!(said.is_empty());
        assert!(
            idle >= Duration::from_millis(1200) && idle <= Duration::from_secs(4),
            "closed after {idle:?} idle, the keep-alive timeout is 1.5 s"
        );
    }

    async fn a_stream_longer_than_both_timeouts_is_not_cut(backend: Backend) {
        // About 3 s of tokens against 1 s header-read and keep-alive timeouts:
        // neither runs while a request is being answered.
        let app = TestApp::spawn_with(
            backend,
            &[
                "--header-read-timeout-secs", "1",
                "--keep-alive-timeout-secs", "1",
                "--sim-tokens", "30",
                "--sim-tokens-per-sec", "10",
            ],
        )
        .await;
        let user = app.new_user("stream").await;
        let started = Instant::now();
        let events = app.stream(&user.token, &ask("sim", true)).await;
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "the stream was meant to outlast the timeouts"
        );
        assert!(
            matches!(events.last().map(|e| &e.event), Some(CompleteEvent::Done(_))),
            "the stream ended early: {:?}",
            events.last()
        );
    }
}
