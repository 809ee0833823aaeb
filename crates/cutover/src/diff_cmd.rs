//! `cutover diff`.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cutover_core::config::{parse_accepts, Config, Pattern, Routes};
use cutover_core::duration::parse_duration;
use cutover_core::throttle::{parse_max_load, Throttle};
use cutover_core::{CompareOptions, Consistency, Db, Role, SessionOptions};
use cutover_diff::checkpoint::{Checkpoint, Fingerprint};
use cutover_diff::fix::{self, FixSink, SpoolSink};
use cutover_diff::recheck::Recheck;
use cutover_diff::report::Snapshots;
use cutover_diff::{ColumnFilter, Diff, DiffOptions, Selection};
use tokio_util::sync::CancellationToken;

use crate::cli::{DiffArgs, Format};
use crate::{fix_out, progress, render};

/// Differences whose typed keys are kept per table for `--recheck`.
const RECHECK_MAX_KEYS: usize = 1_000_000;

pub async fn run(config: Option<&Path>, args: DiffArgs) -> Result<u8> {
    let cfg = load_config(config)?;
    let threads = args.threads.or(cfg.diff.threads).unwrap_or(4).max(1);
    let query_timeout = match &args.endpoints.query_timeout {
        Some(s) => Some(parse_duration(s).map_err(|e| anyhow!("--query-timeout: {e}"))?),
        None => cfg.diff.query_timeout,
    };
    let chunk_time = match &args.chunk_time {
        Some(s) => parse_duration(s).map_err(|e| anyhow!("--chunk-time: {e}"))?,
        None => cfg.diff.chunk_time.unwrap_or(Duration::from_millis(100)),
    };
    let defaults = DiffOptions::default();
    let opts = DiffOptions {
        threads,
        chunk_time,
        row_threshold: args
            .row_threshold
            .or(cfg.diff.row_threshold)
            .unwrap_or(defaults.row_threshold)
            .max(1),
        max_diffs: args
            .max_diffs
            .or(cfg.diff.max_diffs)
            .unwrap_or(defaults.max_diffs),
        compare: CompareOptions {
            float_tolerance: args.float_tolerance.or(cfg.diff.float_tolerance),
        },
        columns: ColumnFilter {
            only: args.columns.clone(),
            ignore: args.ignore_columns.clone(),
        },
        schema_only: args.schema_only,
        row_hash: match args.row_hash {
            crate::cli::RowHashArg::Auto => None,
            crate::cli::RowHashArg::Portable => Some(cutover_diff::plan::RowHash::Crc32Reversed),
            crate::cli::RowHashArg::Crc32 => Some(cutover_diff::plan::RowHash::Crc32),
        },
        ..defaults
    };
    let consistency =
        Consistency::parse(&args.consistency).map_err(|e| anyhow!("--consistency: {e}"))?;
    let recheck = match &args.recheck {
        Some(s) => Some(Recheck {
            delay: parse_duration(s).map_err(|e| anyhow!("--recheck: {e}"))?,
            rounds: args.recheck_rounds.max(1),
        }),
        None => None,
    };
    let mut opts = opts;
    opts.where_all = args.where_.clone();
    opts.where_table = cfg.diff.where_.clone();
    if recheck.is_some() {
        // Every difference is read again by its typed key.
        opts.keep_keys = RECHECK_MAX_KEYS;
    }
    if args.redact_values && (args.fix_sql.is_some() || args.apply) {
        return Err(anyhow!(
            "--redact-values keeps row values out of every output; --fix-sql/--apply need them"
        ));
    }
    if args.checkpoint.is_some() && (args.fix_sql.is_some() || args.apply) {
        return Err(anyhow!(
            "--checkpoint with --fix-sql/--apply is not supported: fix statements of chunks \
             finished before a restart are not journaled; run the fix after the resumed diff"
        ));
    }
    // Everything that could refuse the run's result is checked before the run.
    if args.apply && !args.yes && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(anyhow!(
            "--apply asks before it writes, and standard input is not a terminal: add --yes to apply without asking"
        ));
    }
    if let Some(p) = &args.fix_sql {
        crate::out::writable_file(p, "--fix-sql")?;
    }
    if let Some(d) = &args.out {
        crate::out::writable_dir(d, "--out")?;
    }
    if let Some(d) = &args.checkpoint {
        crate::out::writable_dir(d, "--checkpoint")?;
    }
    let mut accept = parse_accepts(&cfg.accept.diff, "[accept] diff").map_err(|e| anyhow!(e))?;
    accept.extend(parse_accepts(&args.accept, "--accept").map_err(|e| anyhow!(e))?);
    if let Some(a) = accept.iter().find(|a| !a.rule.starts_with("schema.")) {
        return Err(anyhow!(
            "{}: diff accepts schema differences only (schema.collation, schema.type, schema.*, …); row differences are the verdict (leave a column out with --ignore-columns)",
            a.text
        ));
    }
    let (tables, exclude) = crate::endpoints::table_filter(&args.tables, &cfg)?;
    let mut skip = args
        .exclude
        .iter()
        .map(|p| Pattern::parse(p).map_err(|e| anyhow!("--exclude: {e}")))
        .collect::<Result<Vec<_>>>()?;
    skip.extend(exclude);
    let routes = Routes::new(&cfg.routes).map_err(|e| anyhow!("route: {e}"))?;

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let session = SessionOptions {
        read_only: true,
        query_timeout,
        max_connections: threads * 2 + 4,
    };
    let (source, target) = match connect_pair(&cfg, &args.endpoints, session, cancel.clone()).await
    {
        Ok(pair) => pair,
        Err(_) if cancel.is_cancelled() => {
            errln!("cutover: interrupted while connecting; nothing was compared");
            return Ok(130);
        }
        Err(e) => return Err(e),
    };

    let selection = Selection {
        tables,
        skip,
        routes,
    };
    let pairs = cutover_diff::select_tables(&source, &selection)
        .await
        .context("listing source tables")?;
    if pairs.is_empty() {
        return Err(anyhow!("no tables match the selection on the source"));
    }
    let sink = if args.fix_sql.is_some() || args.apply {
        Some(SpoolSink::new().context("creating the fix SQL spool")?)
    } else {
        None
    };
    let throttle = build_throttle(&args, &source, &target, cancel.clone()).await?;
    if let Some(t) = &throttle {
        opts.throttle = Some(cutover_diff::engine::ThrottleHandle(t.clone()));
        let mut rx = t.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let now: Vec<String> = rx.borrow().iter().map(|e| e.to_string()).collect();
                // `errln!` lifts the progress bars out of the way itself.
                if now.is_empty() {
                    errln!("resumed");
                } else {
                    errln!("paused: {}", now.join("; "));
                }
            }
        });
    }
    let checkpoint = match &args.checkpoint {
        Some(dir) => {
            let fp = checkpoint_fingerprint(&args, &opts, &pairs, &source, &target);
            let mut cp = Checkpoint::open(dir, &fp)?;
            cp.redact_values(args.redact_values);
            let (t, c) = cp.resumed();
            if t + c > 0 {
                errln!(
                    "resuming from {}: {t} tables and {c} chunks already compared",
                    dir.display()
                );
            }
            Some(cp)
        }
        None => None,
    };
    // Row estimates for the overall ETA, read before the snapshots hold the connections.
    let estimates = if progress::enabled() && !args.schema_only {
        progress::diff::estimates(&source, &pairs).await
    } else {
        Default::default()
    };
    // Snapshots are opened on both sides at once, after the tables are listed.
    let pinned = opts.threads + 2;
    let (ss, ts) = tokio::join!(
        source.pin_snapshot(pinned, consistency, None),
        target.pin_snapshot(pinned, consistency, args.target_snapshot.as_deref())
    );
    let snapshots = Snapshots {
        source: ss.context("opening the source snapshot")?,
        target: ts.context("opening the target snapshot")?,
    };
    let bar = progress::DiffProgress::for_pairs(&pairs, &estimates);
    let fix_during_pass = if recheck.is_some() {
        // With --recheck the fix SQL is written from the differences that persist.
        None
    } else {
        sink.as_ref().map(|s| s as &dyn FixSink)
    };
    let mut report = Diff {
        progress: &bar,
        fix: fix_during_pass,
        checkpoint: checkpoint.as_ref(),
        ..Diff::new(&source, &target, &opts)
    }
    .run(&pairs)
    .await;
    bar.finish();
    report.snapshots = Some(snapshots);
    if let Some(t) = &throttle {
        report.throttle = serde_json::to_value(t.stats()).ok();
    }

    if let (Some(rc), false) = (recheck, report.interrupted) {
        // Fresh reads from here on: the snapshots are closed.
        tokio::join!(source.unpin(), target.unpin());
        errln!(
            "rechecking the differences: {} round(s), {:?} apart",
            rc.rounds,
            rc.delay
        );
        cutover_diff::recheck::recheck(
            &source,
            &target,
            &mut report,
            &opts,
            rc,
            sink.as_ref().map(|s| s as &dyn FixSink),
        )
        .await;
    }
    report.accept(&accept);
    if args.redact_values {
        // Before anything is printed or written.
        cutover_diff::report_doc::redact(&mut report);
    }
    let code = report.exit_code() as u8;
    match args.format {
        Format::Human => out!(
            "{}{}",
            crate::out::provenance(code).text(),
            render::diff_human(&report)
        ),
        Format::Json => {
            err!("{}", render::diff_human(&report));
            crate::out::json(code, crate::out::body(&report)).context("writing the report")?;
        }
    }
    if report.interrupted {
        errln!("cutover: interrupted; the report above covers the tables compared so far");
    }
    if let Some(dir) = &args.out {
        // Row values are inside unless every one was replaced by a hash.
        let mut files = crate::out::report_files(
            "report",
            code,
            crate::out::body(&report),
            Some(cutover_diff::report_doc::document(&report)),
            !args.redact_values,
        );
        if let (Some(sink), Some(path)) = (&sink, &args.fix_sql) {
            fix_out::write_fix_sql(sink, path, &report.target, args.fix_batch)?;
            let body = std::fs::read(path)
                .with_context(|| format!("reading the fix SQL file {}", path.display()))?;
            files.push(crate::out::OutFile {
                name: "fix.sql".into(),
                body,
                private: true,
            });
            let per_table =
                fix_out::write_fix_per_table(sink, dir, &report.target, args.fix_batch)?;
            if !per_table.is_empty() {
                errln!(
                    "fix SQL per table: {} files in {}",
                    per_table.len(),
                    dir.join("fix").display()
                );
            }
        }
        crate::out::write_reports(dir, &files)?;
    }
    if let Some(sink) = &sink {
        if let Some(path) = &args.fix_sql {
            fix_out::write_fix_sql(sink, path, &report.target, args.fix_batch)?;
            errln!("fix SQL written to {}", path.display());
        }
        if args.apply {
            if report.interrupted {
                return Err(anyhow!(
                    "interrupted: the fix SQL is incomplete and was not applied"
                ));
            }
            apply(sink, &target, &args, cancel.clone()).await?;
        }
    }
    tokio::join!(source.kill_running(), target.kill_running());
    Ok(code)
}

