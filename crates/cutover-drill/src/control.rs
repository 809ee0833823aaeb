//! What people do to a running drill from another terminal: `ack` a manual step, approve or
//! reject a step, and ask for its `status`. Both only read the journal, and `ack` appends one
//! event to it; the running drill sees the event at its next poll.
//!
//! Names are a record, not authentication: anyone who can write the journal can ack under
//! any name, so each ack also records the operating-system user who typed it.

use std::path::Path;

use serde::Serialize;

use crate::duration::human;
use crate::journal::{self, Event, Waiting};
use crate::state::{Run, RunStatus, StepState};

/// What `cutover drill ack` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// The DRI of a manual step says it is done.
    Done,
    Approve,
    Reject,
}

/// Why an ack or a status was not given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("--by: give your name")]
    NoName,
    #[error("there is no drill in {}", .0.display())]
    NoDrill(std::path::PathBuf),
    #[error("run {run_id} already ended ({status})")]
    Ended {
        run_id: String,
        status: &'static str,
    },
    #[error("no drill is running on {} (it stopped; resume it with `cutover drill run RUNBOOK --journal {} --resume`)", .0.display(), .0.display())]
    NotRunning(std::path::PathBuf),
    #[error("run {run_id} has no step `{step}`")]
    NoSuchStep { run_id: String, step: String },
    #[error("step {step} is not waiting for anyone (it is {state})")]
    NotWaiting { step: String, state: String },
    #[error("step {step} is manual: its DRI {dri} acks it (without --approve) when it is done")]
    ManualNotApproved { step: String, dri: String },
    #[error("step {step} is acked by its DRI, {dri}, not by {by}")]
    NotTheDri {
        step: String,
        dri: String,
        by: String,
    },
    #[error("step {step} waits for approvals: give --approve or --reject")]
    WaitsForApprovals { step: String },
    #[error("{by} is the DRI of step {step} and cannot approve their own step")]
    OwnStep { step: String, by: String },
    #[error("{by} is not an approver of step {step} (approvers: {approvers})")]
    NotAnApprover {
        step: String,
        by: String,
        approvers: String,
    },
}

/// Records an ack, approval or rejection for `step`, after checking it is one the running
/// drill waits for and `by` may give. Returns what was recorded, for the user.
pub fn ack(dir: &Path, step: &str, by: &str, kind: AckKind) -> Result<String, ControlError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(ControlError::NoName);
    }
    let records = journal::read(dir)?;
    let run = Run::from_records(&records).ok_or_else(|| ControlError::NoDrill(dir.into()))?;
    if run.status != RunStatus::Incomplete {
        return Err(ControlError::Ended {
            run_id: run.run_id,
            status: run.status.as_str(),
        });
    }
    if !journal::is_running(dir) {
        return Err(ControlError::NotRunning(dir.into()));
    }
    let s = run.step(step).ok_or_else(|| ControlError::NoSuchStep {
        run_id: run.run_id.clone(),
        step: step.into(),
    })?;
    let Some((waiting, _, _)) = s.waiting.filter(|_| s.state == StepState::Waiting) else {
        return Err(ControlError::NotWaiting {
            step: step.into(),
            state: s.state.as_str().replace('_', " "),
        });
    };
    let os_user = journal::os_user();
    let event = match (waiting, kind) {
        (Waiting::Ack, AckKind::Approve) => {
            return Err(ControlError::ManualNotApproved {
                step: step.into(),
                dri: s.info.dri.clone(),
            })
        }
        (Waiting::Ack, _) if by != s.info.dri => {
            return Err(ControlError::NotTheDri {
                step: step.into(),
                dri: s.info.dri.clone(),
                by: by.into(),
            })
        }
        (Waiting::Ack, AckKind::Done) => Event::Ack {
            step: step.into(),
            by: by.into(),
            os_user,
        },
        (Waiting::Ack, AckKind::Reject) => Event::Approval {
            step: step.into(),
            by: by.into(),
            approve: false,
            os_user,
        },
        (Waiting::Approval, AckKind::Done) => {
            return Err(ControlError::WaitsForApprovals { step: step.into() })
        }
        (Waiting::Approval, _) if by == s.info.dri => {
            return Err(ControlError::OwnStep {
                step: step.into(),
                by: by.into(),
            })
        }
        (Waiting::Approval, _) if !s.info.approvers.contains(&by.to_string()) => {
            return Err(ControlError::NotAnApprover {
                step: step.into(),
                by: by.into(),
                approvers: s.info.approvers.join(", "),
            })
        }
        (Waiting::Approval, k) => Event::Approval {
            step: step.into(),
            by: by.into(),
            approve: k == AckKind::Approve,
            os_user,
        },
    };
    let what = match &event {
        Event::Ack { .. } => format!("{step}: done, acked by {by}"),
        Event::Approval { approve: true, .. } => format!("{step}: approved by {by}"),
        _ => format!("{step}: rejected by {by}"),
    };
    journal::append(dir, event)?;
    Ok(what)
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub run_id: String,
    pub runbook: String,
    /// `running`, or the run's status (`incomplete` when it stopped without ending).
    pub status: String,
    pub dry_run: bool,
    pub elapsed_s: f64,
    pub current: Option<CurrentStep>,
    /// Seconds of expected work left (the current step's remaining estimate and the steps
    /// after it).
    pub expected_remaining_s: f64,
    pub expected_end: Option<String>,
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    pub steps: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentStep {
    pub index: usize,
    pub id: String,
    pub title: String,
    pub dri: String,
    pub reviewer: String,
    pub state: String,
    pub elapsed_s: f64,
    pub expected_s: f64,
    /// `ack` or `approval`.
    pub waiting_for: Option<String>,
    /// Who must act now.
    pub who: Vec<String>,
    pub approvals_given: Vec<String>,
    pub wait_ends: Option<String>,
    /// When the drill stopped (crash or interruption) with the step's command started: its
    /// process group, which may still run (a resume waits for it or, `--kill-orphans`, ends it).
    pub command_pgid: Option<i32>,
    /// Whether that process group still runs now.
    pub command_running: bool,
}

