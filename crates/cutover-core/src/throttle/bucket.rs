//! The rate limit's token bucket.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket of rows: refills at `rate` per second up to one second's worth; a caller
/// may take more than it holds and sleeps until the debt is paid.
pub(super) struct Bucket {
    pub(super) rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(super) fn new(rate: u64) -> Bucket {
        let rate = rate as f64;
        Bucket {
            rate,
            capacity: rate.max(1.0),
            tokens: rate.max(1.0),
            at: Instant::now(),
        }
    }

    /// Takes `rows`; how long the caller must wait before using them.
    pub(super) fn reserve(&mut self, rows: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
        self.tokens -= rows as f64;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        // Beyond `Duration`'s range (absurd row counts at tiny rates): wait "forever";
        // tokio clamps far deadlines, and cancellation still interrupts.
        Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
    }
}