/// What a `--checkpoint` run compares: a resume with any of it changed is refused, naming
/// what changed. The options the engine sees (whether from flags or from the config file) are
/// [`DiffOptions::fingerprint`]'s; every flag of `diff` is named here (the destructuring is
/// exhaustive), so a new one must say whether it changes the result.
fn checkpoint_fingerprint(
    args: &DiffArgs,
    opts: &DiffOptions,
    pairs: &[cutover_diff::TablePair],
    source: &Db,
    target: &Db,
) -> Fingerprint {
    let DiffArgs {
        // Compared as the servers connected to, below.
        endpoints: _,
        // Compared as the table pairs they select (with [filter] and routes), below.
        tables: _,
        exclude: _,
        // In `opts`, with the config file's values.
        row_threshold: _,
        float_tolerance: _,
        max_diffs: _,
        row_hash: _,
        columns: _,
        ignore_columns: _,
        schema_only: _,
        where_: _,
        // How fast and when: the same rows are compared the same way.
        threads: _,
        chunk_time: _,
        max_load: _,
        max_lag: _,
        replica: _,
        rate: _,
        // Refused together with --checkpoint.
        fix_sql: _,
        apply: _,
        yes: _,
        // After the pass, on its whole result; not journaled.
        accept: _,
        fix_batch: _,
        recheck: _,
        recheck_rounds: _,
        checkpoint: _,
        // Where and how the report is written.
        out: _,
        format: _,
        consistency,
        target_snapshot,
        redact_values,
    } = args;
    let mut f = Fingerprint::default();
    opts.fingerprint(&mut f);
    f.add("--source", serde_json::json!(source.endpoint().redacted()));
    f.add("--target", serde_json::json!(target.endpoint().redacted()));
    f.add(
        "the tables (--tables, --exclude, [filter])",
        serde_json::json!(pairs
            .iter()
            .map(|p| (p.source_label(), p.skipped))
            .collect::<Vec<_>>()),
    );
    f.add(
        "the routes ([[route]])",
        serde_json::json!(pairs
            .iter()
            .filter(|p| p.shards.len() > 1 || p.source != p.target)
            .map(|p| (p.source_label(), p.target.to_string()))
            .collect::<Vec<_>>()),
    );
    f.add(
        "--consistency",
        serde_json::json!(consistency.to_ascii_lowercase()),
    );
    f.add("--target-snapshot", serde_json::json!(target_snapshot));
    // Journaled differences follow it.
    f.add("--redact-values", serde_json::json!(redact_values));
    f
}

