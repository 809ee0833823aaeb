//! The journal: an append-only log of a drill, one JSON object per line, each written with a
//! single `write` on a file opened for appending and so on disk (in the kernel's cache) the
//! moment it happens. A crash loses at most the line being written; a run without a
//! `run_finished` after its last start or resume is incomplete. `cutover drill ack` appends to
//! the same file from another process; appends of whole lines do not interleave.
//!
//! `DIR/journal.jsonl` holds the events; `DIR/lock` is held (`flock`) by the process running
//! the drill, so a second runner is refused and `status` can tell running from crashed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "journal.jsonl";
const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {}: line {line} is not a drill event ({message})", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// UTC, RFC 3339 with milliseconds.
    pub at: String,
    /// Milliseconds since the Unix epoch (what the arithmetic uses).
    pub ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// A step as the journal remembers it: enough for `status`, `ack` and reports to work without
/// the runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub id: String,
    pub title: String,
    pub dri: String,
    pub reviewer: String,
    pub expected_s: f64,
    /// `shell`, `check` or `manual`.
    pub kind: String,
    pub gate: bool,
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub min_approvals: usize,
    pub has_rollback: bool,
    pub side_effects: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Failed,
    /// Not run: a dry run of a step with side effects, or before `--from`.
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStatus {
    Completed,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// The DRI's `cutover drill ack` (a manual step).
    Ack,
    /// Approvers' `--approve`/`--reject`.
    Approval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        runbook: String,
        path: String,
        hash: String,
        dry_run: bool,
        os_user: String,
        pid: u32,
        window: Option<(String, String)>,
        steps: Vec<StepInfo>,
    },
    /// `--resume`: the run goes on in a new process from `at_step`.
    Resumed {
        pid: u32,
        os_user: String,
        at_step: String,
    },
    StepStarted {
        step: String,
    },
    StepWaiting {
        step: String,
        waiting_for: Waiting,
        who: Vec<String>,
        min: usize,
        timeout_s: f64,
    },
    Ack {
        step: String,
        by: String,
        os_user: String,
    },
    Approval {
        step: String,
        by: String,
        approve: bool,
        os_user: String,
    },
    /// Enough approvals: the step goes on.
    Approved {
        step: String,
        by: Vec<String>,
    },
    Output {
        step: String,
        #[serde(default)]
        rollback: bool,
        stream: String,
        line: String,
    },
    /// A step's (or rollback's) command was started in its own process group. Written before
    /// the command may act (it waits for this line), so a drill that dies leaves on record
    /// every process a resumed drill must not start a second time. `start_time` is the
    /// process's start in clock ticks since boot (`/proc/PID/stat`), which tells the process
    /// from a later one that reuses its PID.
    CommandStarted {
        step: String,
        #[serde(default)]
        rollback: bool,
        pid: i32,
        pgid: i32,
        start_time: u64,
    },
    /// A resumed drill found the command a dead drill had started: `how` is `ended` (it had
    /// ended before the resume), `waited` (the resume waited for its process group to end) or
    /// `killed` (`--kill-orphans`). Its exit status is unknown either way.
    OrphanEnded {
        step: String,
        #[serde(default)]
        rollback: bool,
        pid: i32,
        how: String,
    },
    Overrun {
        step: String,
        expected_s: f64,
        elapsed_s: f64,
    },
    StepFinished {
        step: String,
        status: StepStatus,
        elapsed_s: f64,
        exit_code: Option<i32>,
        error: Option<String>,
    },
    RollbackStarted {
        cause: String,
        steps: Vec<String>,
    },
    RollbackStepStarted {
        step: String,
    },
    RollbackStepFinished {
        step: String,
        ok: bool,
        elapsed_s: f64,
        error: Option<String>,
    },
    RunFinished {
        status: FinalStatus,
    },
    /// Ctrl-C or SIGTERM: the run stays incomplete and can be resumed.
    Interrupted {
        step: Option<String>,
    },
    /// Something went wrong beside the drill (an announcement that could not be delivered).
    Warning {
        message: String,
    },
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Appends one event to the journal in `dir` (created when missing) and returns its record.
pub fn append(dir: &Path, event: Event) -> Result<Record, JournalError> {
    let path = journal_path(dir);
    let io = |source| JournalError::Io {
        path: path.clone(),
        source,
    };
    let ms = now_ms();
    let record = Record {
        at: rfc3339(ms),
        ms,
        event,
    };
    let mut line = serde_json::to_string(&record).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    // One write of the whole line: appends from several processes never interleave.
    f.write_all(line.as_bytes()).map_err(io)?;
    Ok(record)
}

/// Every record of the journal in `dir` (none when there is no journal). A last line cut
/// short by a crash is ignored; any other line that is not an event is an error.
pub fn read(dir: &Path) -> Result<Vec<Record>, JournalError> {
    let mut tail = Tail::new(dir);
    tail.next_records()
}

/// Reads a journal as it grows: each call returns the records appended since the last one.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    line: usize,
}

impl Tail {
    pub fn new(dir: &Path) -> Tail {
        Tail {
            path: journal_path(dir),
            offset: 0,
            line: 0,
        }
    }

