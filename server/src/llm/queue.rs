//! Per-provider concurrency: at most N requests upstream at once, the rest wait
//! in a bounded FIFO (tokio's semaphore is fair), and a full queue is refused at
//! once (503 + Retry-After) instead of growing without bound. No polling.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct ProviderQueue {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    pub max_concurrency: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the queue is full ({waiting} waiting, {running} running)")]
pub struct QueueFull {
    pub waiting: usize,
    pub running: usize,
}

/// Decrements the waiting count even when the waiting request is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ProviderQueue {
    /// `max_concurrency` is non-zero: a provider nobody may call is not a queue.
    pub fn new(max_concurrency: NonZeroUsize, max_waiting: usize) -> Self {
        let max_concurrency = max_concurrency.get();
        Self {
            permits: Arc::new(Semaphore::new(max_concurrency)),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_concurrency,
        }
    }

    /// A slot to call the provider, and how long we waited for it.
    pub async fn acquire(&self) -> Result<(OwnedSemaphorePermit, Duration), QueueFull> {
        let started = Instant::now();
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok((permit, started.elapsed()));
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _guard = Waiting(&self.waiting);
        if waiting >= self.max_waiting {
            return Err(QueueFull {
                waiting,
                running: self.running(),
            });
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| QueueFull {
                waiting,
                running: self.running(),
            })?;
        Ok((permit, started.elapsed()))
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn running(&self) -> usize {
        self.max_concurrency - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_freed_slot_goes_to_the_first_waiter() {
        let queue = Arc::new(ProviderQueue::new(NonZeroUsize::MIN, 1));
        let held = queue.acquire().await.map(|(p, _)| p);
        assert!(held.is_ok());
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.acquire().await.map(|(_, waited)| waited) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(queue.waiting(), 1);
        assert!(queue.acquire().await.is_err(), "a second waiter is refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let waited = waiter.await.ok().and_then(Result::ok);
        assert!(
            waited.is_some_and(|w| w >= Duration::from_millis(90)),
            "{waited:?}"
        );
        assert_eq!(queue.waiting(), 0);
    }
}
