//! What one connection is doing, and when it has waited too long for its
//! client: idle between requests (the keep-alive timeout), receiving a
//! request's headers (the header-read timeout), or not reading what calos
//! writes (the write timeout, which also runs while a request is being
//! answered; otherwise no timer runs then, however long a stream lasts).
//!
//! The two phases are timed apart, as nginx does (`keepalive_timeout` until the
//! first byte of the next request, `client_header_timeout` from there). hyper's
//! own `header_read_timeout` starts when the previous response ends, so it
//! would also cut every kept-alive connection at the header timeout, however
//! long the keep-alive timeout is set.
//!
//! Three observers feed one state: [`WatchedIo`] sees the first byte of a
//! request arrive, [`CountRequests`] sees each request start and its response
//! body end, and the connection's task waits on [`Activity::deadline`].

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a client may take, per phase.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a connection's start, or a request's first byte, to its last header.
    pub header_read: Duration,
    /// From the end of a response to the first byte of the next request.
    pub keep_alive: Duration,
    /// How long a write may stay blocked because the client stopped reading.
    pub write: Duration,
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request's headers did not arrive in time: a slow or hostile client.
    HeadersTooSlow,
    /// No new request came on a kept-alive connection.
    Idle,
    /// The client stopped reading what calos sends it.
    WriteStalled,
}

/// One connection's state, shared by its IO, its service and its task.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Requests started whose response body has not ended.
    in_flight: usize,
    /// When the current wait began.
    since: Instant,
    /// Between requests: whether bytes of the next one have arrived.
    reading_head: bool,
    /// Since when the socket has refused more bytes (its send buffer is full).
    write_blocked_since: Option<Instant>,
}

impl Activity {
    /// A new connection owes its first request's headers at once: a client
    /// that connects and says nothing is timed like one that trickles.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                since: Instant::now(),
                reading_head: true,
                write_blocked_since: None,
            }),
            changed: Notify::new(),
        })
    }

    /// When the current wait runs out, and which it is; `None` while a request
    /// is being answered.
    pub fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, Expiry)> {
        let state = *self.state.lock();
        if let Some(blocked) = state.write_blocked_since {
            Some((blocked + timeouts.write, Expiry::WriteStalled))
        } else if state.in_flight > 0 {
            None
        } else if state.reading_head {
            Some((state.since + timeouts.header_read, Expiry::HeadersTooSlow))
        } else {
            Some((state.since + timeouts.keep_alive, Expiry::Idle))
        }
    }

    /// Resolves when the state changed since the last call (the deadline may
    /// have moved).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn bytes_arrived(&self) {
        let mut state = self.state.lock();
        if state.in_flight == 0 && !state.reading_head {
            state.reading_head = true;
            state.since = Instant::now();
            drop(state);
            self.changed.notify_one();
        }
    }

    fn write_blocked(&self, blocked: bool) {
        self.state.lock().write_blocked_since = blocked.then(Instant::now);
        self.changed.notify_one();
    }

    fn request_started(&self) {
        self.state.lock().in_flight += 1;
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        let mut state = self.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.reading_head = false;
            state.since = Instant::now();
        }
        drop(state);
        self.changed.notify_one();
    }
}

/// The socket, telling [`Activity`] when request bytes arrive, and holding
/// what must live exactly as long as the socket (the connection's admission
/// permit), which after a WebSocket upgrade is longer than the HTTP connection.
pub struct WatchedIo<T, Guard> {
    io: T,
    activity: Arc<Activity>,
    /// Whether the last write was refused (so [`Activity`] is told only of
    /// changes, not of every write).
    write_blocked: bool,
    _guard: Guard,
}

impl<T, Guard> WatchedIo<T, Guard> {
    pub fn new(io: T, activity: Arc<Activity>, guard: Guard) -> Self {
        Self {
            io,
            activity,
            write_blocked: false,
            _guard: guard,
        }
    }

    /// Tells [`Activity`] when writes start or stop being refused. Only a
    /// write that took bytes counts as the client reading again: a flush of
    /// a TCP socket is always ready, even while its buffer is full.
    fn note_write<R>(&mut self, polled: Poll<R>, took_bytes: bool) -> Poll<R> {
        let blocked = if polled.is_pending() {
            true
        } else if took_bytes {
            false
        } else {
            self.write_blocked
        };
        if blocked != self.write_blocked {
            self.write_blocked = blocked;
            self.activity.write_blocked(blocked);
        }
        polled
    }
}

impl<T: AsyncRead + Unpin, Guard: Unpin> AsyncRead for WatchedIo<T, Guard> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin, Guard: Unpin> AsyncWrite for WatchedIo<T, Guard> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        let took = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        self.note_write(polled, took)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        let took = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        self.note_write(polled, took)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.note_write(polled, false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connection's service, telling [`Activity`] when a request starts and
/// when its response body has been sent (or dropped): a streamed answer keeps
/// the connection busy until its last event.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> CountRequests<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B> tower::Service<Request<B>> for CountRequests<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let busy = Busy::enter(self.activity.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Body::new(BusyBody { body, _busy: busy })))
        })
    }
}

/// One request in flight; dropping it ends the request.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: Arc<Activity>) -> Self {
        activity.request_started();
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request in flight until hyper drops it.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    // Passed on so hyper still sends `Content-Length` for bodies of known size.
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        keep_alive: Duration::from_secs(75),
        write: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_is_timed_even_while_a_request_is_answered() {
        let activity = Activity::new();
        let _busy = Busy::enter(activity.clone());
        assert_eq!(activity.deadline(TIMEOUTS), None);
        activity.write_blocked(true);
        let blocked = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((blocked + TIMEOUTS.write, Expiry::WriteStalled))
        );
        activity.write_blocked(false);
        assert_eq!(activity.deadline(TIMEOUTS), None, "the client read again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_phases_are_timed_apart_and_requests_stop_the_clock() {
        let activity = Activity::new();
        let start = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((start + TIMEOUTS.header_read, Expiry::HeadersTooSlow))
        );
        let busy = Busy::enter(activity.clone());
        assert_eq!(activity.deadline(TIMEOUTS), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(busy);
        let idle = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((idle + TIMEOUTS.keep_alive, Expiry::Idle))
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.bytes_arrived();
        let head = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((head + TIMEOUTS.header_read, Expiry::HeadersTooSlow))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.bytes_arrived();
        assert_eq!(
            activity.deadline(TIMEOUTS).map(|(at, _)| at),
            Some(head + TIMEOUTS.header_read),
            "more bytes of the same head do not extend its time"
        );
    }
}
