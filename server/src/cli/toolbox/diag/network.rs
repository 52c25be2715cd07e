//! `calos diag network URL`: repeated GETs, each timed phase by phase (DNS,
//! TCP connect, TLS handshake, request → first byte, total), like curl's
//! `-w` timings. The request is written by hand over the socket because HTTP
//! clients hide these phases; `Connection: close` makes "read to EOF" the end.

use super::stats::{summarise, Summary};
use crate::cli::toolbox::ToolError;
use crate::config::{duration, Unit, Zero};
use clap::Args;
use reqwest::Url;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bodies larger than this are not read further (the timing is what matters).
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// What to probe, e.g. http://localhost:5001/api/health.
    pub url: String,
    /// Probes to send.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub count: u32,
    /// Seconds one probe may take (or e.g. `500ms`).
    #[arg(long, default_value = "5", value_parser = duration(Unit::Secs, Zero::Refused))]
    pub timeout: Duration,
    #[arg(long)]
    pub json: bool,
}

/// One probe, each phase in ms.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub ok: bool,
    pub error: Option<String>,
    pub status: Option<u16>,
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub tls: Option<f64>,
    /// Request written → first response byte.
    pub first_byte: Option<f64>,
    pub total: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkReport {
    pub url: String,
    pub attempts: u32,
    pub answered: u32,
    pub loss_percent: f64,
    /// Total time per answered probe.
    pub latency: Option<Summary>,
    pub dns: Option<Summary>,
    pub connect: Option<Summary>,
    pub tls: Option<Summary>,
    pub first_byte: Option<Summary>,
    pub probes: Vec<Probe>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn tls_config() -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls;
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Writes a GET and reads the answer to EOF: (first byte, status, bytes read).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
) -> std::io::Result<(Duration, Option<u16>)> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let written = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    let first = stream.read(&mut buf).await?;
    if first == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without answering",
        ));
    }
    let first_byte = written.elapsed();
    let status = std::str::from_utf8(&buf[..first.min(64)])
        .ok()
        .and_then(|head| head.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok());
    let mut read = first;
    while read < MAX_BODY {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => read += n,
            // Servers often reset after Connection: close once the body is sent.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok((first_byte, status))
}

async fn probe_once(url: &Url, probe: &mut Probe) -> Result<(), String> {
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("unsupported scheme {other}; use http or https")),
    };
    let started = Instant::now();
    let host_for_dns = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = tokio::net::lookup_host((host_for_dns.as_str(), port))
        .await
        .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?
        .next()
        .ok_or_else(|| format!("DNS lookup of {host} found no address"))?;
    probe.dns = Some(ms(started.elapsed()));
    let connecting = Instant::now();
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr} failed: {e}"))?;
    let _ = tcp.set_nodelay(true);
    probe.connect = Some(ms(connecting.elapsed()));
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: calos-diag\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.authority()
    );
    let (first_byte, status) = if https {
        let handshake = Instant::now();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host_for_dns.clone())
            .map_err(|e| format!("{host} is not a valid TLS name: {e}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
        probe.tls = Some(ms(handshake.elapsed()));
        exchange(&mut tls, request.as_bytes()).await
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, request.as_bytes()).await
    }
    .map_err(|e| format!("HTTP exchange with {addr} failed: {e}"))?;
    probe.first_byte = Some(ms(first_byte));
    probe.status = status;
    probe.total = Some(ms(started.elapsed()));
    Ok(())
}

async fn probe(url: &Url, timeout: Duration) -> Probe {
    let mut probe = Probe::default();
    let result = tokio::time::timeout(timeout, probe_once(url, &mut probe)).await;
    match result {
        Ok(Ok(())) => probe.ok = true,
        Ok(Err(e)) => probe.error = Some(e),
        Err(_) => probe.error = Some(format!("no answer within {:.1} s", timeout.as_secs_f64())),
    }
    probe
}

/// Probes `args.url` `args.count` times, 100 ms apart.
pub async fn measure(args: &NetworkArgs) -> Result<NetworkReport, ToolError> {
    let url =
        Url::parse(&args.url).map_err(|e| anyhow::anyhow!("{:?} is not a URL: {e}", args.url))?;
    let timeout = args.timeout;
    let mut probes = Vec::new();
    for i in 0..args.count.max(1) {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        probes.push(probe(&url, timeout).await);
    }
    let answered = probes.iter().filter(|p| p.ok).count() as u32;
    let attempts = probes.len() as u32;
    let pick =
        |f: fn(&Probe) -> Option<f64>| summarise(probes.iter().filter(|p| p.ok).filter_map(f));
    let report = NetworkReport {
        url: args.url.clone(),
        attempts,
        answered,
        loss_percent: 100.0 * f64::from(attempts - answered) / f64::from(attempts.max(1)),
        latency: pick(|p| p.total),
        dns: pick(|p| p.dns),
        connect: pick(|p| p.connect),
        tls: pick(|p| p.tls),
        first_byte: pick(|p| p.first_byte),
        probes,
    };
    if answered == 0 {
        let why = report
            .probes
            .first()
            .and_then(|p| p.error.clone())
            .unwrap_or_default();
        return Err(ToolError::Unreachable(format!(
            "{} is unreachable: {why}",
            args.url
        )));
    }
    Ok(report)
}

pub fn render(r: &NetworkReport) -> String {
    let mut out = format!(
        "Network: {}  ({} of {} answered, {:.0}% loss)\n",
        r.url, r.answered, r.attempts, r.loss_percent
    );
    out.push_str("  (ms)            min      avg      p50      max\n");
    for (name, s) in [
        ("DNS", &r.dns),
        ("TCP connect", &r.connect),
        ("TLS", &r.tls),
        ("first byte", &r.first_byte),
        ("total", &r.latency),
    ] {
        if let Some(s) = s {
            out.push_str(&format!(
                "  {name:<12}{:>9.2}{:>9.2}{:>9.2}{:>9.2}\n",
                s.min, s.avg, s.p50, s.max
            ));
        }
    }
    for p in r.probes.iter().filter(|p| !p.ok) {
        out.push_str(&format!("  lost: {}\n", p.error.as_deref().unwrap_or("?")));
    }
    if let Some(status) = r.probes.iter().find_map(|p| p.status) {
        out.push_str(&format!("  HTTP status: {status}\n"));
    }
    let avg = r.latency.map_or(0.0, |l| l.avg);
    out.push_str(if avg > app::verdict::tree::NETWORK_LIMIT_MS {
        "  → high latency (> 100 ms): a network issue (VPN, proxy, distance), not your code\n"
    } else {
        "  → fine (expected < 50 ms on a LAN)\n"
    });
    out
}

pub async fn run(args: NetworkArgs) -> Result<(), ToolError> {
    let report = measure(&args).await?;
    super::print(&report, args.json, render)
}
