//! `cutover capture`'s progress: bytes of the input read (of its size, when it is a file)
//! and workload records written.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Meter, Reading, Reporter, Unit};

pub struct CaptureProgress {
    meter: Arc<CaptureMeter>,
    reporter: Reporter,
}

struct CaptureMeter {
    size: Option<u64>,
    read: AtomicU64,
    records: AtomicU64,
}

impl CaptureProgress {
    /// Starts showing a capture of an input of `size` bytes (`None`: standard input).
    pub fn start(size: Option<u64>) -> CaptureProgress {
        let meter = Arc::new(CaptureMeter {
            size,
            read: AtomicU64::new(0),
            records: AtomicU64::new(0),
        });
        CaptureProgress {
            reporter: Reporter::start("capture", meter.clone()),
            meter,
        }
    }

    /// `input`, counting the bytes read from it.
    pub fn counting<R: Read>(&self, input: R) -> Counting<R> {
        Counting {
            inner: input,
            meter: self.meter.clone(),
        }
    }

    /// A record was written to the workload.
    pub fn record(&self) {
        self.meter.records.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finish(&self) {
        self.reporter.finish();
    }
}

/// A reader that counts what passes through it.
pub struct Counting<R> {
    inner: R,
    meter: Arc<CaptureMeter>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Meter for CaptureMeter {
    fn read(&self) -> Reading {
        let mut r = Reading::new(Unit::Bytes);
        r.done = self.read.load(Ordering::Relaxed);
        r.total = self.size;
        r.after.push(format!(
            "{} records written",
            super::count(self.records.load(Ordering::Relaxed))
        ));
        r
    }
}
