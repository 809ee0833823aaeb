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
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::announce::{Announcer, Backoff, WarnFn};
use crate::duration::human;
use crate::journal::{self, Event, FinalStatus, JournalError, StepInfo, StepStatus, Tail, Waiting};
use crate::metrics::Metrics;
use crate::process;
use crate::runbook::{Action, Runbook, Step};
use crate::state::{CommandOnRecord, Run, RunStatus, StepState};

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
    /// The drill was not started: the reason says why and what to do.
    #[error("{0}")]
    Refused(String),
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

/// How one command ended.
enum CmdEnd {
    Exited(Option<i32>, String),
    TimedOut,
    Interrupted,
    NotStarted(String),
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
    let _lock = journal::try_lock(&dir)?.ok_or_else(|| {
        DrillError::Refused(format!(
            "a drill is running on {} now (another process holds its lock)",
            dir.display()
        ))
    })?;
    let records = journal::read(&dir)?;
    let previous = Run::from_records(&records);

    let mut resume = Resume::default();
    let (run_id, started_ms, start_at, done, skip) = if opts.resume {
        let Some(prev) = previous else {
            return Err(DrillError::Refused(format!(
                "there is no drill to resume in {}; start one without --resume",
                dir.display()
            )));
        };
        if prev.hash != rb.hash {
            return Err(DrillError::Refused(format!(
                "the runbook changed since run {} began (its hash was {}…, now {}…); a resumed drill must run the same runbook: restore it, or start a new drill in a new journal directory",
                prev.run_id,
                &prev.hash[..12.min(prev.hash.len())],
                &rb.hash[..12]
            )));
        }
        if prev.dry_run != opts.dry_run {
            return Err(DrillError::Refused(format!(
                "run {} was {}a dry run; resume it {} --dry-run",
                prev.run_id,
                if prev.dry_run { "" } else { "not " },
                if prev.dry_run { "with" } else { "without" }
            )));
        }
        if matches!(prev.status, RunStatus::Completed | RunStatus::RolledBack) {
            return Err(DrillError::Refused(format!(
                "run {} already ended ({}); nothing to resume",
                prev.run_id,
                prev.status.as_str()
            )));
        }
        let Some(at) = prev.first_not_done() else {
            return Err(DrillError::Refused(format!(
                "every step of run {} is done; nothing to resume",
                prev.run_id
            )));
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
            return Err(DrillError::Refused(format!(
                "{} already holds drill {} ({}); give each drill its own journal directory, or --resume",
                dir.display(),
                prev.run_id,
                prev.status.as_str()
            )));
        }
        let start_at = match &opts.from {
            Some(id) => rb.steps.iter().position(|s| &s.id == id).ok_or_else(|| {
                DrillError::Refused(format!("--from: the runbook has no step `{id}`"))
            })?,
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
            let mut env: Vec<(String, String)> = self
                .rb
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            env.push(("DRILL_RUN_ID".into(), self.run_id.clone()));
            env.push(("DRILL_STEP".into(), step.id.clone()));
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

    /// Settles the commands the dead drill started: each one whose process group still runs
    /// is waited for (or, `--kill-orphans`, ended), and its end recorded. False when
    /// interrupted while waiting.
    async fn end_orphans(
        &mut self,
        orphans: &[(String, CommandOnRecord)],
    ) -> Result<bool, DrillError> {
        for (step, c) in orphans {
            let what = format!(
                "{}{step}'s command (pid {}, process group {})",
                if c.rollback { "the rollback of " } else { "" },
                c.pid,
                c.pgid
            );
            let how = if !process::group_alive(c.pgid, c.start_time) {
                self.say(&format!(
                    "{what} from the run before the resume has ended; its exit status is unknown"
                ));
                "ended"
            } else if self.opts.kill_orphans {
                self.say(&format!(
                    "{what} from the run before the resume still runs: ending it (--kill-orphans)"
                ));
                process::signal_group(c.pgid, c.start_time, libc::SIGTERM);
                let cancel = self.opts.cancel.clone();
                let grace = self.opts.kill_grace;
                let ended = process::wait_group(c.pgid, c.start_time, self.opts.poll, async move {
                    tokio::select! {
                        _ = tokio::time::sleep(grace) => {}
                        _ = cancel.cancelled() => {}
                    }
                })
                .await;
                if !ended {
                    process::signal_group(c.pgid, c.start_time, libc::SIGKILL);
                    let cancel = self.opts.cancel.clone();
                    if !process::wait_group(c.pgid, c.start_time, self.opts.poll, async move {
                        cancel.cancelled().await
                    })
                    .await
                    {
                        return Ok(false);
                    }
                }
                "killed"
            } else {
                self.say(&format!(
                    "⏳ {what} from the run before the resume still runs: waiting for it to end, never starting it twice (--kill-orphans ends it instead)"
                ));
                let cancel = self.opts.cancel.clone();
                if !process::wait_group(c.pgid, c.start_time, self.opts.poll, async move {
                    cancel.cancelled().await
                })
                .await
                {
                    return Ok(false);
                }
                self.say(&format!("{what} has ended; its exit status is unknown"));
                "waited"
            };
            self.journal(Event::OrphanEnded {
                step: step.clone(),
                rollback: c.rollback,
                pid: c.pid,
                how: how.into(),
            })?;
        }
        Ok(true)
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

    /// Runs a command in its own process group; its output lines go to the journal.
    async fn command(
        &self,
        step_id: &str,
        rollback: bool,
        (program, args, env): (OsString, Vec<OsString>, Vec<(String, String)>),
        timeout: Duration,
        overrun: Option<(&Step, Instant)>,
        cancellable: bool,
    ) -> Result<CmdEnd, DrillError> {
        let mut cmd = process::gated(&program, &args);
        cmd.envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Ok(CmdEnd::NotStarted(format!("could not start: {e}"))),
        };
        let pid = child.id().map(|p| p as i32);
        // The command waits at its gate until its process is on record: a drill that dies
        // from here on leaves a journal naming the process a resume must not start twice.
        let gate = child.stdin.take();
        let recorded = match pid {
            Some(pid) => self.journal(Event::CommandStarted {
                step: step_id.to_string(),
                rollback,
                pid,
                pgid: pid,
                start_time: process::start_time(pid).unwrap_or(0),
            }),
            None => Err(DrillError::Refused(
                "the command ended before its start could be recorded".into(),
            )),
        };
        if let Err(e) = recorded {
            // Closing the gate unopened ends the command before it acts.
            drop(gate);
            let _ = child.wait().await;
            return Err(e);
        }
        if let Some(mut gate) = gate {
            use tokio::io::AsyncWriteExt as _;
            // A failed write means the wrapper already ended; its exit status tells.
            let _ = gate.write_all(b"go\n").await;
        }
        let mut readers = Vec::new();
        for (name, pipe) in [
            (
                "stdout",
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ),
            (
                "stderr",
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ),
        ] {
            let Some(pipe) = pipe else { continue };
            let dir = self.opts.journal.clone();
            let step = step_id.to_string();
            readers.push(tokio::spawn(async move {
                let mut r = BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let mut line = String::from_utf8_lossy(&buf)
                                .trim_end_matches(['\n', '\r'])
                                .to_string();
                            if line.len() > 8192 {
                                let mut cut = 8192;
                                while !line.is_char_boundary(cut) {
                                    cut -= 1;
                                }
                                line.truncate(cut);
                                line.push('…');
                            }
                            let _ = journal::append(
                                &dir,
                                Event::Output {
                                    step: step.clone(),
                                    rollback,
                                    stream: name.into(),
                                    line,
                                },
                            );
                        }
                    }
                }
            }));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let overrun_at = overrun.map(|(s, t0)| tokio::time::Instant::from_std(t0 + s.expect));
        let mut overran = false;
        let cancel = self.opts.cancel.clone();
        let end = loop {
            tokio::select! {
                st = child.wait() => {
                    break match st {
                        Ok(st) => {
                            use std::os::unix::process::ExitStatusExt as _;
                            let how = match (st.code(), st.signal()) {
                                (Some(c), _) => format!("exit {c}"),
                                (None, Some(sig)) => format!("killed by signal {sig}"),
                                _ => "ended".into(),
                            };
                            CmdEnd::Exited(st.code(), how)
                        }
                        Err(e) => CmdEnd::NotStarted(format!("could not wait for it: {e}")),
                    };
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.stop(&mut child, pid).await;
                    break CmdEnd::TimedOut;
                }
                _ = cancel.cancelled(), if cancellable => {
                    self.stop(&mut child, pid).await;
                    break CmdEnd::Interrupted;
                }
                _ = sleep_until_opt(overrun_at), if !overran && overrun_at.is_some() => {
                    overran = true;
                    if let Some((s, t0)) = overrun {
                        self.overran(s, t0)?;
                    }
                }
            }
        };
        for r in readers {
            let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
        }
        Ok(end)
    }

