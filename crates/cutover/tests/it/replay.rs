//! `cutover capture`, `cutover workload` and `cutover replay` on a sandbox pair of their own,
//! whose source writes its general log and its slow log (every statement). Sessions run on
//! the source, the logs are captured, the source is put back as it was before the sessions
//! (so it is a baseline), and the replay against the target, which holds known differences,
//! must report exactly the statements that touch them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use cutover_sandbox::{Sandbox, Settings};
use mysql_async::prelude::Queryable;

use crate::harness::{cutover, run, wait_for, Run};

const DEADLINE: Duration = Duration::from_secs(60);

/// The replay tests' own sandbox: both logs on, every statement in the slow log.
fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| {
        let sb = Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}"));
        let dir = sb.dir.display();
        sb.source
            .sql(&format!(
                "SET GLOBAL log_output = 'FILE'; \
                 SET GLOBAL general_log_file = '{dir}/general.log'; SET GLOBAL general_log = ON; \
                 SET GLOBAL slow_query_log_file = '{dir}/slow.log'; SET GLOBAL long_query_time = 0; \
                 SET GLOBAL slow_query_log = ON"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        sb
    })
}

fn dsn(source: bool) -> String {
    let sb = sandbox();
    if source {
        sb.source.dsn(None)
    } else {
        sb.target.dsn(None)
    }
}

/// A session of the captured workload: a connection to the source in `db`.
async fn session(db: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sandbox().source.port)
        .user(Some("root"))
        .db_name(Some(db))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("session")
}

