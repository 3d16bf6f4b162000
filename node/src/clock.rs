//! Wall-clock time for the node, behind one seam.
//!
//! Consensus code never reads the time itself (STYLE §1): the node reads a [`Clock`] and
//! passes `now` in. Production uses [`SystemClock`]; tests that need to control time (block
//! timestamps, mempool expiry, ban end times) inject a [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of Unix time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }
}

/// A clock shared by every part of one node.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock. A clock set before 1970 reads as 0 rather than failing.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock reading `secs` seconds after the epoch.
    pub fn at_secs(secs: u64) -> ManualClock {
        ManualClock {
            millis: AtomicU64::new(secs.saturating_mul(1000)),
        }
    }

    /// Sets the time to `secs` seconds after the epoch.
    pub fn set_secs(&self, secs: u64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Moves the time forward by `millis` milliseconds.
    pub fn advance_millis(&self, millis: u64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_secs(1_700_000_000);
        assert_eq!(clock.now_secs(), 1_700_000_000);
        assert_eq!(clock.now_millis(), 1_700_000_000_000);
        clock.advance_millis(1_500);
        assert_eq!(clock.now_secs(), 1_700_000_001);
        assert_eq!(clock.now_millis(), 1_700_000_001_500);
        clock.set_secs(5);
        assert_eq!(clock.now_secs(), 5);
    }

    #[test]
    fn system_clock_is_after_2025_and_consistent() {
        let clock = system();
        let secs = clock.now_secs();
        assert!(secs > 1_735_689_600, "system clock reads {secs}");
        let millis = clock.now_millis();
        assert!(millis / 1000 >= secs && millis / 1000 <= secs + 5);
    }
}
