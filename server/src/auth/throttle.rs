//! Brute-force protection for sign-in (ASVS 6.3.1, OWASP Authentication CS).
//!
//! Only *failed* sign-ins count. Each failure takes a cell from three GCRA
//! buckets (`governor`):
//! - **account from one address** (the identifier as typed, lower-cased, with
//!   the client's address): the tight one. Someone guessing from one place is
//!   stopped after a few tries, and only there: the owner signing in from
//!   another address is not locked out by them.
//! - **account, from anywhere**: a ceiling ten times looser, refilling ten
//!   times faster, against guesses spread over many addresses.
//! - **address, any account**: four times the first, so spraying many
//!   accounts from one address does not work either.
//!
//! Addresses are bucketed: IPv6 by /64, the block one subscriber gets, so
//! rotating through it does not reset anything. A failure that finds a bucket
//! empty blocks that key until the bucket refills; blocked keys get 429 +
//! `Retry-After` without the password being checked. Blocks are short by
//! design: a lockout an attacker can extend forever is itself a denial of
//! service. Identifiers longer than [`MAX_IDENTIFIER_CHARS`] are refused before
//! they get here, so keys are small.
//!
//! Sign-ups (registration, and an Ed25519 key's first proof, which creates an
//! account) count per address too, successful or not: each account brings its
//! own chat quota, and each registration costs an Argon2 hash. Loopback
//! clients are exempt: they are the operator's own tools (`calos load`
//! registers one account per simulated user). Behind a reverse proxy on the
//! same host, list it in `CALOS_TRUSTED_PROXIES` so its clients are judged by
//! their own addresses.

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many failures in a row an account may have, and how fast it earns one back.
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    pub account_burst: NonZeroU32,
    pub account_refill: Duration,
    /// Sign-ups one address may make in a row, and how fast it earns one back.
    pub signup_burst: NonZeroU32,
    pub signup_refill: Duration,
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

/// The longest sign-in identifier (email or username) calos accepts; longer
/// ones are a 400 before any lookup or throttle key is made.
pub const MAX_IDENTIFIER_CHARS: usize = 256;

/// How much looser the account-wide ceiling is than one address's allowance.
const CEILING_FACTOR: u32 = 10;

type Pair = (String, IpAddr);

/// The most keys any one of the throttle's maps tracks. Each key is at most
/// [`MAX_IDENTIFIER_CHARS`] plus an address, so this is a few tens of MB at
/// worst. Failures are paced by the password hashing behind them, so only a
/// spray over more accounts or addresses than this, within one refill period,
/// reaches it; then stale entries go first, and if that is not enough the
/// map is emptied (the other two still hold the attacker back) rather than
/// growing without bound.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// A keyed GCRA limiter that can be emptied (`governor` has no clear).
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    quota: Quota,
    limiter: RwLock<DefaultKeyedRateLimiter<K>>,
}

type NotUntil = governor::NotUntil<<DefaultClock as Clock>::Instant>;

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            limiter: RwLock::new(RateLimiter::keyed(quota)),
        }
    }

    fn check_key(&self, key: &K) -> Result<(), NotUntil> {
        self.limiter.read().check_key(key)
    }

    fn retain_recent(&self) {
        self.limiter.read().retain_recent();
    }

    fn len(&self) -> usize {
        self.limiter.read().len()
    }

    fn reset(&self) {
        *self.limiter.write() = RateLimiter::keyed(self.quota);
    }
}

