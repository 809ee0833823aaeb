//! `cutover replay`'s progress: statements answered of all, sessions open, how far behind the
//! recorded timeline the replay runs, differences and statements not compared so far.
//!
//! The workload's size is not in its header: the total (statements and the recorded time
//! span) comes from the pass that checks the whole file before anything is sent. At a speed
//! factor the ETA is the recorded timeline's rest (scaled) plus the current lag; at `max` it
//! comes from the measured rate.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_replay::{ProgressHandle, Speed, Tally};
use cutover_workload::Extent;

use super::{lock, Eta, Meter, Reading, Reporter, Unit};

pub struct ReplayProgress {
    meter: Arc<ReplayMeter>,
    reporter: Reporter,
}

struct ReplayMeter {
    started: Instant,
    speed: Speed,
    /// Statements in the workload and its recorded span (µs).
    total: Option<(u64, i64)>,
    tally: Mutex<Tally>,
    sessions: AtomicI64,
    behind_us: AtomicU64,
}

impl ReplayProgress {
    /// Starts showing a replay of a workload of `extent` at `speed`.
    pub fn start(extent: Extent, speed: Speed) -> ReplayProgress {
        let meter = Arc::new(ReplayMeter {
            started: Instant::now(),
            speed,
            total: Some((extent.statements, extent.span_us)),
            tally: Mutex::new(Tally::default()),
            sessions: AtomicI64::new(0),
            behind_us: AtomicU64::new(0),
        });
        let reporter = Reporter::start("replay", meter.clone());
        ReplayProgress { meter, reporter }
    }

    /// What the replay engine is given to tell its figures to.
    pub fn handle(&self) -> ProgressHandle {
        ProgressHandle(self.meter.clone())
    }

    /// Stops; the bar stays as the replay's summary line.
    pub fn finish(&self) {
        self.reporter.finish();
    }
}

impl cutover_replay::Progress for ReplayMeter {
    fn tally(&self, tally: &Tally) {
        *lock(&self.tally) = *tally;
    }

    fn session(&self, opened: bool) {
        self.sessions
            .fetch_add(if opened { 1 } else { -1 }, Ordering::Relaxed);
    }

    fn behind(&self, lag: Duration) {
        self.behind_us
            .store(lag.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Meter for ReplayMeter {
    fn read(&self) -> Reading {
        let t = *lock(&self.tally);
        let total = self.total;
        let mut r = Reading::new(Unit::Count("statements"));
        r.done = t.statements;
        r.total = total.map(|(n, _)| n);
        let behind = Duration::from_micros(self.behind_us.load(Ordering::Relaxed));
        if let (Speed::Factor(f), Some((_, span_us))) = (self.speed, total) {
            let timeline = Duration::from_secs_f64(span_us as f64 / 1e6 / f);
            let left = (self.started + timeline).saturating_duration_since(Instant::now());
            // Past the recorded end, what is left is draining: the rate says how long.
            if !left.is_zero() {
                r.eta = Eta::Given(left + behind);
            }
        }
        let sessions = self.sessions.load(Ordering::Relaxed).max(0);
        r.after.push(format!(
            "{sessions} session{} open",
            if sessions == 1 { "" } else { "s" }
        ));
        if let Speed::Factor(_) = self.speed {
            r.after
                .push(format!("{:.1}s behind the recording", behind.as_secs_f64()));
        }
        r.after
            .push(format!("{} differ", super::count(t.statements_with_diffs)));
        r.after
            .push(format!("{} not compared", super::count(t.not_compared)));
        if t.skipped > 0 {
            r.after
                .push(format!("{} writes not sent", super::count(t.skipped)));
        }
        r
    }
}
