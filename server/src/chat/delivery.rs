//! Delivering a streamed reply to a client that may stop reading.
//!
//! The relay's idle and total limits only run while the response body is
//! polled, and hyper polls it only while the client's TCP window has room. A
//! client that stops reading would therefore hold the upstream connection and
//! the provider slot forever. So the reply is driven by its own task, which
//! hands each item to the response body through a channel with room for one:
//! if the client has not taken the previous item within the write timeout,
//! the task ends, dropping the upstream, the queue permit and every other
//! guard it owns.
//!
//! Cancellation stays structural: when the client hangs up, the body (the
//! receiver) is dropped, the task sees its channel close at once (it waits on
//! that beside the upstream) and ends. Nothing outlives the client by more
//! than the write timeout.

use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Items buffered between the task and the response body. One keeps the
/// pipeline moving without letting the task run ahead of the client.
const CHANNEL_ITEMS: usize = 1;

/// Why a reply was not delivered to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// The client did not take the next item in time (stopped reading).
    TooSlow,
    /// The client went away (the response body was dropped).
    Gone,
}

/// When to give up on a client.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryLimits {
    /// Longest wait for the client to take one item.
    pub write_timeout: std::time::Duration,
    /// The reply's overall deadline: a client that stops reading near it is
    /// not given the whole write timeout on top.
    pub deadline: Instant,
}

/// Runs `items` in a task and returns the stream the response body reads.
/// `abandoned` is told, once, if the reply was cut short by the client. A
/// reply cut because its client was too slow ends with `cut`, so the HTTP
/// layer can abort the response instead of ending it as if it were whole.
pub fn deliver<T, S, F>(
    items: S,
    limits: DeliveryLimits,
    abandoned: F,
    cut: T,
) -> Pin<Box<dyn Stream<Item = T> + Send>>
where
    T: Send + 'static,
    S: Stream<Item = T> + Send + 'static,
    F: FnOnce(Abandoned) + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL_ITEMS);
    let too_slow = Arc::new(AtomicBool::new(false));
    let flag = too_slow.clone();
    tokio::spawn(async move {
        if let Err(why) = pump(items, &tx, limits).await {
            // Set before `tx` is dropped, so the body sees it at its end.
            flag.store(why == Abandoned::TooSlow, Ordering::Release);
            abandoned(why);
        }
    });
    let state = (rx, Some(cut), too_slow);
    Box::pin(futures::stream::unfold(
        state,
        |(mut rx, mut cut, too_slow)| async move {
            match rx.recv().await {
                Some(item) => Some((item, (rx, cut, too_slow))),
                None if too_slow.load(Ordering::Acquire) => {
                    cut.take().map(|cut| (cut, (rx, None, too_slow)))
                }
                None => None,
            }
        },
    ))
}

async fn pump<T, S>(items: S, tx: &mpsc::Sender<T>, limits: DeliveryLimits) -> Result<(), Abandoned>
where
    S: Stream<Item = T>,
{
    futures::pin_mut!(items);
    loop {
        let next = tokio::select! {
            biased;
            () = tx.closed() => return Err(Abandoned::Gone),
            next = items.next() => next,
        };
        let Some(item) = next else {
            return Ok(());
        };
        let give_up = (Instant::now() + limits.write_timeout).min(limits.deadline);
        match tokio::time::timeout_at(give_up, tx.send(item)).await {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => return Err(Abandoned::Gone),
            Err(_elapsed) => return Err(Abandoned::TooSlow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Sets its flag when dropped: stands for the upstream and the permit.
    struct Held(Arc<AtomicBool>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn limits(write_timeout: Duration) -> DeliveryLimits {
        DeliveryLimits {
            write_timeout,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    /// An endless source that owns a `Held`, and what `abandoned` was told.
    fn endless() -> (
        impl Stream<Item = u32> + Send + 'static,
        Arc<AtomicBool>,
        Arc<Mutex<Option<Abandoned>>>,
    ) {
        let released = Arc::new(AtomicBool::new(false));
        let held = Held(released.clone());
        let source = futures::stream::iter(0..).map(move |n| {
            let _held = &held;
            n
        });
        (source, released, Arc::default())
    }

    #[tokio::test]
    async fn a_reader_that_stops_is_dropped_after_the_write_timeout() {
        let (source, released, told) = endless();
        let record = told.clone();
        let body = deliver(
            source,
            limits(Duration::from_millis(100)),
            move |why| {
                *record.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            },
            u32::MAX,
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(released.load(Ordering::SeqCst), "the source was dropped");
        assert_eq!(
            *told.lock().unwrap_or_else(|e| e.into_inner()),
            Some(Abandoned::TooSlow)
        );
        // What was already handed over is still readable, then the cut marker.
        assert_eq!(body.collect::<Vec<_>>().await, vec![0, u32::MAX]);
    }

    #[tokio::test]
    async fn a_client_hanging_up_ends_the_task_at_once() {
        let released = Arc::new(AtomicBool::new(false));
        let held = Held(released.clone());
        // A source that never yields, as an upstream thinking about its first token.
        let source = futures::stream::pending::<u32>().map(move |n| {
            let _held = &held;
            n
        });
        let body = deliver(source, limits(Duration::from_secs(30)), |_| {}, 0);
        drop(body);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(released.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_gets_everything() {
        let told: Arc<Mutex<Option<Abandoned>>> = Arc::default();
        let record = told.clone();
        let body = deliver(
            futures::stream::iter(0..1000u32),
            limits(Duration::from_millis(100)),
            move |why| {
                *record.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            },
            u32::MAX,
        );
        assert_eq!(
            body.collect::<Vec<_>>().await,
            (0..1000).collect::<Vec<_>>()
        );
        assert_eq!(*told.lock().unwrap_or_else(|e| e.into_inner()), None);
    }
}
