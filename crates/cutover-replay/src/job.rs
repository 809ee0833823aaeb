//! A statement on its way: the [`Job`] the dispatcher hands to the session's lane on each
//! side, what it decided once for both ([`Stmt`], [`Wire`]), and the session state the two
//! sides share ([`Pair`]). The two halves of a statement's answer meet in its job.

use std::collections::BTreeMap;

use cutover_workload::Record;

use crate::answer::Answer;
use crate::classify::Class;
use crate::concurrency::Conflict;
use crate::report::Reason;

/// Which server a lane replays on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Target,
    Baseline,
}

/// The side's name in messages and reports.
pub(crate) fn role(side: Side) -> &'static str {
    match side {
        Side::Target => "target",
        Side::Baseline => "baseline",
    }
}

/// A session's state shared by its two sides: how far the baseline has got, and the IDs it
/// generated. The target needs the baseline's generated ID of a statement before it can
/// send a later statement of the session that may use it (mapped to the target's own ID);
/// it waits for that, per session, and for nothing else of the baseline's.
pub(crate) struct Pair {
    /// Records of the session the baseline lane has finished (the next `seq` it runs).
    pub(crate) base_done: tokio::sync::watch::Sender<u64>,
    /// The baseline's generated IDs by `seq`, until the target has read them.
    pub(crate) base_ids: std::sync::Mutex<BTreeMap<u64, u64>>,
}

impl Pair {
    pub(crate) fn new() -> Pair {
        Pair {
            base_done: tokio::sync::watch::Sender::new(0),
            base_ids: std::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

/// One record of the workload as both sides' lanes get it.
pub(crate) struct Job {
    pub(crate) session: u64,
    /// The record's place in its session (0, 1, …).
    pub(crate) seq: u64,
    /// Its captured time, reconstructed within the second for whole-second logs.
    pub(crate) at_us: i64,
    pub(crate) rec: Record,
    /// For a statement (query or execute): what the dispatcher decided once for both sides.
    pub(crate) stmt: Option<Stmt>,
    pub(crate) pair: std::sync::Arc<Pair>,
    /// What goes on the wire for a query or a prepare.
    pub(crate) wire: Wire,
    /// The answer of the side that finished first (`Err`: it could not run it), until the
    /// other side's arrives: the two are compared by whichever lane comes second.
    pub(crate) half: std::sync::Mutex<Option<SideAnswer>>,
    /// Concurrency errors of this statement with their context, per side that had one,
    /// until both answers are in.
    pub(crate) conflicts: std::sync::Mutex<Vec<Conflict>>,
}

/// One side's answer to a statement, or why it has none.
pub(crate) type SideAnswer = Result<Answer, NotRun>;

/// Why one side has no answer to a statement.
#[derive(Clone, Debug)]
pub(crate) struct NotRun {
    pub(crate) reason: Reason,
    pub(crate) detail: String,
}

impl NotRun {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> NotRun {
        NotRun {
            reason,
            detail: detail.into(),
        }
    }
}

/// What a lane sends for a query or a prepare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    /// The recorded text.
    Recorded,
    /// `--read-only`: a locking read without its lock, instead of the recorded text.
    Unlocked(String),
    /// `--read-only`: a prepare of a statement that may not be sent is not sent either.
    Withheld,
}

pub(crate) struct Stmt {
    pub(crate) fingerprint: std::sync::Arc<str>,
    pub(crate) class: std::sync::Arc<Class>,
    pub(crate) after_skipped_write: bool,
    /// Sent without its lock (`--read-only`), directly or as the prepared text.
    pub(crate) unlocked: bool,
    /// The prepared statement's text, for an execute.
    pub(crate) prepared: Option<String>,
}

impl Job {
    /// The statement's text as recorded (a prepared statement's for an execute).
    pub(crate) fn sql(&self) -> &str {
        match self.stmt.as_ref().and_then(|s| s.prepared.as_deref()) {
            Some(p) => p,
            None => self.rec.command.sql().unwrap_or(""),
        }
    }

    /// The text to send for a query or a prepare.
    pub(crate) fn wire_sql(&self) -> &str {
        match &self.wire {
            Wire::Unlocked(s) => s,
            _ => self.rec.command.sql().unwrap_or(""),
        }
    }
}
