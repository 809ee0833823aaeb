//! The steps that wait for people: M of N approvals before a step runs, and the DRI's
//! acknowledgement of a manual step (or of a step whose command ended unseen).

use std::time::Instant;

use super::{DrillError, Exec, StepEnd};
use crate::duration::human;
use crate::journal::{Event, Waiting};
use crate::runbook::{Approvals, Step};

impl Exec<'_> {
    /// Waits for M of N approvals. `None`: approved, go on; else how the step ends.
    pub(super) async fn approvals(
        &mut self,
        step: &Step,
        a: &Approvals,
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
    pub(super) async fn manual(
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
}
