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
use cutover_diff::report::DiffKind;
use cutover_diff::{Diff, DiffOptions, TablePair};
use cutover_sandbox::{Sandbox, Settings};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::{progress, render};

/// The sample schema; `{cs}` is the table options of the side (charset and collation).
const SCHEMA: &str = "
CREATE TABLE customers (
  id INT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  email VARCHAR(128),
  country CHAR(2) NOT NULL,
  balance DECIMAL(12,2) NOT NULL,
  created_at DATETIME(6) NOT NULL
) {cs};
CREATE TABLE products (
  id INT PRIMARY KEY,
  sku VARCHAR(32) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  weight FLOAT,
  attrs JSON
) {cs};
CREATE TABLE orders (
  id BIGINT UNSIGNED PRIMARY KEY,
  customer_id INT NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL,
  total DECIMAL(14,2) NOT NULL,
  placed_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  note TEXT,
  KEY (customer_id)
) {cs};
CREATE TABLE sessions (
  id BIGINT PRIMARY KEY,
  token VARBINARY(16) NOT NULL,
  flags BIT(8) NOT NULL,
  seen TIME(3)
) {cs};
CREATE TABLE order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line SMALLINT NOT NULL,
  sku VARCHAR(32) NOT NULL,
  qty INT NOT NULL,
  PRIMARY KEY (order_id, line)
) {cs};
CREATE TABLE coupons (
  code VARCHAR(32) PRIMARY KEY,
  percent TINYINT NOT NULL
) {cs};
CREATE TABLE WORKER_NODE (
  ID BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  HOST_NAME VARCHAR(64) NOT NULL,
  PORT VARCHAR(64) NOT NULL,
  TYPE INT NOT NULL,
  LAUNCH_DATE DATE NOT NULL,
  MODIFIED TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  CREATED TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) AUTO_INCREMENT = 4150000 {cs};
CREATE TABLE audit_log (
  at DATETIME NOT NULL,
  event VARCHAR(40) NOT NULL
) {cs}";

/// Data, the same on both sides. `{n}` is the size of the largest table.
const DATA: &str = "
INSERT INTO customers SELECT seq, CONCAT(ELT(1 + seq % 5, 'Ana', 'Björn', 'Chen', 'Dmitri', 'Eve'), ' ', seq),
  IF(seq % 17 = 0, NULL, CONCAT('user', seq, '@example.com')), ELT(1 + seq % 4, 'DE', 'SE', 'CN', 'US'),
  (seq % 10000) / 100, '2020-01-01' + INTERVAL seq MINUTE + INTERVAL seq % 1000000 MICROSECOND
  FROM seq_1_to_{n4};
INSERT INTO products SELECT seq, CONCAT('SKU-', LPAD(seq, 6, '0')), 1 + (seq % 5000) / 100, seq / 7,
  JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'size', seq % 50)
  FROM seq_1_to_2000;
INSERT INTO orders (id, customer_id, status, total, placed_at, note) SELECT seq, 1 + seq % {n4},
  ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'), (seq % 100000) / 100,
  '2024-01-01' + INTERVAL seq SECOND, IF(seq % 3 = 0, NULL, IF(seq % 3 = 1, '', 'gift wrap'))
  FROM seq_1_to_{n};
INSERT INTO sessions SELECT seq, UNHEX(MD5(seq)), seq % 256, SEC_TO_TIME(seq % 86400)
  FROM seq_1_to_{n4};
INSERT INTO order_items SELECT 1 + seq DIV 3, seq % 3, CONCAT('SKU-', LPAD(1 + seq % 2000, 6, '0')), 1 + seq % 4
  FROM seq_0_to_{n4};
INSERT INTO WORKER_NODE (HOST_NAME, PORT, TYPE, LAUNCH_DATE)
  SELECT CONCAT('app-', seq), '8080', 1, '2024-01-01' FROM seq_1_to_4;
