//! Identical requests in flight at the same moment share one upstream call.
//!
//! `ab -n 100 -c 10` sends the same chat ten times at once: every copy misses
//! the response cache (the first answer is not in it yet) and, without this,
//! goes upstream, so the model answers one question ten times. Here the
//! first request for a key starts the work and the ones that arrive while it
//! runs wait for the same result. Built on `futures`' `Shared` (already a
//! dependency) rather than a single-flight crate: it gives exactly the
//! semantics wanted, including under cancellation. The work runs while any
//! request still waits for it: if the request that started it hangs up, the
//! others drive it on, and when all of them have gone it is dropped, and with
//! it the upstream call.
//!
//! Bounded by what is in flight: an entry lives as long as some request waits
//! on it, and the last one to leave removes it.

use futures::future::{BoxFuture, FutureExt, WeakShared};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Work in flight, by key. Cheap to clone (shared).
pub struct Flights<K, T: Clone> {
    running: Arc<Mutex<HashMap<K, WeakShared<BoxFuture<'static, T>>>>>,
}

impl<K, T: Clone> Clone for Flights<K, T> {
    fn clone(&self) -> Self {
        Self {
            running: self.running.clone(),
        }
    }
}

impl<K, T: Clone> Default for Flights<K, T> {
    fn default() -> Self {
        Self {
            running: Arc::default(),
        }
    }
}

/// Whether a request started the work or joined work already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Started,
    Joined,
}

impl<K, T> Flights<K, T>
where
    K: Eq + Hash + Clone,
    T: Clone + Send + Sync + 'static,
{
    /// The result of the work for `key`: the running one's, or `work()`'s
    /// when none runs (then `work` is called once, and others may join it).
    pub async fn run(&self, key: K, work: impl FnOnce() -> BoxFuture<'static, T>) -> (T, Role) {
        let (shared, role) = {
            let mut running = self.running.lock();
            match running.get(&key).and_then(WeakShared::upgrade) {
                Some(shared) => (shared, Role::Joined),
                None => {
                    let shared = work().shared();
                    if let Some(weak) = shared.downgrade() {
                        running.insert(key.clone(), weak);
                    }
                    (shared, Role::Started)
                }
            }
        };
        let _leaving = Leaving {
            running: &self.running,
            key,
        };
        (shared.await, role)
    }

    /// Keys with work in flight (or finished, not yet removed by its last waiter).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.running.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a key whose work nobody waits on any more, however its waiter
/// leaves (answered, failed or cancelled).
struct Leaving<'a, K: Eq + Hash, T: Clone> {
    running: &'a Mutex<HashMap<K, WeakShared<BoxFuture<'static, T>>>>,
    key: K,
}

impl<K: Eq + Hash, T: Clone> Drop for Leaving<'_, K, T> {
    fn drop(&mut self) {
        let mut running = self.running.lock();
        // `upgrade` fails once the work is done or every handle is gone; a
        // newer flight under the same key is alive and stays.
        if running
            .get(&self.key)
            .is_some_and(|weak| weak.upgrade().is_none())
        {
            running.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn counted(calls: &Arc<AtomicUsize>, answer: u32) -> BoxFuture<'static, u32> {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer
        }
        .boxed()
    }

    #[tokio::test]
    async fn concurrent_runs_of_one_key_share_one_call_and_leave_nothing_behind() {
        let flights = Flights::<&str, u32>::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let runs = (0..10).map(|_| flights.run("same", || counted(&calls, 7)));
        let results = futures::future::join_all(runs).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(answer, _)| *answer == 7));
        let started = results.iter().filter(|(_, r)| *r == Role::Started).count();
        assert_eq!(started, 1);
        assert!(flights.is_empty(), "finished work is forgotten");
        // Later work under the same key runs again (this is no cache).
        flights.run("same", || counted(&calls, 8)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn different_keys_run_apart() {
        let flights = Flights::<u32, u32>::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let calls_ref = &calls;
        let runs = (0..5).map(|k| flights.run(k, move || counted(calls_ref, k)));
        let results = futures::future::join_all(runs).await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(
            results.into_iter().map(|(a, _)| a).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
    }

    #[tokio::test]
    async fn the_starter_leaving_does_not_cancel_the_work_for_the_others() {
        let flights = Flights::<&str, u32>::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let starter = tokio::spawn({
            let (flights, calls) = (flights.clone(), calls.clone());
            async move { flights.run("k", || counted(&calls, 3)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let joiner = tokio::spawn({
            let (flights, calls) = (flights.clone(), calls.clone());
            async move { flights.run("k", || counted(&calls, 4)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        starter.abort();
        let (answer, role) = joiner.await.unwrap();
        assert_eq!((answer, role), (3, Role::Joined));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn work_everyone_abandoned_is_dropped_and_forgotten() {
        let flights = Flights::<&str, u32>::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (flights, calls) = (flights.clone(), calls.clone());
                tokio::spawn(async move { flights.run("k", || counted(&calls, 1)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(flights.len(), 1);
        for waiter in &waiters {
            waiter.abort();
        }
        for waiter in waiters {
            let _ = waiter.await;
        }
        assert!(flights.is_empty(), "no entry outlives its waiters");
    }
}
