//! `cutover demo`: the whole story on a local sandbox, in one command.
//!
//! It starts a throwaway source/target pair, loads a small shop schema on the source, puts
//! the same data on the target the way a migration would (with TiDB-like definitions:
//! `utf8mb4_bin` collations, JSON re-serialised), lets some drift creep in on the target, and
//! runs `cutover diff` to find it. It writes the reports (JSON, Markdown, HTML) and the fix
//! SQL to `--out`, applies the fix SQL to the sandbox's target, and diffs again. The
//! application's sessions are recorded through `cutover proxy`, replayed read-only, and
//! checked for what they will meet on TiDB (`check --workload`). Then the
//! target becomes a replica of the source, a workload runs with one transaction the replica
//! skips, and `cutover verify` follows the source's binlog. The demo checks its own result: it
//! exits 0 only when the diff found exactly the drift it injected and nothing after the fix,
//! and verify confirmed exactly the skipped transaction's rows. The sandbox is removed when the demo ends; the reports stay.

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use cutover_core::schema::TableName;
use cutover_core::{Db, Endpoint, Role, SessionOptions};
use cutover_diff::fix::{FixSink, SpoolSink};
use cutover_diff::{Diff, DiffOptions, TablePair};
use cutover_sandbox::{Sandbox, Settings};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::{progress, render};

mod checks;
mod data;
mod drill;
mod replay;
mod verify;

use data::{load, DRIFT};
use drill::drill;
use replay::replay_story;
use verify::verify_phase;