    pub fn next_records(&mut self) -> Result<Vec<Record>, JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        f.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(io)?;
        let mut out = Vec::new();
        let mut consumed = 0usize;
        // Only complete lines count; a partial last line is read again next time.
        while let Some(nl) = buf[consumed..].iter().position(|&b| b == b'\n') {
            let raw = &buf[consumed..consumed + nl];
            consumed += nl + 1;
            self.line += 1;
            let text = String::from_utf8_lossy(raw);
            if text.trim().is_empty() {
                continue;
            }
            let rec: Record = serde_json::from_str(&text).map_err(|e| JournalError::Corrupt {
                path: self.path.clone(),
                line: self.line,
                message: e.to_string(),
            })?;
            out.push(rec);
        }
        self.offset += consumed as u64;
        Ok(out)
    }
}

/// The lock of a running drill; released when dropped or when the process dies.
pub struct RunLock {
    _file: File,
}

/// Takes the run lock of `dir` (and writes this process's id into it); `None` when another
/// process holds it.
pub fn try_lock(dir: &Path) -> Result<Option<RunLock>, JournalError> {
    lock(dir, true)
}

fn lock(dir: &Path, record_pid: bool) -> Result<Option<RunLock>, JournalError> {
    let path = dir.join(LOCK);
    let io = |source| JournalError::Io {
        path: path.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        return Err(io(e));
    }
    if record_pid {
        let _ = f.set_len(0);
        let _ = writeln!(f, "{}", std::process::id());
    }
    Ok(Some(RunLock { _file: f }))
}

/// Whether a process runs the drill of `dir` now (holds its lock).
pub fn is_running(dir: &Path) -> bool {
    if !dir.join(LOCK).exists() {
        return false;
    }
    matches!(lock(dir, false), Ok(None))
}

