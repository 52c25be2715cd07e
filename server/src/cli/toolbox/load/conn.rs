//! The load generator's transport: HTTP/1.1 connections driven by hyper
//! directly, reused across requests and opened on demand, one per request in
//! flight (what oha does). reqwest's pool and request builder cost about a third
//! of the generator's peak throughput; here a request is a header map and a
//! cloned body.

use super::super::diag::network::tls_config;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

pub type Sender = SendRequest<Full<Bytes>>;

/// Where the connections go, resolved once.
pub struct Connections {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    idle: Mutex<Vec<Sender>>,
}

impl Connections {
    pub fn new(url: &Url) -> Result<Self, String> {
        let host = url.host_str().ok_or("the URL has no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("{host} is not a valid TLS name: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(tls_config()?), name))
            }
            other => return Err(format!("unsupported scheme {other}; use http or https")),
        };
        Ok(Self {
            host,
            port,
            tls,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An idle connection that is still open, or a new one.
    pub async fn checkout(&self) -> Result<Sender, String> {
        loop {
            // A statement of its own, so the guard is gone before the next await.
            let next = self.idle.lock().pop();
            match next {
                Some(sender) if !sender.is_closed() => return Ok(sender),
                Some(_) => {}
                None => break,
            }
        }
        self.connect().await
    }

    /// Returns a connection whose last response was read to the end.
    pub fn checkin(&self, sender: Sender) {
        if !sender.is_closed() {
            self.idle.lock().push(sender);
        }
    }

    pub async fn connect(&self) -> Result<Sender, String> {
        let address = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                format!("cannot reach {address} ({e}); is calos running there? (`calos serve`)")
            })?;
        let _ = tcp.set_nodelay(true);
        let handshake_failed =
            |e: hyper::Error| format!("HTTP handshake with {address} failed: {e}");
        match &self.tls {
            None => {
                let (sender, connection) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(handshake_failed)?;
                tokio::spawn(connection);
                Ok(sender)
            }
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {address} failed: {e}"))?;
                let (sender, connection) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(handshake_failed)?;
                tokio::spawn(connection);
                Ok(sender)
            }
        }
    }
}
