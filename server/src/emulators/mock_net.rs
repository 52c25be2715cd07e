//! `calos mock-net`: a delaying TCP proxy, a userspace stand-in for Linux's
//! `tc netem`, which these machines do not have. Experiments and tests put it
//! between calos and an upstream (an LLM, the database) to add network delay
//! without touching the kernel:
//!
//! ```text
//! calos mock-net --listen 0 --target 127.0.0.1:5432 --delay-ms 20
//! mock-net listening on 127.0.0.1:40123 -> 127.0.0.1:5432
//! ```
//!
//! Every byte waits `--delay-ms` in each direction, so a request/response round
//! trip costs twice that; delays are pipelined (a stream of chunks, each delayed
//! on its own), not cumulative. `--jitter-ms` moves each chunk up to that much
//! earlier or later, but never ahead of the chunk before it: TCP delivers in
//! order. `--bandwidth-kbps` caps each direction's rate.
//!
//! Each direction is a reader that stamps every chunk with the time it may
//! leave and a writer that sleeps until then; a bounded channel between them
//! gives backpressure and bounds the memory one connection can hold.

use bytes::Bytes;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The most one read takes off a socket: one chunk, one due time.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks waiting out their delay per direction. With full chunks that is
/// 1 MiB per direction: enough to keep a fast stream flowing through a delay of
/// tens of milliseconds, and a bound on what a connection can hold.
const CHUNKS_IN_FLIGHT: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer delays or jitter are typos, and would overflow `Instant` arithmetic.
const MAX_DELAY_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Args)]
pub struct MockNetArgs {
    /// Port to listen on (0 picks a free one; the ready line names it).
    #[arg(long)]
    pub listen: u16,
    /// Where each connection is forwarded, as HOST:PORT.
    #[arg(long)]
    pub target: String,
    /// Milliseconds every byte waits in each direction (a round trip costs twice this).
    /// Fractions are kept (`--delay-ms 1.25`): a database round trip is
    /// short, and a chat makes many of them.
    #[arg(long, value_parser = delay_in_ms)]
    pub delay_ms: f64,
    /// Each chunk's delay moves by up to this many milliseconds either way, uniformly at random (order is kept).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=MAX_DELAY_MS))]
    pub jitter_ms: u64,
    /// Cap each direction at this many kilobits per second (no cap when absent).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub bandwidth_kbps: Option<u64>,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Connections proxied at once; one more is closed as soon as it is accepted.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
}

impl MockNetArgs {
    /// A proxy on a free loopback port to `target`, adding `delay_ms` each
    /// way, with no jitter or bandwidth cap: what an experiment usually wants.
    pub fn to(target: impl Into<String>, delay_ms: f64) -> Self {
        Self {
            listen: 0,
            target: target.into(),
            delay_ms,
            jitter_ms: 0,
            bandwidth_kbps: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_connections: 256,
        }
    }
}

/// A delay flag's value: a number of milliseconds from 0 to an hour.
fn delay_in_ms(value: &str) -> Result<f64, String> {
    let ms: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a number of milliseconds"))?;
    if (0.0..=MAX_DELAY_MS as f64).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("the delay must be from 0 to {MAX_DELAY_MS} ms"))
    }
}

/// What the link does to the bytes crossing it, the same in both directions.
#[derive(Debug, Clone, Copy)]
struct LinkShape {
    delay: Duration,
    jitter: Duration,
    bits_per_sec: Option<u64>,
}

impl LinkShape {
    fn from_args(args: &MockNetArgs) -> Self {
        Self {
            delay: Duration::from_secs_f64(args.delay_ms.clamp(0.0, MAX_DELAY_MS as f64) / 1e3),
            jitter: Duration::from_millis(args.jitter_ms.min(MAX_DELAY_MS)),
            bits_per_sec: args
                .bandwidth_kbps
                .filter(|&kbps| kbps > 0)
                .map(|kbps| kbps.saturating_mul(1000)),
        }
    }
}