/// The operating-system user running this process: a record of who typed a command, beside
/// the name they gave.
pub fn os_user() -> String {
    // SAFETY: geteuid cannot fail; getpwuid_r writes only into the buffers given.
    let uid = unsafe { libc::geteuid() };
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if r == 0 && !result.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return format!("{} (uid {uid})", name.to_string_lossy());
    }
    format!("uid {uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        append(dir.path(), Event::StepStarted { step: "a".into() }).unwrap();
        let mut tail = Tail::new(dir.path());
        assert_eq!(tail.next_records().unwrap().len(), 1);
        assert!(tail.next_records().unwrap().is_empty());
        // A line cut short by a crash is not an event yet.
        let mut f = OpenOptions::new()
            .append(true)
            .open(journal_path(dir.path()))
            .unwrap();
        f.write_all(b"{\"at\":\"x\",\"ms\":1,\"ev").unwrap();
        assert!(tail.next_records().unwrap().is_empty());
        assert_eq!(read(dir.path()).unwrap().len(), 1);
        f.write_all(b"ent\":\"warning\",\"message\":\"m\"}\n")
            .unwrap();
        let recs = tail.next_records().unwrap();
        assert_eq!(
            recs[0].event,
            Event::Warning {
                message: "m".into()
            }
        );
        f.write_all(b"garbage\n").unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    proptest::proptest! {
        /// A journal is outside input (a file anyone can edit): reading it answers, never panics,
        /// and the fold of whatever it holds is total.
        #[test]
        fn any_journal_is_an_answer(lines in proptest::collection::vec("\\PC{0,80}", 0..8)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(journal_path(dir.path()), lines.join("\n")).unwrap();
            if let Ok(records) = read(dir.path()) {
                let _ = crate::state::Run::from_records(&records);
            }
        }

        #[test]
        fn any_sequence_of_events_folds(kinds in proptest::collection::vec(0u8..8, 0..40)) {
            let run = crate::state::Run::from_records(&events_of(&kinds)).unwrap();
            let (window, total, first) = folded_by_hand(&kinds);
            proptest::prop_assert_eq!(run.window_s(), window);
            proptest::prop_assert_eq!(run.total_s(), total);
            proptest::prop_assert_eq!(run.first_not_done(), first);
        }
    }

    /// A journal of three steps `s0`..`s2` (the window from `s0` to `s2`, one expected second
    /// each) and then event `kinds[i]` on step `s{i % 3}` at millisecond `i`.
    fn events_of(kinds: &[u8]) -> Vec<Record> {
        let step = |i: usize| format!("s{}", i % 3);
        let mut records = vec![Record {
            at: rfc3339(0),
            ms: 0,
            event: Event::RunStarted {
                run_id: "r".into(),
                runbook: "b".into(),
                path: "p".into(),
                hash: "h".into(),
                dry_run: false,
                os_user: "u".into(),
                pid: 1,
                window: Some(("s0".into(), "s2".into())),
                steps: (0..3)
                    .map(|i| StepInfo {
                        id: step(i),
                        title: "t".into(),
                        dri: "a".into(),
                        reviewer: "b".into(),
                        expected_s: 1.0,
                        kind: "shell".into(),
                        gate: false,
                        approvers: vec![],
                        min_approvals: 0,
                        has_rollback: true,
                        side_effects: true,
                    })
                    .collect(),
            },
        }];
        for (i, k) in kinds.iter().enumerate() {
            let s = step(i);
            let event = match k {
                0 => Event::StepStarted { step: s },
                1 => Event::StepFinished {
                    step: s,
                    status: StepStatus::Ok,
                    elapsed_s: 1.0,
                    exit_code: None,
                    error: None,
                },
                2 => Event::StepFinished {
                    step: s,
                    status: StepStatus::Failed,
                    elapsed_s: 1.0,
                    exit_code: Some(1),
                    error: None,
                },
                3 => Event::Resumed {
                    pid: 2,
                    os_user: "u".into(),
                    at_step: s,
                },
                4 => Event::RollbackStepStarted { step: s },
                5 => Event::RollbackStepFinished {
                    step: s,
                    ok: true,
                    elapsed_s: 1.0,
                    error: None,
                },
                6 => Event::StepWaiting {
                    step: s,
                    waiting_for: Waiting::Ack,
                    who: vec![],
                    min: 1,
                    timeout_s: 1.0,
                },
                _ => Event::RunFinished {
                    status: FinalStatus::Completed,
                },
            };
            records.push(Record {
                at: rfc3339(i as u64),
                ms: i as u64,
                event,
            });
        }
        records
    }

    /// A window's actual and expected seconds, as `Run::window_s` gives them.
    type Window = (Option<f64>, f64);

    /// What `window_s`, `total_s` and `first_not_done` of [`events_of`]`(kinds)` are, worked
    /// out step by step the way an operator reads the journal: a step is running from its
    /// `step_started`, done at its `step_finished` (ok or failed), and a resume puts a step
    /// that was running or waiting back to not run; the run ends at its last `run_finished`
    /// unless a resume follows it.
    fn folded_by_hand(kinds: &[u8]) -> (Option<Window>, f64, Option<usize>) {
        #[derive(Clone, Copy, PartialEq)]
        enum S {
            NotRun,
            Running,
            Waiting,
            Ok,
            Failed,
        }
        let mut state = [S::NotRun; 3];
        let mut started: [Option<u64>; 3] = [None; 3];
        let mut finished: [Option<u64>; 3] = [None; 3];
        let mut run_finished: Option<u64> = None;
        for (i, k) in kinds.iter().enumerate() {
            let (s, ms) = (i % 3, i as u64);
            match k {
                0 => {
                    state[s] = S::Running;
                    started[s] = Some(ms);
                    finished[s] = None;
                }
                1 => {
                    state[s] = S::Ok;
                    finished[s] = Some(ms);
                }
                2 => {
                    state[s] = S::Failed;
                    finished[s] = Some(ms);
                }
                3 => {
                    run_finished = None;
                    for st in &mut state {
                        if matches!(*st, S::Running | S::Waiting) {
                            *st = S::NotRun;
                        }
                    }
                }
                6 => state[s] = S::Waiting,
                4 | 5 => {}
                _ => run_finished = Some(ms),
            }
        }
        let last = kinds.len().saturating_sub(1) as u64;
        let total = run_finished.unwrap_or(last) as f64 / 1000.0;
        let actual = match (started[0], finished[2], state[2]) {
            (Some(a), Some(b), S::Ok) if b >= a => Some((b - a) as f64 / 1000.0),
            _ => None,
        };
        let first = state.iter().position(|s| *s != S::Ok);
        (Some((actual, 3.0)), total, first)
    }

    #[test]
    fn a_window_and_a_run_are_timed_from_their_events() {
        // s0, s1, s2 start at 0, 1, 2 ms and finish ok at 3, 4, 5 ms.
        let run = crate::state::Run::from_records(&events_of(&[0, 0, 0, 1, 1, 1])).unwrap();
        assert_eq!(run.window_s(), Some((Some(0.005), 3.0)));
        assert_eq!(run.total_s(), 0.005);
        assert_eq!(run.first_not_done(), None);
        // s1 fails at 4 ms; the run finishes at 6 ms: the window is still timed (its last
        // step is ok), the first step not done is s1.
        let run = crate::state::Run::from_records(&events_of(&[0, 0, 0, 1, 2, 1, 7])).unwrap();
        assert_eq!(run.window_s(), Some((Some(0.005), 3.0)));
        assert_eq!(run.total_s(), 0.006);
        assert_eq!(run.first_not_done(), Some(1));
        // s2 still running: no actual window; a resume at 3 ms puts it back to not run.
        let run = crate::state::Run::from_records(&events_of(&[0, 1, 0, 3])).unwrap();
        assert_eq!(run.window_s(), Some((None, 3.0)));
        assert_eq!(run.total_s(), 0.003);
        assert_eq!(run.first_not_done(), Some(0));
    }

    #[test]
    fn one_runner_per_journal() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_running(dir.path()));
        let lock = try_lock(dir.path()).unwrap().expect("free");
        assert!(is_running(dir.path()));
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(lock);
        assert!(!is_running(dir.path()));
        assert!(!os_user().is_empty());
    }
}
