//! Runs a runbook: the steps in order, each announced, timed against its estimate, journaled.
//!
//! A step: `step_started` → (approvals: `step_waiting` until M of N approve, one rejects, or
//! the wait times out: a timeout is never an approval) → the action (a shell command, a
//! cutover command, or a manual step waiting for its DRI's ack) under the step's timeout,
//! with an overrun warning when it passes its estimate → `step_finished`. A failed gate rolls
//! back the completed steps in reverse order, each timed and announced. Ctrl-C/SIGTERM stops
//! the running command and leaves the run incomplete, to be resumed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::announce::{Announcer, Backoff, WarnFn};
use crate::duration::human;
use crate::journal::{self, Event, FinalStatus, JournalError, StepInfo, StepStatus, Tail};
use crate::metrics::Metrics;
use crate::runbook::{Action, Runbook, Step};
use crate::state::{CommandOnRecord, Run, RunStatus, StepState};

mod approvals;
mod command;
mod rollback;

use command::CmdEnd;

#[derive(Clone)]
pub struct Options {
    /// The journal directory (created when missing).
    pub journal: PathBuf,
    /// Run only the steps without side effects; announce and journal the others as skipped.
    pub dry_run: bool,
    /// Continue the run in `journal` at its first step not completed.
    pub resume: bool,
    /// On `resume`, end the process group of a command the dead drill started and that still
    /// runs (SIGTERM, then SIGKILL after `kill_grace`) instead of waiting for it to end.
    pub kill_orphans: bool,
    /// Start at this step; the steps before it are journaled as skipped.
    pub from: Option<String>,
    /// The cutover binary that runs `check` steps.
    pub cutover_exe: PathBuf,
    pub cancel: CancellationToken,
    /// How often a waiting step looks for acks and approvals in the journal.
    pub poll: Duration,
    pub backoff: Backoff,
    /// How long a command gets between SIGTERM and SIGKILL when it times out or is interrupted.
    pub kill_grace: Duration,
    pub metrics: Option<Arc<Metrics>>,
    /// Where warnings are shown besides the journal (stderr in the binary).
    pub on_warning: Arc<dyn Fn(&str) + Send + Sync>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every step ran; `failed` counts those that failed with `continue_on_error`.
    Completed { failed: usize },
    /// A step that is not a gate failed; the drill stopped without rolling back.
    Failed,
    /// A gate failed and the completed steps were rolled back (`rollback_failures` did not
    /// undo cleanly).
    RolledBack { rollback_failures: usize },
    /// Ctrl-C or SIGTERM: the run is incomplete and can be resumed.
    Interrupted,
}

impl Outcome {
    /// 0 completed without a failure, 1 a failure or a rollback, 130 interrupted.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Completed { failed: 0 } => 0,
            Outcome::Completed { .. } | Outcome::Failed | Outcome::RolledBack { .. } => 1,
            Outcome::Interrupted => 130,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    // The drill was not started: each message says why and what to do.
    #[error("a drill is running on {} now (another process holds its lock)", dir.display())]
    Locked { dir: PathBuf },
    #[error("there is no drill to resume in {}; start one without --resume", dir.display())]
    NothingToResume { dir: PathBuf },
    /// `was` and `now`: the first 12 hex digits of the runbook's hash then and now.
    #[error("the runbook changed since run {run_id} began (its hash was {was}…, now {now}…); a resumed drill must run the same runbook: restore it, or start a new drill in a new journal directory")]
    RunbookChanged {
        run_id: String,
        was: String,
        now: String,
    },
    #[error(
        "run {run_id} was {}a dry run; resume it {} --dry-run",
        if *dry_run { "" } else { "not " },
        if *dry_run { "with" } else { "without" }
    )]
    DryRunMismatch { run_id: String, dry_run: bool },
    #[error("run {run_id} already ended ({status}); nothing to resume")]
    AlreadyEnded {
        run_id: String,
        status: &'static str,
    },
    #[error("every step of run {run_id} is done; nothing to resume")]
    AllDone { run_id: String },
    #[error("{} already holds drill {run_id} ({status}); give each drill its own journal directory, or --resume", dir.display())]
    JournalInUse {
        dir: PathBuf,
        run_id: String,
        status: &'static str,
    },
    #[error("--from: the runbook has no step `{0}`")]
    NoSuchStep(String),
    /// A command's PID could not be journaled before it was let go, so it was never run.
    #[error("the command ended before its start could be recorded")]
    StartNotRecorded,
}