/// A running proxy. Dropping it (or [`MockNet::stop`]) stops accepting and
/// closes every proxied connection.
pub struct MockNet {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    serving: JoinHandle<()>,
}

impl MockNet {
    /// Stops the proxy and waits until every proxied connection is closed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.serving).await;
    }

    /// Cancelling this token stops the proxy as [`MockNet::stop`] does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

impl Drop for MockNet {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Binds `args.host:args.listen` and proxies to `args.target` in the
/// background until the returned [`MockNet`] is stopped or dropped.
pub async fn start(args: &MockNetArgs) -> io::Result<MockNet> {
    check_target_resolves(&args.target).await?;
    let listener = TcpListener::bind(SocketAddr::new(args.host, args.listen)).await?;
    let addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(
        args.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(accept_loop(
        listener,
        Arc::from(args.target.as_str()),
        LinkShape::from_args(args),
        slots,
        shutdown.clone(),
    ));
    Ok(MockNet {
        addr,
        shutdown,
        serving,
    })
}

/// `calos mock-net`: runs until SIGINT/SIGTERM.
pub async fn run(args: MockNetArgs) -> anyhow::Result<()> {
    let proxy = start(&args).await.map_err(|e| {
        anyhow::anyhow!(
            "mock-net on {}:{} -> {}: {e}",
            args.host,
            args.listen,
            args.target
        )
    })?;
    // Scripts and tests read this line to find the port (`--listen 0` picks a free one).
    println!("mock-net listening on {} -> {}", proxy.addr, args.target);
    let stop = CancellationToken::new();
    crate::shutdown::cancel_on_signals(stop.clone());
    stop.cancelled().await;
    proxy.stop().await;
    Ok(())
}

/// A mistyped target fails at start rather than at the first connection.
async fn check_target_resolves(target: &str) -> io::Result<()> {
    match tokio::net::lookup_host(target).await?.next() {
        Some(_) => Ok(()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("target {target:?} resolves to no address"),
        )),
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<str>,
    link: LinkShape,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let pairs = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                pause_after_accept_error(e).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "mock-net: over --max-connections; closing the connection");
            drop(client);
            continue;
        };
        pairs.spawn(proxy_connection(
            client,
            peer,
            target.clone(),
            link,
            slot,
            shutdown.clone(),
        ));
    }
    // Closed before the wait, so a new client is refused at once instead of
    // waiting in the backlog of a proxy that will never accept it.
    drop(listener);
    pairs.close();
    pairs.wait().await;
}

/// Errors of one connection (reset before accept) are nothing to wait for; the
/// rest (out of file descriptors) would repeat at once, so pause instead of spinning.
async fn pause_after_accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "mock-net: accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One client and its upstream, from accept to close. `_slot` is held for the
/// whole life of the pair: that is what bounds the connections.
async fn proxy_connection(
    client: TcpStream,
    peer: SocketAddr,
    target: Arc<str>,
    link: LinkShape,
    _slot: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let proxied = async {
        let upstream = connect_to_target(&target).await?;
        tracing::debug!(%peer, %target, "mock-net: connection open");
        relay_both_ways(client, upstream, link).await
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        result = proxied => match result {
            Ok(()) => tracing::debug!(%peer, "mock-net: connection closed"),
            Err(e) => tracing::warn!(%peer, %target, error = %e, "mock-net: connection ended"),
        },
    }
}