#[derive(Clone)]
pub struct LoginThrottle {
    pairs: Arc<Keyed<Pair>>,
    accounts: Arc<Keyed<String>>,
    ips: Arc<Keyed<IpAddr>>,
    blocked_pairs: Arc<DashMap<Pair, Instant>>,
    blocked_accounts: Arc<DashMap<String, Instant>>,
    blocked_ips: Arc<DashMap<IpAddr, Instant>>,
    signups: Arc<Keyed<IpAddr>>,
    max_tracked: usize,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        let factor = NonZeroU32::MIN.saturating_add(CEILING_FACTOR - 1);
        Self {
            pairs: Arc::new(Keyed::new(quota(
                policy.account_burst,
                policy.account_refill,
            ))),
            accounts: Arc::new(Keyed::new(quota(
                policy.account_burst.saturating_mul(factor),
                policy.account_refill / CEILING_FACTOR,
            ))),
            ips: Arc::new(Keyed::new(policy.ip_quota())),
            blocked_pairs: Arc::default(),
            blocked_accounts: Arc::default(),
            blocked_ips: Arc::default(),
            signups: Arc::new(Keyed::new(quota(policy.signup_burst, policy.signup_refill))),
            max_tracked: MAX_TRACKED_KEYS,
        }
    }

    /// The number of keys held in each map, largest first (for tests and
    /// the bound above).
    pub fn tracked_keys(&self) -> usize {
        [
            self.pairs.len(),
            self.accounts.len(),
            self.ips.len(),
            self.signups.len(),
            self.blocked_pairs.len(),
            self.blocked_accounts.len(),
            self.blocked_ips.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// Holds every map to [`MAX_TRACKED_KEYS`]: stale entries go first, and
    /// a map still over the bound is emptied.
    fn keep_bounded(&self) {
        if self.tracked_keys() <= self.max_tracked {
            return;
        }
        self.forget_stale();
        let max = self.max_tracked;
        let mut emptied = false;
        if self.pairs.len() > max || self.blocked_pairs.len() > max {
            self.pairs.retain_recent();
            if self.pairs.len() > max {
                self.pairs.reset();
            }
            self.blocked_pairs.clear();
            emptied = true;
        }
        if self.accounts.len() > max || self.blocked_accounts.len() > max {
            self.accounts.reset();
            self.blocked_accounts.clear();
            emptied = true;
        }
        if self.ips.len() > max || self.blocked_ips.len() > max || self.signups.len() > max {
            self.ips.reset();
            self.signups.reset();
            self.blocked_ips.clear();
            emptied = true;
        }
        if emptied {
            tracing::warn!(
                max_keys = max,
                "sign-in throttle over its bound: failures spread over that many accounts or addresses; some of its state was forgotten"
            );
        }
    }

    /// Takes one sign-up from this address's allowance; `Err(wait)` when it
    /// has none left. Loopback clients are not counted.
    pub fn admit_signup(&self, ip: IpAddr) -> Result<(), Duration> {
        if ip.to_canonical().is_loopback() {
            return Ok(());
        }
        let admitted = self
            .signups
            .check_key(&bucket(ip))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()));
        self.keep_bounded();
        admitted
    }

    /// `Some(wait)` when this account from this address, this account from
    /// anywhere, or this address is blocked right now.
    pub fn blocked_for(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let remaining = |until: Option<Instant>| until.and_then(|u| u.checked_duration_since(now));
        let (account, ip) = (normalise(account), bucket(ip));
        let pair_wait = remaining(self.blocked_pairs.get(&(account.clone(), ip)).map(|e| *e));
        let account_wait = remaining(self.blocked_accounts.get(&account).map(|e| *e));
        let ip_wait = remaining(self.blocked_ips.get(&ip).map(|e| *e));
        pair_wait
            .into_iter()
            .chain(account_wait)
            .chain(ip_wait)
            .max()
    }

    /// Records a failed sign-in.
    pub fn record_failure(&self, account: &str, ip: IpAddr) {
        let clock = DefaultClock::default();
        let (account, ip) = (normalise(account), bucket(ip));
        let block_until =
            |not_until: NotUntil| Instant::now() + not_until.wait_time_from(clock.now());
        let pair = (account.clone(), ip);
        if let Err(not_until) = self.pairs.check_key(&pair) {
            self.blocked_pairs.insert(pair, block_until(not_until));
        }
        if let Err(not_until) = self.accounts.check_key(&account) {
            self.blocked_accounts
                .insert(account, block_until(not_until));
        }
        if let Err(not_until) = self.ips.check_key(&ip) {
            self.blocked_ips.insert(ip, block_until(not_until));
        }
        self.keep_bounded();
    }

    /// Drops state that no longer matters, bounding memory under a spray of
    /// distinct accounts; called periodically by the server.
    pub fn forget_stale(&self) {
        let now = Instant::now();
        self.blocked_pairs.retain(|_, until| *until > now);
        self.blocked_accounts.retain(|_, until| *until > now);
        self.blocked_ips.retain(|_, until| *until > now);
        self.pairs.retain_recent();
        self.accounts.retain_recent();
        self.ips.retain_recent();
        self.signups.retain_recent();
    }
}