/// How one step ended.
enum StepEnd {
    Ok,
    Failed {
        error: String,
        exit_code: Option<i32>,
    },
    Skipped(String),
    Interrupted,
}

struct Exec<'a> {
    rb: &'a Runbook,
    opts: Options,
    run_id: String,
    started_ms: u64,
    announcer: Announcer,
    tail: Tail,
}

/// Runs (or resumes) the drill of `rb` with its journal in `opts.journal`.
pub async fn run(rb: &Runbook, opts: Options) -> Result<Outcome, DrillError> {
    let dir = opts.journal.clone();
    std::fs::create_dir_all(&dir).map_err(|source| JournalError::Io {
        path: dir.clone(),
        source,
    })?;
    let _lock = journal::try_lock(&dir)?.ok_or_else(|| DrillError::Locked { dir: dir.clone() })?;
    let records = journal::read(&dir)?;
    let previous = Run::from_records(&records);

    let mut resume = Resume::default();
    let (run_id, started_ms, start_at, done, skip) = if opts.resume {
        let Some(prev) = previous else {
            return Err(DrillError::NothingToResume { dir });
        };
        if prev.hash != rb.hash {
            return Err(DrillError::RunbookChanged {
                run_id: prev.run_id,
                was: prev.hash[..12.min(prev.hash.len())].to_string(),
                now: rb.hash[..12].to_string(),
            });
        }
        if prev.dry_run != opts.dry_run {
            return Err(DrillError::DryRunMismatch {
                run_id: prev.run_id,
                dry_run: prev.dry_run,
            });
        }
        if matches!(prev.status, RunStatus::Completed | RunStatus::RolledBack) {
            return Err(DrillError::AlreadyEnded {
                run_id: prev.run_id,
                status: prev.status.as_str(),
            });
        }
        let Some(at) = prev.first_not_done() else {
            return Err(DrillError::AllDone {
                run_id: prev.run_id,
            });
        };
        let done: Vec<usize> = (0..prev.steps.len())
            .filter(|&i| prev.steps[i].state == StepState::Ok)
            .collect();
        // Steps after `at` can be done too (after a failure with continue_on_error): they
        // are not run again.
        let skip: Vec<usize> = (at..prev.steps.len())
            .filter(|&i| matches!(prev.steps[i].state, StepState::Ok | StepState::Skipped))
            .collect();
        resume = Resume::of(&prev);
        journal::append(
            &dir,
            Event::Resumed {
                pid: std::process::id(),
                os_user: journal::os_user(),
                at_step: rb.steps[at].id.clone(),
            },
        )?;
        (prev.run_id.clone(), prev.started_ms, at, done, skip)
    } else {
        if let Some(prev) = previous {
            return Err(DrillError::JournalInUse {
                dir,
                run_id: prev.run_id,
                status: prev.status.as_str(),
            });
        }
        let start_at = match &opts.from {
            Some(id) => rb
                .steps
                .iter()
                .position(|s| &s.id == id)
                .ok_or_else(|| DrillError::NoSuchStep(id.clone()))?,
            None => 0,
        };
        let ms = journal::now_ms();
        let run_id = format!(
            "{}-{}",
            journal::rfc3339(ms)
                .replace(['-', ':'], "")
                .split('.')
                .next()
                .unwrap_or("run"),
            std::process::id()
        );
        let rec = journal::append(
            &dir,
            Event::RunStarted {
                run_id: run_id.clone(),
                runbook: rb.name.clone(),
                path: rb.path.display().to_string(),
                hash: rb.hash.clone(),
                dry_run: opts.dry_run,
                os_user: journal::os_user(),
                pid: std::process::id(),
                window: rb.window.clone(),
                steps: rb.steps.iter().map(step_info).collect(),
            },
        )?;
        for s in &rb.steps[..start_at] {
            journal::append(
                &dir,
                Event::StepFinished {
                    step: s.id.clone(),
                    status: StepStatus::Skipped,
                    elapsed_s: 0.0,
                    exit_code: None,
                    error: Some("before --from".into()),
                },
            )?;
        }
        (run_id, rec.ms, start_at, Vec::new(), Vec::new())
    };

    let warn_dir = dir.clone();
    let on_warning = opts.on_warning.clone();
    let warn: WarnFn = Arc::new(move |m: String| {
        on_warning(&m);
        let _ = journal::append(&warn_dir, Event::Warning { message: m });
    });
    let announcer = Announcer::start(&rb.announce, opts.backoff, warn);
    let mut tail = Tail::new(&dir);
    tail.next_records()?;
    let mut ex = Exec {
        rb,
        opts,
        run_id,
        started_ms,
        announcer,
        tail,
    };
    if let Some(m) = &ex.opts.metrics {
        m.run_started(&rb.name, &ex.run_id, rb.steps.len(), start_at);
    }
    let result = ex.drive(start_at, done, &skip, &resume).await;
    let Exec { announcer, .. } = ex;
    announcer.finish(Duration::from_secs(60)).await;
    result
}

