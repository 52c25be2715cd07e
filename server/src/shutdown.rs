//! Stopping on a signal, shared by every long-running command (`serve`, the
//! emulators, `calos load`): the first SIGINT or SIGTERM cancels a token, and each
//! command drains in its own way from there.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        token.cancel();
    });
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