    /// SIGTERM to the command's process group, SIGKILL after the grace period.
    async fn stop(&self, child: &mut tokio::process::Child, pid: Option<i32>) {
        if let Some(pid) = pid {
            // SAFETY: signals a process group this drill created (process_group(0)).
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            if tokio::time::timeout(self.opts.kill_grace, child.wait())
                .await
                .is_err()
            {
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.wait().await;
            }
        } else {
            let _ = child.kill().await;
        }
    }

    /// Waits for M of N approvals. `None`: approved, go on; else how the step ends.
    async fn approvals(
        &mut self,
        step: &Step,
        a: &crate::runbook::Approvals,
    ) -> Result<Option<StepEnd>, DrillError> {
        self.tail.next_records()?;
        self.journal(Event::StepWaiting {
            step: step.id.clone(),
            waiting_for: Waiting::Approval,
            who: a.by.clone(),
            min: a.min,
            timeout_s: a.timeout.as_secs_f64(),
        })?;
        self.say(&format!(
            "⏳ step {} waits for approval: {} of {} ({}) within {} — `cutover drill ack {} --approve --by NAME`",
            step.id,
            a.min,
            a.by.len(),
            a.by.join(", "),
            human(a.timeout.as_secs_f64()),
            step.id
        ));
        let deadline = Instant::now() + a.timeout;
        let mut approved: Vec<String> = Vec::new();
        loop {
            for r in self.tail.next_records()? {
                if let Event::Approval {
                    step: s,
                    by,
                    approve,
                    ..
                } = r.event
                {
                    if s != step.id || !a.by.contains(&by) || by == step.dri {
                        continue;
                    }
                    if !approve {
                        self.say(&format!("✋ step {} rejected by {by}", step.id));
                        return Ok(Some(StepEnd::Failed {
                            error: format!("rejected by {by}"),
                            exit_code: None,
                        }));
                    }
                    if !approved.contains(&by) {
                        approved.push(by.clone());
                        self.say(&format!(
                            "👍 step {} approved by {by} ({} of {})",
                            step.id,
                            approved.len(),
                            a.min
                        ));
                    }
                }
            }
            if approved.len() >= a.min {
                self.journal(Event::Approved {
                    step: step.id.clone(),
                    by: approved,
                })?;
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Ok(Some(StepEnd::Failed {
                    error: format!(
                        "approval timed out after {} with {} of {} approvals (a timeout is never an approval)",
                        human(a.timeout.as_secs_f64()),
                        approved.len(),
                        a.min
                    ),
                    exit_code: None,
                }));
            }
            tokio::select! {
                _ = tokio::time::sleep(self.opts.poll) => {}
                _ = self.opts.cancel.cancelled() => return Ok(Some(StepEnd::Interrupted)),
            }
        }
    }

