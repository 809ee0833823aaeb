//! A drill as its journal tells it: the journal's events folded into the state of the run and
//! of each step. `status`, `ack`, `--resume` and the reports all read a run through this one
//! fold, so they cannot disagree.

use serde::Serialize;

use crate::journal::{Event, FinalStatus, Record, StepInfo, StepStatus, Waiting};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Failed,
    RolledBack,
    /// Still running, or stopped by a crash or an interruption before it ended.
    Incomplete,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled_back",
            RunStatus::Incomplete => "incomplete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    NotRun,
    Running,
    Waiting,
    Ok,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::NotRun => "not_run",
            StepState::Running => "running",
            StepState::Waiting => "waiting",
            StepState::Ok => "ok",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub by: String,
    pub approve: bool,
    pub os_user: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub ok: Option<bool>,
    pub started_ms: u64,
    pub elapsed_s: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    pub info: StepInfo,
    pub state: StepState,
    /// Times the step was started (more than one after a crash during it).
    pub attempts: u32,
    pub started_ms: Option<u64>,
    /// When the last wait (ack or approval) began, and for what.
    pub waiting: Option<(Waiting, u64, f64)>,
    pub finished_ms: Option<u64>,
    pub elapsed_s: Option<f64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub overran: bool,
    /// `cutover drill ack`s: (name, OS user).
    pub acks: Vec<(String, String)>,
    pub decisions: Vec<Decision>,
    pub rollback: Option<Rollback>,
    /// The step's (or its rollback's) command started and not yet seen to end: after a crash,
    /// the process group a resumed drill must wait for or end, never start again.
    pub command: Option<CommandOnRecord>,
    /// The step's command ran (to an end no drill saw) before a resume: its exit status is
    /// unknown, so the step is never run again; its DRI confirms or rejects it.
    pub unconfirmed: bool,
}

/// A command as `command_started` recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandOnRecord {
    pub rollback: bool,
    pub pid: i32,
    pub pgid: i32,
    pub start_time: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub run_id: String,
    pub runbook: String,
    pub path: String,
    pub hash: String,
    pub dry_run: bool,
    pub started_ms: u64,
    /// The last event's time.
    pub last_ms: u64,
    pub finished_ms: Option<u64>,
    pub status: RunStatus,
    pub window: Option<(String, String)>,
    pub steps: Vec<StepRun>,
    /// The step running or waiting now (or when the run stopped).
    pub current: Option<String>,
    pub rollback_cause: Option<String>,
    pub resumes: u32,
    pub interrupted: bool,
    pub warnings: Vec<String>,
    /// The steps a rollback that has not ended yet undoes, in its order.
    pub rolling_back: Option<Vec<String>>,
}

impl Run {
    /// Folds a journal's records; `None` when it holds no `run_started`.
    pub fn from_records(records: &[Record]) -> Option<Run> {
        let mut run: Option<Run> = None;
        for r in records {
            if let Event::RunStarted {
                run_id,
                runbook,
                path,
                hash,
                dry_run,
                window,
                steps,
                ..
            } = &r.event
            {
                run = Some(Run {
                    run_id: run_id.clone(),
                    runbook: runbook.clone(),
                    path: path.clone(),
                    hash: hash.clone(),
                    dry_run: *dry_run,
                    started_ms: r.ms,
                    last_ms: r.ms,
                    finished_ms: None,
                    status: RunStatus::Incomplete,
                    window: window.clone(),
                    steps: steps
                        .iter()
                        .map(|i| StepRun {
                            info: i.clone(),
                            state: StepState::NotRun,
                            attempts: 0,
                            started_ms: None,
                            waiting: None,
                            finished_ms: None,
                            elapsed_s: None,
                            exit_code: None,
                            error: None,
                            overran: false,
                            acks: Vec::new(),
                            decisions: Vec::new(),
                            rollback: None,
                            command: None,
                            unconfirmed: false,
                        })
                        .collect(),
                    current: None,
                    rollback_cause: None,
                    resumes: 0,
                    interrupted: false,
                    warnings: Vec::new(),
                    rolling_back: None,
                });
                continue;
            }
            let Some(run) = run.as_mut() else { continue };
            run.last_ms = run.last_ms.max(r.ms);
            run.apply(r);
        }
        run
    }

    fn step_mut(&mut self, id: &str) -> Option<&mut StepRun> {
        self.steps.iter_mut().find(|s| s.info.id == id)
    }

    pub fn step(&self, id: &str) -> Option<&StepRun> {
        self.steps.iter().find(|s| s.info.id == id)
    }