/// With `--format json` the story goes to stderr and stdout holds only the JSON summary.
static STORY_ON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub async fn run(args: DemoArgs) -> Result<u8> {
    STORY_ON_STDERR.store(
        args.format == crate::cli::Format::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    // The drift below names rows that exist from 200k rows on.
    let n = args.rows.max(200_000);
    // Found now, not after the whole demo.
    crate::out::writable_dir(&args.out, "--out")?;
    say("starting a local source and target (MariaDB sandbox)…");
    let sb = tokio::task::spawn_blocking(|| Sandbox::start_owned(&Settings::default()))
        .await
        .context("starting the sandbox")??;
    say(&format!(
        "  source {}  (server_id 1, ROW binlog)",
        sb.source.dsn(None)
    ));
    say(&format!("  target {}  (server_id 2)", sb.target.dsn(None)));

    let cancel = CancellationToken::new();
    crate::diff_cmd::spawn_ctrl_c(cancel.clone());
    // The demo writes only to its own throwaway sandbox.
    let writer = SessionOptions {
        read_only: false,
        ..SessionOptions::default()
    };
    let src = connect(&sb.source.dsn(None), Role::Source, writer.clone(), &cancel).await?;
    let tgt = connect(&sb.target.dsn(None), Role::Target, writer, &cancel).await?;

    let started = Instant::now();
    say(&format!(
        "loading a shop schema on the source: 8 tables, {} rows…",
        n + n / 4 * 3 + 1 + 2000 + 5000 + 30000 + 4
    ));
    load(&src, "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", n).await?;
    say("copying it to the target, with TiDB-like definitions (utf8mb4_bin)…");
    load(&tgt, "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", n).await?;
    // Same documents, re-serialised, as a different engine would store them.
    tgt.execute("UPDATE shop.products SET attrs = JSON_COMPACT(attrs) WHERE id % 2 = 0")
        .await?;
    say(&format!(
        "  loaded in {:.1}s",
        started.elapsed().as_secs_f64()
    ));

    // Readiness first: what would break on TiDB, and which ID spaces run out.
    say("\n$ cutover check --source … --databases shop --target-flavor tidb\n");
    let check_opts = cutover_check::CheckOptions {
        selection: cutover_check::Selection {
            databases: vec!["shop".to_string()],
            ..Default::default()
        },
        target_flavor: cutover_check::TargetFlavor::TiDb,
        sample: None,
        history: None,
        rules: cutover_check::RuleOptions::default(),
    };
    let checked = cutover_check::check(&src, None, &check_opts, &|_| {}).await?;
    // The errors in full; warnings and info only counted (the command lists them all).
    let mut shown = checked.clone();
    shown
        .findings
        .retain(|f| f.severity == cutover_check::Severity::Error);
    shown
        .groups
        .retain(|g| g.severity == cutover_check::Severity::Error);
    show(&crate::check_cmd::human(&shown));
    say("  (warnings and info: run `cutover check` itself to see them all)");
    checks::check_found_the_planted_errors(&checked)?;

    say(&format!(
        "letting {} statements drift the target:",
        DRIFT
            .iter()
            .map(|d| d.0)
            .collect::<std::collections::HashSet<_>>()
            .len()
    ));
    // One statement can cause two differences (a changed key: one row missing, one extra).
    let mut done = std::collections::HashSet::new();
    for (sql, table, _, _) in DRIFT {
        if done.insert(*sql) {
            say(&format!("  {table}: {sql}"));
            tgt.execute(&format!("USE shop; {sql}")).await?;
        }
    }
    src.disconnect().await;
    tgt.disconnect().await;

    say("\n$ cutover diff --source … --target … --tables 'shop.*'\n");
    let reader = SessionOptions::default();
    let src = connect(&sb.source.dsn(None), Role::Source, reader.clone(), &cancel).await?;
    let tgt = connect(&sb.target.dsn(None), Role::Target, reader, &cancel).await?;
    let pairs: Vec<TablePair> = [
        "audit_log",
        "coupons",
        "customers",
        "order_items",
        "orders",
        "products",
        "sessions",
    ]
    .iter()
    .map(|t| TablePair::new(TableName::new("shop", *t), TableName::new("shop", *t)))
    .collect();
    let sink = SpoolSink::new().context("creating a spool file for the fix SQL")?;
    let bar = progress::DiffProgress::new(pairs.len());
    let opts = DiffOptions::default();
    let report = Diff {
        progress: &bar,
        fix: Some(&sink as &dyn FixSink),
        ..Diff::new(&src, &tgt, &opts)
    }
    .run(&pairs)
    .await;
    bar.finish();
    show(&render::diff_human(&report));
    if report.interrupted {
        return Ok(130);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let fix_path = args.out.join("fix.sql");
    crate::fix_out::write_fix_sql(&sink, &fix_path, "shop", 1000)?;
    let files = crate::out::report_files(
        "report",
        report.exit_code() as u8,
        crate::out::body(&report),
        Some(cutover_diff::report_doc::document(&report)),
        true,
    );
    let written = crate::out::write_out(&args.out, &files)
        .with_context(|| format!("writing the reports to {}", args.out.display()))?;
    say("\nreports for the go/no-go meeting, and the fix SQL:");
    for p in written.iter().chain([&fix_path]) {
        say(&format!("  {}", p.display()));
    }

    // Did it find exactly what we injected?
    let (injected, found) = checks::diff_found_the_drift(&report)?;

    let (d, u, i) = sink.counts();
    say(&format!(
        "\n$ cutover diff … --apply   # the fix SQL: {d} DELETE, {u} UPDATE, {i} INSERT, one transaction"
    ));
    let applied = crate::diff_cmd::apply_fix(&sink, &tgt, cancel.clone()).await?;
    say(&format!("  applied {applied} statements to the target"));
    say("\n$ cutover diff --source … --target … --tables 'shop.*'   # again\n");
    let bar = progress::DiffProgress::new(pairs.len());
    let after = Diff {
        progress: &bar,
        ..Diff::new(&src, &tgt, &opts)
    }
    .run(&pairs)
    .await;
    bar.finish();
    show(&render::diff_human(&after));
    if after.interrupted {
        return Ok(130);
    }
    let left: u64 = after.tables.iter().map(|t| t.differences()).sum();
    if left != 0 || after.summary.errors != 0 {
        return Err(anyhow!(
            "after the fix SQL the diff still finds {left} differences"
        ));
    }
    let replayed = replay_story(&sb, &src, &tgt, &args.out, cancel.clone()).await?;
    src.disconnect().await;
    tgt.disconnect().await;

    // The cutover itself, rehearsed: the example runbook, gated by check, verify and diff.
    let drilled = drill(&sb, &args.out, cancel.clone()).await?;
    if drilled != 0 {
        return Ok(drilled);
    }
    // Then replication runs until the real cutover, and verify watches it.
    let lost = verify_phase(&sb, &cancel).await?;
    show("\n");
    say(&format!(
        "cutover check found what would break first (a keyless table, worker IDs that run out \
         in about a day and a half on TiDB). cutover diff found exactly the {} injected \
         differences among {} rows (integer, composite, string and no keys), and none where the \
         data is equal in another form (utf8mb4_bin vs general_ci, re-serialised JSON); its fix \
         SQL made the target equal again. cutover replay ran the application's captured \
         sessions on both and found the {replayed} statements whose answers the target's \
         collation changes, though every row is equal, and cutover check --workload named what \
         those sessions will meet on TiDB (a range locked then inserted into, a shared lock, a \
         statement prepared and closed around every execute). The example runbook then rehearsed the \
         cutover as a timed drill, gated by check, verify and diff, with its report beside the \
         others. With replication running, cutover verify checked every changed row and \
         confirmed exactly the {lost} rows of the one transaction the replica skipped, and none \
         of the rows that were only in flight. \
         In a real migration: `--format json` for machines, `--out DIR` for people, exit code 1 \
         when anything differs.",
        injected,
        report.summary.rows_compared
    ));
    if args.format == crate::cli::Format::Json {
        let _ = crate::out::json(
            0,
            serde_json::json!({
                "out": args.out,
                "rows_compared": report.summary.rows_compared,
                "differences_injected": injected,
                "differences_found": found,
                "differences_after_fix": left,
                "replay_differences": replayed,
                "verify_confirmed": lost,
            }),
        );
    }
    Ok(0)
}

fn say(s: &str) {
    show(&format!("{s}\n"));
}

/// The story: on stdout, or on stderr when stdout is for JSON.
fn show(s: &str) {
    if STORY_ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        err!("{s}");
    } else {
        out!("{s}");
    }
}

async fn connect(
    dsn: &str,
    role: Role,
    opts: SessionOptions,
    cancel: &CancellationToken,
) -> Result<Db> {
    let e = Endpoint::parse(dsn)?;
    Ok(Db::connect(&e, role, opts, cancel.clone()).await?)
}
