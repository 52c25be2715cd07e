//! The per-user cap on chats in flight: the rate limiter bounds how often a
//! user may start a chat, this bounds how many they may hold open at once
//! (a slow stream holds a provider slot and a connection for minutes, so a
//! burst within the rate limit could otherwise take every slot).
//!
//! Memory stays bounded by the users chatting *now*: a user's counter exists
//! only while they have a chat in flight, and the last [`InFlight`] guard to
//! drop removes it.

use dashmap::DashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// Counts each user's chats in flight, up to a cap.
#[derive(Debug, Clone)]
pub struct InFlightLimiter {
    counts: Arc<DashMap<String, usize>>,
    max_per_user: usize,
}

/// `user` already has `max` chats in flight.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{max} chats are already in flight for this user; wait for one to finish")]
pub struct TooManyInFlight {
    pub max: usize,
}

/// One chat in flight; dropping it (when the reply ends, fails or the client
/// hangs up) gives the slot back.
#[derive(Debug)]
pub struct InFlight {
    counts: Arc<DashMap<String, usize>>,
    user: String,
}

impl InFlightLimiter {
    pub fn new(max_per_user: NonZeroUsize) -> Self {
        Self {
            counts: Arc::default(),
            max_per_user: max_per_user.get(),
        }
    }

    /// Takes one of `user`'s slots, or says they have none left. The check
    /// and the increment happen under the map's shard lock, so two requests
    /// racing for the last slot cannot both get it.
    pub fn enter(&self, user: &str) -> Result<InFlight, TooManyInFlight> {
        let mut count = self.counts.entry(user.to_string()).or_insert(0);
        if *count >= self.max_per_user {
            return Err(TooManyInFlight {
                max: self.max_per_user,
            });
        }
        *count += 1;
        drop(count);
        Ok(InFlight {
            counts: self.counts.clone(),
            user: user.to_string(),
        })
    }

    /// Users with at least one chat in flight (what the map holds).
    pub fn users(&self) -> usize {
        self.counts.len()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Decrement and remove at zero in one step under the shard lock, so a
        // concurrent `enter` sees either the old count or no entry, never a
        // zero left behind.
        self.counts.remove_if_mut(&self.user, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_is_refused_others_are_not_and_counters_go_away_at_zero() {
        let limiter = InFlightLimiter::new(NonZeroUsize::MIN.saturating_add(1));
        let first = limiter.enter("alice");
        let second = limiter.enter("alice");
        assert!(first.is_ok() && second.is_ok());
        assert!(limiter.enter("alice").is_err(), "the third is refused");
        let bob = limiter.enter("bob");
        assert!(bob.is_ok(), "another user is unaffected");
        drop(first);
        let again = limiter.enter("alice");
        assert!(again.is_ok(), "a finished chat frees its slot");
        drop((second, again, bob));
        assert_eq!(limiter.users(), 0, "no counter outlives its chats");
    }
}
