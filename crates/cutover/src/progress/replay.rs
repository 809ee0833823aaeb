//! `cutover replay`'s progress: statements answered of all, sessions open, how far behind the
//! recorded timeline the replay runs, differences and statements not compared so far.
//!
//! The workload's size is not in its header: a thread reads the file once more beside the
//! replay and counts its statements (and the recorded time span), so the total and the ETA
//! appear once it is through; until then the count stands alone. At a speed factor the ETA
//! is the recorded timeline's rest (scaled) plus the current lag; at `max` it comes from the
//! measured rate.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_replay::{ProgressHandle, Speed, Tally};
use cutover_workload::Command;

use super::{lock, Eta, Meter, Reading, Reporter, Unit};

pub struct ReplayProgress {
    meter: Arc<ReplayMeter>,
    reporter: Reporter,
}

struct ReplayMeter {
    started: Instant,
    speed: Speed,
    /// Statements in the workload and its recorded span (µs), once counted.
    total: Mutex<Option<(u64, i64)>>,
    tally: Mutex<Tally>,
    sessions: AtomicI64,
    behind_us: AtomicU64,
}

impl ReplayProgress {
    /// Starts showing a replay of `workload` at `speed`.
    pub fn start(workload: &Path, speed: Speed) -> ReplayProgress {
        let meter = Arc::new(ReplayMeter {
            started: Instant::now(),
            speed,
            total: Mutex::new(None),
            tally: Mutex::new(Tally::default()),
            sessions: AtomicI64::new(0),
            behind_us: AtomicU64::new(0),
        });
        let reporter = Reporter::start("replay", meter.clone());
        if reporter.shown() {
            let m = meter.clone();
            let path = workload.to_path_buf();
            // A file that cannot be read again leaves the count without a total; the
            // replay itself reports the problem.
            let _ = std::thread::Builder::new()
                .name("replay-count".into())
                .spawn(move || {
                    if let Some(t) = count_statements(&path) {
                        *lock(&m.total) = Some(t);
                    }
                });
        }
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

/// The statements (queries and executes: what the report counts) of a workload file and
/// the span of its recorded times.
fn count_statements(path: &Path) -> Option<(u64, i64)> {
    let reader = cutover_workload::Reader::open(path).ok()?;
    let (mut n, mut first, mut last) = (0u64, None, i64::MIN);
    for r in reader {
        let r = r.ok()?;
        if matches!(r.command, Command::Query { .. } | Command::Execute { .. }) {
            n += 1;
        }
        first.get_or_insert(r.ts_us);
        last = last.max(r.ts_us);
    }
    Some((n, first.map(|f| (last - f).max(0)).unwrap_or(0)))
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
        let total = *lock(&self.total);
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
