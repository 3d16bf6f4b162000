//! A live cap on hashes per second, so a node's share of a testnet's hash power is a setting.
//!
//! Block finds are a Poisson process only if hashes are spread evenly in time: a miner that
//! hashed a whole second's budget in a burst and then slept would find blocks in clumps. The
//! [`Throttle`] is a token bucket refilled continuously at the rate; workers take their work in
//! slices of about [`QUANTUM`] of budget and the bucket holds at most [`BURST`] beyond one
//! slice, so no worker ever runs more than a few milliseconds ahead of the rate. A worker
//! waiting for tokens sleeps (never spins), so twenty capped nodes share two cores with their
//! RPC servers; at rate 0 it only wakes every [`IDLE_POLL`] to look at the stop flags and the
//! rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The budget of one slice of capped work: small enough that hashes stay evenly spread, large
/// enough that a 1 kH/s miner wakes 200 times a second, not 1,000.
pub const QUANTUM: Duration = Duration::from_millis(5);
/// How far ahead of the rate the bucket may let a worker run (tokens kept beyond one slice), so
/// a late wake-up from `sleep` does not lose budget and the long-run rate stays exact.
pub const BURST: Duration = Duration::from_millis(20);
/// The longest a waiting worker sleeps before it looks again at its stop flags and the rate:
/// bounds how late a cancellation or a live rate change is noticed.
pub const IDLE_POLL: Duration = Duration::from_millis(10);

/// `rate` value meaning "no cap".
const UNCAPPED: u64 = u64::MAX;

/// A cloneable, live hash-rate cap shared by every worker of every search that holds a clone:
/// at most [`rate`](Self::rate) hashes per second in total, `Some(0)` for none at all, `None`
/// for as fast as the CPU allows. Changing the rate takes effect within one slice of work.
///
/// It also counts the hashes it let through ([`hashes`](Self::hashes)), so its owner can
/// report a live hash rate while a search is still running.
#[derive(Clone, Debug)]
pub struct Throttle(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Hashes per second, or [`UNCAPPED`]; workers read it before every slice.
    rate: AtomicU64,
    /// Hashes let through so far.
    granted: AtomicU64,
    bucket: Mutex<Bucket>,
}

/// Tokens (hashes the workers may compute) and when they were last topped up.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(None)
    }
}

impl PartialEq for Throttle {
    /// Two throttles are equal when they are clones of one another (they share one bucket).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Throttle {}

impl Throttle {
    /// A throttle capping at `rate` hashes per second (`None`: uncapped). The bucket starts
    /// empty, so a fresh capped miner does not begin with a burst.
    pub fn new(rate: Option<u64>) -> Self {
        Throttle(Arc::new(Inner {
            rate: AtomicU64::new(encode(rate)),
            granted: AtomicU64::new(0),
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                refilled: Instant::now(),
            }),
        }))
    }

    /// The cap in hashes per second, or `None` when uncapped.
    pub fn rate(&self) -> Option<u64> {
        match self.0.rate.load(Ordering::Relaxed) {
            UNCAPPED => None,
            rate => Some(rate),
        }
    }

    /// Changes the cap live: every worker holding a clone follows it from its next slice (or,
    /// if it is waiting for tokens, within [`IDLE_POLL`]).
    pub fn set_rate(&self, rate: Option<u64>) {
        self.0.rate.store(encode(rate), Ordering::Relaxed);
    }

    /// Hashes this throttle let workers compute so far, over all searches.
    pub fn hashes(&self) -> u64 {
        self.0.granted.load(Ordering::Relaxed)
    }

    /// Waits until the rate allows a slice of work and returns its size in nonces (between 1
    /// and `max`), or `None` as soon as `stopped()` says the search is over. Uncapped, it
    /// returns `max` at once without taking a lock.
    pub(crate) fn acquire(&self, max: u64, stopped: impl Fn() -> bool) -> Option<u64> {
        debug_assert!(max > 0);
        loop {
            if stopped() {
                return None;
            }
            let rate = self.0.rate.load(Ordering::Relaxed);
            if rate == UNCAPPED {
                return Some(self.grant(max));
            }
            if rate == 0 {
                thread::sleep(IDLE_POLL);
                continue;
            }
            let slice = slice_for(rate, max);
            match self.take(rate, slice) {
                Ok(()) => return Some(self.grant(slice)),
                Err(wait) => thread::sleep(wait.min(IDLE_POLL)),
            }
        }
    }

    fn grant(&self, hashes: u64) -> u64 {
        self.0.granted.fetch_add(hashes, Ordering::Relaxed);
        hashes
    }

    /// Tops the bucket up at `rate` and takes `slice` tokens, or says how long until there
    /// are enough.
    fn take(&self, rate: u64, slice: u64) -> Result<(), Duration> {
        let mut bucket = self
            .0
            .bucket
            .lock()
            .expect("the bucket lock is never poisoned");
        let now = Instant::now();
        let rate = rate as f64;
        let capacity = slice as f64 + rate * BURST.as_secs_f64();
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + rate * elapsed).min(capacity);
        bucket.refilled = now;
        let needed = slice as f64;
        if bucket.tokens >= needed {
            bucket.tokens -= needed;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - bucket.tokens) / rate))
        }
    }
}

