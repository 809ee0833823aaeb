//! `cutover verify`: follows the source's binlog and checks every changed row on the target.
//! Reads only: both sides are read-only sessions, and the binlog connection only reads.
//!
//! It runs until SIGINT/SIGTERM or `--for`, then prints the summary. Exit 1 when mismatches
//! were confirmed, 0 when none, 2 when it could not verify.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use cutover_core::config::Routes;
use cutover_core::duration::parse_duration;
use cutover_core::SessionOptions;
use cutover_verify::{
    table_filter_excluding, Checkpoint, Mismatch, Shard, Start, Summary, VerifyOptions,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::{Format, VerifyArgs};
use crate::diff_cmd::{connect_pair, load_config, spawn_ctrl_c};

pub async fn run(config: Option<&Path>, args: VerifyArgs) -> Result<u8> {
    // Everything the user typed is checked before any connection is made.
    let cfg = load_config(config)?;
    let start = match &args.start {
        Some(s) => Start::parse(s).map_err(|e| anyhow!("--start: {e}"))?,
        None => Start::Now,
    };
    let shard = match &args.shard {
        Some(s) => Some(Shard::parse(s).map_err(|e| anyhow!("--shard: {e}"))?),
        None => None,
    };
    let metrics_addr: Option<std::net::SocketAddr> = match &args.metrics_addr {
        Some(a) => Some(
            std::net::ToSocketAddrs::to_socket_addrs(a)
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| anyhow!("--metrics-addr: `{a}` is not HOST:PORT"))?,
        ),
        None => None,
    };
    let exact_table = |flag: &str, s: &str| -> Result<cutover_core::schema::TableName> {
        let p = cutover_core::config::Pattern::parse(s).map_err(|e| anyhow!("{flag}: {e}"))?;
        if p.schema.contains('*') || p.table.contains('*') {
            return Err(anyhow!("{flag}: `{s}` must name one table (db.table)"));
        }
        Ok(cutover_core::schema::TableName::new(p.schema, p.table))
    };
    let heartbeat = match &args.heartbeat {
        Some(s) => Some(exact_table("--heartbeat", s)?),
        None => None,
    };
    let progress = match (&heartbeat, &args.dm_checkpoint) {
        (Some(t), _) => cutover_verify::Progress::Heartbeat(t.clone()),
        (None, Some(s)) => {
            cutover_verify::Progress::DmCheckpoint(exact_table("--dm-checkpoint", s)?)
        }
        (None, None) => cutover_verify::Progress::Auto,
    };
    let checkpoint = match &args.checkpoint {
        Some(dir) => {
            let cp = Checkpoint::new(dir).map_err(|e| anyhow!("--checkpoint: {e}"))?;
            // Where to start is the checkpoint's to say once it holds one.
            if args.start.is_some() && cp.path().exists() {
                return Err(anyhow!(
                    "--start and --checkpoint {}: the checkpoint already holds a position; \
                     leave out --start to continue from it, or give an empty directory",
                    dir.display()
                ));
            }
            Some(cp)
        }
        None => None,
    };
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
    let (tables, mut exclude) = crate::endpoints::table_filter(&args.tables, &cfg)?;
    exclude.extend(crate::endpoints::patterns(&args.exclude, "--exclude")?);
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
            // Row values: readable by the owner only.
            let f = std::os::unix::fs::OpenOptionsExt::mode(
                std::fs::OpenOptions::new().create(true).append(true),
                0o600,
            )
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
    if let Some(addr) = metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("cutover_verify_lag_seconds".into()),
                &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            )
            .and_then(|b| b.install())
            .map_err(|e| anyhow!("--metrics-addr {addr}: {e}"))?;
        cutover_verify::metrics::describe();
    }
    let (source, target) = match connect_pair(&cfg, &args.endpoints, session, cancel.clone()).await
    {
        Ok(pair) => pair,
        Err(_) if cancel.is_cancelled() => {
            errln!("cutover: interrupted while connecting; nothing was verified");
            return Ok(130);
        }
        Err(e) => return Err(e),
    };
    if !tables.is_empty() {
        let given = if args.tables.is_empty() {
            &cfg.filter.tables
        } else {
            &args.tables
        };
        filter_selects_a_table(&source, &tables, &exclude, given).await?;
    }

    let mut opts = VerifyOptions::new(start, table_filter_excluding(tables, exclude), routes);
    opts.checker.grace = grace;
    opts.run_for = run_for;
    opts.checkpoint = checkpoint;
    opts.shard = shard;
    opts.checker.progress = progress;
    if let Some(table) = heartbeat {
        // The one writable session verify may hold: on the source, for the heartbeat row.
        let writer = SessionOptions {
            read_only: false,
            query_timeout,
            max_connections: 1,
        };
        let src = crate::endpoints::resolve(
            cutover_core::Role::Source,
            args.endpoints.source.as_deref(),
            cfg.source.as_ref(),
            args.endpoints.source_password_file.clone(),
        )?;
        let w = cutover_core::Db::connect(&src, cutover_core::Role::Source, writer, cancel.clone())
            .await?;
        opts.heartbeat = Some((w, table));
    }
    if let Some(id) = args.server_id {
        opts.server_id = id;
    }
    let shown =
        crate::progress::verify::VerifyProgress::start(run_for, args.format == Format::Human);
    opts.observer = Some(shown.observer());
    let mut write_failed = false;
    let mut on_confirmed = |m: &Mismatch| {
        // A failed write warns once; it never changes the verdict.
        if let Some(f) = jsonl.as_mut() {
            let line = mismatch_line(m);
            if writeln!(f, "{line}").and_then(|_| f.flush()).is_err() && !write_failed {
                write_failed = true;
                shown.warn("cannot append to mismatches.jsonl");
            }
        }
        shown.confirmed(m);
    };
    let summary = cutover_verify::run(&source, &target, opts, cancel, &mut on_confirmed)
        .await
        .context("verify")?;
    shown.finish();

    let code = exit_code(&summary);
    let doc = summary_json(&summary);
    if let Some(dir) = &args.out {
        let report = cutover_verify::report_doc::document(
            &summary,
            &source.endpoint().redacted(),
            &target.endpoint().redacted(),
        );
        // Mismatches hold row keys: the files are the owner's only.
        crate::out::write_reports_or_warn(
            dir,
            &crate::out::report_files("verify", code, doc.clone(), Some(report), true),
        );
    }
    // A closed stdout (a pager quit early) is not an error of the verification.
    let _ = match args.format {
        Format::Json => crate::out::json(code, doc),
        Format::Human => {
            crate::out::text(&(crate::out::provenance(code).text() + &human(&summary)))
        }
    };
    Ok(code)
}

