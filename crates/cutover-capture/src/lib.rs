//! Capture: MySQL and MariaDB logs read into workload records ([`cutover_workload::Record`]).
//!
//! Both parsers stream: they read one line at a time and hold one entry (the statement
//! being assembled) plus the state of the sessions that are open (user and database), so a
//! 10 GB log needs the memory of a 10 MB one. A line they cannot read is reported as a
//! [`LineError`] with its line number and skipped; the caller decides whether to stop
//! (`--strict`). Neither parser panics on any input (property-tested).
//!
//! - [`general`]: the general query log (`log_output=FILE`) of MySQL 5.7/8.0, Aurora MySQL and
//!   MariaDB: interleaved sessions, multi-line statements, `Connect`/`Init DB`/`Quit`.
//! - [`slow`]: the slow query log of the same servers: `# Time:`, `# User@Host:`,
//!   MariaDB's `# Thread_id:` and `Schema:`, `use db;`, `SET timestamp=…;`, response figures
//!   (`Rows_sent`, `Rows_affected`, `Query_time`, `Errno`/`Last_errno`).
//!
//! Timestamps: MySQL writes ISO-8601 times (UTC unless `log_timestamps=SYSTEM`); MariaDB
//! writes `YYMMDD HH:MM:SS` in the server's local time zone, which the log does not name:
//! those are read as if UTC. Replay uses only the distances between times, which this does
//! not change.

pub mod general;
pub mod pcap;
pub mod slow;
pub mod tcp;
mod time;

use std::collections::VecDeque;
use std::io::BufRead;

use cutover_workload::Record;

pub use time::{parse_iso, parse_yymmdd};

/// A line the parser could not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: u64,
    pub message: LineProblem,
}

/// What is wrong with a line of a log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("cannot read: {0}")]
    CannotRead(String),
    #[error("not a general-log entry (no time, id and command)")]
    NotAGeneralLogEntry,
    #[error("unknown command {0:?} in a general-log entry")]
    UnknownCommand(String),
    #[error("entry without a time before any entry with one")]
    NoTimeYet,
    /// A `Query` or `Execute` with nothing after it.
    #[error("{0} without a statement")]
    CommandWithoutStatement(String),
    #[error("Init DB without a database")]
    InitDbWithoutDatabase,
    #[error("unreadable time {0:?}")]
    UnreadableTime(String),
    #[error("unreadable Id in # User@Host")]
    UnreadableUserHostId,
    /// A `Key: value` of a slow-log header line whose value is not a number.
    #[error("unreadable {0}")]
    UnreadableField(String),
    #[error("statement text outside any entry (no # User@Host before it)")]
    StatementOutsideEntry,
    #[error("administrator command outside any entry")]
    AdminCommandOutsideEntry,
    #[error("entry without a statement")]
    EntryWithoutStatement,
}

/// Lines of a log as text, numbered from 1; bytes that are not UTF-8 are replaced, so a
/// binary value in a statement cannot stop the capture.
pub(crate) struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    pub number: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Lines<R> {
        Lines {
            input,
            buf: Vec::with_capacity(4096),
            number: 0,
        }
    }

    /// The next line without its line ending; `Err` when reading fails.
    pub fn next_line(&mut self) -> Option<std::io::Result<String>> {
        self.buf.clear();
        match self.input.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.number += 1;
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                }
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                Some(Ok(String::from_utf8_lossy(&self.buf).into_owned()))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// What a log parser reads from and hands out: its lines, the records and line errors ready
/// (in order), and whether the input is over.
pub(crate) struct LogInput<R> {
    lines: Lines<R>,
    pub out: VecDeque<Result<Record, LineError>>,
    done: bool,
    /// Server starts seen (banners after the first line), so ids reused after a restart are
    /// new sessions ([`session_id`]).
    pub epoch: u64,
}

impl<R: BufRead> LogInput<R> {
    pub fn new(input: R) -> LogInput<R> {
        LogInput {
            lines: Lines::new(input),
            out: VecDeque::new(),
            done: false,
            epoch: 0,
        }
    }
}

/// A log parser: lines in, one entry assembled at a time, records out. The loop that drives
/// it is the same for every log: hand out what is ready, else read a line; at the end of the
/// input (or when reading fails, which is reported on the line it stopped at) the entry being
/// assembled is finished.
pub(crate) trait LogParser<R: BufRead> {
    fn input(&mut self) -> &mut LogInput<R>;

    /// One line, numbered from 1 (not a server's banner).
    fn line(&mut self, number: u64, line: &str);

    /// The server (re)started (its banner): the sessions open before are gone.
    fn forget_sessions(&mut self);

    /// The entry being assembled is complete: it becomes a record (or an error).
    fn flush(&mut self);

    /// The next record or line error (the parser's `Iterator::next`).
    fn next_record(&mut self) -> Option<Result<Record, LineError>> {
        loop {
            let input = self.input();
            if let Some(x) = input.out.pop_front() {
                return Some(x);
            }
            if input.done {
                return None;
            }
            match input.lines.next_line() {
                Some(Ok(l)) => {
                    let n = input.lines.number;
                    if is_banner(&l) {
                        // A restart: the server's ids start again, and open sessions are gone.
                        self.flush();
                        if n > 1 {
                            self.input().epoch += 1;
                        }
                        self.forget_sessions();
                    } else {
                        self.line(n, &l);
                    }
                }
                Some(Err(e)) => {
                    self.flush();
                    let input = self.input();
                    input.out.push_back(Err(LineError {
                        line: input.lines.number + 1,
                        message: LineProblem::CannotRead(e.to_string()),
                    }));
                    input.done = true;
                }
                None => {
                    self.flush();
                    self.input().done = true;
                }
            }
        }
    }
}

/// The banner a server writes at the top of a log when it starts (or the log is reopened):
/// `/usr/sbin/mysqld, Version: 8.0.36 (…). started with:`. Session ids restart after it.
pub(crate) fn is_banner(line: &str) -> bool {
    line.contains(", Version: ") && line.trim_end().ends_with("started with:")
}

/// The two lines after the banner.
pub(crate) fn is_banner_tail(line: &str) -> bool {
    line.starts_with("Tcp port: ")
        || (line.starts_with("Time") && line.contains("Id") && line.contains("Command"))
}

/// A session id unique across server restarts in one log: the restart count in the high
/// bits, the server's connection id in the low 40 (MariaDB and MySQL ids fit in 40 bits in
/// practice; TiDB's 64-bit ids do not appear in these logs).
pub(crate) fn session_id(epoch: u64, id: u64) -> u64 {
    (epoch << 40) | (id & ((1 << 40) - 1))
}

/// A parser's output split into its records and its line errors (tests).
#[cfg(test)]
pub(crate) fn split_results(
    parsed: impl Iterator<Item = Result<Record, LineError>>,
) -> (Vec<Record>, Vec<LineError>) {
    let mut ok = Vec::new();
    let mut err = Vec::new();
    for x in parsed {
        match x {
            Ok(r) => ok.push(r),
            Err(e) => err.push(e),
        }
    }
    (ok, err)
}