pub fn status(dir: &Path) -> Result<Status, ControlError> {
    let records = journal::read(dir)?;
    let run = Run::from_records(&records).ok_or_else(|| ControlError::NoDrill(dir.into()))?;
    let running = journal::is_running(dir);
    let now = journal::now_ms();
    let status = match (run.status, running) {
        (RunStatus::Incomplete, true) => "running".to_string(),
        (s, _) => s.as_str().to_string(),
    };
    let cur_idx = if run.status == RunStatus::Incomplete {
        run.steps
            .iter()
            .position(|s| matches!(s.state, StepState::Running | StepState::Waiting))
    } else {
        None
    };
    let mut remaining = 0.0;
    let current = cur_idx.map(|i| {
        let s = &run.steps[i];
        let elapsed = s
            .started_ms
            .map(|t| now.saturating_sub(t) as f64 / 1000.0)
            .unwrap_or(0.0);
        remaining += (s.info.expected_s - elapsed).max(0.0);
        // No process runs the drill: the step is not running (or waiting) any more, whatever
        // the journal's last word on it was.
        let stopped = !running;
        let (waiting_for, who, wait_ends) = match s.waiting.filter(|_| !stopped) {
            Some((Waiting::Ack, at, t)) => (
                Some("ack".to_string()),
                vec![s.info.dri.clone()],
                Some(journal::rfc3339(at + (t * 1000.0) as u64)),
            ),
            Some((Waiting::Approval, at, t)) => (
                Some("approval".to_string()),
                s.info
                    .approvers
                    .iter()
                    .filter(|a| !s.decisions.iter().any(|d| &d.by == *a))
                    .cloned()
                    .collect(),
                Some(journal::rfc3339(at + (t * 1000.0) as u64)),
            ),
            None => (None, vec![s.info.dri.clone()], None),
        };
        CurrentStep {
            index: i + 1,
            id: s.info.id.clone(),
            title: s.info.title.clone(),
            dri: s.info.dri.clone(),
            reviewer: s.info.reviewer.clone(),
            state: if stopped {
                stopped_state(s.command, run.interrupted)
            } else {
                s.state.as_str().into()
            },
            elapsed_s: elapsed,
            expected_s: s.info.expected_s,
            waiting_for,
            who,
            approvals_given: s
                .decisions
                .iter()
                .filter(|d| d.approve)
                .map(|d| d.by.clone())
                .collect(),
            wait_ends,
            command_pgid: s.command.filter(|_| stopped).map(|c| c.pgid),
            command_running: stopped
                && s.command
                    .is_some_and(|c| crate::process::group_alive(c.pgid, c.start_time)),
        }
    });
    if run.status == RunStatus::Incomplete {
        let from = cur_idx
            .map(|i| i + 1)
            .or(run.first_not_done())
            .unwrap_or(run.steps.len());
        remaining += run.steps[from.min(run.steps.len())..]
            .iter()
            .filter(|s| !matches!(s.state, StepState::Ok | StepState::Skipped))
            .map(|s| s.info.expected_s)
            .sum::<f64>();
    }
    let count = |st: StepState| run.steps.iter().filter(|s| s.state == st).count();
    Ok(Status {
        run_id: run.run_id.clone(),
        runbook: run.runbook.clone(),
        elapsed_s: if running {
            now.saturating_sub(run.started_ms) as f64 / 1000.0
        } else {
            run.total_s()
        },
        expected_end: running.then(|| journal::rfc3339(now + (remaining * 1000.0) as u64)),
        expected_remaining_s: remaining,
        status,
        dry_run: run.dry_run,
        current,
        done: count(StepState::Ok),
        failed: count(StepState::Failed),
        skipped: count(StepState::Skipped),
        steps: run.steps.len(),
    })
}