/// 1 when mismatches were confirmed; else 2 when some changed rows or tables could not be
/// checked (a verification with holes must not read as "no mismatches"); else 0.
fn exit_code(s: &Summary) -> u8 {
    if !s.mismatches.is_empty() {
        1
    } else if s.skipped_rows > 0 || !s.unchecked_tables.is_empty() {
        2
    } else {
        0
    }
}

/// Refuses a `--tables` filter that selects no table on the source: it would verify nothing
/// and read as "no mismatches" (a typo in a pattern). Tables created later in the stream are
/// still followed when the filter selects some table now.
async fn filter_selects_a_table(
    source: &cutover_core::Db,
    tables: &[cutover_core::config::Pattern],
    exclude: &[cutover_core::config::Pattern],
    given: &[String],
) -> Result<()> {
    let selected = table_filter_excluding(tables.to_vec(), exclude.to_vec());
    let names: Vec<(String, String)> = source
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .context("listing source tables")?;
    if names
        .iter()
        .any(|(d, t)| selected(&cutover_core::TableName::new(d, t)))
    {
        return Ok(());
    }
    Err(anyhow!(
        "--tables: no table on the source matches {}",
        given.join(", ")
    ))
}

/// The summary: keys and values encoded as in `cutover diff`, a table as `{source, target}`.
fn summary_json(s: &Summary) -> serde_json::Value {
    json!({
        "events": s.events,
        "changes": s.changes,
        "rows_checked": s.rows_checked,
        "source_reads": s.source_reads,
        "pending": s.pending,
        "resolved": s.resolved,
        "busy": s.busy,
        "skipped_rows": s.skipped_rows,
        "position": s.position,
        "interrupted": s.interrupted,
        "check_errors": s.check_errors,
        "reconnects": s.reconnects,
        "unchecked_tables": s.unchecked_tables,
        "lag": {"count": s.lag.count, "p50_ms": s.lag.p50_ms, "p99_ms": s.lag.p99_ms, "max_ms": s.lag.max_ms},
        "resumed_from": s.resumed_from,
        "restarts": s.restarts,
        "mismatches": s.mismatches.iter().map(|m| json!({
            "table": {"source": m.table, "target": m.target_table},
            "key": m.key,
            "kind": m.kind,
        })).collect::<Vec<_>>(),
    })
}

/// One line of `mismatches.jsonl`: the mismatch with both rows, its table as
/// `{source, target}` like everywhere else.
fn mismatch_line(m: &Mismatch) -> String {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "table".into(),
            json!({"source": m.table, "target": m.target_table}),
        );
        o.remove("target_table");
    }
    serde_json::to_string(&v).unwrap_or_default()
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
    if s.lag.count > 0 {
        out.push_str(&format!(
            "verification lag (read → seen equal): p50 {} ms, p99 {} ms, max {} ms\n",
            s.lag.p50_ms, s.lag.p99_ms, s.lag.max_ms
        ));
    }
    if let Some(p) = &s.resumed_from {
        out.push_str(&format!("resumed from the checkpoint at {p}\n"));
    }
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
