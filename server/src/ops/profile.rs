//! On-demand CPU profiles of the running server (the original guide's `node --prof`,
//! without a restart or a special build): pprof samples every thread with
//! SIGPROF for N seconds and draws an inferno flamegraph.
//!
//! SIGPROF ticks with the process's CPU time, so an idle server yields no
//! samples; that is reported as such rather than as an empty picture. One
//! profile at a time (the timer is process-wide).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Samples per second: the usual 99 Hz, off the beat of 100 Hz timers.
const FREQUENCY: i32 = 99;
pub const MAX_SECONDS: u64 = 60;

static RUNNING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("a profile is already being taken; try again when it is done")]
    Busy,
    #[error("profiler: {0}")]
    Profiler(String),
}

/// A finished profile: the flamegraph and how many samples it shows.
pub struct Profile {
    pub svg: Vec<u8>,
    pub samples: u64,
}

/// Clears the running flag however the profile ends (even if cancelled).
struct Running;
impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// Profiles the whole process for `seconds`.
pub async fn cpu(seconds: u64) -> Result<Profile, ProfileError> {
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Err(ProfileError::Busy);
    }
    let running = Running;
    // No blocklist: pprof matches it as a substring of every loaded object's
    // path, the executable's included, and one unlucky directory name would
    // silently drop every sample in calos's own code.
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .build()
        .map_err(|e| ProfileError::Profiler(e.to_string()))?;
    tokio::time::sleep(Duration::from_secs(seconds.clamp(1, MAX_SECONDS))).await;
    // Symbolising takes up to a second: off the async workers. The flag goes
    // with the guard: a client that hangs up now drops this future, but the
    // profiler runs until the blocking task drops the guard, and a profile
    // started before that would fail inside pprof (a 500) instead of being
    // told to wait (409).
    tokio::task::spawn_blocking(move || {
        let report = guard
            .report()
            .build()
            .map_err(|e| ProfileError::Profiler(e.to_string()));
        drop(guard);
        drop(running);
        let report = report?;
        let samples: u64 = report.data.values().map(|&n| n.max(0) as u64).sum();
        let mut svg = Vec::new();
        if samples > 0 {
            report
                .flamegraph(&mut svg)
                .map_err(|e| ProfileError::Profiler(e.to_string()))?;
        } else {
            svg = idle_svg(seconds).into_bytes();
        }
        Ok(Profile { svg, samples })
    })
    .await
    .map_err(|e| ProfileError::Profiler(e.to_string()))?
}

/// What an idle window looks like: a picture that says so.
fn idle_svg(seconds: u64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="640" height="60"><desc>0 samples</desc><text x="10" y="35" font-family="sans-serif" font-size="14">No CPU samples in {seconds} s: calos was idle. Profile while it serves requests.</text></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profiler is process-wide: these tests take turns.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_profile_abandoned_at_any_moment_never_breaks_the_next_one() {
        let _turn = ONE_AT_A_TIME.lock().await;
        // Hang up during the sampling and around its end, when the report is
        // being symbolised on the blocking pool.
        for hang_up_after_ms in [300, 1_000, 1_005, 1_020, 1_060] {
            let abandoned = tokio::time::timeout(Duration::from_millis(hang_up_after_ms), cpu(1));
            let _ = abandoned.await;
            match cpu(1).await {
                Ok(_) | Err(ProfileError::Busy) => {}
                Err(e) => panic!("after a hang-up at {hang_up_after_ms} ms: {e}"),
            }
            while RUNNING.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_process_shows_up_in_its_flamegraph() {
        let _turn = ONE_AT_A_TIME.lock().await;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let spinner = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = busy_work(x);
                }
                x
            }
        });
        let profile = cpu(2).await.expect("profile");
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(profile.samples > 20, "{} samples", profile.samples);
        let svg = String::from_utf8(profile.svg).unwrap();
        assert!(svg.contains("busy_work"), "the spinning function is named");
    }

    #[inline(never)]
    fn busy_work(seed: u64) -> u64 {
        (0..10_000u64).fold(seed, |acc, i| {
            acc.wrapping_mul(6364136223846793005).wrapping_add(i)
        })
    }
}