async fn connect_to_target(target: &str) -> io::Result<TcpStream> {
    let connecting = TcpStream::connect(target);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {target} took over {CONNECT_TIMEOUT:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Both directions at once; the pair closes when both have ended or either fails.
async fn relay_both_ways(
    client: TcpStream,
    upstream: TcpStream,
    link: LinkShape,
) -> io::Result<()> {
    // Nagle's algorithm would hold small writes back (up to the peer's delayed
    // ACK, ~40 ms), a delay nobody asked for on top of the one configured.
    client.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::try_join!(
        delayed_pipe(client_read, upstream_write, link),
        delayed_pipe(upstream_read, client_write, link),
    )?;
    Ok(())
}

/// One direction: a reader stamping chunks with their due time and a writer
/// delivering them then, joined by a bounded channel.
async fn delayed_pipe(from: OwnedReadHalf, to: OwnedWriteHalf, link: LinkShape) -> io::Result<()> {
    let (chunks_tx, chunks_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::try_join!(
        read_and_stamp(from, chunks_tx, link),
        write_when_due(chunks_rx, to, link),
    )?;
    Ok(())
}

/// Bytes read off one socket and the moment they may be written to the other.
struct Chunk {
    due: Instant,
    bytes: Bytes,
}

async fn read_and_stamp(
    mut from: OwnedReadHalf,
    chunks: mpsc::Sender<Chunk>,
    link: LinkShape,
) -> io::Result<()> {
    let mut clock = DueClock::new(link.delay, link.jitter);
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // EOF: returning drops `chunks`, which tells the writer to pass the
            // half-close on once the chunks still waiting are delivered.
            return Ok(());
        }
        let chunk = Chunk {
            due: clock.stamp(Instant::now()),
            bytes: Bytes::copy_from_slice(&buf[..n]),
        };
        if chunks.send(chunk).await.is_err() {
            // The writer is gone, so it failed, and reports that itself.
            return Ok(());
        }
    }
}

async fn write_when_due(
    mut chunks: mpsc::Receiver<Chunk>,
    mut to: OwnedWriteHalf,
    link: LinkShape,
) -> io::Result<()> {
    let mut pacer = Pacer::new(link.bits_per_sec);
    while let Some(chunk) = chunks.recv().await {
        let start = pacer.earliest_start(chunk.due);
        tokio::time::sleep_until(start).await;
        to.write_all(&chunk.bytes).await?;
        pacer.book(start, chunk.bytes.len());
    }
    to.shutdown().await
}

/// Stamps the chunks of one direction with the time they may leave.
struct DueClock {
    delay: Duration,
    jitter: Duration,
    previous_due: Option<Instant>,
    rng: StdRng,
}

impl DueClock {
    fn new(delay: Duration, jitter: Duration) -> Self {
        Self {
            delay,
            jitter,
            previous_due: None,
            rng: StdRng::from_entropy(),
        }
    }

    fn stamp(&mut self, arrival: Instant) -> Instant {
        let offset_us = self.jitter_offset_us();
        let due = due_time(
            arrival,
            jittered_delay(self.delay, offset_us),
            self.previous_due,
        );
        self.previous_due = Some(due);
        due
    }

    /// Uniform in [-jitter, +jitter], in microseconds.
    fn jitter_offset_us(&mut self) -> i64 {
        if self.jitter.is_zero() {
            return 0;
        }
        let jitter_us = i64::try_from(self.jitter.as_micros()).unwrap_or(i64::MAX);
        self.rng.gen_range(-jitter_us..=jitter_us)
    }
}

/// `delay` moved by `offset_us` (negative: earlier), never below zero: a chunk
/// cannot leave before it arrived.
fn jittered_delay(delay: Duration, offset_us: i64) -> Duration {
    let shift = Duration::from_micros(offset_us.unsigned_abs());
    if offset_us >= 0 {
        delay.saturating_add(shift)
    } else {
        delay.saturating_sub(shift)
    }
}

/// When a chunk that arrived at `arrival` may leave: after `delay`, and never
/// before the chunk ahead of it. A real link with jitter reorders packets, but
/// TCP hands the bytes over in order, so the stream only ever sees the later time.
fn due_time(arrival: Instant, delay: Duration, previous_due: Option<Instant>) -> Instant {
    let due = arrival + delay;
    previous_due.map_or(due, |previous| due.max(previous))
}

/// Keeps one direction at or under a bit rate: each write books the wire for
/// as long as its bytes take at that rate, and the next write waits for it.
struct Pacer {
    bits_per_sec: Option<u64>,
    wire_free_at: Option<Instant>,
}

impl Pacer {
    fn new(bits_per_sec: Option<u64>) -> Self {
        Self {
            bits_per_sec,
            wire_free_at: None,
        }
    }

    fn earliest_start(&self, due: Instant) -> Instant {
        self.wire_free_at.map_or(due, |free| due.max(free))
    }

    /// Books from the planned `start` rather than from now, so a timer firing
    /// late does not lower the rate below the cap.
    fn book(&mut self, start: Instant, bytes: usize) {
        if let Some(bits_per_sec) = self.bits_per_sec {
            self.wire_free_at = Some(start + transmission_time(bytes, bits_per_sec));
        }
    }
}

fn transmission_time(bytes: usize, bits_per_sec: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 8.0 / bits_per_sec.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const GUARD: Duration = Duration::from_secs(60);

    fn args(target: SocketAddr, delay_ms: f64) -> MockNetArgs {
        MockNetArgs::to(target.to_string(), delay_ms)
    }

    /// Echoes every connection back to itself and closes after the client's EOF.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// Bytes whose order is visible: a reordered or dropped chunk breaks the pattern.
    fn patterned(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Writes `payload`, half-closes, and reads everything echoed back.
    async fn echo_through(proxy: SocketAddr, payload: Vec<u8>) -> Vec<u8> {
        let stream = TcpStream::connect(proxy).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let writing = tokio::spawn(async move {
            write.write_all(&payload).await.unwrap();
            write.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        tokio::time::timeout(GUARD, read.read_to_end(&mut echoed))
            .await
            .expect("the echo never finished")
            .unwrap();
        writing.await.unwrap();
        echoed
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
        stream.write_all(message).await.unwrap();
        let mut reply = vec![0u8; message.len()];
        tokio::time::timeout(GUARD, stream.read_exact(&mut reply))
            .await
            .expect("no reply")
            .unwrap();
        reply
    }

    #[tokio::test]
    async fn a_round_trip_costs_twice_the_delay_and_keeps_the_bytes() {
        let proxy = start(&args(echo_server().await, 30.0)).await.unwrap();

        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let sent = Instant::now();
        assert_eq!(round_trip(&mut stream, b"ping").await, b"ping");
        assert!(
            sent.elapsed() >= Duration::from_millis(60),
            "{:?}",
            sent.elapsed()
        );

        let payload = patterned(1024 * 1024);
        let sent = Instant::now();
        let echoed = echo_through(proxy.addr, payload.clone()).await;
        assert!(
            sent.elapsed() >= Duration::from_millis(60),
            "{:?}",
            sent.elapsed()
        );
        assert!(
            echoed == payload,
            "1 MiB came back changed ({} bytes)",
            echoed.len()
        );
        proxy.stop().await;
    }

    #[tokio::test]
    async fn no_delay_passes_bytes_through_unchanged() {
        let proxy = start(&args(echo_server().await, 0.0)).await.unwrap();

        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello").await, b"hello");
        let payload = patterned(1024 * 1024 + 7);
        assert!(echo_through(proxy.addr, payload.clone()).await == payload);
    }

    #[tokio::test]
    async fn a_connection_over_the_limit_is_closed_and_the_others_keep_working() {
        let mut limited = args(echo_server().await, 0.0);
        limited.max_connections = 2;
        let proxy = start(&limited).await.unwrap();

        let mut first = TcpStream::connect(proxy.addr).await.unwrap();
        let mut second = TcpStream::connect(proxy.addr).await.unwrap();
        // A reply means the proxy accepted the connection and holds its slot.
        assert_eq!(round_trip(&mut first, b"1").await, b"1");
        assert_eq!(round_trip(&mut second, b"2").await, b"2");

        let mut third = TcpStream::connect(proxy.addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(GUARD, third.read(&mut buf))
            .await
            .expect("the third connection was left open");
        assert!(matches!(read, Ok(0)), "{read:?}");

        assert_eq!(round_trip(&mut first, b"still").await, b"still");
        assert_eq!(round_trip(&mut second, b"here").await, b"here");
    }

    #[tokio::test]
    async fn the_bandwidth_cap_holds_the_rate_down() {
        let mut capped = args(echo_server().await, 0.0);
        capped.bandwidth_kbps = Some(2048);
        let proxy = start(&capped).await.unwrap();

        let payload = patterned(64 * 1024);
        let sent = Instant::now();
        assert!(echo_through(proxy.addr, payload.clone()).await == payload);
        // The last chunk's own time is booked, not waited for.
        let least = transmission_time(payload.len() - CHUNK_BYTES, 2_048_000);
        assert!(sent.elapsed() >= least, "{:?} < {least:?}", sent.elapsed());
    }

    #[test]
    fn due_times_never_go_backwards_under_jitter() {
        let mut clock = DueClock::new(Duration::from_millis(10), Duration::from_millis(50));
        let mut rng = StdRng::seed_from_u64(7);
        let mut arrival = Instant::now();
        let mut previous = None;
        for _ in 0..10_000 {
            arrival += Duration::from_micros(rng.gen_range(0..5_000));
            let due = clock.stamp(arrival);
            assert!(due >= arrival, "a chunk left before it arrived");
            if let Some(previous) = previous {
                assert!(due >= previous, "a chunk overtook the one ahead of it");
            }
            previous = Some(due);
        }
    }

    #[test]
    fn a_chunk_waits_for_the_one_ahead_of_it() {
        let now = Instant::now();
        let delay = Duration::from_millis(30);
        assert_eq!(due_time(now, delay, None), now + delay);
        let later = now + Duration::from_secs(1);
        assert_eq!(due_time(now, delay, Some(later)), later);
        assert_eq!(due_time(now, delay, Some(now)), now + delay);
    }

    #[test]
    fn jitter_never_makes_a_delay_negative() {
        let delay = Duration::from_millis(5);
        assert_eq!(jittered_delay(delay, -20_000), Duration::ZERO);
        assert_eq!(jittered_delay(delay, -2_000), Duration::from_millis(3));
        assert_eq!(jittered_delay(delay, 2_000), Duration::from_millis(7));
    }

    #[test]
    fn transmission_time_is_bits_over_rate() {
        assert_eq!(transmission_time(1000, 8_000), Duration::from_secs(1));
        assert_eq!(transmission_time(125, 1_000_000), Duration::from_millis(1));
    }

    #[test]
    fn the_cli_defaults_are_loopback_and_256_connections() {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            net: MockNetArgs,
        }
        let cli = Cli::try_parse_from([
            "mock-net",
            "--listen",
            "0",
            "--target",
            "127.0.0.1:5432",
            "--delay-ms",
            "20",
        ])
        .unwrap();
        assert_eq!(cli.net.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(cli.net.max_connections, 256);
        assert_eq!((cli.net.jitter_ms, cli.net.bandwidth_kbps), (0, None));
        assert!(Cli::try_parse_from(["mock-net", "--listen", "0", "--delay-ms", "1"]).is_err());
    }

    #[test]
    fn a_delay_may_be_a_fraction_of_a_millisecond_but_not_negative() {
        assert_eq!(delay_in_ms("1.25"), Ok(1.25));
        assert_eq!(delay_in_ms("0"), Ok(0.0));
        for bad in ["-1", "NaN", "inf", "5ms", "3600001"] {
            assert!(delay_in_ms(bad).is_err(), "{bad}");
        }
        let shape = LinkShape::from_args(&MockNetArgs::to("127.0.0.1:1", 1.25));
        assert_eq!(shape.delay, Duration::from_micros(1250));
    }
}