/// The throttle of `--max-load`, `--max-lag`/`--replica` and `--rate`, watching the servers
/// through connections of its own (outside the snapshots). `None` when no limit is set.
async fn build_throttle(
    args: &DiffArgs,
    source: &Db,
    target: &Db,
    cancel: CancellationToken,
) -> Result<Option<std::sync::Arc<Throttle>>> {
    if args.max_load.is_none() && args.max_lag.is_none() && args.rate.is_none() {
        if !args.replica.is_empty() {
            return Err(anyhow!("--replica needs --max-lag"));
        }
        return Ok(None);
    }
    let monitor = SessionOptions {
        read_only: true,
        query_timeout: Some(Duration::from_secs(10)),
        max_connections: 1,
    };
    let mut b = Throttle::builder().cancel_on(cancel.clone());
    if let Some(spec) = &args.max_load {
        let limits = parse_max_load(spec).map_err(|e| anyhow!("--max-load: {e}"))?;
        let (s, t) = tokio::join!(
            Db::connect(
                source.endpoint(),
                Role::Source,
                monitor.clone(),
                cancel.clone()
            ),
            Db::connect(
                target.endpoint(),
                Role::Target,
                monitor.clone(),
                cancel.clone()
            )
        );
        b = b.watch(s?).watch(t?).max_load(limits);
    }
    if let Some(lag) = &args.max_lag {
        let max = parse_duration(lag).map_err(|e| anyhow!("--max-lag: {e}"))?;
        if args.replica.is_empty() {
            return Err(anyhow!(
                "--max-lag needs at least one --replica DSN to watch"
            ));
        }
        let mut replicas = Vec::new();
        for dsn in &args.replica {
            let e = cutover_core::Endpoint::parse(dsn).map_err(|e| anyhow!("--replica: {e}"))?;
            replicas.push(Db::connect(&e, Role::Source, monitor.clone(), cancel.clone()).await?);
        }
        b = b.max_lag(max, replicas);
    }
    if let Some(rate) = args.rate {
        if rate == 0 {
            return Err(anyhow!("--rate must be at least 1 row per second"));
        }
        b = b.rate_limit(rate);
    }
    Ok(Some(std::sync::Arc::new(b.build())))
}

