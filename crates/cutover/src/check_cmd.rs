//! `cutover check`: migration readiness. Reads only; every connection is a read-only session.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use cutover_check::{
    CheckError, CheckOptions, Event, Layout, Report, RuleOptions, Selection, Severity, TargetFlavor,
};
use cutover_core::config::{parse_accepts, Accept, Pattern};
use cutover_core::duration::parse_duration;
use cutover_core::{Db, DbError, Role, SessionOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::CheckArgs;
use crate::diff_cmd::{load_config, spawn_ctrl_c};

pub async fn run(config: Option<&Path>, args: CheckArgs) -> Result<u8> {
    // Everything the user typed is checked before any connection is made.
    let cfg = load_config(config)?;
    let target_flavor =
        TargetFlavor::parse(&args.target_flavor).map_err(|e| anyhow!("--target-flavor: {e}"))?;
    let horizon =
        cutover_check::time::parse_span(&args.horizon).map_err(|e| anyhow!("--horizon: {e}"))?;
    let sample = match &args.sample {
        Some(s) => Some(cutover_check::time::parse_span(s).map_err(|e| anyhow!("--sample: {e}"))?),
        None => None,
    };
    let snowflake = match &args.snowflake {
        Some(s) => Some(Layout::parse(s).map_err(|e| anyhow!("--snowflake: {e}"))?),
        None => None,
    };
    let worker_table = match &args.worker_table {
        Some(s) => {
            let p = Pattern::parse(s).map_err(|e| anyhow!("--worker-table: {e}"))?;
            if p.schema.contains('*') || p.table.contains('*') {
                return Err(anyhow!(
                    "--worker-table: `{s}` must name one table, db.table"
                ));
            }
            Some((p.schema, p.table))
        }
        None => None,
    };
    let restarts = args.tidb_restarts_per_day;
    if !(restarts.is_finite() && (0.0..=100_000.0).contains(&restarts)) {
        return Err(anyhow!(
            "--tidb-restarts-per-day: `{restarts}` is not a number of restarts from 0 to 100000"
        ));
    }
    if let Some(d) = &args.out {
        crate::out::writable_dir(d, "--out")?;
    }
    let mut accept = parse_accepts(&cfg.accept.check, "[accept] check").map_err(|e| anyhow!(e))?;
    accept.extend(parse_accepts(&args.accept, "--accept").map_err(|e| anyhow!(e))?);
    let (tables, mut skip) = crate::endpoints::table_filter(&args.tables, &cfg)?;
    skip.extend(crate::endpoints::patterns(&args.exclude, "--exclude")?);
    let databases: Vec<String> = args
        .databases
        .iter()
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    let query_timeout = match &args.endpoints.query_timeout {
        Some(s) => Some(parse_duration(s).map_err(|e| anyhow!("--query-timeout: {e}"))?),
        None => cfg.diff.query_timeout,
    };
    let opts = CheckOptions {
        selection: Selection {
            databases,
            tables,
            skip,
        },
        target_flavor,
        sample,
        history: args.history.clone(),
        rules: RuleOptions {
            horizon_secs: horizon.as_secs_f64(),
            tidb_restarts_per_day: restarts,
            snowflake,
            worker_table,
            ..RuleOptions::default()
        },
    };

    let workload_opts = cutover_check::WorkloadOptions {
        hot_window_us: parse_duration(&args.hot_window)
            .map_err(|e| anyhow!("--hot-window: {e}"))?
            .as_micros()
            .clamp(1, i64::MAX as u128) as i64,
    };
    let limits = cutover_check::txn_limits::TxnLimits {
        total_bytes: parse_size(&args.tidb_txn_limit)
            .map_err(|e| anyhow!("--tidb-txn-limit: {e}"))?,
        entry_bytes: parse_size(&args.tidb_entry_limit)
            .map_err(|e| anyhow!("--tidb-entry-limit: {e}"))?,
        ttl_secs: parse_duration(&args.tidb_txn_ttl)
            .map_err(|e| anyhow!("--tidb-txn-ttl: {e}"))?
            .as_secs_f64(),
    };
    let scan_from = match (&args.transactions, &args.binlog_from) {
        (Some(d), _) => Some(cutover_check::txn_limits::ScanFrom::Since(
            parse_duration(d).map_err(|e| anyhow!("--transactions: {e}"))?,
        )),
        (None, Some(p)) => Some(cutover_check::txn_limits::ScanFrom::Position(
            cutover_verify::position::BinlogPos::parse(p)
                .map_err(|e| anyhow!("--binlog-from: {e}"))?,
        )),
        (None, None) => None,
    };
    if let Some(w) = &args.workload {
        if !w.is_file() {
            return Err(anyhow!(
                "--workload: {} is not a readable file",
                w.display()
            ));
        }
    }

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let session = SessionOptions {
        read_only: true,
        query_timeout,
        max_connections: 4,
    };
    // The workload's findings, added to a report; false when interrupted.
    let with_workload = |report: &mut Report, profile: &cutover_check::Profile| {
        add_workload(
            report,
            args.workload.as_deref(),
            profile,
            &workload_opts,
            &cancel,
        )
    };
    // A workload alone needs no server: the target is the flavor's current release unless
    // a target is named.
    let has_source = args.endpoints.source.is_some() || cfg.source.is_some();
    if scan_from.is_some() && !has_source {
        return Err(anyhow!(
            "--transactions and --binlog-from read the source's binlog: give --source"
        ));
    }
    if args.workload.is_some() && !has_source {
        let profile = match (&args.endpoints.target, &cfg.target) {
            (None, None) => cutover_check::Profile::assumed(target_flavor),
            _ => {
                let e = crate::endpoints::resolve(
                    Role::Target,
                    args.endpoints.target.as_deref(),
                    cfg.target.as_ref(),
                    args.endpoints.target_password_file.clone(),
                )?;
                let t = Db::connect(&e, Role::Target, session.clone(), cancel.clone())
                    .await
                    .map_err(not_mysql_hint)?;
                target_profile(&t).await?
            }
        };
        let mut report = Report {
            summary: cutover_check::Summary {
                target_server: profile.describe(),
                target_flavor: profile.flavor.name().to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        if !with_workload(&mut report, &profile)? {
            return Ok(130);
        }
        return output(&args, report, &accept);
    }
    let src = crate::endpoints::resolve(
        Role::Source,
        args.endpoints.source.as_deref(),
        cfg.source.as_ref(),
        args.endpoints.source_password_file.clone(),
    )?;
    // The target is optional: only a flag or the config's [target] names one.
    let tgt = if args.endpoints.target.is_some() || cfg.target.is_some() {
        Some(crate::endpoints::resolve(
            Role::Target,
            args.endpoints.target.as_deref(),
            cfg.target.as_ref(),
            args.endpoints.target_password_file.clone(),
        )?)
    } else {
        None
    };
    let source = Db::connect(&src, Role::Source, session.clone(), cancel.clone()).await;
    let target = match &tgt {
        Some(e) if source.is_ok() => {
            Some(Db::connect(e, Role::Target, session, cancel.clone()).await)
        }
        _ => None,
    };
    if cancel.is_cancelled() {
        errln!("cutover: interrupted while connecting; nothing was checked");
        return Ok(130);
    }
    let source = source.map_err(not_mysql_hint)?;
    let target = target.transpose().map_err(not_mysql_hint)?;
    let countdown = crate::progress::check::Countdown::new();
    let on_event = |e: Event| match e {
        Event::Sampling(d) => {
            errln!(
                "sampling: first reading taken; second reading in {}",
                humantime_secs(d.as_secs_f64())
            );
            countdown.sampling(d);
        }
    };
    let checked = cutover_check::check(&source, target.as_ref(), &opts, &on_event).await;
    countdown.finish();
    let mut report = match checked {
        Ok(r) => r,
        Err(CheckError::Db(DbError::Interrupted)) => {
            errln!("cutover: interrupted; nothing was checked to the end");
            return Ok(130);
        }
        Err(e) => return Err(e).context("checking"),
    };
    if args.workload.is_some() {
        let profile = match &target {
            Some(t) => target_profile(t).await?,
            None => cutover_check::Profile::assumed(target_flavor),
        };
        if !with_workload(&mut report, &profile)? {
            return Ok(130);
        }
    }
    if let Some(from) = &scan_from {
        let scan = cutover_check::txn_limits::scan(
            &source,
            from,
            &limits,
            cutover_verify::default_server_id(),
        )
        .await;
        let (findings, summary) = match scan {
            Ok(r) => r,
            Err(cutover_check::txn_limits::TxnScanError::Db(DbError::Interrupted)) => {
                errln!("cutover: interrupted; the binlog was not read to the end");
                return Ok(130);
            }
            Err(e) => return Err(anyhow!("--transactions: {e}")),
        };
        report.findings.extend(findings);
        report.summary.transactions = Some(summary);
        report.finish();
    }
    output(&args, report, &accept)
}

/// A size: bytes, or with a unit (`KiB`, `MiB`, `GiB`; `K`, `M`, `G` mean the same).
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| anyhow!("`{s}` is not a size (e.g. 100MiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(anyhow!("`{s}` is not a size (units: B, KiB, MiB, GiB)")),
    };
    let v = n * mult as f64;
    if !(v.is_finite() && v >= 1.0 && v < u64::MAX as f64) {
        return Err(anyhow!("`{s}` is not a size (e.g. 100MiB)"));
    }
    Ok(v as u64)
}

/// The target's profile (flavor, version, settings), from its answers.
async fn target_profile(target: &Db) -> Result<cutover_check::Profile> {
    let answers = cutover_check::gather::server_answers(target)
        .await
        .context("reading the target's version")?;
    Ok(cutover_check::Profile::from_answers(&answers))
}

/// The workload's findings and summary, added to the report.
fn add_workload(
    report: &mut Report,
    workload: Option<&Path>,
    profile: &cutover_check::Profile,
    opts: &cutover_check::WorkloadOptions,
    cancel: &CancellationToken,
) -> Result<bool> {
    let Some(path) = workload else {
        return Ok(true);
    };
    let started = std::time::Instant::now();
    let (findings, summary) =
        match cutover_check::check_workload(path, profile, opts, &|| cancel.is_cancelled()) {
            Ok(r) => r,
            Err(cutover_check::workload::WorkloadCheckError::Interrupted) => {
                errln!("cutover: interrupted; the workload was not read to the end");
                return Ok(false);
            }
            Err(e) => return Err(anyhow!("--workload: {e}")),
        };
    report.findings.extend(findings);
    report.summary.workload = Some(summary);
    report.summary.elapsed_ms += started.elapsed().as_millis() as u64;
    report.finish();
    Ok(true)
}

fn output(args: &CheckArgs, mut report: Report, accept: &[Accept]) -> Result<u8> {
    report.accept(accept);
    let code = report.exit_code();
    crate::out::print_and_write(
        "check",
        matches!(args.format, crate::cli::Format::Json),
        args.out.as_deref(),
        code,
        &report,
        || human(&report),
        || cutover_check::report_doc::document(&report),
    )?;
    Ok(code)
}

/// A connection refused in the protocol itself most likely reached something that is not a
/// MySQL server; say so.
fn not_mysql_hint(e: DbError) -> anyhow::Error {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if [
        "packet",
        "protocol",
        "handshake",
        "unexpected",
        "invalid",
        "eof",
        "out of sync",
    ]
    .iter()
    .any(|w| lower.contains(w))
        && !lower.contains("error 1")
    {
        anyhow!("{text} (is it a MySQL-compatible server?)")
    } else {
        anyhow!(text)
    }
}

fn humantime_secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0}s")
    } else {
        cutover_check::forecast::human_duration(s)
    }
}