    fn apply(&mut self, r: &Record) {
        match &r.event {
            Event::RunStarted { .. } => {}
            Event::Resumed { .. } => {
                self.resumes += 1;
                self.status = RunStatus::Incomplete;
                self.finished_ms = None;
                self.interrupted = false;
                // A step that was running when the process died never finished.
                for s in &mut self.steps {
                    if matches!(s.state, StepState::Running | StepState::Waiting) {
                        s.state = StepState::NotRun;
                    }
                }
            }
            Event::StepStarted { step } => {
                self.current = Some(step.clone());
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::Running;
                    s.attempts += 1;
                    s.started_ms = Some(r.ms);
                    s.finished_ms = None;
                    s.elapsed_s = None;
                    s.error = None;
                    s.exit_code = None;
                    s.waiting = None;
                }
            }
            Event::StepWaiting {
                step,
                waiting_for,
                timeout_s,
                ..
            } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::Waiting;
                    s.waiting = Some((*waiting_for, r.ms, *timeout_s));
                }
            }
            Event::Ack { step, by, os_user } => {
                if let Some(s) = self.step_mut(step) {
                    s.acks.push((by.clone(), os_user.clone()));
                }
            }
            Event::Approval {
                step,
                by,
                approve,
                os_user,
            } => {
                if let Some(s) = self.step_mut(step) {
                    s.decisions.push(Decision {
                        by: by.clone(),
                        approve: *approve,
                        os_user: os_user.clone(),
                        at: r.at.clone(),
                    });
                }
            }
            Event::Approved { step, .. } => {
                if let Some(s) = self.step_mut(step) {
                    if s.state == StepState::Waiting {
                        s.state = StepState::Running;
                    }
                    s.waiting = None;
                }
            }
            Event::Output { .. } => {}
            Event::CommandStarted {
                step,
                rollback,
                pid,
                pgid,
                start_time,
            } => {
                if let Some(s) = self.step_mut(step) {
                    s.command = Some(CommandOnRecord {
                        rollback: *rollback,
                        pid: *pid,
                        pgid: *pgid,
                        start_time: *start_time,
                    });
                }
            }
            Event::OrphanEnded { step, rollback, .. } => {
                if let Some(s) = self.step_mut(step) {
                    s.command = None;
                    if !rollback {
                        s.unconfirmed = true;
                    }
                }
            }
            Event::Overrun { step, .. } => {
                if let Some(s) = self.step_mut(step) {
                    s.overran = true;
                }
            }
            Event::StepFinished {
                step,
                status,
                elapsed_s,
                exit_code,
                error,
            } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = match status {
                        StepStatus::Ok => StepState::Ok,
                        StepStatus::Failed => StepState::Failed,
                        StepStatus::Skipped => StepState::Skipped,
                    };
                    s.finished_ms = Some(r.ms);
                    s.elapsed_s = Some(*elapsed_s);
                    s.exit_code = *exit_code;
                    s.error = error.clone();
                    s.waiting = None;
                    s.unconfirmed = false;
                    if s.command.is_some_and(|c| !c.rollback) {
                        s.command = None;
                    }
                }
            }
            Event::RollbackStarted { cause, steps } => {
                self.rollback_cause = Some(cause.clone());
                self.rolling_back = Some(steps.clone());
            }
            Event::RollbackStepStarted { step } => {
                self.current = Some(step.clone());
                if let Some(s) = self.step_mut(step) {
                    s.rollback = Some(Rollback {
                        ok: None,
                        started_ms: r.ms,
                        elapsed_s: None,
                        error: None,
                    });
                }
            }
            Event::RollbackStepFinished {
                step,
                ok,
                elapsed_s,
                error,
            } => {
                if let Some(s) = self.step_mut(step) {
                    if s.command.is_some_and(|c| c.rollback) {
                        s.command = None;
                    }
                }
                if let Some(rb) = self.step_mut(step).and_then(|s| s.rollback.as_mut()) {
                    rb.ok = Some(*ok);
                    rb.elapsed_s = Some(*elapsed_s);
                    rb.error = error.clone();
                }
            }
            Event::RunFinished { status } => {
                self.status = match status {
                    FinalStatus::Completed => RunStatus::Completed,
                    FinalStatus::Failed => RunStatus::Failed,
                    FinalStatus::RolledBack => RunStatus::RolledBack,
                };
                self.finished_ms = Some(r.ms);
                self.current = None;
                self.rolling_back = None;
            }
            Event::Interrupted { .. } => {
                self.interrupted = true;
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
        }
    }

    /// The index of the first step not done (not `ok` and not `skipped`).
    pub fn first_not_done(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| !matches!(s.state, StepState::Ok | StepState::Skipped))
    }

    /// The window's actual seconds (start of its first step to end of its last), when both
    /// ran, and its expected seconds.
    pub fn window_s(&self) -> Option<(Option<f64>, f64)> {
        let (a, b) = self.window.as_ref()?;
        let ia = self.steps.iter().position(|s| &s.info.id == a)?;
        let ib = self.steps.iter().position(|s| &s.info.id == b)?;
        let expected = self.steps[ia..=ib.max(ia)]
            .iter()
            .map(|s| s.info.expected_s)
            .sum();
        let actual = match (
            self.steps[ia].started_ms,
            self.steps[ib].finished_ms,
            self.steps[ib].state,
        ) {
            (Some(s), Some(e), StepState::Ok) if e >= s => Some((e - s) as f64 / 1000.0),
            _ => None,
        };
        Some((actual, expected))
    }

    /// Seconds from the start to the end (or to the last event).
    pub fn total_s(&self) -> f64 {
        let end = self.finished_ms.unwrap_or(self.last_ms);
        end.saturating_sub(self.started_ms) as f64 / 1000.0
    }
}
