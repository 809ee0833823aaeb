//! `cutover diff`.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cutover_core::config::{parse_duration, Config, Pattern, Routes};
use cutover_core::{CompareOptions, Db, Role, SessionOptions};
use cutover_diff::fix::{self, FixSink, SpoolSink};
use cutover_diff::{ColumnFilter, DiffOptions, Selection};
use tokio_util::sync::CancellationToken;

use crate::cli::{DiffArgs, Format};
use crate::{progress, render};

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
        ..defaults
    };
    let patterns = |v: &[String]| -> Result<Vec<Pattern>> {
        v.iter()
            .map(|p| Pattern::parse(p).map_err(|e| anyhow!("--tables/--skip: {e}")))
            .collect()
    };
    let tables = if args.tables.is_empty() {
        patterns(&cfg.filter.tables)?
    } else {
        patterns(&args.tables)?
    };
    let mut skip = patterns(&args.skip)?;
    skip.extend(patterns(&cfg.filter.exclude)?);
    let routes = Routes::new(&cfg.routes).map_err(|e| anyhow!("route: {e}"))?;

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    let session = SessionOptions {
        read_only: true,
        query_timeout,
        max_connections: threads * 2 + 2,
    };
    let (source, target) = connect_pair(&cfg, &args.endpoints, session, cancel.clone()).await?;

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
    let bar = progress::DiffProgress::new(pairs.len());
    let report = cutover_diff::run(
        &source,
        &target,
        &pairs,
        &opts,
        &bar,
        sink.as_ref().map(|s| s as &dyn FixSink),
    )
    .await;
    bar.finish();
    match args.format {
        Format::Human => print!("{}", render::diff_human(&report)),
        Format::Json => {
            eprint!("{}", render::diff_human(&report));
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("rendering the report")?
            );
        }
    }
    if report.interrupted {
        eprintln!("cutover: interrupted; the report above covers the tables compared so far");
    }
    if let Some(sink) = &sink {
        if let Some(path) = &args.fix_sql {
            write_fix_sql(sink, path, &report.target)?;
            eprintln!("fix SQL written to {}", path.display());
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
    source.kill_running().await;
    target.kill_running().await;
    Ok(report.exit_code() as u8)
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

fn write_fix_sql(sink: &SpoolSink, path: &Path, target: &str) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating the fix SQL file {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let result = (|| -> std::io::Result<()> {
        w.write_all(fix::header(target, sink.counts()).as_bytes())?;
        sink.for_each(|line| writeln!(w, "{line}"))?;
        w.write_all(fix::FOOTER.as_bytes())?;
        w.flush()
    })();
    result.with_context(|| format!("writing the fix SQL file {}", path.display()))
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
        eprintln!("nothing to apply: no row differs");
        return Ok(());
    }
    eprintln!(
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
        eprint!("apply these changes? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("not applied");
            return Ok(());
        }
    }
    // The one writable session of `diff`: opened here, for exactly these statements.
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
    eprintln!("applied {} statements to the target", statements.len());
    Ok(())
}