/// The human report: a header, then the findings grouped by severity, then the verdict.
pub fn human(r: &Report) -> String {
    use std::fmt::Write as _;
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(out, "cutover check");
    if !s.source.is_empty() {
        let _ = writeln!(out, "  source  {} ({})", s.source, s.source_server);
    }
    match &s.target {
        Some(t) => {
            let _ = writeln!(out, "  target  {t} ({})", s.target_server);
        }
        None => {
            let _ = writeln!(out, "  target  {}", s.target_server);
        }
    }
    if !s.source.is_empty() {
        let _ = writeln!(
            out,
            "  checked {} databases, {} tables, {} ID spaces in {:.1} s (horizon {} days)",
            s.databases,
            s.tables,
            s.id_spaces,
            s.elapsed_ms as f64 / 1000.0,
            s.horizon_days
        );
    }
    if let Some(w) = &s.workload {
        let _ = writeln!(
            out,
            "  workload {} ({}): {} records, {} statements, {} sessions, {} transactions over {:.1} s{}",
            w.path,
            w.source,
            w.records,
            w.statements,
            w.sessions,
            w.transactions,
            w.span_seconds,
            if w.redacted {
                "; values redacted: hot rows not checked"
            } else {
                ""
            }
        );
        if w.unknown_executes > 0 {
            let _ = writeln!(
                out,
                "  {} executes of statements prepared before the recording began: not checked",
                w.unknown_executes
            );
        }
    }
    if let Some(t) = &s.transactions {
        let _ = writeln!(
            out,
            "  binlog  {} → {}: {} transactions with row changes, {} events, {:.1} MiB",
            t.from,
            t.to,
            t.transactions,
            t.events,
            t.bytes as f64 / 1048576.0
        );
    }
    // Findings are shown by group (rule and cause), errors first: one line for 400 tables
    // with the same collation change, so the rest stays on the first screen.
    for (sev, title) in [
        (Severity::Error, "ERRORS"),
        (Severity::Warning, "WARNINGS"),
        (Severity::Info, "INFO"),
    ] {
        let groups: Vec<_> = r.groups.iter().filter(|g| g.severity == sev).collect();
        if groups.is_empty() {
            continue;
        }
        let n: usize = groups.iter().map(|g| g.count).sum();
        let _ = writeln!(out, "\n{title} ({n})");
        for g in groups {
            human_group(&mut out, r, g);
        }
    }
    if !r.accepted_groups.is_empty() {
        let _ = writeln!(
            out,
            "\nACCEPTED ({}: expected by [accept] or --accept, not counted)",
            r.accepted.len()
        );
        for g in &r.accepted_groups {
            human_group(&mut out, r, g);
        }
    }
    let verdict = if s.errors > 0 {
        "NOT READY"
    } else if s.warnings > 0 {
        "ready, with warnings to decide on"
    } else {
        "ready"
    };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "\n{verdict}: {}, {}, {} info{}",
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        s.infos,
        if s.accepted > 0 {
            format!(", {} accepted", s.accepted)
        } else {
            String::new()
        }
    );
    out
}