pub fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => {
            let p = Path::new("cutover.toml");
            if p.exists() {
                Ok(Config::load(p)?)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// Sets the token on Ctrl-C (SIGINT) or SIGTERM; queries on the servers are then killed.
pub fn spawn_ctrl_c(cancel: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        cancel.cancel();
    });
}

/// Resolves both endpoints (flag, then config; passwords from file, DSN, environment) and
/// connects to both at once.
pub async fn connect_pair(
    cfg: &Config,
    args: &crate::cli::EndpointArgs,
    session: SessionOptions,
    cancel: CancellationToken,
) -> Result<(Db, Db)> {
    let src = crate::endpoints::resolve(
        Role::Source,
        args.source.as_deref(),
        cfg.source.as_ref(),
        args.source_password_file.clone(),
    )?;
    let tgt = crate::endpoints::resolve(
        Role::Target,
        args.target.as_deref(),
        cfg.target.as_ref(),
        args.target_password_file.clone(),
    )?;
    let (s, t) = tokio::join!(
        Db::connect(&src, Role::Source, session.clone(), cancel.clone()),
        Db::connect(&tgt, Role::Target, session, cancel)
    );
    Ok((s?, t?))
}

/// Runs the fix SQL on the target in one transaction, after saying what it changes and
/// asking (unless `--yes`).
async fn apply(
    sink: &SpoolSink,
    target: &Db,
    args: &DiffArgs,
    cancel: CancellationToken,
) -> Result<()> {
    let (d, u, i) = sink.counts();
    if d + u + i == 0 {
        errln!("nothing to apply: no row differs");
        return Ok(());
    }
    errln!(
        "--apply will change the target {}: {d} DELETE, {u} UPDATE, {i} INSERT, in one transaction",
        target.endpoint()
    );
    if !args.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(anyhow!(
                "--apply asks before it writes, and standard input is not a terminal: add --yes to apply without asking"
            ));
        }
        err!("apply these changes? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            errln!("not applied");
            return Ok(());
        }
    }
    let n = apply_fix(sink, target, cancel).await?;
    errln!("applied {n} statements to the target");
    Ok(())
}