/// What a resumed drill must settle before it goes on, from the journal of the dead one.
#[derive(Default)]
struct Resume {
    /// Commands the dead drill started and never saw end: (step, the command).
    orphans: Vec<(String, CommandOnRecord)>,
    /// The steps whose command ran already (or may still run), to an end no drill saw: they
    /// are never started again.
    unconfirmed: Vec<usize>,
    /// The dead drill was rolling back: the steps still to undo, and the rollbacks whose
    /// command ran (their status is unknown: they are not run again).
    rolling_back: Option<(Vec<String>, Vec<String>)>,
}

impl Resume {
    fn of(prev: &Run) -> Resume {
        let orphans: Vec<(String, CommandOnRecord)> = prev
            .steps
            .iter()
            .filter_map(|s| s.command.map(|c| (s.info.id.clone(), c)))
            .collect();
        let unconfirmed = (0..prev.steps.len())
            .filter(|&i| {
                let s = &prev.steps[i];
                s.unconfirmed || s.command.is_some_and(|c| !c.rollback)
            })
            .collect();
        let rolling_back = prev.rolling_back.as_ref().map(|steps| {
            let mut todo = Vec::new();
            let mut unknown = Vec::new();
            for id in steps {
                let Some(s) = prev.step(id) else { continue };
                match (&s.rollback, s.command) {
                    (Some(r), _) if r.ok.is_some() => {}
                    (Some(_), Some(c)) if c.rollback => unknown.push(id.clone()),
                    _ => todo.push(id.clone()),
                }
            }
            (todo, unknown)
        });
        Resume {
            orphans,
            unconfirmed,
            rolling_back,
        }
    }
}

fn step_info(s: &Step) -> StepInfo {
    StepInfo {
        id: s.id.clone(),
        title: s.title.clone(),
        dri: s.dri.clone(),
        reviewer: s.reviewer.clone(),
        expected_s: s.expect.as_secs_f64(),
        kind: match s.action {
            Action::Shell(_) => "shell",
            Action::Check(_) => "check",
            Action::Manual => "manual",
        }
        .into(),
        gate: s.gate,
        approvers: s
            .approvals
            .as_ref()
            .map(|a| a.by.clone())
            .unwrap_or_default(),
        min_approvals: s.approvals.as_ref().map(|a| a.min).unwrap_or(0),
        has_rollback: s.rollback.is_some(),
        side_effects: s.side_effects,
    }
}