/// Nonces in one capped slice: about [`QUANTUM`] of budget at `rate`, at least one and at
/// most `max`.
fn slice_for(rate: u64, max: u64) -> u64 {
    let per_quantum = (u128::from(rate) * QUANTUM.as_nanos() / 1_000_000_000) as u64;
    per_quantum.clamp(1, max)
}

fn encode(rate: Option<u64>) -> u64 {
    // u64::MAX hashes per second is no cap in any sense that matters.
    rate.unwrap_or(UNCAPPED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_a_quantum_of_budget_within_bounds() {
        assert_eq!(slice_for(1, 2048), 1);
        assert_eq!(slice_for(1_000, 2048), 5);
        assert_eq!(slice_for(100_000, 2048), 500);
        assert_eq!(slice_for(10_000_000, 2048), 2048);
        assert_eq!(slice_for(u64::MAX - 1, 2048), 2048);
    }

    #[test]
    fn rate_round_trips_and_clones_share_it() {
        let throttle = Throttle::new(Some(250_000));
        let clone = throttle.clone();
        assert_eq!(clone.rate(), Some(250_000));
        throttle.set_rate(None);
        assert_eq!(clone.rate(), None);
        throttle.set_rate(Some(0));
        assert_eq!(clone.rate(), Some(0));
        assert_eq!(throttle, clone);
        assert_ne!(throttle, Throttle::default());
    }

    #[test]
    fn uncapped_grants_everything_at_once_and_counts_it() {
        let throttle = Throttle::new(None);
        assert_eq!(throttle.acquire(2048, || false), Some(2048));
        assert_eq!(throttle.acquire(7, || false), Some(7));
        assert_eq!(throttle.hashes(), 2055);
    }

    #[test]
    fn a_stopped_search_gets_nothing_even_at_rate_zero() {
        let throttle = Throttle::new(Some(0));
        let started = Instant::now();
        let polls = std::cell::Cell::new(0);
        let stopped = || {
            polls.set(polls.get() + 1);
            polls.get() > 3
        };
        assert_eq!(throttle.acquire(2048, stopped), None);
        assert_eq!(throttle.hashes(), 0);
        // Three idle polls, each a sleep rather than a spin.
        assert!(
            started.elapsed() >= IDLE_POLL * 3,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_bucket_starts_empty_and_refills_at_the_rate() {
        let throttle = Throttle::new(Some(1_000));
        let started = Instant::now();
        assert_eq!(throttle.acquire(2048, || false), Some(5));
        // Five tokens at 1 kH/s take 5 ms to accrue.
        assert!(
            started.elapsed() >= Duration::from_millis(4),
            "{:?}",
            started.elapsed()
        );
    }
}
