//! `cutover drill run|ack|status|report`: the runbook is checked before anything runs; the
//! drill's own shell steps are the only thing that may change anything (the runbook's author
//! decides what they do); `check` steps run this binary with a cutover command.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cutover_drill::announce::Backoff;
use cutover_drill::control::{self, AckKind};
use cutover_drill::executor::{self, Options};
use cutover_drill::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::cli::{DrillAckArgs, DrillAction, DrillArgs, DrillRunArgs, DrillStatusArgs, Format};
use crate::diff_cmd::spawn_ctrl_c;

pub async fn run(args: DrillArgs) -> Result<u8> {
    match args.action {
        DrillAction::Run(a) => run_drill(a).await,
        DrillAction::Ack(a) => ack(a),
        DrillAction::Status(a) => status(a),
        DrillAction::Report(a) => crate::drill_report::run(a),
    }
}

async fn run_drill(a: DrillRunArgs) -> Result<u8> {
    let mut rb = cutover_drill::runbook::load(&a.runbook).map_err(|e| anyhow!("{e}"))?;
    if a.format == Format::Json {
        // Standard output is the JSON document's: announcements go to stderr.
        for t in rb.announce.iter_mut() {
            if *t == cutover_drill::runbook::Announce::Stdout {
                *t = cutover_drill::runbook::Announce::Stderr;
            }
        }
    }
    rb.check_commands(&parse_check)
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(from) = &a.from {
        if rb.step(from).is_none() {
            return Err(anyhow!("--from: the runbook has no step `{from}`"));
        }
    }
    let cutover_exe =
        std::env::current_exe().context("finding the cutover binary for check steps")?;
    let metrics = match &a.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics-addr {addr}"))?;
            let m = Metrics::new();
            errln!(
                "metrics: http://{}/metrics",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| addr.clone())
            );
            tokio::spawn(cutover_drill::metrics::serve(listener, m.clone()));
            Some(m)
        }
        None => None,
    };
    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let opts = Options {
        journal: a.journal.clone(),
        dry_run: a.dry_run,
        resume: a.resume,
        kill_orphans: a.kill_orphans,
        from: a.from.clone(),
        cutover_exe,
        cancel,
        poll: Duration::from_millis(200),
        backoff: Backoff::default(),
        kill_grace: Duration::from_secs(5),
        metrics,
        on_warning: Arc::new(|m: &str| errln!("cutover: warning: {m}")),
    };
    let outcome = match executor::run(&rb, opts).await {
        Ok(outcome) => outcome,
        Err(e) => return Err(anyhow!(e)),
    };
    let code = outcome.exit_code();
    if a.format == Format::Json {
        let (name, failed, rollback_failures) = match outcome {
            executor::Outcome::Completed { failed } => ("completed", failed, 0),
            executor::Outcome::Failed => ("failed", 0, 0),
            executor::Outcome::RolledBack { rollback_failures } => {
                ("rolled_back", 0, rollback_failures)
            }
            executor::Outcome::Interrupted => ("interrupted", 0, 0),
        };
        let _ = crate::out::json(
            code,
            serde_json::json!({
                "runbook": a.runbook,
                "journal": a.journal,
                "dry_run": a.dry_run,
                "outcome": name,
                "failed_steps": failed,
                "rollback_failures": rollback_failures,
            }),
        );
    }
    Ok(code)
}

/// Parses a runbook's `check` line as this binary would its own arguments: an unknown
/// command, flag or value is found before the drill starts.
pub fn parse_check(
    words: &[String],
) -> std::result::Result<(), cutover_drill::runbook::RefusedCheck> {
    use clap::Parser as _;
    let argv = std::iter::once("cutover").chain(words.iter().map(String::as_str));
    match crate::cli::Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("not a cutover command")
                .trim_start_matches("error: ")
                .to_string();
            Err(cutover_drill::runbook::RefusedCheck(format!(
                "`{}`: {first}",
                words.join(" ")
            )))
        }
    }
}

fn ack(a: DrillAckArgs) -> Result<u8> {
    let kind = if a.approve {
        AckKind::Approve
    } else if a.reject {
        AckKind::Reject
    } else {
        AckKind::Done
    };
    let said = control::ack(&a.journal, &a.step, &a.by, kind).map_err(|e| anyhow!(e))?;
    match a.format {
        Format::Human => outln!("{said}"),
        Format::Json => {
            let _ = crate::out::json(
                0,
                serde_json::json!({
                    "journal": a.journal,
                    "step": a.step,
                    "by": a.by,
                    "ack": match kind {
                        AckKind::Approve => "approve",
                        AckKind::Reject => "reject",
                        AckKind::Done => "done",
                    },
                    "message": said.to_string(),
                }),
            );
        }
    }
    Ok(0)
}

fn status(a: DrillStatusArgs) -> Result<u8> {
    let st = control::status(&a.journal).map_err(|e| anyhow!(e))?;
    match a.format {
        Format::Human => out!("{}", st.human()),
        Format::Json => crate::out::json(0, crate::out::body(&st))
            .map_err(|e| anyhow!("writing the status: {e}"))?,
    }
    Ok(0)
}
