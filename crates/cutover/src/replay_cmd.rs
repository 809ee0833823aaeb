//! `cutover replay`: a workload against a target (and a baseline), every answer compared.
//!
//! Without `--read-only` the replay writes to the target and the baseline; it says so on
//! stderr before it starts (they must be disposable copies). With it, only statements that
//! cannot change data are sent, on `READ ONLY` sessions.
//!
//! Exit codes: 0 every statement compared and the same; 1 differences, or statements not
//! compared (unless `--allow-skipped`; the writes `--read-only` leaves out never count);
//! 2 nothing could be compared or the replay could not run; 130 interrupted.

use std::io::Write;

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
    check_workload(&args.workload)?;
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
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the output directory {}", dir.display()))?;
    }
    if !args.read_only {
        errln!(
            "cutover: replaying every statement, writes included, on the target{}: they must be disposable copies (--read-only sends only reads)",
            if baseline_ep.is_some() { " and the baseline" } else { "" }
        );
    }

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let session = SessionOptions {
        read_only: args.read_only,
        query_timeout: None,
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
    let shown = crate::progress::replay::ReplayProgress::start(&args.workload, speed);
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

    if let Some(dir) = &args.out {
        let doc = cutover_replay::report_doc::document(
            &report,
            &target_ep.redacted(),
            baseline_ep.as_ref().map(|b| b.redacted()).as_deref(),
        );
        let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        for (name, text) in [
            ("replay.json", json),
            ("replay.md", doc.markdown()),
            ("replay.html", doc.html()),
        ] {
            let path = dir.join(name);
            if std::fs::write(&path, text).is_err() {
                errln!("cutover: warning: cannot write {}", path.display());
            }
        }
    }
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        Format::Human => cutover_replay::human(&report),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    Ok(report.exit_code())
}

/// Reads the whole workload once before anything is sent, and refuses a damaged one (a file
/// cut short by a full disk or a copy, a capture that crashed). The alternative, replaying
/// up to the damage and reporting the rest as not compared, leaves a replay half-run: the
/// target holds part of the workload's writes, and the unread rest cannot even be counted.
/// The cost is one more decompression pass, small beside the replay's round trips. (A file
/// that changes while it is replayed still ends the replay with exit 2.)
fn check_workload(path: &std::path::Path) -> Result<()> {
    for record in cutover_workload::Reader::open(path)? {
        record.map_err(|e| anyhow!("{e}: the workload is damaged; nothing was sent"))?;
    }
    Ok(())
}
