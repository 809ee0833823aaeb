//! `cutover verify`'s progress: binlog events read, row changes pending, rows checked,
//! confirmed mismatches; and each confirmed mismatch as one line the moment it is confirmed
//! (on stdout with the human output, on stderr when stdout carries JSON), not only in the
//! final summary. A run with `--for` shows how long it has left.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_verify::{Mismatch, Observer, Summary};

use super::{Eta, Meter, Reading, Reporter, Unit};

pub struct VerifyProgress {
    meter: Arc<VerifyMeter>,
    reporter: Arc<Reporter>,
    /// Mismatch lines go to stdout (the human output) or stderr (stdout is JSON).
    to_stdout: bool,
}

struct VerifyMeter {
    ends_at: Option<Instant>,
    events: AtomicU64,
    changes: AtomicU64,
    pending: AtomicU64,
    rows_checked: AtomicU64,
    mismatches: AtomicU64,
}

/// What the verify engine is given: the meter, and the reporter for warnings.
struct Events {
    meter: Arc<VerifyMeter>,
    reporter: Arc<Reporter>,
}

impl VerifyProgress {
    /// Starts showing a verification that ends after `run_for` (or when stopped).
    pub fn start(run_for: Option<Duration>, to_stdout: bool) -> VerifyProgress {
        let meter = Arc::new(VerifyMeter {
            ends_at: run_for.map(|d| Instant::now() + d),
            events: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            rows_checked: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
        });
        VerifyProgress {
            reporter: Arc::new(Reporter::start("verify", meter.clone())),
            meter,
            to_stdout,
        }
    }

    /// What the engine tells its figures and warnings to.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(Events {
            meter: self.meter.clone(),
            reporter: self.reporter.clone(),
        })
    }

    /// A confirmed mismatch, shown at once (even with `--quiet`: it is a result).
    pub fn confirmed(&self, m: &Mismatch) {
        self.meter.mismatches.fetch_add(1, Ordering::Relaxed);
        let line = format!("{} confirmed: {}", super::timestamp(), mismatch_line(m));
        if self.to_stdout {
            self.reporter.println_out(&line);
        } else {
            self.reporter.println_err(&line);
        }
    }

    /// A warning that does not stop the run, above the bars.
    pub fn warn(&self, message: &str) {
        self.reporter
            .println_err(&format!("cutover: warning: {message}"));
    }

    /// Stops; the bar stays as the run's summary line.
    pub fn finish(&self) {
        self.reporter.finish();
    }
}

/// A mismatch as the summary and the demo show it: table, kind, key.
pub fn mismatch_line(m: &Mismatch) -> String {
    let kind = serde_json::to_value(m.kind).unwrap_or_default();
    format!(
        "{} {} {}",
        m.table,
        kind.as_str().unwrap_or("?"),
        serde_json::Value::Object(m.key.clone())
    )
}

impl Observer for Events {
    fn figures(&self, s: &Summary) {
        let m = &self.meter;
        m.events.store(s.events, Ordering::Relaxed);
        m.changes.store(s.changes, Ordering::Relaxed);
        m.pending.store(s.pending, Ordering::Relaxed);
        m.rows_checked.store(s.rows_checked, Ordering::Relaxed);
        // A resumed run starts with the checkpoint's mismatches.
        m.mismatches
            .fetch_max(s.mismatches.len() as u64, Ordering::Relaxed);
    }

    fn warning(&self, message: &str) {
        self.reporter
            .println_err(&format!("cutover: warning: {message}"));
    }
}

impl Meter for VerifyMeter {
    fn read(&self) -> Reading {
        let mut r = Reading::new(Unit::Count("events"));
        r.done = self.events.load(Ordering::Relaxed);
        r.eta = match self.ends_at {
            Some(end) => Eta::Given(end.saturating_duration_since(Instant::now())),
            None => Eta::None,
        };
        let n = |a: &AtomicU64| super::count(a.load(Ordering::Relaxed));
        r.after.push(format!("{} row changes", n(&self.changes)));
        r.after.push(format!("{} pending", n(&self.pending)));
        r.after
            .push(format!("{} rows checked", n(&self.rows_checked)));
        r.after
            .push(format!("{} confirmed mismatches", n(&self.mismatches)));
        r
    }
}
