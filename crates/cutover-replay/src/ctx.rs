//! What every lane shares ([`Ctx`]): the servers, the replay's clock, the collector and each
//! side's concurrency window. The two halves of a statement meet here: the lane that answers
//! second compares them ([`outcome`]) and the outcome is collected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::Db;
use tokio_util::sync::CancellationToken;

use crate::answer::{self, Answer};
use crate::classify;
use crate::compare::{self, Kind};
use crate::concurrency;
use crate::excerpt::one_line;
use crate::job::{role, Job, NotRun, Side, SideAnswer};
use crate::report::{Collector, NotCompared, Outcome, Ran, Sample};
use crate::{Progress, Speed, Tally};

/// Shared by every lane.
pub(crate) struct Ctx {
    pub(crate) target: Db,
    pub(crate) baseline: Option<Db>,
    pub(crate) read_only: bool,
    /// Status flags cutover's own session set-up causes (the `READ ONLY` guard), masked on
    /// every side before comparing: they are not the target's behaviour.
    pub(crate) status_mask: u16,
    pub(crate) speed: Speed,
    /// When the replay started and the captured time of the first record.
    pub(crate) start: Instant,
    pub(crate) first_ts: i64,
    pub(crate) cancel: CancellationToken,
    /// Per class totals; lanes add their outcomes under the lock (a few histogram records).
    pub(crate) collector: std::sync::Mutex<Collector>,
    pub(crate) two_sides: bool,
    /// Each side's recent statements, for the context of a concurrency error (target,
    /// baseline).
    pub(crate) windows: [std::sync::Mutex<concurrency::Window>; 2],
    pub(crate) clock: concurrency::Clock,
    pub(crate) progress: Option<Arc<dyn Progress>>,
}

impl Ctx {
    pub(crate) fn add(&self, o: Outcome) {
        if let Ok(mut c) = self.collector.lock() {
            c.add(o);
            self.tell(&c);
        }
    }

    /// The totals to the progress display, if any.
    pub(crate) fn tell(&self, c: &Collector) {
        if let Some(p) = &self.progress {
            p.tally(&Tally {
                statements: c.statements,
                compared: c.compared,
                statements_with_diffs: c.with_diffs,
                not_compared: c.not_compared,
                skipped: c.skipped,
            });
        }
    }

    /// A statement not compared, with why.
    pub(crate) fn not_compared(
        &self,
        fingerprint: &Arc<str>,
        session: u64,
        sql: &str,
        why: &NotRun,
    ) {
        if let Ok(mut c) = self.collector.lock() {
            c.not_compared(NotCompared {
                fingerprint,
                reason: why.reason,
                session,
                sql,
                detail: &why.detail,
            });
            self.tell(&c);
        }
    }

    /// One side's answer to a statement: compared and collected when it is the second.
    pub(crate) fn answered(&self, side: Side, job: &Job, answer: SideAnswer) {
        if !self.two_sides {
            return self.finish(job, answer, None);
        }
        let other = match job.half.lock() {
            Ok(mut h) => match h.take() {
                Some(other) => other,
                None => {
                    *h = Some(answer);
                    return;
                }
            },
            Err(_) => return,
        };
        let (t, b) = match side {
            Side::Target => (answer, other),
            Side::Baseline => (other, answer),
        };
        self.finish(job, t, Some(b))
    }

    /// Both answers are in: compared, or not compared with the first side's reason.
    pub(crate) fn finish(&self, job: &Job, target: SideAnswer, baseline: Option<SideAnswer>) {
        let Some(st) = job.stmt.as_ref() else {
            return;
        };
        let why = |side: &str, e: NotRun| NotRun {
            reason: e.reason,
            detail: format!("on the {side}: {}", e.detail),
        };
        match (target, baseline) {
            (Err(e), _) => {
                self.not_compared(&st.fingerprint, job.session, job.sql(), &why("target", e))
            }
            (Ok(_), Some(Err(e))) => {
                self.not_compared(&st.fingerprint, job.session, job.sql(), &why("baseline", e))
            }
            (Ok(t), Some(Ok(b))) => {
                self.conflicts(job, &t, Some(&b));
                self.add(outcome(self, job, t, Some(b)))
            }
            (Ok(t), None) => {
                self.conflicts(job, &t, None);
                self.add(outcome(self, job, t, None))
            }
        }
    }

