//! `cutover check --sample`'s progress: a countdown to the second reading of the counters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{lock, Meter, Reading, Reporter, Unit};

/// Shows the wait for a second reading, from when it starts until [`Countdown::finish`].
pub struct Countdown {
    reporter: Mutex<Option<Reporter>>,
}

struct Wait {
    from: Instant,
    wait: Duration,
}

impl Default for Countdown {
    fn default() -> Self {
        Countdown::new()
    }
}

impl Countdown {
    pub fn new() -> Countdown {
        Countdown {
            reporter: Mutex::new(None),
        }
    }

    /// The first reading is taken; the second follows after `wait`.
    pub fn sampling(&self, wait: Duration) {
        let meter = Arc::new(Wait {
            from: Instant::now(),
            wait,
        });
        *lock(&self.reporter) = Some(Reporter::start("check", meter));
    }

    pub fn finish(&self) {
        if let Some(r) = lock(&self.reporter).take() {
            r.finish();
        }
    }
}

impl Meter for Wait {
    fn read(&self) -> Reading {
        let mut r = Reading::new(Unit::Countdown);
        let waited = self.from.elapsed().min(self.wait);
        r.done = waited.as_millis() as u64;
        r.total = Some(self.wait.as_millis() as u64);
        let left = self.wait - waited;
        r.after.push(if left.is_zero() {
            format!(
                "ID counters sampled {} apart; second reading taken",
                super::span(self.wait)
            )
        } else {
            format!(
                "sampling ID counters: second reading in {}",
                super::span(left + Duration::from_millis(999))
            )
        });
        r
    }
}
