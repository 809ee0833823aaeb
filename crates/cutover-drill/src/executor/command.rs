//! The commands a drill runs, as processes: each started behind the start gate in its own
//! process group, its output lines journaled, stopped (SIGTERM, then SIGKILL) on timeout or
//! Ctrl-C; and the commands a dead drill left running, settled before a resume goes on.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{DrillError, Exec};
use crate::journal::{self, Event};
use crate::process;
use crate::runbook::Step;
use crate::state::CommandOnRecord;

/// How one command ended.
pub(super) enum CmdEnd {
    Exited(Option<i32>, String),
    TimedOut,
    Interrupted,
    NotStarted(String),
}

impl Exec<'_> {
    /// Runs a command in its own process group; its output lines go to the journal.
    pub(super) async fn command(
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
            None => Err(DrillError::StartNotRecorded),
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
    pub(super) async fn stop(&self, child: &mut tokio::process::Child, pid: Option<i32>) {
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

    /// Settles the commands the dead drill started: each one whose process group still runs
    /// is waited for (or, `--kill-orphans`, ended), and its end recorded. False when
    /// interrupted while waiting.
    pub(super) async fn end_orphans(
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
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
