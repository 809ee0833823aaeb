//! Records of all sessions written in time order: a command is recorded when its answer
//! ends, so a long query's record would otherwise come after later commands of other
//! sessions. Records wait in a heap for a window of capture time (or up to a count); within a
//! session, times never go back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use cutover_workload::Record;

/// A record waiting to be written in time order.
struct Waiting {
    ts_us: i64,
    seq: u64,
    record: Record,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.ts_us, self.seq) == (other.ts_us, other.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts_us, self.seq).cmp(&(other.ts_us, other.seq))
    }
}

/// The records waiting for their turn.
#[derive(Default)]
pub(super) struct Order {
    waiting: BinaryHeap<Reverse<Waiting>>,
    next_seq: u64,
    /// The last time given to a record of each open session (kept non-decreasing).
    session_ts: HashMap<u64, i64>,
}

impl Order {
    /// Records of one connection, in its order, to wait for their turn.
    pub(super) fn push(&mut self, records: Vec<Record>) {
        for mut r in records {
            // Within a session, times never go back (packet times can, a little).
            let last = self.session_ts.entry(r.session).or_insert(r.ts_us);
            if r.ts_us < *last {
                r.ts_us = *last;
            }
            *last = r.ts_us;
            self.next_seq += 1;
            self.waiting.push(Reverse(Waiting {
                ts_us: r.ts_us,
                seq: self.next_seq,
                record: r,
            }));
        }
    }

    /// A session ended: its last time is no longer needed.
    pub(super) fn forget(&mut self, session: u64) {
        self.session_ts.remove(&session);
    }

    /// Writes the records older than `horizon`, and the oldest while more than `max` wait
    /// (all of them with `all`).
    pub(super) fn release<E>(
        &mut self,
        all: bool,
        horizon: i64,
        max: usize,
        sink: &mut impl FnMut(Record) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(Reverse(top)) = self.waiting.peek() {
            if !all && top.ts_us > horizon && self.waiting.len() <= max {
                break;
            }
            let Some(Reverse(w)) = self.waiting.pop() else {
                break;
            };
            sink(w.record)?;
        }
        Ok(())
    }
}
