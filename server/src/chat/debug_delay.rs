//! A delay injected into calos's own code, for experiments and tests of the
//! verdict: `CALOS_DEBUG_DELAY_MS=50` (or `--debug-delay-ms 50`) makes every
//! chat request spend 50 ms in calos itself, outside every named phase (auth,
//! database, queue, cache, model), so the breakdown shows it as calos's own time.
//!
//! Only debug builds (tests, `./dev bench attribution`) have the setting: in a
//! release build the flag does not exist and `pause` is empty, so no
//! deployment can be slowed by a stray environment variable.

use std::time::Duration;

/// The longest delay accepted: an experiment, not a way to hang requests.
pub const MAX_MS: u64 = 60_000;

/// The delay a chat request spends in calos's own code (debug builds only).
#[derive(Debug, Clone, Copy, Default)]
pub struct DebugDelay {
    #[cfg(debug_assertions)]
    delay: Option<Duration>,
}

impl DebugDelay {
    /// `ms` of delay (0: none). In a release build this is always no delay.
    #[cfg_attr(not(debug_assertions), allow(unused_variables))]
    pub fn from_ms(ms: u64) -> Self {
        Self {
            #[cfg(debug_assertions)]
            delay: (ms > 0).then(|| Duration::from_millis(ms.min(MAX_MS))),
        }
    }

    /// The delay in effect, for the startup log.
    pub fn configured(&self) -> Option<Duration> {
        #[cfg(debug_assertions)]
        return self.delay;
        #[cfg(not(debug_assertions))]
        None
    }

    /// Waits for the delay (returns at once when there is none).
    pub async fn pause(&self) {
        #[cfg(debug_assertions)]
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_delay_and_the_delay_is_capped() {
        assert_eq!(DebugDelay::from_ms(0).configured(), None);
        assert_eq!(DebugDelay::default().configured(), None);
        assert_eq!(
            DebugDelay::from_ms(50).configured(),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            DebugDelay::from_ms(u64::MAX).configured(),
            Some(Duration::from_millis(MAX_MS))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pause_waits_for_the_delay() {
        let started = tokio::time::Instant::now();
        DebugDelay::from_ms(50).pause().await;
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        let started = tokio::time::Instant::now();
        DebugDelay::from_ms(0).pause().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