/// What a step the drill no longer runs is: its command still running on its own (the drill
/// died or was interrupted while the command ignored the signals), ended by an interruption
/// (Ctrl-C, SIGTERM: the journal says so), or stopped by a crash.
fn stopped_state(command: Option<crate::state::CommandOnRecord>, interrupted: bool) -> String {
    match command {
        Some(c) if crate::process::group_alive(c.pgid, c.start_time) => {
            format!("running (orphaned, pid {})", c.pid)
        }
        _ if interrupted => "interrupted".into(),
        _ => "stopped".into(),
    }
}

impl Status {
    pub fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "drill {}{} — run {}: {} (T+{})",
            self.runbook,
            if self.dry_run { " [dry-run]" } else { "" },
            self.run_id,
            match self.status.as_str() {
                "incomplete" => "incomplete: stopped before it ended (resume with --resume)",
                s => s,
            },
            human(self.elapsed_s)
        );
        if let Some(c) = &self.current {
            let _ = writeln!(
                o,
                "  step {}/{} {}: {} — {} for {} of an expected {}",
                c.index,
                self.steps,
                c.id,
                c.title,
                c.state,
                human(c.elapsed_s),
                human(c.expected_s)
            );
            let _ = writeln!(o, "  DRI {}, reviewer {}", c.dri, c.reviewer);
            if let Some(g) = c.command_pgid {
                let _ = writeln!(
                    o,
                    "  its command (process group {g}) {}",
                    if c.command_running {
                        "still runs: a resume waits for it (or ends it with --kill-orphans) and never starts it again"
                    } else {
                        "has ended (exit status unknown): a resume asks its DRI to confirm it"
                    }
                );
            }
            match c.waiting_for.as_deref() {
                Some("ack") => {
                    let _ = writeln!(
                        o,
                        "  waiting for: {} to act and `cutover drill ack {} --by {}` (until {})",
                        c.dri,
                        c.id,
                        c.dri,
                        c.wait_ends.as_deref().unwrap_or("?")
                    );
                }
                Some(_) => {
                    let _ = writeln!(
                        o,
                        "  waiting for approval from: {} (approved so far: {}; until {})",
                        c.who.join(", "),
                        if c.approvals_given.is_empty() {
                            "nobody".into()
                        } else {
                            c.approvals_given.join(", ")
                        },
                        c.wait_ends.as_deref().unwrap_or("?")
                    );
                }
                None => {}
            }
        }
        let _ = writeln!(
            o,
            "  steps: {} done, {} failed, {} skipped of {}",
            self.done, self.failed, self.skipped, self.steps
        );
        if let Some(end) = &self.expected_end {
            let _ = writeln!(
                o,
                "  expected end: {end} ({} of expected work left)",
                human(self.expected_remaining_s)
            );
        }
        o
    }
}