    /// The statement's concurrency errors (taken with their context by the lanes) that the
    /// other side, or the capture, did not answer with the same code.
    pub(crate) fn conflicts(&self, job: &Job, target: &Answer, baseline: Option<&Answer>) {
        let taken = match job.conflicts.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(_) => return,
        };
        for mut c in taken {
            let (code, brief) = match (c.side, baseline) {
                ("target", Some(b)) => (b.error.as_ref().map(|e| e.code), b.brief()),
                ("target", None) => match &job.rec.response {
                    Some(r) => (r.error.as_ref().map(|e| e.code), answer::captured_brief(r)),
                    // Nothing to compare with: not an error only one side had.
                    None => continue,
                },
                _ => (target.error.as_ref().map(|e| e.code), target.brief()),
            };
            if code == Some(c.code) {
                continue;
            }
            c.other_side = one_line(&brief, 200);
            if let Ok(mut col) = self.collector.lock() {
                col.concurrency.add(c);
            }
        }
    }

    /// Microseconds since the replay started: the clock of the concurrency windows.
    pub(crate) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub(crate) fn window(&self, side: Side) -> &std::sync::Mutex<concurrency::Window> {
        &self.windows[(side == Side::Baseline) as usize]
    }

    /// A statement starts on `side`: it enters that side's window.
    pub(crate) fn started(&self, side: Side, job: &Arc<Job>) {
        let now = self.now_us();
        if let Ok(mut w) = self.window(side).lock() {
            w.start(job, now);
        }
    }

    /// A statement ended on `side`; a concurrency error takes its context now, while the
    /// window still holds what ran beside it.
    pub(crate) fn ended(
        &self,
        side: Side,
        job: &Job,
        txn: &mut concurrency::Transaction,
        error: Option<&answer::ServerErr>,
    ) {
        let now = self.now_us();
        let code = error.map(|e| e.code);
        let Ok(mut w) = self.window(side).lock() else {
            return;
        };
        w.end(job.session, now, code);
        let conflict = error
            .filter(|e| concurrency::code(e.code).is_some())
            .and_then(|e| {
                concurrency::context(&self.clock, &w, txn, role(side), e.code, &e.message, now)
            });
        drop(w);
        txn.end(code);
        if let (Some(c), Ok(mut slot)) = (conflict, job.conflicts.lock()) {
            slot.push(c);
        }
    }

    /// The session is gone from `side` (quit, reset, change of user).
    pub(crate) fn forget(&self, side: Side, session: u64) {
        if let Ok(mut w) = self.window(side).lock() {
            w.forget(session);
        }
    }

    pub(crate) fn due(&self, ts_us: i64) -> Option<Instant> {
        match self.speed {
            Speed::Max => None,
            Speed::Factor(f) => {
                let offset = (ts_us.saturating_sub(self.first_ts)).max(0) as f64 / f;
                Some(self.start + Duration::from_micros(offset as u64))
            }
        }
    }
}

/// The outcome of a statement from its answers.
pub(crate) fn outcome(ctx: &Ctx, job: &Job, mut t: Answer, mut base: Option<Answer>) -> Outcome {
    // The caller only passes jobs that hold a statement.
    let (fingerprint, class, after_skipped_write, unlocked) = match job.stmt.as_ref() {
        Some(st) => (
            st.fingerprint.clone(),
            st.class.clone(),
            st.after_skipped_write,
            st.unlocked,
        ),
        None => (
            Arc::from(""),
            Arc::new(classify::classify("")),
            false,
            false,
        ),
    };
    // What cutover's own session set-up causes is not the target's behaviour.
    if ctx.status_mask != 0 {
        for a in std::iter::once(&mut t).chain(base.as_mut()) {
            if let Some(f) = a.status_flags.as_mut() {
                *f &= !ctx.status_mask;
            }
        }
    }
    let r = &job.rec;
    let kinds: Vec<Kind> = match (&base, &r.response) {
        (Some(b), _) => compare::compare(b, &t, class.ordered),
        (None, Some(captured)) => compare::compare_captured(captured, &t, ctx.status_mask),
        (None, None) => Vec::new(),
    };
    let baseline_us = base.as_ref().map(|b| b.latency.as_micros() as u64);
    let target_us = t.latency.as_micros() as u64;
    let sample = (!kinds.is_empty()).then(|| {
        let mut t = t;
        t.render_columns();
        let base = base.map(|mut b| {
            b.render_columns();
            b
        });
        Sample {
            session: r.session,
            sql: job.sql().to_string(),
            kinds: kinds.clone(),
            after_skipped_write,
            captured: if base.is_none() {
                r.response.clone()
            } else {
                None
            },
            baseline: base,
            target: t,
        }
    });
    Outcome::Ran(Box::new(Ran {
        fingerprint,
        nondeterministic: class.nondeterministic.clone(),
        after_skipped_write,
        unlocked,
        kinds,
        baseline_us,
        target_us,
        sample,
    }))
}
