//! `cutover replay`: a workload against a target (and a baseline), every answer compared.
//!
//! Without `--read-only` the replay writes to the target and the baseline: it names both
//! servers and asks before connecting (`--yes` for scripts; without a terminal and without
//! `--yes` it refuses, exit 2), as `diff --apply` does. With it, only statements that
//! cannot change data are sent, on `READ ONLY` sessions.
//!
//! Exit codes: 0 every statement compared and the same; 1 differences, or statements not
//! compared (unless `--allow-skipped`; the writes `--read-only` leaves out never count);
//! 2 nothing could be compared or the replay could not run; 130 interrupted.

use anyhow::{anyhow, Context, Result};
use cutover_core::{Db, Role, SessionOptions};
use cutover_replay::{ReplayOptions, Speed};
use tokio_util::sync::CancellationToken;

use crate::cli::{Format, ReplayArgs};
use crate::diff_cmd::spawn_ctrl_c;

pub async fn run(args: ReplayArgs) -> Result<u8> {
    // Everything the user typed is checked before any connection is made.
    let speed = Speed::parse(&args.speed).map_err(|e| anyhow!("--speed: {e}"))?;
    let lanes = match args.sessions.as_str() {
        "preserve" => None,
        n => match n.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(anyhow!(
                    "--sessions: {n:?} is neither `preserve` nor a number of connections above 0"
                ))
            }
        },
    };
    let query_timeout = match &args.query_timeout {
        Some(s) => Some(
            cutover_core::duration::parse_duration(s)
                .map_err(|e| anyhow!("--query-timeout: {e}"))?,
        ),
        None => None,
    };
    if let Some(n) = args.max_connections {
        if n < 2 {
            return Err(anyhow!(
                "--max-connections: {n} is too few: the replay needs a lane and a control connection per server (2 or more)"
            ));
        }
    }
    let reader = cutover_workload::Reader::open(&args.workload)?;
    if reader.header.redacted {
        return Err(anyhow!(
            "{}: recorded with --redact-values: its statements hold no values and cannot be \
             replayed (`cutover workload stats` and `head` read it)",
            args.workload.display()
        ));
    }
    let extent = check_workload(&args.workload)?;
    let target_ep = crate::endpoints::resolve(
        Role::Target,
        Some(&args.target),
        None,
        args.target_password_file.clone(),
    )?;
    let baseline_ep = match &args.baseline {
        Some(b) => Some(crate::endpoints::resolve(
            Role::Baseline,
            Some(b),
            None,
            args.baseline_password_file.clone(),
        )?),
        None => None,
    };
    if let Some(dir) = &args.out {
        crate::out::writable_dir(dir, "--out")?;
    }
    if !args.read_only && !confirm_writes(&args, &target_ep, baseline_ep.as_ref())? {
        errln!("nothing replayed");
        return Ok(2);
    }

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let session = SessionOptions {
        read_only: args.read_only,
        query_timeout,
        max_connections: 1,
    };
    let interrupted = || {
        errln!("cutover: interrupted while connecting; nothing was replayed");
        Ok(130)
    };
    let target = match Db::connect(&target_ep, Role::Target, session.clone(), cancel.clone()).await
    {
        Ok(db) => db,
        Err(_) if cancel.is_cancelled() => return interrupted(),
        Err(e) => return Err(e.into()),
    };
    let baseline = match &baseline_ep {
        Some(b) => match Db::connect(b, Role::Baseline, session, cancel.clone()).await {
            Ok(db) => Some(db),
            Err(_) if cancel.is_cancelled() => return interrupted(),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let shown = crate::progress::replay::ReplayProgress::start(extent, speed);
    let opts = ReplayOptions {
        read_only: args.read_only,
        speed,
        lanes,
        max_connections: args.max_connections,
        allow_skipped: args.allow_skipped,
        rules: cutover_replay::classify::Rules {
            assume_functions_read_only: args.assume_functions_read_only,
        },
        progress: Some(shown.handle()),
    };
    let report = cutover_replay::run(reader, target, baseline, opts, cancel)
        .await
        .context("replay")?;
    shown.finish();

    let code = report.exit_code();
    if let Some(dir) = &args.out {
        let doc = cutover_replay::report_doc::document(
            &report,
            &target_ep.redacted(),
            baseline_ep.as_ref().map(|b| b.redacted()).as_deref(),
        );
        // Answers hold row values: the files are the owner's only.
        crate::out::write_reports_or_warn(
            dir,
            &crate::out::report_files("replay", code, crate::out::body(&report), Some(doc), true),
        );
    }
    // A closed stdout (a pager quit early) is not an error of the replay.
    let _ = match args.format {
        Format::Json => crate::out::json(code, crate::out::body(&report)),
        Format::Human => crate::out::text(
            &(crate::out::provenance(code).text() + &cutover_replay::human(&report)),
        ),
    };
    Ok(code)
}

/// Without `--read-only` the replay writes: it names the servers it will write to and asks,
/// before connecting to either. `--yes` answers for scripts; without a terminal and without
/// it, the replay is refused. `Ok(false)`: the user said no.
fn confirm_writes(
    args: &ReplayArgs,
    target: &cutover_core::Endpoint,
    baseline: Option<&cutover_core::Endpoint>,
) -> Result<bool> {
    use std::io::IsTerminal;
    let mut servers = vec![format!("the target {}", target.address())];
    if let Some(b) = baseline {
        servers.push(format!("the baseline {}", b.address()));
    }
    let servers = servers.join(" and ");
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(anyhow!(
            "without --read-only the replay writes to {servers}, and it asks first, but standard input is not a terminal: add --yes to write without asking, or --read-only to send only reads"
        ));
    }
    errln!(
        "cutover: without --read-only the replay runs every statement, writes included, on {servers}: they must be disposable copies"
    );
    if args.yes {
        return Ok(true);
    }
    err!("write to {servers}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Reads the whole workload once before anything is sent, and refuses a damaged one (a file
/// cut short by a full disk or a copy, a capture that crashed). The alternative, replaying
/// up to the damage and reporting the rest as not compared, leaves a replay half-run: the
/// target holds part of the workload's writes, and the unread rest cannot even be counted.
/// The cost is one more decompression pass, small beside the replay's round trips. (A file
/// that changes while it is replayed still ends the replay with exit 2.) The same pass
/// counts the statements, the total of the replay's progress.
fn check_workload(path: &std::path::Path) -> Result<cutover_workload::Extent> {
    cutover_workload::Reader::open(path)?
        .extent()
        .map_err(|e| anyhow!("{e}: the workload is damaged; nothing was sent"))
}
