//! `cutover verify`: follows the source's binlog and checks every changed row on the target.
//! Reads only: both sides are read-only sessions, and the binlog connection only reads.
//!
//! It runs until SIGINT/SIGTERM or `--for`, then prints the summary. Exit 1 when mismatches
//! were confirmed, 0 when none, 2 when it could not verify.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use cutover_core::config::{parse_duration, Routes};
use cutover_core::SessionOptions;
use cutover_verify::{table_filter_excluding, Mismatch, Start, Summary, VerifyOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::{Format, VerifyArgs};
use crate::diff_cmd::{connect_pair, load_config, spawn_ctrl_c};

pub async fn run(config: Option<&Path>, args: VerifyArgs) -> Result<u8> {
    // Everything the user typed is checked before any connection is made.
    let cfg = load_config(config)?;
    let start = Start::parse(&args.start).map_err(|e| anyhow!("--start: {e}"))?;
    let grace = parse_duration(&args.grace).map_err(|e| anyhow!("--grace: {e}"))?;
    let run_for = match &args.run_for {
        Some(s) => Some(parse_duration(s).map_err(|e| anyhow!("--for: {e}"))?),
        None => None,
    };
    if args.server_id == Some(0) {
        return Err(anyhow!(
            "--server-id: 0 is not a replica's server id; give 1 to 4294967295"
        ));
    }
    let (tables, exclude) = crate::endpoints::table_filter(&args.tables, &cfg)?;
    let routes = Routes::new(&cfg.routes).map_err(|e| anyhow!("route: {e}"))?;
    let query_timeout = match &args.endpoints.query_timeout {
        Some(s) => Some(parse_duration(s).map_err(|e| anyhow!("--query-timeout: {e}"))?),
        None => cfg.diff.query_timeout,
    };
    let mut jsonl = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the output directory {}", dir.display()))?;
            let path = dir.join("mismatches.jsonl");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            Some(f)
        }
        None => None,
    };

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let session = SessionOptions {
        read_only: true,
        query_timeout,
        max_connections: 4,
    };
    let (source, target) = connect_pair(&cfg, &args.endpoints, session, cancel.clone()).await?;

    let mut opts = VerifyOptions::new(start, table_filter_excluding(tables, exclude), routes);
    opts.checker.grace = grace;
    opts.run_for = run_for;
    if let Some(id) = args.server_id {
        opts.server_id = id;
    }
    let mut write_failed = false;
    let mut on_confirmed = |m: &Mismatch| {
        // A failed write warns once; it never changes the verdict.
        if let Some(f) = jsonl.as_mut() {
            let line = serde_json::to_string(m).unwrap_or_default();
            if writeln!(f, "{line}").and_then(|_| f.flush()).is_err() && !write_failed {
                write_failed = true;
                eprintln!("cutover: warning: cannot append to mismatches.jsonl");
            }
        }
    };
    let summary = cutover_verify::run(&source, &target, opts, cancel, &mut on_confirmed)
        .await
        .context("verify")?;

    let doc = summary_json(&summary);
    if let Some(dir) = &args.out {
        let path = dir.join("verify.json");
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if std::fs::write(&path, text + "\n").is_err() {
            eprintln!("cutover: warning: cannot write {}", path.display());
        }
    }
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
        Format::Human => human(&summary),
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (a pager quit early) is not an error of the verification.
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    Ok(if summary.mismatches.is_empty() { 0 } else { 1 })
}

/// The summary as the issue specifies it: keys and values encoded as in `cutover diff`.
fn summary_json(s: &Summary) -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "events": s.events,
        "changes": s.changes,
        "rows_checked": s.rows_checked,
        "pending": s.pending,
        "resolved": s.resolved,
        "busy": s.busy,
        "skipped_rows": s.skipped_rows,
        "position": s.position,
        "interrupted": s.interrupted,
        "check_errors": s.check_errors,
        "reconnects": s.reconnects,
        "unchecked_tables": s.unchecked_tables,
        "mismatches": s.mismatches.iter().map(|m| json!({
            "table": m.table,
            "target_table": m.target_table,
            "key": m.key,
            "kind": m.kind,
        })).collect::<Vec<_>>(),
    })
}

fn human(s: &Summary) -> String {
    let mut out = format!(
        "verify: {} events read up to {}, {} row changes, {} rows checked\n\
         pending {}, resolved {}, busy {}, confirmed mismatches {}\n",
        s.events,
        s.position,
        s.changes,
        s.rows_checked,
        s.pending,
        s.resolved,
        s.busy,
        s.mismatches.len()
    );
    for m in &s.mismatches {
        let kind = serde_json::to_value(m.kind).unwrap_or_default();
        out.push_str(&format!(
            "  {} {} {}\n",
            m.table,
            kind.as_str().unwrap_or("?"),
            serde_json::Value::Object(m.key.clone())
        ));
    }
    for (t, why) in &s.unchecked_tables {
        out.push_str(&format!("warning: {t} was not checked: {why}\n"));
    }
    if s.skipped_rows > 0 {
        out.push_str(&format!(
            "warning: {} changed rows could not be read from the binlog; first: {}\n",
            s.skipped_rows,
            s.warnings.first().map(String::as_str).unwrap_or("?")
        ));
    }
    out
}