impl Exec<'_> {
    fn journal(&self, e: Event) -> Result<(), DrillError> {
        journal::append(&self.opts.journal, e)?;
        Ok(())
    }

    /// `[dry-run] [orders cutover] T+0:05:12 text`
    fn say(&self, text: &str) {
        let t = journal::now_ms().saturating_sub(self.started_ms) / 1000;
        let line = format!(
            "{}[{}] T+{}:{:02}:{:02} {text}",
            if self.opts.dry_run { "[dry-run] " } else { "" },
            self.rb.name,
            t / 3600,
            (t % 3600) / 60,
            t % 60
        );
        self.announcer.say(&line);
    }

    /// The environment of a step's command or rollback: the runbook's variables, the run
    /// and the step.
    fn env(&self, step_id: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .rb
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("DRILL_RUN_ID".into(), self.run_id.clone()));
        env.push(("DRILL_STEP".into(), step_id.to_string()));
        env
    }

    fn people(s: &Step) -> String {
        format!("DRI {}, reviewer {}", s.dri, s.reviewer)
    }

    async fn drive(
        &mut self,
        start_at: usize,
        mut done: Vec<usize>,
        skip: &[usize],
        resume: &Resume,
    ) -> Result<Outcome, DrillError> {
        let n = self.rb.steps.len();
        if self.opts.resume && !self.end_orphans(&resume.orphans).await? {
            self.journal(Event::Interrupted { step: None })?;
            self.say("⏸ drill interrupted while waiting for the commands of the run before the resume; resume with --resume");
            return Ok(Outcome::Interrupted);
        }
        if let Some((todo, unknown)) = &resume.rolling_back {
            self.say(&format!(
                "▶▶ resuming the rollback of run {}: {} step{} still to undo",
                self.run_id,
                todo.len(),
                if todo.len() == 1 { "" } else { "s" }
            ));
            let mut failures = 0;
            for id in unknown {
                self.journal(Event::RollbackStepFinished {
                    step: id.clone(),
                    ok: false,
                    elapsed_s: 0.0,
                    error: Some(UNKNOWN_END.into()),
                })?;
                self.say(&format!(
                    "✖ rollback of {id}: {UNKNOWN_END}; not run again — check it by hand"
                ));
                failures += 1;
            }
            let steps: Vec<&Step> = todo.iter().filter_map(|id| self.rb.step(id)).collect();
            failures += self.undo(steps).await?;
            self.journal(Event::RunFinished {
                status: FinalStatus::RolledBack,
            })?;
            self.say(&format!(
                "drill rolled back{}",
                if failures > 0 {
                    format!("; {failures} rollback(s) FAILED or unknown")
                } else {
                    String::new()
                }
            ));
            return Ok(Outcome::RolledBack {
                rollback_failures: failures,
            });
        }
        if self.opts.resume {
            let s = &self.rb.steps[start_at];
            self.say(&format!(
                "▶▶ resuming run {} at step {}/{n} {} ({} step{} already done)",
                self.run_id,
                start_at + 1,
                s.id,
                done.len(),
                if done.len() == 1 { "" } else { "s" }
            ));
        } else {
            let expected: f64 = self.rb.steps.iter().map(|s| s.expect.as_secs_f64()).sum();
            self.say(&format!(
                "drill started: run {}, {n} steps, expected {}",
                self.run_id,
                human(expected)
            ));
        }
        let mut failed = 0usize;
        for i in start_at..n {
            let step = &self.rb.steps[i];
            if skip.contains(&i) {
                self.say(&format!(
                    "step {}/{n} {} was done before the resume; not run again",
                    i + 1,
                    step.id
                ));
                continue;
            }
            let t0 = Instant::now();
            self.journal(Event::StepStarted {
                step: step.id.clone(),
            })?;
            if let Some(m) = &self.opts.metrics {
                m.step_started(i, &step.id, step.expect.as_secs_f64());
            }
            self.say(&format!(
                "▶ step {}/{n} {}: {} — {}, expected {}",
                i + 1,
                step.id,
                step.title,
                Self::people(step),
                human(step.expect.as_secs_f64())
            ));
            let end = if resume.unconfirmed.contains(&i) && step.side_effects {
                self.manual(step, t0, Some(UNKNOWN_END)).await?
            } else {
                self.step(step, t0).await?
            };
            let elapsed = ms3(t0.elapsed().as_secs_f64());
            if let Some(m) = &self.opts.metrics {
                m.step_finished(matches!(end, StepEnd::Ok | StepEnd::Skipped(_)));
            }
            let vs = format!(
                "{} (expected {})",
                human(elapsed),
                human(step.expect.as_secs_f64())
            );
            match end {
                StepEnd::Ok => {
                    self.journal(Event::StepFinished {
                        step: step.id.clone(),
                        status: StepStatus::Ok,
                        elapsed_s: elapsed,
                        exit_code: None,
                        error: None,
                    })?;
                    self.say(&format!(
                        "✔ step {}/{n} {} done in {vs} — {}",
                        i + 1,
                        step.id,
                        Self::people(step)
                    ));
                    done.push(i);
                }
                StepEnd::Skipped(why) => {
                    self.journal(Event::StepFinished {
                        step: step.id.clone(),
                        status: StepStatus::Skipped,
                        elapsed_s: elapsed,
                        exit_code: None,
                        error: Some(why.clone()),
                    })?;
                    self.say(&format!("⏭ step {}/{n} {} skipped: {why}", i + 1, step.id));
                }
                StepEnd::Interrupted => {
                    self.journal(Event::Interrupted {
                        step: Some(step.id.clone()),
                    })?;
                    self.say(&format!(
                        "⏸ drill interrupted during step {} after {}; resume with --resume",
                        step.id,
                        human(elapsed)
                    ));
                    return Ok(Outcome::Interrupted);
                }
                StepEnd::Failed { error, exit_code } => {
                    self.journal(Event::StepFinished {
                        step: step.id.clone(),
                        status: StepStatus::Failed,
                        elapsed_s: elapsed,
                        exit_code,
                        error: Some(error.clone()),
                    })?;
                    self.say(&format!(
                        "✖ step {}/{n} {} FAILED after {vs}: {error} — {}",
                        i + 1,
                        step.id,
                        Self::people(step)
                    ));
                    if step.gate {
                        let rf = self.rollback(&step.id, &done).await?;
                        self.journal(Event::RunFinished {
                            status: FinalStatus::RolledBack,
                        })?;
                        self.say(&format!(
                            "drill stopped at gate {} and rolled back{}",
                            step.id,
                            if rf > 0 {
                                format!("; {rf} rollback(s) FAILED")
                            } else {
                                String::new()
                            }
                        ));
                        return Ok(Outcome::RolledBack {
                            rollback_failures: rf,
                        });
                    }
                    if !step.continue_on_error {
                        self.journal(Event::RunFinished {
                            status: FinalStatus::Failed,
                        })?;
                        self.say(&format!(
                            "drill stopped: step {} failed (not a gate: nothing rolled back); fix it and --resume",
                            step.id
                        ));
                        return Ok(Outcome::Failed);
                    }
                    failed += 1;
                }
            }
        }
        self.journal(Event::RunFinished {
            status: FinalStatus::Completed,
        })?;
        let total = journal::now_ms().saturating_sub(self.started_ms) as f64 / 1000.0;
        self.say(&format!(
            "drill completed in {}{}",
            human(total),
            if failed > 0 {
                format!(", {failed} step(s) failed (continue_on_error)")
            } else {
                String::new()
            }
        ));
        Ok(Outcome::Completed { failed })
    }

    async fn step(&mut self, step: &Step, t0: Instant) -> Result<StepEnd, DrillError> {
        if self.opts.dry_run && step.side_effects {
            return Ok(StepEnd::Skipped(
                "dry run: the step has side effects".into(),
            ));
        }
        if let Some(a) = &step.approvals {
            if self.opts.dry_run {
                self.say(&format!(
                    "step {}: approvals are not collected in a dry run",
                    step.id
                ));
            } else if let Some(end) = self.approvals(step, a).await? {
                return Ok(end);
            }
        }
        let base_env = || {
            let mut env = self.env(&step.id);
            env.push((
                "DRILL_DRY_RUN".into(),
                if self.opts.dry_run { "1" } else { "0" }.into(),
            ));
            env
        };
        let (program, args): (OsString, Vec<OsString>) = match &step.action {
            Action::Manual => return self.manual(step, t0, None).await,
            Action::Shell(s) => ("sh".into(), vec!["-c".into(), s.into()]),
            Action::Check(args) => (
                self.opts.cutover_exe.clone().into(),
                args.iter().map(OsString::from).collect(),
            ),
        };
        let end = self
            .command(
                &step.id,
                false,
                (program, args, base_env()),
                step.timeout,
                Some((step, t0)),
                true,
            )
            .await?;
        Ok(match end {
            CmdEnd::Exited(Some(0), _) => StepEnd::Ok,
            CmdEnd::Exited(code, how) => StepEnd::Failed {
                error: how,
                exit_code: code,
            },
            CmdEnd::TimedOut => StepEnd::Failed {
                error: format!("timed out after {}", human(step.timeout.as_secs_f64())),
                exit_code: None,
            },
            CmdEnd::Interrupted => StepEnd::Interrupted,
            CmdEnd::NotStarted(e) => StepEnd::Failed {
                error: e,
                exit_code: None,
            },
        })
    }

    /// Announces the overrun of `step` once, when it passes its estimate.
    fn overran(&self, step: &Step, t0: Instant) -> Result<(), DrillError> {
        let el = ms3(t0.elapsed().as_secs_f64());
        self.journal(Event::Overrun {
            step: step.id.clone(),
            expected_s: step.expect.as_secs_f64(),
            elapsed_s: el,
        })?;
        if let Some(m) = &self.opts.metrics {
            m.step_overran();
        }
        self.say(&format!(
            "⚠ step {} overran its estimate of {} (still running; timeout {}) — {}",
            step.id,
            human(step.expect.as_secs_f64()),
            human(step.timeout.as_secs_f64()),
            Self::people(step)
        ));
        Ok(())
    }
}

/// Why a step or rollback is not run again after a resume.
const UNKNOWN_END: &str =
    "its command ran before the resume to an end no drill saw (exit status unknown)";

/// Seconds rounded to milliseconds, as the journal keeps them.
fn ms3(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}