/// One group: a finding of its own in full, or the rule, the count and the cause, the
/// first objects, one message as an example and the advice.
fn human_group(out: &mut String, r: &Report, g: &cutover_check::finding::Group) {
    use std::fmt::Write as _;
    let accepted = g
        .accepted_by
        .as_ref()
        .map(|a| format!("  (accepted: {a})"))
        .unwrap_or_default();
    if g.count == 1 {
        let f = r
            .findings
            .iter()
            .chain(r.accepted.iter().map(|a| &a.finding))
            .find(|f| f.rule == g.rule && f.severity == g.severity && f.group_cause() == g.cause);
        let obj = g.examples.first().map(String::as_str).unwrap_or("server");
        let _ = writeln!(out, "  [{}] {obj}{accepted}", g.rule);
        let _ = writeln!(out, "      {}", g.message);
        if let Some(e) = f.and_then(|f| f.evidence.as_ref()) {
            for x in &e.examples {
                let _ = writeln!(
                    out,
                    "      e.g. session {} at {}: {}",
                    x.session, x.time, x.sql
                );
            }
        }
    } else {
        let _ = writeln!(out, "  [{}] {}: {}{accepted}", g.rule, g.counted(), g.cause);
        let more = g.count - g.examples.len();
        let _ = writeln!(
            out,
            "      e.g. {}{}",
            g.examples.join(", "),
            if more > 0 {
                format!(" and {more} more (--format json or --out lists every one)")
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "      {}", g.message);
    }
    if !g.advice.is_empty() {
        let _ = writeln!(out, "      → {}", g.advice);
    }
}
