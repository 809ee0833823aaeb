//! Prometheus metrics of a running drill (current step, elapsed, expected, overrun), served
//! in the text exposition format on `GET /metrics` of a small listener of its own: a drill is
//! watched from the same dashboards as the systems it moves.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Default)]
struct State {
    runbook: String,
    run_id: String,
    steps_total: usize,
    done: usize,
    failed: usize,
    overruns: usize,
    started: Option<Instant>,
    /// (1-based index, id, started, expected seconds, overran)
    current: Option<(usize, String, Instant, f64, bool)>,
}

/// What the executor updates and the listener reads.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s)
        }
    }

    pub fn run_started(&self, runbook: &str, run_id: &str, steps: usize, done: usize) {
        self.with(|s| {
            s.runbook = runbook.into();
            s.run_id = run_id.into();
            s.steps_total = steps;
            s.done = done;
            s.started = Some(Instant::now());
        })
    }

    pub fn step_started(&self, index: usize, id: &str, expected_s: f64) {
        self.with(|s| s.current = Some((index + 1, id.into(), Instant::now(), expected_s, false)))
    }

    pub fn step_overran(&self) {
        self.with(|s| {
            if let Some(c) = s.current.as_mut() {
                c.4 = true;
            }
            s.overruns += 1;
        })
    }

    pub fn step_finished(&self, ok: bool) {
        self.with(|s| {
            s.current = None;
            if ok {
                s.done += 1
            } else {
                s.failed += 1
            }
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let Ok(s) = self.state.lock() else {
            return String::new();
        };
        let base = format!(
            "runbook=\"{}\",run_id=\"{}\"",
            label(&s.runbook),
            label(&s.run_id)
        );
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, labels: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {v}"
            );
        };
        let elapsed = s.started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        gauge(
            "cutover_drill_elapsed_seconds",
            "Seconds since this process started the drill.",
            &base,
            elapsed,
        );
        gauge(
            "cutover_drill_steps",
            "Steps in the runbook.",
            &base,
            s.steps_total as f64,
        );
        gauge(
            "cutover_drill_steps_done",
            "Steps completed (or skipped).",
            &base,
            s.done as f64,
        );
        gauge(
            "cutover_drill_steps_failed",
            "Steps that failed.",
            &base,
            s.failed as f64,
        );
        gauge(
            "cutover_drill_overruns",
            "Steps that ran past their estimate.",
            &base,
            s.overruns as f64,
        );
        let (idx, step, el, exp, over) = match &s.current {
            Some((i, id, t, e, o)) => (
                *i,
                id.as_str(),
                t.elapsed().as_secs_f64(),
                *e,
                *o || t.elapsed().as_secs_f64() > *e,
            ),
            None => (0, "", 0.0, 0.0, false),
        };
        let with_step = format!("{base},step=\"{}\"", label(step));
        gauge(
            "cutover_drill_current_step",
            "1-based index of the step running now; 0 when none.",
            &with_step,
            idx as f64,
        );
        gauge(
            "cutover_drill_step_elapsed_seconds",
            "Seconds the current step has run.",
            &with_step,
            el,
        );
        gauge(
            "cutover_drill_step_expected_seconds",
            "The current step's estimate.",
            &with_step,
            exp,
        );
        gauge(
            "cutover_drill_step_overrun",
            "1 when the current step runs past its estimate.",
            &with_step,
            if over { 1.0 } else { 0.0 },
        );
        out
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` (any path, in fact) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            // The request itself does not matter; read what has arrived, then answer.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), sock.read(&mut buf)).await;
            let body = m.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::new();
        m.run_started("orders \"x\"", "r1", 3, 0);
        m.step_started(1, "freeze", 300.0);
        let t = m.render();
        assert!(t.contains("cutover_drill_current_step{runbook=\"orders \\\"x\\\"\",run_id=\"r1\",step=\"freeze\"} 2"), "{t}");
        assert!(t.contains("cutover_drill_step_overrun{"), "{t}");
        m.step_overran();
        assert!(m
            .render()
            .contains("cutover_drill_overruns{runbook=\"orders \\\"x\\\"\",run_id=\"r1\"} 1"));
        m.step_finished(true);
        assert!(m
            .render()
            .contains("cutover_drill_steps_done{runbook=\"orders \\\"x\\\"\",run_id=\"r1\"} 1"));
    }
}