    /// A manual step: waits for its DRI's ack (or `--reject`) within the step's timeout.
    /// `unknown`: the step is not manual, but its command ran to an end no drill saw (the
    /// reason, announced): its DRI checks what it did and confirms or rejects it.
    async fn manual(
        &mut self,
        step: &Step,
        t0: Instant,
        unknown: Option<&str>,
    ) -> Result<StepEnd, DrillError> {
        self.tail.next_records()?;
        self.journal(Event::StepWaiting {
            step: step.id.clone(),
            waiting_for: Waiting::Ack,
            who: vec![step.dri.clone()],
            min: 1,
            timeout_s: step.timeout.as_secs_f64(),
        })?;
        match unknown {
            None => self.say(&format!(
                "⏳ step {} is manual: {} acts, then `cutover drill ack {} --by {}`",
                step.id, step.dri, step.id, step.dri
            )),
            Some(why) => self.say(&format!(
                "⏳ step {}: {why}; it is not run again: {} checks its effect, then `cutover drill ack {} --by {}` (it did its work) or `--reject` (it did not)",
                step.id, step.dri, step.id, step.dri
            )),
        }
        let mut overran = false;
        loop {
            for r in self.tail.next_records()? {
                match r.event {
                    Event::Ack { step: s, by, .. } if s == step.id && by == step.dri => {
                        return Ok(StepEnd::Ok)
                    }
                    Event::Approval {
                        step: s,
                        by,
                        approve: false,
                        ..
                    } if s == step.id && by == step.dri => {
                        return Ok(StepEnd::Failed {
                            error: format!("{by} reported it failed"),
                            exit_code: None,
                        })
                    }
                    _ => {}
                }
            }
            if !overran && t0.elapsed() > step.expect {
                overran = true;
                self.overran(step, t0)?;
            }
            if t0.elapsed() >= step.timeout {
                return Ok(StepEnd::Failed {
                    error: format!(
                        "no ack from {} within {}",
                        step.dri,
                        human(step.timeout.as_secs_f64())
                    ),
                    exit_code: None,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(self.opts.poll) => {}
                _ = self.opts.cancel.cancelled() => return Ok(StepEnd::Interrupted),
            }
        }
    }

    /// Rolls back the completed steps (`done`, in the order they ran) in reverse order.
    /// Returns how many rollbacks failed. Rollbacks run to the end even on Ctrl-C: they are
    /// the way back.
    async fn rollback(&mut self, gate: &str, done: &[usize]) -> Result<usize, DrillError> {
        let todo: Vec<&Step> = done
            .iter()
            .rev()
            .map(|&i| &self.rb.steps[i])
            .filter(|s| s.rollback.is_some())
            .collect();
        self.journal(Event::RollbackStarted {
            cause: format!("gate {gate} failed"),
            steps: todo.iter().map(|s| s.id.clone()).collect(),
        })?;
        let expected: f64 = todo.iter().map(|s| s.expect.as_secs_f64()).sum();
        self.say(&format!(
            "↩ gate {gate} failed: rolling back {} step{} in reverse order ({})",
            todo.len(),
            if todo.len() == 1 { "" } else { "s" },
            if todo.is_empty() {
                "nothing to undo".to_string()
            } else {
                format!(
                    "{}; their steps took an expected {}",
                    todo.iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(" → "),
                    human(expected)
                )
            }
        ));
        self.undo(todo).await
    }

    /// Runs the rollbacks of `todo` in that order. Returns how many failed.
    async fn undo(&mut self, todo: Vec<&Step>) -> Result<usize, DrillError> {
        let mut failures = 0;
        for s in todo {
            let Some(cmd_text) = &s.rollback else {
                continue;
            };
            if self.opts.dry_run {
                // The command itself is not announced: expanded variables may hold secrets.
                let _ = cmd_text;
                self.say(&format!(
                    "↩ would roll back {} (not run in a dry run)",
                    s.id
                ));
                continue;
            }
            self.journal(Event::RollbackStepStarted { step: s.id.clone() })?;
            self.say(&format!("↩ rolling back {} — {}", s.id, Self::people(s)));
            let t0 = Instant::now();
            let mut env: Vec<(String, String)> = self
                .rb
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            env.push(("DRILL_RUN_ID".into(), self.run_id.clone()));
            env.push(("DRILL_STEP".into(), s.id.clone()));
            let end = self
                .command(
                    &s.id,
                    true,
                    ("sh".into(), vec!["-c".into(), cmd_text.into()], env),
                    s.timeout,
                    None,
                    false,
                )
                .await?;
            let el = ms3(t0.elapsed().as_secs_f64());
            let error = match end {
                CmdEnd::Exited(Some(0), _) => None,
                CmdEnd::Exited(_, how) => Some(how),
                CmdEnd::TimedOut => Some(format!(
                    "timed out after {}",
                    human(s.timeout.as_secs_f64())
                )),
                CmdEnd::Interrupted => Some("interrupted".into()),
                CmdEnd::NotStarted(e) => Some(e),
            };
            self.journal(Event::RollbackStepFinished {
                step: s.id.clone(),
                ok: error.is_none(),
                elapsed_s: el,
                error: error.clone(),
            })?;
            match error {
                None => self.say(&format!("↩ rolled back {} in {}", s.id, human(el))),
                Some(e) => {
                    failures += 1;
                    self.say(&format!(
                        "✖ rollback of {} FAILED after {}: {e} — {}",
                        s.id,
                        human(el),
                        Self::people(s)
                    ))
                }
            }
        }
        Ok(failures)
    }
}

/// Why a step or rollback is not run again after a resume.
const UNKNOWN_END: &str =
    "its command ran before the resume to an end no drill saw (exit status unknown)";

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Seconds rounded to milliseconds, as the journal keeps them.
fn ms3(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}