/// Statements on one side, through the client (not captured into `db`: no `USE`).
fn sql(source: bool, text: &str) {
    let sb = sandbox();
    let s = if source { &sb.source } else { &sb.target };
    s.sql(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

/// Waits until both logs hold `marker`, then captures both into workload files cut to `db`.
async fn capture(db: &str, marker: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let logs = sandbox().dir.clone();
    for name in ["general.log", "slow.log"] {
        let p = logs.join(name);
        wait_for(&format!("{marker} in {name}"), DEADLINE, || {
            let p = p.clone();
            async move {
                std::fs::read_to_string(&p)
                    .map(|s| s.contains(marker))
                    .unwrap_or(false)
            }
        })
        .await;
    }
    let mut out = Vec::new();
    for (kind, name) in [("general-log", "general.log"), ("slow-log", "slow.log")] {
        let all = dir.join(format!("{kind}-all.cwl"));
        let r = run(cutover()
            .args(["capture", "--from", kind, "--input"])
            .arg(logs.join(name))
            .arg("--output")
            .arg(&all));
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let cut = dir.join(format!("{kind}.cwl"));
        let r = run(cutover()
            .args(["workload", "filter"])
            .arg(&all)
            .arg("--output")
            .arg(&cut)
            .args(["--database", db]));
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        out.push(cut);
    }
    (out.remove(0), out.remove(0))
}

fn replay(workload: &Path, extra: &[&str]) -> Run {
    run(cutover()
        .arg("replay")
        .arg(workload)
        .args(["--target", &dsn(false), "--baseline", &dsn(true)])
        .args(if extra.contains(&"--speed") {
            &[][..]
        } else {
            &["--speed", "max"][..]
        })
        .args(["--format", "json"])
        // A replay that writes asks first; these servers are the test's own.
        .args(if extra.contains(&"--read-only") {
            &[][..]
        } else {
            &["--yes"][..]
        })
        .args(extra))
}

/// The statements reported as different (from the samples: at most 3 per class).
fn differing(r: &Run) -> BTreeSet<String> {
    let v = r.json();
    let mut out = BTreeSet::new();
    for c in v["classes"].as_array().expect("classes") {
        if c["differences"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        for s in c["samples"].as_array().expect("samples") {
            out.insert(s["sql"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Table `db.t` (100 rows) on both sides; the target differs in row 7 (value) and row 50
/// (missing); `db.only_source` exists on the source only.
fn setup_rows(db: &str) {
    let common = format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO {db}.t SELECT seq, seq * 10 FROM {db}.seq_1_to_100"
    );
    sql(true, &format!("{common}; CREATE TABLE {db}.only_source (a INT); INSERT INTO {db}.only_source VALUES (1)"));
    sql(
        false,
        &format!(
            "{common}; UPDATE {db}.t SET v = -1 WHERE id = 7; DELETE FROM {db}.t WHERE id = 50"
        ),
    );
}

#[tokio::test]
async fn replay_reports_exactly_the_statements_touching_the_differing_rows() {
    let db = "rp_rows";
    setup_rows(db);
    // Two sessions at once: one reads, one changes data in a transaction.
    let mut a = session(db).await;
    let mut b = session(db).await;
    b.query_drop("BEGIN").await.unwrap();
    b.query_drop("UPDATE t SET v = v + 1 WHERE id = 10")
        .await
        .unwrap();
    for q in [
        "SELECT v FROM t WHERE id = 7",
        "SELECT v FROM t WHERE id = 8",
        "SELECT COUNT(*) FROM t",
        "SELECT id FROM t WHERE id BETWEEN 1 AND 5",
        "SELECT id, v FROM t ORDER BY id LIMIT 3",
        "SET @x = 5",
        "SELECT @x",
        "SELECT RAND() AS r",
    ] {
        a.query_drop(q).await.unwrap();
    }
    assert!(a.query_drop("SELECT * FROM only_source").await.is_ok());
    b.query_drop("SELECT v FROM t WHERE id = 10").await.unwrap();
    b.query_drop("SELECT v + 0 FROM t WHERE id = 7")
        .await
        .unwrap();
    b.query_drop("COMMIT").await.unwrap();
    b.query_drop("UPDATE t SET v = 0 WHERE id = 50")
        .await
        .unwrap();
    a.query_drop("SELECT 'end of rp_rows'").await.unwrap();
    let _ = a.disconnect().await;
    let _ = b.disconnect().await;

    let dir = tempfile::tempdir().unwrap();
    let (general, slow) = capture(db, "end of rp_rows", dir.path()).await;

    // The workload holds both sessions, whole.
    let r = run(cutover()
        .args(["workload", "stats", "--format", "json"])
        .arg(&general));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stats = r.json();
    assert!(stats["sessions"].as_u64().unwrap() >= 2, "{stats}");
    // 16 statements and the driver's `SELECT @@max_allowed_packet, …` of each session.
    assert_eq!(stats["commands"]["query"], 18, "{stats}");

    for workload in [&general, &slow] {
        // Read-only: the writes are dropped, the reads compared.
        setup_rows(db);
        let r = replay(workload, &["--read-only"]);
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(
            differing(&r),
            set(&[
                "SELECT v FROM t WHERE id = 7",
                "SELECT v + 0 FROM t WHERE id = 7",
                "SELECT COUNT(*) FROM t",
                "SELECT * FROM only_source"
            ]),
            "{workload:?}: {}",
            r.stdout
        );
        let v = r.json();
        assert_eq!(v["statements_with_diffs"], 4, "{}", r.stdout);
        assert_eq!(v["skipped"], 2, "the two UPDATEs: {}", r.stdout);
        assert!(v["noise"].as_u64().unwrap() >= 1, "RAND(): {}", r.stdout);
        // The differing read after the dropped UPDATE in the same transaction is marked.
        let marked: Vec<&str> = v["classes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["after_skipped_write"].as_u64().unwrap_or(0) > 0)
            .filter_map(|c| c["fingerprint"].as_str())
            .collect();
        assert_eq!(marked, ["select v + ? from t where id = ?"], "{}", r.stdout);
        let kinds = |fp: &str| {
            v["classes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["fingerprint"] == fp)
                .map(|c| c["kinds"].clone())
                .unwrap_or_default()
        };
        assert_eq!(kinds("select * from only_source")["error"], 1);
        assert_eq!(kinds("select count(*) from t")["rows"], 1);

        // Read-write, from the same starting point: the UPDATE of the missing row differs
        // in affected rows as well.
        setup_rows(db);
        let r = replay(workload, &[]);
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("disposable"), "{}", r.stderr);
        assert_eq!(
            differing(&r),
            set(&[
                "SELECT v FROM t WHERE id = 7",
                "SELECT v + 0 FROM t WHERE id = 7",
                "SELECT COUNT(*) FROM t",
                "SELECT * FROM only_source",
                "UPDATE t SET v = 0 WHERE id = 50",
            ]),
            "{workload:?}: {}",
            r.stdout
        );
        assert_eq!(r.json()["skipped"], 0);
    }

    // Without a baseline, the slow log's row counts are the reference: row 50 is not there.
    setup_rows(db);
    let r = run(cutover().arg("replay").arg(&slow).args([
        "--target",
        &dsn(false),
        "--read-only",
        "--speed",
        "max",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["compared_with"], "capture");
    assert!(
        differing(&r).contains("SELECT * FROM only_source"),
        "{}",
        r.stdout
    );

    // The shareable report.
    let out = dir.path().join("report");
    setup_rows(db);
    let r = replay(&general, &["--read-only", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    let html = std::fs::read_to_string(out.join("replay.html")).unwrap();
    assert!(html.contains("select count(*) from t") && html.contains("class=\"bars\""));
    assert!(out.join("replay.json").exists() && out.join("replay.md").exists());
}

#[tokio::test]
async fn rows_are_a_multiset_unless_a_full_order_by_makes_order_part_of_the_answer() {
    let db = "rp_order";
    // The same rows, ordered differently by the collations (as MySQL 8 vs TiDB do).
    let make = |collation: &str| {
        format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
             CREATE TABLE {db}.n (id INT PRIMARY KEY, name VARCHAR(10) COLLATE {collation}); \
             INSERT INTO {db}.n VALUES (1, 'a'), (2, 'B'), (3, 'c')"
        )
    };
    sql(true, &make("utf8mb4_general_ci"));
    sql(false, &make("utf8mb4_bin"));
    let mut a = session(db).await;
    for q in [
        "SELECT name FROM n ORDER BY name",
        "SELECT name FROM n",
        "SELECT name FROM n ORDER BY id",
        "SELECT 'end of rp_order'",
    ] {
        a.query_drop(q).await.unwrap();
    }
    let _ = a.disconnect().await;
    let dir = tempfile::tempdir().unwrap();
    let (general, _) = capture(db, "end of rp_order", dir.path()).await;
    let r = replay(&general, &["--read-only"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        differing(&r),
        set(&["SELECT name FROM n ORDER BY name"]),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn generated_ids_are_mapped_per_session() {
    let db = "rp_ids";
    let make = |start: u32| {
        format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
             CREATE TABLE {db}.o (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10)) AUTO_INCREMENT = {start}"
        )
    };
    sql(true, &make(1));
    sql(false, &make(1000));
    let mut a = session(db).await;
    a.query_drop("INSERT INTO o (v) VALUES ('x')")
        .await
        .unwrap();
    let id = a.last_insert_id().expect("an id");
    for q in [
        format!("UPDATE o SET v = 'y' WHERE id = {id}"),
        format!("SELECT id, v FROM o WHERE id = {id}"),
        "SELECT 'end of rp_ids'".to_string(),
    ] {
        a.query_drop(q).await.unwrap();
    }
    let _ = a.disconnect().await;
    let dir = tempfile::tempdir().unwrap();
    let (general, _) = capture(db, "end of rp_ids", dir.path()).await;
    sql(true, &make(1));
    sql(false, &make(1000));
    let r = replay(&general, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // Only the INSERT differs (its generated ID); the UPDATE and SELECT that use the ID run
    // with each side's own and agree.
    assert_eq!(
        differing(&r),
        set(&["INSERT INTO o (v) VALUES ('x')"]),
        "{}",
        r.stdout
    );
    let v = r.json();
    let insert = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["differences"] == 1)
        .unwrap();
    assert_eq!(insert["kinds"]["last_insert_id"], 1, "{insert}");
    assert_eq!(insert["samples"][0]["target"]["last_insert_id"], 1000);
}

#[tokio::test]
async fn a_syntax_only_the_baseline_accepts_is_an_error_difference() {
    // A sandbox of its own: the target's global sql_mode makes "…" an identifier.
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    sb.target
        .sql("SET GLOBAL sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("general.log");
    std::fs::write(
        &log,
        "2024-01-31T10:00:00.000100Z\t    5 Connect\troot@localhost on  using TCP/IP\n\
         2024-01-31T10:00:00.000200Z\t    5 Query\tSELECT \"a\" AS x\n\
         2024-01-31T10:00:00.000300Z\t    5 Query\tSELECT 'a' AS x\n\
         2024-01-31T10:00:00.000400Z\t    5 Quit\t\n",
    )
    .unwrap();
    let w = dir.path().join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(cutover()
        .arg("replay")
        .arg(&w)
        .args([
            "--target",
            &sb.target.dsn(None),
            "--baseline",
            &sb.source.dsn(None),
        ])
        .args(["--read-only", "--format", "json"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(differing(&r), set(&["SELECT \"a\" AS x"]), "{}", r.stdout);
    let v = r.json();
    let s = &v["classes"][0]["samples"][0];
    assert_eq!(s["kinds"][0], "error");
    assert_eq!(s["target"]["error"]["code"], 1054, "{s}");
}

#[tokio::test]
async fn bad_input_gives_one_clean_error_and_garbled_logs_give_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let not = dir.path().join("not-a-workload");
    std::fs::write(&not, "hello").unwrap();
    run(cutover()
        .arg("replay")
        .arg(&not)
        .args(["--target", "mysql://root@127.0.0.1:1"]))
    .assert_clean_error("not a cutover workload");
    run(cutover().args([
        "replay",
        "/nonexistent.cwl",
        "--target",
        "mysql://root@127.0.0.1:1",
        "--speed",
        "fast",
    ]))
    .assert_clean_error("--speed");
    run(cutover().args([
        "capture",
        "--from",
        "slow-log",
        "--input",
        "/nonexistent.log",
        "--output",
        "/tmp/x.cwl",
    ]))
    .assert_clean_error("cannot read");

    let log = dir.path().join("slow.log");
    std::fs::write(
        &log,
        "# User@Host: a[a] @ h []  Id: 1\n# Query_time: zero  Lock_time: 0 Rows_sent: 0  Rows_examined: 0\nselect 1;\n\
         # User@Host: a[a] @ h []  Id: 1\n# Query_time: 0.1  Lock_time: 0 Rows_sent: 1  Rows_examined: 0\nselect 2;\n\
         # User@Host: a[a] @ h []  Id: 1\n",
    )
    .unwrap();
    let w = dir.path().join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "slow-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w)
        .args(["--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("slow.log:2: unreadable Query_time"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("slow.log:7: entry without a statement"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json()["statements"], 1);
    assert_eq!(r.json()["skipped_entries"], 2);
    let r = run(cutover()
        .args(["capture", "--from", "slow-log", "--strict", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w));
    r.assert_clean_error("slow.log:2:");
    assert!(!w.exists(), "--strict leaves no partial workload");
}

#[tokio::test]
async fn speed_scales_the_captured_timing_and_the_lag_is_reported() {
    // Two sessions over 1.5 s of captured time.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("general.log");
    std::fs::write(
        &log,
        "2024-01-31T10:00:00.000000Z\t    5 Connect\troot@localhost on  using TCP/IP\n\
         2024-01-31T10:00:00.100000Z\t    6 Connect\troot@localhost on  using TCP/IP\n\
         2024-01-31T10:00:00.200000Z\t    5 Query\tSELECT 1\n\
         2024-01-31T10:00:00.900000Z\t    6 Query\tSELECT 2\n\
         2024-01-31T10:00:01.500000Z\t    5 Query\tSELECT 3\n\
         2024-01-31T10:00:01.500000Z\t    5 Quit\t\n\
         2024-01-31T10:00:01.500000Z\t    6 Quit\t\n",
    )
    .unwrap();
    let w = dir.path().join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (speed, at_least) in [("1", 1.5), ("3", 0.5)] {
        let r = replay(&w, &["--read-only", "--speed", speed]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let v = r.json();
        assert_eq!(v["replayed"], 3);
        assert_eq!(v["sessions"], 2);
        assert_eq!(v["workload_ms"], 1500);
        let elapsed = v["elapsed_ms"].as_f64().unwrap() / 1000.0;
        assert!(elapsed >= at_least, "speed {speed}: {elapsed} s");
        assert!(v["lag"]["p99_ms"].as_f64().is_some(), "{v}");
    }
    let r = replay(&w, &["--read-only", "--speed", "max", "--sessions", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["lag"]["max_ms"], 0.0);
    assert_eq!(
        r.json()["sessions"],
        2,
        "sessions keep their own connections on one lane"
    );
}

/// Whether a sysbench oltp_read_only statement reads the `c` of one of `ids`.
fn sysbench_touches(sql: &str, ids: &[u64]) -> bool {
    if sql.contains("SUM(k)") || !sql.contains("sbtest1") {
        return false;
    }
    if let Some((_, rest)) = sql.split_once("WHERE id=") {
        return rest.trim().parse::<u64>().is_ok_and(|id| ids.contains(&id));
    }
    if let Some((_, rest)) = sql.split_once("BETWEEN ") {
        let mut w = rest.split_whitespace();
        let a = w.next().and_then(|x| x.parse::<u64>().ok());
        let _and = w.next();
        let b = w.next().and_then(|x| x.parse::<u64>().ok());
        if let (Some(a), Some(b)) = (a, b) {
            return ids.iter().any(|id| (a..=b).contains(id));
        }
    }
    false
}

#[tokio::test]
async fn a_captured_sysbench_run_reports_exactly_the_statements_reading_the_differing_rows() {
    let db = "rp_sb";
    let ids = [17u64, 500];
    sql(
        true,
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    );
    sql(
        false,
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    );
    let port = sandbox().source.port.to_string();
    let sysbench = |action: &str, extra: &[&str]| {
        let out = std::process::Command::new("sysbench")
            .args([
                "oltp_read_only",
                "--db-driver=mysql",
                "--mysql-host=127.0.0.1",
            ])
            .arg(format!("--mysql-port={port}"))
            .args([
                "--mysql-user=root",
                &format!("--mysql-db={db}"),
                "--tables=1",
            ])
            .args(["--table-size=1000", "--db-ps-mode=disable"])
            .args(extra)
            .arg(action)
            .output()
            .expect("sysbench (Debian package sysbench)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sysbench("prepare", &[]);
    // The same rows on the target, read without a default database (so not in the cut).
    let create = sandbox()
        .source
        .sql(&format!("SHOW CREATE TABLE {db}.sbtest1"))
        .unwrap();
    sql(false, &format!("USE {db}; {}", create[0][1]));
    let src_opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sandbox().source.port)
        .user(Some("root"))
        .prefer_socket(false);
    let mut from = mysql_async::Conn::new(src_opts).await.unwrap();
    let rows: Vec<(u64, i64, String, String)> = from
        .query(format!("SELECT id, k, c, pad FROM {db}.sbtest1"))
        .await
        .unwrap();
    let _ = from.disconnect().await;
    let tgt_opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sandbox().target.port)
        .user(Some("root"))
        .prefer_socket(false);
    let mut to = mysql_async::Conn::new(tgt_opts).await.unwrap();
    to.exec_batch(
        format!("INSERT INTO {db}.sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)"),
        rows,
    )
    .await
    .unwrap();
    to.query_drop(format!(
        "UPDATE {db}.sbtest1 SET c = REVERSE(c) WHERE id IN ({}, {})",
        ids[0], ids[1]
    ))
    .await
    .unwrap();
    let _ = to.disconnect().await;

    sysbench("run", &["--threads=2", "--time=1"]);
    let mut end = session(db).await;
    end.query_drop("SELECT 'end of rp_sb'").await.unwrap();
    let _ = end.disconnect().await;
    let dir = tempfile::tempdir().unwrap();
    let (general, slow) = capture(db, "end of rp_sb", dir.path()).await;

    for workload in [&general, &slow] {
        let r = run(cutover()
            .args(["workload", "head", "-n", "100000000"])
            .arg(workload));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let expected: BTreeSet<String> = r
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["sql"].as_str().map(str::to_string))
            .filter(|s| sysbench_touches(s, &ids))
            .collect();
        let touching = r
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["sql"].as_str().is_some_and(|s| sysbench_touches(s, &ids)))
            .count() as u64;
        assert!(
            touching > 0,
            "the run read the differing rows at least once"
        );
        let r = replay(workload, &["--read-only"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let v = r.json();
        assert_eq!(v["statements_with_diffs"], touching, "{workload:?}");
        let found = differing(&r);
        assert!(
            found.is_subset(&expected),
            "{found:?} not all in {expected:?}"
        );
        assert!(v["replayed"].as_u64().unwrap() > 100, "{v}");
    }
}

/// Runs `cutover replay` with `args`, giving it `deadline` to finish (then it is ended and
/// the test fails: a stalled replay).
async fn replay_within(args: Vec<String>, deadline: Duration) -> Run {
    let child = cutover()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cutover");
    let mut child = child;
    let started = std::time::Instant::now();
    let mut finished = false;
    while started.elapsed() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !finished {
        let out = crate::harness::sigterm_and_wait(child).await;
        panic!(
            "the replay did not finish within {deadline:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn read_write_sessions_contending_for_rows_replay_without_a_cross_server_wait() {
    // Lock waits last 100 s here: a replay that waited on a cycle across the two servers
    // (session A waiting for B's row lock on the baseline while B waits for A's on the
    // target) would end only then.
    for source in [true, false] {
        sql(source, "SET GLOBAL innodb_lock_wait_timeout = 100");
    }
    let db = "rp_locks";
    let setup = |source: bool| {
        let mut s = format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
             CREATE TABLE {db}.c (id INT PRIMARY KEY, v INT); \
             INSERT INTO {db}.c SELECT seq, 100 FROM {db}.seq_1_to_10"
        );
        if !source {
            s.push_str(&format!("; UPDATE {db}.c SET v = -1 WHERE id = 7"));
        }
        sql(source, &s);
    };
    setup(true);
    setup(false);
    // Three sessions, each 12 transactions updating rows 1 and 2 (in the capture one after
    // the other; replayed as fast as possible, they contend, and the two servers may grant
    // the locks in different orders).
    const SESSIONS: usize = 3;
    const ROUNDS: usize = 12;
    let mut conns = Vec::new();
    for _ in 0..SESSIONS {
        conns.push(session(db).await);
    }
    for _ in 0..ROUNDS {
        for c in conns.iter_mut() {
            for q in [
                "BEGIN",
                "UPDATE c SET v = v + 1 WHERE id = 1",
                "UPDATE c SET v = v + 1 WHERE id = 2",
                "SELECT v FROM c WHERE id = 8",
                "COMMIT",
            ] {
                c.query_drop(q).await.unwrap();
            }
        }
    }
    for c in conns.iter_mut() {
        c.query_drop("SELECT v FROM c WHERE id = 7").await.unwrap();
    }
    conns[0]
        .query_drop("SELECT 'end of rp_locks'")
        .await
        .unwrap();
    for c in conns {
        let _ = c.disconnect().await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (general, slow) = capture(db, "end of rp_locks", dir.path()).await;

    for workload in [&general, &slow] {
        setup(true);
        setup(false);
        let args: Vec<String> = vec![
            "replay".into(),
            workload.display().to_string(),
            "--target".into(),
            dsn(false),
            "--baseline".into(),
            dsn(true),
            "--speed".into(),
            "max".into(),
            "--format".into(),
            "json".into(),
            "--yes".into(),
        ];
        let r = replay_within(args, Duration::from_secs(40)).await;
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        let v = r.json();
        assert_eq!(
            differing(&r),
            set(&["SELECT v FROM c WHERE id = 7"]),
            "{workload:?}: {}",
            r.stdout
        );
        assert_eq!(v["statements_with_diffs"], SESSIONS, "{}", r.stdout);
        assert_eq!(v["session_errors"], serde_json::json!([]), "{}", r.stdout);
        assert!(v["elapsed_ms"].as_f64().unwrap() < 40_000.0, "{}", r.stdout);
        // Every update ran on both servers.
        let expected = (100 + SESSIONS * ROUNDS).to_string();
        for source in [true, false] {
            let sb = sandbox();
            let side = if source { &sb.source } else { &sb.target };
            let rows = side
                .sql(&format!("SELECT v FROM {db}.c WHERE id IN (1, 2)"))
                .unwrap();
            assert_eq!(rows, vec![vec![expected.clone()], vec![expected.clone()]]);
        }
    }
}

#[tokio::test]
async fn an_interrupted_replay_stops_the_statement_in_flight_on_both_servers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("general.log");
    std::fs::write(
        &log,
        "2024-01-31T10:00:00.000100Z\t    5 Connect\troot@localhost on  using TCP/IP\n\
         2024-01-31T10:00:00.000200Z\t    5 Query\tSELECT 1\n\
         2024-01-31T10:00:00.000300Z\t    5 Query\tSELECT SLEEP(60) AS replay_interrupt\n\
         2024-01-31T10:00:00.000400Z\t    5 Query\tSELECT 2\n\
         2024-01-31T10:00:00.000500Z\t    5 Quit\t\n",
    )
    .unwrap();
    let w = dir.path().join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The statement as the servers' process lists show it (the query below does not match
    // itself: the pattern is built at run time).
    let sleeping = |source: bool| {
        let sb = sandbox();
        let side = if source { &sb.source } else { &sb.target };
        side.sql(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE info LIKE CONCAT('SELECT SLEEP(60) AS replay_', 'interrupt%')",
        )
        .unwrap()[0][0]
            .clone()
    };
    let child = cutover()
        .arg("replay")
        .arg(&w)
        .args(["--target", &dsn(false), "--baseline", &dsn(true)])
        .args(["--read-only", "--speed", "max", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cutover");
    wait_for("the SLEEP running on both servers", DEADLINE, || async {
        sleeping(true) == "1" && sleeping(false) == "1"
    })
    .await;
    let stopped = std::time::Instant::now();
    let out = crate::harness::sigterm_and_wait(child).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    // Well before the statement would have ended by itself.
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "{:?}",
        stopped.elapsed()
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["statements_with_diffs"], 0, "{stdout}");
    assert_eq!(v["replayed"], 1, "only SELECT 1 was answered: {stdout}");
    for source in [true, false] {
        assert_eq!(sleeping(source), "0", "still running on source={source}");
    }
}

#[tokio::test]
async fn column_flags_and_decimals_are_protocol_differences_but_a_collation_is_not() {
    let db = "rp_meta";
    let make = |u: &str, d: &str, collation: &str| {
        format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
             CREATE TABLE {db}.m (id INT PRIMARY KEY, u {u}, f FLOAT({d}), \
             name VARCHAR(10) COLLATE {collation}); \
             INSERT INTO {db}.m VALUES (1, 5, 1.5, 'x')"
        )
    };
    sql(true, &make("INT UNSIGNED", "7,2", "utf8mb4_general_ci"));
    sql(false, &make("INT", "7,1", "utf8mb4_bin"));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("general.log");
    std::fs::write(
        &log,
        format!(
            "2024-01-31T10:00:00.000100Z\t    5 Connect\troot@localhost on {db} using TCP/IP\n\
             2024-01-31T10:00:00.000200Z\t    5 Query\tSELECT u FROM m\n\
             2024-01-31T10:00:00.000300Z\t    5 Query\tSELECT f FROM m\n\
             2024-01-31T10:00:00.000400Z\t    5 Query\tSELECT name FROM m\n\
             2024-01-31T10:00:00.000500Z\t    5 Quit\t\n"
        ),
    )
    .unwrap();
    let w = dir.path().join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = replay(&w, &["--read-only"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        differing(&r),
        set(&["SELECT u FROM m", "SELECT f FROM m"]),
        "{}",
        r.stdout
    );
    let v = r.json();
    let kinds = |fp: &str| {
        v["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["fingerprint"] == fp)
            .map(|c| c["kinds"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        kinds("select u from m"),
        serde_json::json!({"column_flags": 1})
    );
    // The text protocol renders the value by the column's decimals (1.50 vs 1.5).
    assert_eq!(
        kinds("select f from m"),
        serde_json::json!({"decimals": 1, "rows": 1})
    );
    // The sample names what differs.
    let u = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fingerprint"] == "select u from m")
        .unwrap();
    let s = &u["samples"][0];
    assert!(
        s["baseline"]["columns"][0]
            .as_str()
            .unwrap()
            .contains("UNSIGNED"),
        "{s}"
    );
    assert!(
        !s["target"]["columns"][0]
            .as_str()
            .unwrap()
            .contains("UNSIGNED"),
        "{s}"
    );
}

/// A record of a hand-written workload.
fn rec(
    session: u64,
    ts_us: i64,
    db: &str,
    command: cutover_workload::Command,
) -> cutover_workload::Record {
    cutover_workload::Record {
        session,
        ts_us,
        db: Some(db.to_string()),
        user: Some("root".into()),
        command,
        response: None,
    }
}

fn query(sql: &str) -> cutover_workload::Command {
    cutover_workload::Command::Query { sql: sql.into() }
}

/// Writes `records` as a workload file.
fn write_workload(path: &Path, records: &[cutover_workload::Record]) {
    let mut w =
        cutover_workload::Writer::create(path, &cutover_workload::Header::new("general-log", None))
            .unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

/// The statements not compared for `reason` (JSON report).
fn not_compared(v: &serde_json::Value, reason: &str) -> u64 {
    v["not_compared_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["reason"] == reason)
        .and_then(|x| x["statements"].as_u64())
        .unwrap_or(0)
}

/// The commands one connection sent, from a MariaDB general log: (command, text) in order,
/// for the connection that sent `marker`.
fn connection_log(log: &str, marker: &str) -> Vec<(String, String)> {
    let mut by_id: std::collections::HashMap<u64, Vec<(String, String)>> = Default::default();
    let mut found = None;
    for line in log.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let Some(i) = fields.iter().position(|f| {
            let t = f.trim();
            t.split_once(' ').is_some_and(|(id, cmd)| {
                id.parse::<u64>().is_ok() && cmd.chars().all(|c| c.is_alphabetic() || c == ' ')
            })
        }) else {
            continue;
        };
        let (id, cmd) = fields[i].trim().split_once(' ').unwrap();
        let id: u64 = id.parse().unwrap();
        let text = fields[i + 1..].join("\t");
        if text.contains(marker) {
            found = Some(id);
        }
        by_id.entry(id).or_default().push((cmd.to_string(), text));
    }
    found.and_then(|id| by_id.remove(&id)).unwrap_or_default()
}

#[tokio::test]
async fn every_statement_is_compared_or_counted_with_its_reason_and_a_session_that_ends_early_is_named(
) {
    use cutover_workload::Command as C;
    let db = "rp_counted";
    let make = format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO {db}.t SELECT seq, seq * 10 FROM {db}.seq_1_to_10"
    );
    sql(true, &make);
    sql(false, &make);
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.cwl");
    let t0 = 1_700_000_000_000_000i64;
    let one = [
        C::Connect,
        query("SELECT v FROM t WHERE id = 1"),
        query("DELETE FROM t WHERE id = 2"),
        // Prepared before the capture began: never sent.
        C::Execute {
            stmt: 9,
            params: vec![cutover_workload::Param::from_plain(&serde_json::json!(1))],
        },
        C::Reset,
        query("SELECT v FROM t WHERE id = 4 /* after the reset */"),
        C::Prepare {
            stmt: 1,
            sql: "SELECT v FROM t WHERE id = ?".into(),
        },
        // The driver refuses it ("Statement takes 1 parameters but 0 was supplied"): the
        // session cannot go on.
        C::Execute {
            stmt: 1,
            params: vec![],
        },
        query("SELECT v FROM t WHERE id = 5"),
        C::Quit,
    ];
    let two = [C::Connect, query("SELECT COUNT(*) FROM t"), C::Quit];
    let mut records = Vec::new();
    for (i, c) in one.into_iter().enumerate() {
        records.push(rec(1, t0 + i as i64 * 10, db, c));
    }
    for (i, c) in two.into_iter().enumerate() {
        records.push(rec(2, t0 + 5 + i as i64 * 10, db, c));
    }
    write_workload(&w, &records);

    let r = replay(&w, &["--read-only"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["statements"], 7, "{}", r.stdout);
    assert_eq!(v["compared"], 3, "{}", r.stdout);
    assert_eq!(v["statements_with_diffs"], 0, "{}", r.stdout);
    assert_eq!(v["skipped"], 1, "the DELETE: {}", r.stdout);
    assert_eq!(not_compared(&v, "read_only_write"), 1);
    assert_eq!(v["not_compared"], 3, "{}", r.stdout);
    assert_eq!(not_compared(&v, "prepare_missing"), 1, "{}", r.stdout);
    assert_eq!(not_compared(&v, "driver_error"), 1, "{}", r.stdout);
    assert_eq!(not_compared(&v, "session_ended"), 1, "{}", r.stdout);
    // The session and its first statement not compared are named.
    let errors = v["session_errors"].to_string();
    assert!(
        errors.contains("session 1 on the target")
            && errors.contains("Statement takes 1 parameters but 0 was supplied")
            && errors.contains("first statement not compared: command 8 of the session: SELECT v FROM t WHERE id = ?"),
        "{errors}"
    );
    // Nothing was written.
    for source in [true, false] {
        let sb = sandbox();
        let s = if source { &sb.source } else { &sb.target };
        let n = s
            .sql(&format!("SELECT COUNT(*) FROM {db}.t"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, vec![vec!["10".to_string()]]);
    }
    // The READ ONLY guard went on again after the reset, before anything else was sent (the
    // baseline is the source, whose general log is on; MariaDB does not log the
    // COM_RESET_CONNECTION itself).
    let log = sandbox().dir.join("general.log");
    let mut cmds = Vec::new();
    wait_for(
        "the replay's connection in the general log",
        DEADLINE,
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            cmds = connection_log(&text, "after the reset");
            let done = !cmds.is_empty();
            async move { done }
        },
    )
    .await;
    let guard = "SET SESSION TRANSACTION READ ONLY";
    let first = cmds.iter().position(|(_, t)| t == guard);
    let after = cmds
        .iter()
        .position(|(_, t)| t.contains("after the reset"))
        .unwrap();
    assert!(first.is_some_and(|f| f < after), "{cmds:?}");
    assert_eq!(cmds[after - 1].1, guard, "{cmds:?}");
    assert_eq!(
        cmds.iter().filter(|(_, t)| t == guard).count(),
        2,
        "{cmds:?}"
    );

    // Accepted explicitly: the verdict covers what was compared.
    let out = dir.path().join("report");
    let r = replay(
        &w,
        &[
            "--read-only",
            "--allow-skipped",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["allow_skipped"], true);
    // The shareable report counts each reason.
    let html = std::fs::read_to_string(out.join("replay.html")).unwrap();
    for reason in [
        "Not compared",
        "prepare_missing",
        "session_ended",
        "read_only_write",
    ] {
        assert!(html.contains(reason), "{reason} missing from the report");
    }
    // The human summary says what was not compared and why.
    let r = run(cutover()
        .arg("replay")
        .arg(&w)
        .args(["--target", &dsn(false), "--baseline", &dsn(true)])
        .args(["--speed", "max", "--read-only"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("not compared (prepare_missing): 1 statements")
            && r.stdout.contains("exit 1; --allow-skipped accepts it"),
        "{}",
        r.stdout
    );

    // Nothing comparable: exit 2.
    let only = dir.path().join("only.cwl");
    write_workload(
        &only,
        &[
            rec(1, t0, db, C::Connect),
            rec(
                1,
                t0 + 1,
                db,
                C::Execute {
                    stmt: 3,
                    params: vec![],
                },
            ),
        ],
    );
    let r = replay(&only, &["--read-only"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
}

#[tokio::test]
async fn the_read_only_guards_status_flag_is_not_reported_against_a_capture() {
    use cutover_workload::Command as C;
    let db = "rp_guard";
    let make = format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT); INSERT INTO {db}.t VALUES (1, 10)"
    );
    sql(false, &make);
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.cwl");
    let t0 = 1_700_000_000_000_000i64;
    // What a protocol capture of the application saw: in its transaction IN_TRANS and
    // AUTOCOMMIT, never IN_TRANS_READONLY (it had no READ ONLY guard).
    let flags = |f: u16, rows: Option<u64>| cutover_workload::Response {
        status_flags: Some(f),
        rows,
        ..Default::default()
    };
    let mut records = vec![rec(1, t0, db, C::Connect)];
    for (i, (q, f, rows)) in [
        ("BEGIN", 0x0003, None),
        ("SELECT v FROM t WHERE id = 1", 0x0003, Some(1)),
        ("COMMIT", 0x0002, None),
        // A real difference: the capture says this ran in a transaction, the target says
        // it does not.
        (
            "SELECT v FROM t WHERE id = 1 /* planted */",
            0x0003,
            Some(1),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rec(1, t0 + 10 + i as i64, db, query(q));
        r.response = Some(flags(f, rows));
        records.push(r);
    }
    records.push(rec(1, t0 + 20, db, C::Quit));
    write_workload(&w, &records);
    let r = run(cutover().arg("replay").arg(&w).args([
        "--target",
        &dsn(false),
        "--read-only",
        "--speed",
        "max",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(
        differing(&r),
        set(&["SELECT v FROM t WHERE id = 1 /* planted */"]),
        "{}",
        r.stdout
    );
    assert_eq!(v["compared"], 4, "{}", r.stdout);
    assert_eq!(v["not_compared"], 0, "{}", r.stdout);
}

/// `sessions` sessions of one statement each, `open` of them open at once (all connect,
/// then all query, then all quit, block by block).
fn many_sessions(path: &Path, db: &str, sessions: u64, open: u64) {
    use cutover_workload::Command as C;
    let mut records = Vec::new();
    let mut ts = 1_700_000_000_000_000i64;
    let mut tick = || {
        ts += 1;
        ts
    };
    for block in (0..sessions).step_by(open as usize) {
        let ids: Vec<u64> = (block..(block + open).min(sessions))
            .map(|i| i + 1)
            .collect();
        for &s in &ids {
            records.push(rec(s, tick(), db, C::Connect));
        }
        for &s in &ids {
            records.push(rec(
                s,
                tick(),
                db,
                query(&format!("SELECT v FROM t WHERE id = {}", s % 10 + 1)),
            ));
        }
        for &s in &ids {
            records.push(rec(s, tick(), db, C::Quit));
        }
    }
    write_workload(path, &records);
}

#[tokio::test]
async fn ten_thousand_sessions_replay_within_the_connection_limit_and_refused_connections_are_counted(
) {
    // A pair of its own whose servers allow 20 connections (21 with the SUPER slot).
    let sb = Sandbox::start_owned(&Settings {
        extra_args: vec!["--max-connections=20".into()],
        ..Settings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let db = "rp_many";
    let make = format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO {db}.t SELECT seq, seq * 10 FROM {db}.seq_1_to_10"
    );
    for s in [&sb.source, &sb.target] {
        s.sql(&make).unwrap_or_else(|e| panic!("{e}"));
        s.sql("FLUSH STATUS").unwrap_or_else(|e| panic!("{e}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("many.cwl");
    // 10,000 sessions, 200 open at once in the capture.
    many_sessions(&w, db, 10_000, 200);
    let replay_on = |w: &Path, extra: &[&str]| {
        run(cutover()
            .arg("replay")
            .arg(w)
            .args([
                "--target",
                &sb.target.dsn(None),
                "--baseline",
                &sb.source.dsn(None),
            ])
            .args(["--read-only", "--speed", "max", "--format", "json"])
            .args(extra))
    };
    let r = replay_on(&w, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    // The default: half the servers' 20.
    assert_eq!(v["max_connections"], 10, "{}", r.stdout);
    assert_eq!(v["compared"], 10_000, "{}", r.stdout);
    assert_eq!(v["not_compared"], 0, "{}", r.stdout);
    assert_eq!(v["sessions"], 10_000, "{}", r.stdout);
    assert!(v["lanes"].as_u64().unwrap() <= 9, "{}", r.stdout);
    // The servers never saw more connections at once than the limit (and this check's own).
    for s in [&sb.source, &sb.target] {
        let used = s
            .sql("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
            .unwrap_or_else(|e| panic!("{e}"));
        let used: u64 = used[0][1].parse().unwrap();
        assert!(used <= 10 + 1, "Max_used_connections {used}");
    }

    // Asked for more than the servers allow: the refused connections' statements are not
    // compared, with the reason; exit 1 (0 when accepted explicitly).
    let w2 = dir.path().join("wide.cwl");
    many_sessions(&w2, db, 100, 100);
    let r = replay_on(&w2, &["--max-connections", "60"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let refused = not_compared(&v, "connection_refused");
    assert!(refused > 0, "{}", r.stdout);
    assert_eq!(
        v["compared"].as_u64().unwrap() + v["not_compared"].as_u64().unwrap(),
        100,
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Too many connections"),
        "the reason is shown: {}",
        r.stdout
    );
    let r = replay_on(&w2, &["--max-connections", "60", "--allow-skipped"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = replay_on(&w2, &["--max-connections", "1"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
}