fn normalise(account: &str) -> String {
    account.trim().to_lowercase()
}

/// The address a throttle counts: IPv4 as is (also when written as an
/// IPv4-mapped IPv6 address), IPv6 by its /64.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn one_ip_spraying_many_accounts_is_blocked() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            account_burst: NonZeroU32::MIN.saturating_add(1),
            account_refill: Duration::from_secs(60),
            ..policy()
        });
        for i in 0..9 {
            throttle.record_failure(&format!("user{i}"), IP);
        }
        assert!(throttle.blocked_for("someone-new", IP).is_some());
    }

    #[test]
    fn a_guesser_at_one_address_does_not_lock_the_owner_out_elsewhere() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            account_burst: NonZeroU32::MIN.saturating_add(2),
            account_refill: Duration::from_secs(60),
            ..policy()
        });
        let attacker = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
        for _ in 0..10 {
            throttle.record_failure("owner@example.com", attacker);
        }
        assert!(throttle
            .blocked_for("owner@example.com", attacker)
            .is_some());
        assert!(throttle.blocked_for("owner@example.com", IP).is_none());
    }

    #[test]
    fn guesses_spread_over_many_addresses_meet_the_account_ceiling() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            account_burst: NonZeroU32::MIN.saturating_add(1),
            account_refill: Duration::from_secs(60),
            ..policy()
        });
        // Two failures per address stay under each address's allowance; the
        // account-wide ceiling (ten times two) still ends it.
        for i in 0..11u8 {
            for _ in 0..2 {
                throttle.record_failure(
                    "owner@example.com",
                    IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i)),
                );
            }
        }
        assert!(throttle.blocked_for("owner@example.com", IP).is_some());
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_bucket() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(bucket(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_spray_of_distinct_accounts_and_addresses_stays_within_the_bound() {
        let mut throttle = LoginThrottle::new(ThrottlePolicy {
            account_refill: Duration::from_secs(3600),
            signup_refill: Duration::from_secs(3600),
            ..policy()
        });
        throttle.max_tracked = 500;
        for i in 0..5_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            throttle.record_failure(&format!("sprayed-{i}@example.com"), ip);
            let _ = throttle.admit_signup(ip);
            assert!(
                throttle.tracked_keys() <= 500,
                "{} keys after {i}",
                throttle.tracked_keys()
            );
        }
        // Still throttling: one address guessing one account is stopped.
        let attacker = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
        for _ in 0..10 {
            throttle.record_failure("owner@example.com", attacker);
        }
        assert!(throttle
            .blocked_for("owner@example.com", attacker)
            .is_some());
        assert_eq!(MAX_TRACKED_KEYS, 100_000);
    }

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            account_burst: NonZeroU32::MIN.saturating_add(4),
            account_refill: Duration::from_secs(12),
            signup_burst: NonZeroU32::MIN.saturating_add(2),
            signup_refill: Duration::from_secs(60),
        }
    }

    #[test]
    fn sign_ups_are_counted_per_address_by_slash_64_and_loopback_is_not() {
        let throttle = LoginThrottle::new(policy());
        let home: IpAddr = "2001:db8:7:7::1".parse().unwrap();
        let same_block: IpAddr = "2001:db8:7:7:ffff::2".parse().unwrap();
        assert!(throttle.admit_signup(home).is_ok());
        assert!(throttle.admit_signup(same_block).is_ok());
        assert!(throttle.admit_signup(home).is_ok());
        let wait = throttle.admit_signup(same_block).unwrap_err();
        assert!(wait > Duration::from_secs(30), "{wait:?}");
        assert!(throttle
            .admit_signup("2001:db8:7:8::1".parse().unwrap())
            .is_ok());
        for _ in 0..100 {
            assert!(throttle.admit_signup(IP).is_ok());
        }
    }
}