INSERT INTO coupons SELECT CONCAT('SAVE', seq), seq % 50 FROM seq_1_to_5000;
INSERT INTO audit_log SELECT '2024-01-01' + INTERVAL (seq DIV 3) MINUTE, ELT(1 + seq % 2, 'login', 'logout')
  FROM seq_1_to_30000";

/// Drift on the target: each line is one difference the diff must find, with its key.
const DRIFT: &[(&str, &str, DiffKind, &str)] = &[
    ("UPDATE customers SET name = LOWER(name) WHERE id = 4242", "customers", DiffKind::Mismatched, r#"{"id":4242}"#),
    ("UPDATE customers SET email = '' WHERE id = 17 * 300", "customers", DiffKind::Mismatched, r#"{"id":5100}"#),
    ("UPDATE products SET weight = weight + 0.001 WHERE id = 1500", "products", DiffKind::Mismatched, r#"{"id":1500}"#),
    ("UPDATE orders SET note = CONCAT(note, ' ') WHERE id = 100001", "orders", DiffKind::Mismatched, r#"{"id":100001}"#),
    ("DELETE FROM orders WHERE id = 150000", "orders", DiffKind::MissingInTarget, r#"{"id":150000}"#),
    ("INSERT INTO orders (id, customer_id, status, total, placed_at) VALUES (999999999, 1, 'new', 1, '2024-01-01')", "orders", DiffKind::ExtraInTarget, r#"{"id":999999999}"#),
    // A composite key: one line of an order changed, another lost.
    ("UPDATE order_items SET qty = qty + 1 WHERE order_id = 2024 AND line = 1", "order_items", DiffKind::Mismatched, r#"{"order_id":2024,"line":1}"#),
    ("DELETE FROM order_items WHERE order_id = 9001 AND line = 2", "order_items", DiffKind::MissingInTarget, r#"{"order_id":9001,"line":2}"#),
    ("UPDATE sessions SET token = UNHEX('00FF00FF00FF00FF00FF00FF00FF00FF') WHERE id = 777", "sessions", DiffKind::Mismatched, r#"{"id":777}"#),
    // A string key whose case changes: a different row, even where the collation says equal.
    ("UPDATE coupons SET code = 'save42' WHERE code = 'SAVE42'", "coupons", DiffKind::MissingInTarget, r#"{"code":"SAVE42"}"#),
    ("UPDATE coupons SET code = 'save42' WHERE code = 'SAVE42'", "coupons", DiffKind::ExtraInTarget, r#"{"code":"save42"}"#),
    // A keyless table: one of three identical rows lost.
    ("DELETE FROM audit_log WHERE at = '2024-01-01 00:10:00' AND event = 'logout' LIMIT 1", "audit_log", DiffKind::MissingInTarget, r#"{"at":"2024-01-01 00:10:00","event":"logout"}"#),
];

/// Errors the readiness check must report on the sample schema: a keyless table TiDB's
/// replication cannot apply by key, and a uid-generator worker table whose worker IDs run out
/// within a few TiDB restarts (each one skips an `AUTO_ID_CACHE` batch of 30,000).
const CHECK_FINDS: &[(&str, &str)] = &[
    ("schema.no_key", "shop.audit_log"),
    ("id.worker_table", "shop.WORKER_NODE"),
];

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
    for (rule, object) in CHECK_FINDS {
        let found = checked.findings.iter().any(|f| {
            f.rule == *rule
                && f.severity == cutover_check::Severity::Error
                && f.object.as_deref().is_some_and(|o| o.starts_with(object))
        });
        if !found {
            return Err(anyhow!(
                "the demo expected the check to report {rule} on {object} as an error"
            ));
        }
    }

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
    let mut found: Vec<(String, String, String)> = report
        .tables
        .iter()
        .flat_map(|t| {
            t.diffs.iter().map(move |d| {
                let key = serde_json::Value::Object(d.key.clone()).to_string();
                let kind = serde_json::to_string(&d.kind).unwrap_or_default();
                (t.source.trim_start_matches("shop.").to_string(), kind, key)
            })
        })
        .collect();
    let mut expected: Vec<(String, String, String)> = DRIFT
        .iter()
        .map(|(_, t, k, key)| {
            let kind = serde_json::to_string(k).unwrap_or_default();
            (t.to_string(), kind, key.to_string())
        })
        .collect();
    found.sort();
    expected.sort();
    if found != expected {
        return Err(anyhow!(
            "the demo expected {expected:?} but the diff found {found:?}"
        ));
    }

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
        expected.len(),
        report.summary.rows_compared
    ));
    if args.format == crate::cli::Format::Json {
        let _ = crate::out::json(
            0,
            serde_json::json!({
                "out": args.out,
                "rows_compared": report.summary.rows_compared,
                "differences_injected": expected.len(),
                "differences_found": found.len(),
                "differences_after_fix": left,
                "replay_differences": replayed,
                "verify_confirmed": lost,
            }),
        );
    }
    Ok(0)
}

/// The transaction the replica loses, and what verify must confirm for it (table, kind, key).
const LOST_TXN: &str = "BEGIN; \
    UPDATE shop.orders SET status = 'shipped', note = 'lost on the replica' WHERE id = 4711; \
    DELETE FROM shop.coupons WHERE code = 'SAVE777'; \
    INSERT INTO shop.customers (id, name, email, country, balance, created_at) \
      VALUES (900001, 'Frida 900001', NULL, 'SE', 0, '2024-06-01 12:00:00'); \
    COMMIT";
const LOST: &[(&str, DiffKind, &str)] = &[
    ("shop.orders", DiffKind::Mismatched, r#"{"id":4711}"#),
    (
        "shop.coupons",
        DiffKind::ExtraInTarget,
        r#"{"code":"SAVE777"}"#,
    ),
    (
        "shop.customers",
        DiffKind::MissingInTarget,
        r#"{"id":900001}"#,
    ),
];

/// A workload transaction on the source: new orders and their lines, paid orders, balances.
fn workload_txn(i: u64) -> String {
    let order = 5_000_000 + i;
    format!(
        "BEGIN; \
         INSERT INTO shop.orders (id, customer_id, status, total, note) \
           VALUES ({order}, {c}, 'new', {t}.50, 'demo workload'); \
         INSERT INTO shop.order_items VALUES ({order}, 0, 'SKU-000042', 2), ({order}, 1, 'SKU-000007', 1); \
         UPDATE shop.orders SET status = 'paid' WHERE id = {paid}; \
         UPDATE shop.customers SET balance = balance + 1 WHERE id = {c}; \
         DELETE FROM shop.sessions WHERE id = {s}; \
         COMMIT",
        c = 1 + i % 1000,
        t = 10 + i % 90,
        paid = 1 + (i * 7919) % 100_000,
        s = 1 + i,
    )
}

/// Native replication from the source to the target, a workload, one transaction the replica
/// skips, and `cutover verify` following the source's binlog: it must confirm exactly that
/// transaction's rows. Returns how many.
async fn verify_phase(sb: &Sandbox, cancel: &CancellationToken) -> Result<usize> {
    say("\nthe copy is equal; now replication runs until the cutover (target = replica of the source)…");
    {
        let sb = sb.clone();
        tokio::task::spawn_blocking(move || sb.start_replication())
            .await
            .context("starting replication")??;
    }
    say("\n$ cutover verify --source … --target … --tables 'shop.*' --grace 3s\n");
    let reader = SessionOptions {
        max_connections: 4,
        ..SessionOptions::default()
    };
    let src = connect(&sb.source.dsn(None), Role::Source, reader.clone(), cancel).await?;
    let tgt = connect(&sb.target.dsn(None), Role::Target, reader, cancel).await?;
    let filter = cutover_verify::table_filter(vec![
        cutover_core::config::Pattern::parse("shop.*").map_err(|e| anyhow!("{e}"))?
    ]);
    let mut opts = cutover_verify::VerifyOptions::new(
        cutover_verify::Start::Now,
        filter,
        cutover_core::config::Routes::default(),
    );
    opts.checker.grace = std::time::Duration::from_secs(3);
    let stop = cancel.child_token();
    let (tx, mut confirmed) = tokio::sync::mpsc::unbounded_channel::<cutover_verify::Mismatch>();
    let verifying = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut on_confirmed = |m: &cutover_verify::Mismatch| {
                let _ = tx.send(m.clone());
            };
            cutover_verify::run(&src, &tgt, opts, stop, &mut on_confirmed).await
        })
    };
    // The workload goes through the replica; one transaction in the middle is lost there.
    let writer = connect(
        &sb.source.dsn(None),
        Role::Source,
        SessionOptions {
            read_only: false,
            ..SessionOptions::default()
        },
        cancel,
    )
    .await?;
    say("  a workload: 300 transactions of orders, order lines, payments, balances, sessions");
    for i in 0..150 {
        writer.execute(&workload_txn(i)).await?;
    }
    sb.target.sql("STOP SLAVE SQL_THREAD")?;
    writer.execute(LOST_TXN).await?;
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")?;
    say("  the replica skips one transaction (sql_slave_skip_counter = 1): an order shipped, a coupon deleted, a customer added");
    for i in 150..300 {
        writer.execute(&workload_txn(i)).await?;
    }
    writer.disconnect().await;
    // Confirmations come once the replica is past the change and grace has passed.
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while found.len() < LOST.len() {
        tokio::select! {
            m = confirmed.recv() => match m {
                Some(m) => {
                    say(&format!("  confirmed: {} {} {}", m.table,
                        serde_json::to_value(m.kind).unwrap_or_default().as_str().unwrap_or("?"),
                        serde_json::Value::Object(m.key.clone())));
                    found.push(m);
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // A little longer, so any false alarm would show, then stop.
    let settle = tokio::time::Instant::now() + std::time::Duration::from_secs(4);
    while let Ok(Some(m)) = tokio::time::timeout_at(settle, confirmed.recv()).await {
        found.push(m);
    }
    stop.cancel();
    let summary = verifying
        .await
        .map_err(|e| anyhow!("verify: {e}"))?
        .context("verify")?;
    say(&format!(
        "  {} row changes read, {} rows checked, {} resolved in flight, {} pending; lag p50 {} ms, p99 {} ms",
        summary.changes,
        summary.rows_checked,
        summary.resolved,
        summary.pending,
        summary.lag.p50_ms,
        summary.lag.p99_ms
    ));
    let mut got: Vec<(String, String, String)> = found
        .iter()
        .map(|m| {
            (
                m.table.clone(),
                serde_json::to_string(&m.kind).unwrap_or_default(),
                serde_json::Value::Object(m.key.clone()).to_string(),
            )
        })
        .collect();
    let mut want: Vec<(String, String, String)> = LOST
        .iter()
        .map(|(t, k, key)| {
            (
                t.to_string(),
                serde_json::to_string(k).unwrap_or_default(),
                key.to_string(),
            )
        })
        .collect();
    got.sort();
    want.sort();
    if got != want {
        return Err(anyhow!(
            "the demo expected verify to confirm {want:?} but it confirmed {got:?}"
        ));
    }
    Ok(LOST.len())
}

/// The example runbook, shipped in the binary so the demo runs anywhere.
const RUNBOOK: &str = include_str!("../../../examples/sandbox-cutover.toml");

/// Runs the example runbook on the sandbox (its `check` steps run this binary), then writes
/// the drill's report next to the others. The drill must complete.
async fn drill(sb: &Sandbox, out: &std::path::Path, cancel: CancellationToken) -> Result<u8> {
    let dir = out.join("drill");
    let journal = dir.join("journal");
    // A demo run again over the same --out starts a new drill.
    let _ = std::fs::remove_dir_all(&journal);
    let path = dir.join("sandbox-cutover.toml");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, RUNBOOK).with_context(|| format!("writing {}", path.display()))?;
    let vars = [
        ("SOURCE", sb.source.dsn(None)),
        ("TARGET", sb.target.dsn(None)),
        (
            "SOURCE_SQL",
            format!(
                "mariadb --protocol=tcp -h127.0.0.1 -P{} -uroot",
                sb.source.port
            ),
        ),
    ];
    let env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let rb = cutover_drill::runbook::parse(&path, RUNBOOK, &env).map_err(|e| anyhow!("{e}"))?;
    rb.check_commands(&crate::drill_cmd::parse_check)
        .map_err(|e| anyhow!("{e}"))?;
    say(&format!(
        "\n$ cutover drill run {} --journal {}   # the cutover, rehearsed\n",
        path.display(),
        journal.display()
    ));
    let opts = cutover_drill::executor::Options {
        journal: journal.clone(),
        dry_run: false,
        resume: false,
        kill_orphans: false,
        from: None,
        cutover_exe: std::env::current_exe().context("finding the cutover binary")?,
        cancel,
        poll: std::time::Duration::from_millis(200),
        backoff: cutover_drill::announce::Backoff::default(),
        kill_grace: std::time::Duration::from_secs(5),
        metrics: None,
        on_warning: std::sync::Arc::new(|m: &str| errln!("cutover: warning: {m}")),
    };
    let outcome = cutover_drill::executor::run(&rb, opts)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    match outcome {
        cutover_drill::executor::Outcome::Completed { failed: 0 } => {}
        cutover_drill::executor::Outcome::Interrupted => return Ok(130),
        other => {
            return Err(anyhow!(
                "the demo's drill did not complete ({other:?}); its journal is in {}",
                journal.display()
            ))
        }
    }
    let report = cutover_drill::report::load(&[journal.as_path()]).map_err(|e| anyhow!(e))?;
    show(&format!("\n{}", report.text()));
    let files = crate::out::report_files(
        "drill",
        0,
        crate::out::body(&report),
        Some(report.document()),
        false,
    );
    let written = crate::out::write_out(&dir, &files)
        .with_context(|| format!("writing the drill report to {}", dir.display()))?;
    say("drill reports:");
    for p in written {
        say(&format!("  {}", p.display()));
    }
    Ok(0)
}

/// The application's sessions: (session, statement). The two `name` lookups depend on the
/// collation (`utf8mb4_general_ci` on the source, `utf8mb4_bin` on the target). Session 4
/// locks a range, checks it and inserts into it, and session 2 takes a shared lock: both
/// behave differently on TiDB, and `check --workload` must say so.
const SESSIONS: &[(usize, &str)] = &[
    (0, "SELECT name, email FROM customers WHERE id = 7"),
    (1, "SELECT COUNT(*) FROM customers WHERE name LIKE 'ana%'"),
    (3, "BEGIN"),
    (
        3,
        "SELECT COUNT(*) FROM orders WHERE customer_id BETWEEN 7 AND 9 FOR UPDATE",
    ),
    (3, RANGE_INSERT),
    (3, "COMMIT"),
    (
        1,
        "SELECT balance FROM customers WHERE id = 7 LOCK IN SHARE MODE",
    ),
    (2, "BEGIN"),
    (2, "SELECT total FROM orders WHERE id = 42 FOR UPDATE"),
    (0, "SELECT COUNT(*) FROM orders WHERE customer_id = 7"),
    (2, "UPDATE orders SET note = 'gift' WHERE id = 42"),
    (2, "COMMIT"),
    (1, "SELECT id FROM customers WHERE name = 'chen 2'"),
    (
        0,
        "SELECT id, total FROM orders WHERE customer_id = 7 ORDER BY id",
    ),
];
/// The insert after the range lock (it reaches the target too, as replication would carry it).
const RANGE_INSERT: &str = "INSERT INTO orders (id, customer_id, status, total, placed_at) \
     VALUES (800000001, 8, 'new', 9.50, '2024-06-01 12:00:00')";
/// The application's connection pool prepares this statement, executes it and closes it
/// again for every lookup (a JDBC pool with `useServerPrepStmts` and no statement cache).
const POOLED: &str = "SELECT name, balance FROM customers WHERE id = ?";
const POOLED_LOOKUPS: i64 = 8;
/// What `check --workload` must find in the sessions, and nothing else.
const WORKLOAD_FINDS: [&str; 3] = [
    "workload.lock_in_share_mode",
    "workload.prepared_churn",
    "workload.range_lock_insert",
];
const REPLAY_DIFFERS: [&str; 2] = [
    "SELECT COUNT(*) FROM customers WHERE name LIKE 'ana%'",
    "SELECT id FROM customers WHERE name = 'chen 2'",
];

/// Records a few application sessions through the proxy, replays them read-only against the
/// target with the source as baseline, and checks what they will meet on TiDB. Returns the
/// statements the replay found different.
async fn replay_story(
    sb: &Sandbox,
    src: &Db,
    tgt: &Db,
    out: &std::path::Path,
    cancel: CancellationToken,
) -> Result<usize> {
    let workload = out.join("workload.cwl");
    record_sessions(sb, src, &workload, &cancel).await?;
    say("\n$ cutover replay workload.cwl --target … --baseline … --read-only --speed max\n");
    let opts = cutover_replay::ReplayOptions {
        read_only: true,
        speed: cutover_replay::Speed::Max,
        lanes: None,
        ..cutover_replay::ReplayOptions::default()
    };
    let reader = cutover_workload::Reader::open(&workload)?;
    let report =
        cutover_replay::run(reader, tgt.clone(), Some(src.clone()), opts, cancel.clone()).await?;
    show(&cutover_replay::human(&report));
    let doc = cutover_replay::report_doc::document(
        &report,
        &sb.target.dsn(None),
        Some(&sb.source.dsn(None)),
    );
    let files = crate::out::report_files(
        "replay",
        report.exit_code(),
        crate::out::body(&report),
        Some(doc),
        true,
    );
    crate::out::write_out(out, &files)?;
    say(&format!("  {}", out.join("replay.html").display()));
    let mut found: Vec<String> = report
        .classes
        .iter()
        .filter(|c| c.diffs > 0)
        .flat_map(|c| c.samples.iter().map(|s| s.sql.clone()))
        .collect();
    found.sort();
    let mut want: Vec<String> = REPLAY_DIFFERS.iter().map(|s| s.to_string()).collect();
    want.sort();
    // The UPDATE is dropped by --read-only (and so is the INSERT after the range lock).
    let update_skipped = report
        .classes
        .iter()
        .any(|c| c.fingerprint.starts_with("update orders") && c.skipped == 1 && c.count == 0);
    if found != want || !update_skipped {
        return Err(anyhow!(
            "the demo expected the replay to find {want:?} and skip the UPDATE, but it found {found:?}"
        ));
    }

    // What the same sessions will meet on TiDB.
    say("\n$ cutover check --workload workload.cwl --target-flavor tidb\n");
    let profile = cutover_check::Profile::assumed(cutover_check::TargetFlavor::TiDb);
    let (findings, summary) = cutover_check::check_workload(
        &workload,
        &profile,
        &cutover_check::WorkloadOptions::default(),
        &|| cancel.is_cancelled(),
    )
    .map_err(|e| anyhow!("checking the workload: {e}"))?;
    let mut checked = cutover_check::Report {
        summary: cutover_check::Summary {
            target_server: profile.describe(),
            target_flavor: profile.flavor.name().to_string(),
            workload: Some(summary),
            ..Default::default()
        },
        findings,
        ..Default::default()
    };
    checked.finish();
    out!("{}", crate::check_cmd::human(&checked));
    let mut rules: Vec<&str> = checked.findings.iter().map(|f| f.rule).collect();
    rules.sort();
    rules.dedup();
    if rules != WORKLOAD_FINDS {
        return Err(anyhow!(
            "the demo expected the workload check to find {WORKLOAD_FINDS:?}, but it found {rules:?}"
        ));
    }
    Ok(found.len())
}

/// Runs the application's sessions through `cutover proxy` in front of the source, recording
/// them to `workload`: the text sessions of [`SESSIONS`], and a pooled session that prepares
/// and closes [`POOLED`] around every execute (the binary protocol, which only the proxy
/// and a packet capture see; a general log shows no statement ids).
async fn record_sessions(
    sb: &Sandbox,
    src: &Db,
    workload: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<()> {
    use mysql_async::prelude::Queryable;
    let upstream = format!("127.0.0.1:{}", sb.source.port);
    say(&format!(
        "\n$ cutover proxy --listen 127.0.0.1:0 --upstream {upstream} --output {}",
        workload.display()
    ));
    let stop = cancel.child_token();
    let opts = cutover_proxy::ProxyOptions {
        listen: "127.0.0.1:0".to_string(),
        upstream,
        record: workload.to_path_buf(),
        queue: 100_000,
        tls: None,
        rotate_bytes: u64::MAX,
        max_files: 1,
        redact: false,
    };
    let (listening_tx, listening) = tokio::sync::oneshot::channel();
    let proxy = cutover_proxy::run(
        opts,
        stop.clone(),
        move |addr| {
            let _ = listening_tx.send(addr);
        },
        |warning| say(&format!("  proxy: warning: {warning}")),
    );
    let sessions = async {
        // Whatever happens to the sessions, the proxy stops and finishes its file.
        let _stop = stop.clone().drop_guard();
        let addr = listening
            .await
            .map_err(|_| anyhow!("the proxy did not start listening"))?;
        say("# the application's sessions, through the proxy");
        let through = |cache: usize| {
            mysql_async::OptsBuilder::default()
                .ip_or_hostname(addr.ip().to_string())
                .tcp_port(addr.port())
                .user(Some("root"))
                .db_name(Some("shop"))
                // Through the proxy, never the server's socket.
                .prefer_socket(false)
                .stmt_cache_size(cache)
        };
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(mysql_async::Conn::new(through(32)).await?);
        }
        for (i, sql) in SESSIONS {
            say(&format!("  session {}: {sql}", i + 1));
            conns[*i].query_drop(*sql).await?;
        }
        say(&format!(
            "  session 5 (a pool without a statement cache): prepare, execute, close `{POOLED}`, {POOLED_LOOKUPS} times"
        ));
        let mut pooled = mysql_async::Conn::new(through(0)).await?;
        for id in 1..=POOLED_LOOKUPS {
            let stmt = pooled.prep(POOLED).await?;
            pooled.exec_drop(&stmt, (id,)).await?;
            pooled.close(stmt).await?;
        }
        conns.push(pooled);
        let ids: Vec<String> = conns.iter().map(|c| c.id().to_string()).collect();
        for c in conns {
            let _ = c.disconnect().await;
        }
        // The proxy has seen every answer once the server has closed the sessions.
        let gone = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({})",
            ids.join(", ")
        );
        let until = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left: Vec<u64> = src.query(&gone).await?;
            if left.first() == Some(&0) || Instant::now() > until {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok::<(), anyhow::Error>(())
    };
    let (summary, sessions) = tokio::join!(proxy, sessions);
    let summary = summary.context("the recording proxy")?;
    sessions?;
    say(&format!(
        "  proxy: {} connections, {} records written to {}",
        summary.connections,
        summary.records,
        workload.display()
    ));
    // The application's writes reach the target too, as replication would carry them, so
    // the pair stays equal for the drill's final diff.
    sb.target
        .sql(&format!(
            "UPDATE shop.orders SET note = 'gift' WHERE id = 42; USE shop; {RANGE_INSERT}"
        ))
        .map_err(|e| anyhow!("carrying the sessions' writes to the target: {e}"))?;
    Ok(())
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

async fn load(db: &Db, table_options: &str, n: u64) -> Result<()> {
    db.execute("DROP DATABASE IF EXISTS shop; CREATE DATABASE shop")
        .await?;
    let schema = SCHEMA.replace("{cs}", table_options);
    db.execute(&format!("USE shop; {schema}")).await?;
    let data = DATA
        .replace("{n4}", &(n / 4).to_string())
        .replace("{n}", &n.to_string());
    db.execute(&format!("USE shop; {data}")).await?;
    Ok(())
}