/// Runs the fix SQL on the target in one transaction (all or nothing); returns the number
/// of statements. The one writable session of `diff` (and of the demo, on its own sandbox):
/// opened here, for exactly these statements.
pub async fn apply_fix(sink: &SpoolSink, target: &Db, cancel: CancellationToken) -> Result<usize> {
    let (d, u, i) = sink.counts();
    let writer = Db::connect(
        target.endpoint(),
        Role::Target,
        SessionOptions {
            read_only: false,
            query_timeout: None,
            max_connections: 1,
        },
        cancel,
    )
    .await?;
    let mut conn = writer.conn().await?;
    let header = fix::header("", (d, u, i));
    let setup: Vec<&str> = header
        .lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .collect();
    for stmt in setup {
        conn.execute(stmt).await?;
    }
    let mut statements = Vec::new();
    sink.for_each(|line| {
        statements.push(line.to_string());
        Ok(())
    })?;
    for stmt in &statements {
        if let Err(e) = conn.execute(stmt).await {
            let _ = conn.execute("ROLLBACK").await;
            return Err(anyhow!(
                "applying the fix SQL failed, nothing was changed: {e}"
            ));
        }
    }
    for stmt in fix::FOOTER.lines() {
        conn.execute(stmt).await?;
    }
    Ok(statements.len())
}
