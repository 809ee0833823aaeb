//! The way back after a failed gate: the completed steps' rollbacks, in reverse order, each
//! timed, journaled and announced.

use std::time::Instant;

use super::{ms3, CmdEnd, DrillError, Exec};
use crate::duration::human;
use crate::journal::Event;
use crate::runbook::Step;

impl Exec<'_> {
    /// Rolls back the completed steps (`done`, in the order they ran) in reverse order.
    /// Returns how many rollbacks failed. Rollbacks run to the end even on Ctrl-C: they are
    /// the way back.
    pub(super) async fn rollback(
        &mut self,
        gate: &str,
        done: &[usize],
    ) -> Result<usize, DrillError> {
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
    pub(super) async fn undo(&mut self, todo: Vec<&Step>) -> Result<usize, DrillError> {
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
            let env = self.env(&s.id);
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
