//! Brute-force protection for sign-in (ASVS 6.3.1, OWASP Authentication CS).
//!
//! Only *failed* sign-ins count. Each failure takes a cell from two GCRA buckets
//! (`governor`): one per account (the identifier as typed, lower-cased, so
//! rotating IPs does not help) and one per client IP (so spraying many accounts
//! from one address does not either). When a failure finds a bucket empty, that
//! key is blocked until the bucket refills; blocked keys get 429 + `Retry-After`
//! without the password being checked. The block is short by design: a lockout
//! an attacker can extend forever would itself be a denial of service.

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many failures in a row an account may have, and how fast it earns one back.
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    pub account_burst: NonZeroU32,
    pub account_refill: Duration,
}

impl ThrottlePolicy {
    /// Per IP: four times the account burst, refilling four times as fast, so one
    /// person mistyping never trips it but a spray across accounts does.
    fn ip_quota(&self) -> Quota {
        quota(
            self.account_burst
                .saturating_mul(NonZeroU32::MIN.saturating_add(3)),
            self.account_refill / 4,
        )
    }
}

fn quota(burst: NonZeroU32, refill: Duration) -> Quota {
    // `refill` is never zero (`--login-failure-refill-secs` refuses 0), but the
    // IP's quarter of a refill under 4 ns would round to zero; 1 ns is the same
    // rate for any purpose, and keeps `with_period` from refusing it.
    let period = refill.max(Duration::from_nanos(1));
    #[expect(
        clippy::expect_used,
        reason = "with_period only refuses a zero period, and `period` is at least 1 ns"
    )]
    let quota = Quota::with_period(period).expect("a period of at least 1 ns");
    quota.allow_burst(burst)
}

#[derive(Clone)]
pub struct LoginThrottle {
    accounts: Arc<DefaultKeyedRateLimiter<String>>,
    ips: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    blocked_accounts: Arc<DashMap<String, Instant>>,
    blocked_ips: Arc<DashMap<IpAddr, Instant>>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            accounts: Arc::new(RateLimiter::keyed(quota(
                policy.account_burst,
                policy.account_refill,
            ))),
            ips: Arc::new(RateLimiter::keyed(policy.ip_quota())),
            blocked_accounts: Arc::default(),
            blocked_ips: Arc::default(),
        }
    }

    /// `Some(wait)` when this account or IP is blocked right now.
    pub fn blocked_for(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let remaining = |until: Option<Instant>| until.and_then(|u| u.checked_duration_since(now));
        let account_wait = remaining(self.blocked_accounts.get(&normalise(account)).map(|e| *e));
        let ip_wait = remaining(self.blocked_ips.get(&ip).map(|e| *e));
        account_wait.into_iter().chain(ip_wait).max()
    }

    /// Records a failed sign-in.
    pub fn record_failure(&self, account: &str, ip: IpAddr) {
        let clock = DefaultClock::default();
        let account = normalise(account);
        if let Err(not_until) = self.accounts.check_key(&account) {
            let wait = not_until.wait_time_from(clock.now());
            self.blocked_accounts.insert(account, Instant::now() + wait);
        }
        if let Err(not_until) = self.ips.check_key(&ip) {
            let wait = not_until.wait_time_from(clock.now());
            self.blocked_ips.insert(ip, Instant::now() + wait);
        }
    }

    /// Drops state that no longer matters, bounding memory under a spray of
    /// distinct accounts; called periodically by the server.
    pub fn forget_stale(&self) {
        let now = Instant::now();
        self.blocked_accounts.retain(|_, until| *until > now);
        self.blocked_ips.retain(|_, until| *until > now);
        self.accounts.retain_recent();
        self.ips.retain_recent();
    }
}

fn normalise(account: &str) -> String {
    account.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn an_account_is_blocked_after_its_burst_of_failures_whatever_the_ip() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            account_burst: NonZeroU32::MIN.saturating_add(2),
            account_refill: Duration::from_secs(60),
        });
        for i in 0..3u8 {
            assert!(throttle.blocked_for("Alice@example.com", IP).is_none());
            throttle.record_failure(
                "alice@example.com",
                IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)),
            );
        }
        throttle.record_failure(
            "ALICE@example.com",
            IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)),
        );
        let wait = throttle.blocked_for("alice@example.com", IP);
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(30)),
            "{wait:?}"
        );
        assert!(throttle
            .blocked_for(
                "bob@example.com",
                IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1))
            )
            .is_none());
    }

    #[test]
    fn one_ip_spraying_many_accounts_is_blocked() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            account_burst: NonZeroU32::MIN.saturating_add(1),
            account_refill: Duration::from_secs(60),
        });
        for i in 0..9 {
            throttle.record_failure(&format!("user{i}"), IP);
        }
        assert!(throttle.blocked_for("someone-new", IP).is_some());
    }
}
