//! The replay report as human text: the summary the binary prints.

use super::{ms_text, ClassLatency, Latency, RankedClass, Report, RANKED};
use crate::answer::{captured_brief, Answer};
use crate::excerpt::one_line;

/// The human summary.
pub fn human(r: &Report) -> String {
    let mut out = format!(
        "replay: {} statements in {} sessions, compared with {}: {} compared, {} nondeterministic, {} not sent (--read-only: they can change data), {} not compared\n",
        r.statements,
        r.sessions,
        r.compared_with,
        r.compared,
        r.nondeterministic,
        r.skipped,
        r.not_compared
    );
    if r.unlocked > 0 {
        out.push_str(&format!(
            "{} locking reads compared without their lock (--read-only)\n",
            r.unlocked
        ));
    }
    out.push_str(&format!(
        "statements with differences: {}   (nondeterministic, reported apart: {})\n",
        r.statements_with_diffs, r.noise
    ));
    out.push_str(&format!(
        "speed {}: {:.1} s for a {:.1} s workload; scheduling lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        r.speed, r.elapsed_s, r.workload_s, r.lag.p50_ms, r.lag.p99_ms, r.lag.max_ms
    ));
    out.push_str(&latency_line(&r.latency_ms));
    if !r.ranking.slowdowns.is_empty() {
        out.push_str(&format!(
            "\nslowdowns (at least {} executions, target p99 >= {} ms and >= {}x the baseline):\n",
            r.ranking.min_executions, r.ranking.slowdown_min_p99_ms, r.ranking.slowdown_ratio
        ));
        for c in r.ranking.slowdowns.iter().take(RANKED) {
            out.push_str(&format!(
                "  {}\n    {}\n",
                one_line(&c.fingerprint, 150),
                c.explanation.as_deref().unwrap_or_default()
            ));
        }
        if r.ranking.slowdowns.len() > RANKED {
            out.push_str(&format!(
                "  … and {} more (--format json, --out)\n",
                r.ranking.slowdowns.len() - RANKED
            ));
        }
    }
    if !r.ranking.by_total_time.is_empty() {
        out.push_str("\nclasses by total time on the target:\n");
        out.push_str(&ranked_table(&r.ranking.by_total_time));
    }
    if r.ranking.by_count.len() > 1 {
        out.push_str("\nclasses by executions:\n");
        out.push_str(&ranked_table(&r.ranking.by_count));
    }
    if !r.client_compatibility.is_empty() {
        out.push_str("\nclient compatibility (what drivers and pools would notice):\n");
        for k in &r.client_compatibility {
            out.push_str(&format!(
                "  {:<14} {} statements in {} classes",
                k.kind, k.statements, k.classes
            ));
            if let Some(e) = k.examples.first() {
                out.push_str(&format!(": {}", one_line(&e.detail, 100)));
            }
            out.push('\n');
        }
    }
    for c in r.classes.iter().filter(|c| c.diffs > 0) {
        let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        out.push_str(&format!(
            "\n  {}\n    {} of {} executions answered differently ({})\n",
            c.fingerprint,
            c.diffs,
            c.count,
            kinds.join(", ")
        ));
        if let Some(s) = c.samples.first() {
            out.push_str(&format!(
                "    e.g. session {}: {}\n",
                s.session,
                one_line(&s.sql, 160)
            ));
            let base = s
                .baseline
                .as_ref()
                .map(Answer::brief)
                .or_else(|| s.captured.as_ref().map(captured_brief))
                .unwrap_or_default();
            out.push_str(&format!(
                "      baseline: {}\n      target:   {}\n",
                one_line(&base, 160),
                one_line(&s.target.brief(), 160)
            ));
            if s.after_skipped_write {
                out.push_str("      (after a skipped write)\n");
            }
        }
    }
    out.push_str(&crate::concurrency::human(&r.concurrency));
    for c in r.classes.iter().filter(|c| c.noise > 0) {
        out.push_str(&format!(
            "\n  nondeterministic ({}): {} of {} differ: {}\n",
            c.nondeterministic.as_deref().unwrap_or("?"),
            c.noise,
            c.count,
            c.fingerprint
        ));
    }
    for x in r.not_compared_by_reason.iter().filter(|x| x.counts) {
        out.push_str(&format!(
            "\nnot compared ({}): {} statements: {}\n",
            x.reason.name(),
            x.statements,
            x.reason.meaning()
        ));
        for e in &x.examples {
            out.push_str(&format!(
                "    e.g. session {}: {}\n      {}\n",
                e.session,
                one_line(&e.sql, 160),
                one_line(&e.detail, 200)
            ));
        }
    }
    for e in &r.session_errors {
        out.push_str(&format!("warning: {e}\n"));
    }
    if r.statements > 0 && r.replayed == 0 && !r.interrupted {
        out.push_str("nothing could be compared\n");
    } else if r.not_compared > 0 {
        out.push_str(&format!(
            "{} statements not compared: {}\n",
            r.not_compared,
            if r.allow_skipped {
                "accepted (--allow-skipped)"
            } else {
                "the replay is incomplete (exit 1; --allow-skipped accepts it)"
            }
        ));
    }
    if r.interrupted {
        out.push_str("interrupted: the report covers what was replayed\n");
    }
    out
}

/// "latency  baseline p50 0.21 ms, p99 1.30 ms; target p50 0.35 ms, p99 2.10 ms (p99 1.6x)".
fn latency_line(l: &ClassLatency) -> String {
    let target = format!(
        "target p50 {}, p99 {}",
        ms_text(l.target.p50),
        ms_text(l.target.p99)
    );
    match &l.baseline {
        Some(b) => format!(
            "latency: baseline p50 {}, p99 {}; {target}{}\n",
            ms_text(b.p50),
            ms_text(b.p99),
            l.ratio_p99
                .map(|x| format!(" (p99 {x:.2}x)"))
                .unwrap_or_default()
        ),
        None => format!("latency: {target}\n"),
    }
}

/// Ranked classes as aligned columns: total, executions, p50/p99 on both sides, the class.
fn ranked_table(classes: &[RankedClass]) -> String {
    let mut out = format!(
        "  {:>10} {:>8} {:>19} {:>19}  class\n",
        "total ms", "count", "baseline p50/p99", "target p50/p99"
    );
    let pair = |l: &Latency| format!("{:.2}/{:.2}", l.p50, l.p99);
    for c in classes {
        let l = &c.latency_ms;
        out.push_str(&format!(
            "  {:>10.1} {:>8} {:>19} {:>19}  {}\n",
            l.target_total,
            c.count,
            l.baseline.as_ref().map(pair).unwrap_or_else(|| "-".into()),
            pair(&l.target),
            one_line(&c.fingerprint, 100)
        ));
    }
    out
}
