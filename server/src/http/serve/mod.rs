//! calos's accept loop: serves a router on a listener over HTTP/1.1 (with
//! WebSocket upgrades), and bounds what a client can make calos hold.
//!
//! `axum::serve` gives no say over a connection's life, so a client could open
//! sockets without end, trickle its headers, or keep idle connections forever.
//! Here each accepted socket is first admitted against the global and per-peer
//! caps ([`admission`]; refused ones get a 503, [`refusal`]), then served by
//! hyper in a task that closes it when its client is too slow to send headers
//! or idle too long between requests ([`activity`]). Body reads are timed by
//! the `bounded_body` middleware, which can still answer (408).
//!
//! Like `axum::serve`, which it replaces: TCP_NODELAY on every socket,
//! `ConnectInfo<SocketAddr>` in every request, HTTP/1.1 only (calos never
//! enabled HTTP/2), and on shutdown no new connections while open ones finish
//! their requests.

pub mod activity;
pub mod admission;
pub mod refusal;

use activity::{Activity, CountRequests, Expiry, Timeouts, WatchedIo};
use admission::Admission;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use refusal::Refuser;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// What both listeners share: the caps (one process, one descriptor budget),
/// the refusal answerer and the per-connection timeouts.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub admission: Admission,
    pub refuser: Refuser,
    pub timeouts: Timeouts,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits for
/// the open connections to finish the requests they are answering.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                survive_accept_error(e).await;
                continue;
            }
        };
        // Small writes (stream events) must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        match limits.admission.admit(peer.ip()) {
            Ok(permit) => {
                let io = (stream, permit);
                connections.spawn(serve_connection(
                    io,
                    peer,
                    router.clone(),
                    limits.timeouts,
                    shutdown.clone(),
                ));
            }
            Err(refused) => {
                tracing::debug!(%peer, ?refused, "connection refused: over the cap");
                limits.refuser.refuse(stream, refused);
            }
        }
    }
    // Closed before the wait, so a new client is refused at once instead of
    // sitting in the accept backlog of a server that will never answer it.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Errors of one connection (reset before accept) are nothing to wait for; the
/// rest (out of file descriptors) would repeat at once, so pause before the
/// next accept instead of spinning, as `axum::serve` does.
async fn survive_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection, from its first byte to its close (or its upgrade, after
/// which the WebSocket owns the socket and its permit).
async fn serve_connection(
    (stream, permit): (TcpStream, admission::Permit),
    peer: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) {
    let activity = Activity::new();
    let io = TokioIo::new(WatchedIo::new(stream, activity.clone(), permit));
    // What `into_make_service_with_connect_info::<SocketAddr>()` did: handlers
    // and `ClientIp` read the peer from `ConnectInfo`.
    let router = router.map_request(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let service = TowerToHyperService::new(CountRequests::new(router, activity.clone()));
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(timeouts);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.cancelled(), if !draining => {
                // Finish the request being answered, take no new one.
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = activity.changed() => {}
            _ = sleep_until(deadline) => {
                // Re-read: a request may have started since the deadline was taken.
                let Some((at, expiry)) = activity.deadline(timeouts) else { continue };
                if at > tokio::time::Instant::now() {
                    continue;
                }
                match expiry {
                    Expiry::HeadersTooSlow => tracing::debug!(%peer, "closing a connection: request headers too slow"),
                    Expiry::Idle => tracing::trace!(%peer, "closing an idle kept-alive connection"),
                    Expiry::WriteStalled => tracing::debug!(%peer, "closing a connection: the client stopped reading"),
                }
                // Nothing to finish: no request is in flight, or its client
                // stopped reading it. Dropping the connection closes the socket
                // and drops the response (a stream's upstream with it).
                break;
            }
        }
    }
}

/// Sleeps until the deadline, or forever without one.
async fn sleep_until(deadline: Option<(tokio::time::Instant, Expiry)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
