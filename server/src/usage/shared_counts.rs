//! The meter's counts in Redis, so that a limit holds for the sum of every
//! replica's traffic rather than for each replica alone.
//!
//! The same sliding-window estimate as the in-memory meter, kept in keys per
//! subject and minute (`…:rl:{subject}:{minute}:r` for requests, `:t` for
//! tokens, each expiring after the next minute). One Lua script checks every
//! subject's windows and, only if all have room, counts the request in each:
//! Redis runs a script alone, so two replicas admitting at the same moment
//! cannot both take the last slot.
//!
//! A budget's spend is a hash per subject (`since`, `tokens`). It is seeded from
//! PostgreSQL's ledger, the durable record, when missing (first use, after its
//! day of idleness, after Redis lost it) and then counted up by every replica
//! as requests finish. A new period resets it.

use crate::cluster::{SharedState, Unavailable};
use crate::usage::limits::Limits;
use crate::usage::meter::Subject;
use chrono::NaiveDate;
use std::sync::LazyLock;

/// A window key lives through its own minute and the next (when it is the
/// "previous minute" of the estimate), plus slack for clock differences.
const WINDOW_TTL_SECS: u64 = 150;
/// A spend figure idle this long is dropped; the ledger still has it.
const SPENT_TTL_SECS: u64 = 86_400;

/// Checks all subjects, then counts the request in each. KEYS: per subject,
/// this minute's and the previous minute's request and token keys (4 each).
/// ARGV[1]: the fraction of this minute gone; then per subject its rpm and
/// tpm (-1: none). Returns 0 when admitted, else 2 × subject + (0 rate, 1 tokens) + 1.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local elapsed = tonumber(ARGV[1])
local n = #KEYS / 4
local function count(key) return tonumber(redis.call('GET', key) or '0') end
for i = 0, n - 1 do
  local rpm = tonumber(ARGV[2 + i * 2])
  local tpm = tonumber(ARGV[3 + i * 2])
  local base = i * 4
  if rpm >= 0 then
    local used = count(KEYS[base + 2]) * (1 - elapsed) + count(KEYS[base + 1])
    if used + 1 > rpm then return 2 * i + 1 end
  end
  if tpm >= 0 then
    local used = count(KEYS[base + 4]) * (1 - elapsed) + count(KEYS[base + 3])
    if used >= tpm then return 2 * i + 2 end
  end
end
for i = 0, n - 1 do
  if tonumber(ARGV[2 + i * 2]) >= 0 then
    redis.call('INCR', KEYS[i * 4 + 1])
    redis.call('EXPIRE', KEYS[i * 4 + 1], ARGV[#ARGV])
  end
end
return 0
",
    )
});

/// Counts tokens. KEYS: per subject, this minute's token key and its spend
/// hash. ARGV: tokens, the window TTL, the spend TTL. A spend hash is counted
/// up only if it exists: a missing one is seeded from the ledger on next use.
static CHARGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
for i = 1, #KEYS, 2 do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('HINCRBY', KEYS[i + 1], 'tokens', ARGV[1])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[3])
  end
end
return 0
",
    )
});

/// Reads a spend for the period starting at ARGV[1] ('' for ever). A hash of
/// another period is reset to 0 for this one. Returns -1 if there is none.
static SPENT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local since = redis.call('HGET', KEYS[1], 'since')
if not since then return -1 end
if since ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'since', ARGV[1], 'tokens', 0)
  return 0
end
return tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
",
    )
});

/// Seeds a spend read from the ledger, unless another replica just did; then
/// returns what the hash holds. ARGV: since, tokens, TTL.
static SEED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'since', ARGV[1], 'tokens', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
",
    )
});

/// Which limit of which subject refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub subject: usize,
    pub tokens: bool,
}

#[derive(Clone)]
pub struct SharedCounts {
    shared: SharedState,
}

fn since_text(since: Option<NaiveDate>) -> String {
    since
        .map(crate::usage::limits::day_string)
        .unwrap_or_default()
}

impl SharedCounts {
    pub fn new(shared: SharedState) -> Self {
        Self { shared }
    }

    pub fn shared(&self) -> &SharedState {
        &self.shared
    }

    fn window(&self, subject: &Subject<'_>, minute: i64, what: &str) -> String {
        self.shared
            .key(&format!("rl:{}:{minute}:{what}", subject.cache_key()))
    }

    fn spend(&self, subject: &Subject<'_>) -> String {
        self.shared.key(&format!("spent:{}", subject.cache_key()))
    }

    /// Admits one request for every subject or names the first full limit.
    pub async fn admit(
        &self,
        subjects: &[(Subject<'_>, Limits)],
        minute: i64,
        elapsed: f64,
    ) -> Result<Option<Full>, Unavailable> {
        let mut invocation = ADMIT.prepare_invoke();
        invocation.arg(elapsed);
        for (subject, limits) in subjects {
            invocation
                .key(self.window(subject, minute, "r"))
                .key(self.window(subject, minute - 1, "r"))
                .key(self.window(subject, minute, "t"))
                .key(self.window(subject, minute - 1, "t"));
            invocation
                .arg(limits.rpm.map_or(-1, i64::from))
                .arg(limits.tpm.map_or(-1, i64::from));
        }
        invocation.arg(WINDOW_TTL_SECS);
        let refused: i64 = self
            .shared
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok((refused > 0).then(|| {
            let index = (refused - 1) as usize;
            Full {
                subject: index / 2,
                tokens: index % 2 == 1,
            }
        }))
    }

    /// Counts a finished request's tokens for every subject.
    pub async fn charge(
        &self,
        subjects: &[Subject<'_>],
        tokens: u64,
        minute: i64,
    ) -> Result<(), Unavailable> {
        let mut invocation = CHARGE.prepare_invoke();
        for subject in subjects {
            invocation
                .key(self.window(subject, minute, "t"))
                .key(self.spend(subject));
        }
        invocation
            .arg(tokens)
            .arg(WINDOW_TTL_SECS)
            .arg(SPENT_TTL_SECS);
        self.shared
            .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await?;
        Ok(())
    }

    /// The subject's spend in the period from `since`, if Redis has it.
    pub async fn spent(
        &self,
        subject: &Subject<'_>,
        since: Option<NaiveDate>,
    ) -> Result<Option<u64>, Unavailable> {
        let mut invocation = SPENT.prepare_invoke();
        invocation.key(self.spend(subject)).arg(since_text(since));
        let tokens: i64 = self
            .shared
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(u64::try_from(tokens).ok())
    }

    /// Stores the ledger's figure unless another replica did first; returns
    /// the figure Redis holds.
    pub async fn seed(
        &self,
        subject: &Subject<'_>,
        since: Option<NaiveDate>,
        tokens: u64,
    ) -> Result<u64, Unavailable> {
        let mut invocation = SEED.prepare_invoke();
        invocation
            .key(self.spend(subject))
            .arg(since_text(since))
            .arg(tokens)
            .arg(SPENT_TTL_SECS);
        let tokens: i64 = self
            .shared
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(u64::try_from(tokens).unwrap_or(0))
    }
}
