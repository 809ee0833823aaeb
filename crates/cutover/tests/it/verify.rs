//! `cutover verify` against real MariaDB replication (a sandbox pair of its own, the target
//! a replica of the source).

use std::time::{Duration, Instant};

use crate::harness::{cutover, run};
use crate::verify_checkpoint::{free_port, metric, wait_for_metrics};

const DEADLINE: Duration = Duration::from_secs(120);

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn verify_reports_exactly_the_skipped_transaction_and_nothing_during_lag() {
    let sb = cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE vf; USE vf; CREATE TABLE vf.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO vf.t SELECT seq, seq FROM seq_1_to_200",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let status = sb.source.sql("SHOW MASTER STATUS").unwrap();
    let start = format!("{}:{}", status[0][0], status[0][1]);

    // Replication lags: the SQL thread stops, the changes wait in the relay log.
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    // The transaction the replica will skip: one update, one delete, one insert.
    sb.source
        .sql(
            "BEGIN; UPDATE vf.t SET v = -7 WHERE id = 7; DELETE FROM vf.t WHERE id = 8; \
             INSERT INTO vf.t VALUES (1000, 1000); COMMIT",
        )
        .unwrap();
    // A steady workload behind it, which does arrive (late).
    sb.source
        .sql(
            "UPDATE vf.t SET v = v + 1 WHERE id % 10 = 1; DELETE FROM vf.t WHERE id = 20; \
             INSERT INTO vf.t VALUES (2000, 1), (2001, 2); UPDATE vf.t SET id = 3000 WHERE id = 30",
        )
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let grace = Duration::from_secs(4);
    let port = free_port();
    let child = cutover()
        .args(["verify", "--source", &sb.source.dsn(None)])
        .args(["--target", &sb.target.dsn(None)])
        .args(["--tables", "vf.*", "--start", &start, "--grace", "4s"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--format", "json", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The lag lasts until every changed key has been checked (and found different) at
    // least twice and the oldest has waited over a second: longer than a batch interval,
    // shorter than grace.
    wait_for_metrics(port, "every lagging key checked twice", |m| {
        let changes = metric(m, "cutover_verify_changes_total").unwrap_or(0.0);
        changes >= 28.0
            && metric(m, "cutover_verify_rows_checked_total").unwrap_or(0.0) >= 2.0 * changes
            && metric(m, "cutover_verify_oldest_pending_seconds").unwrap_or(0.0) > 1.0
    })
    .await;
    assert!(
        lines(&out.join("mismatches.jsonl")).is_empty(),
        "nothing may be confirmed while the replica lags"
    );
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let caught_up = Instant::now();

    // Exactly the skipped transaction's rows are confirmed, within grace + 5 s.
    let until = caught_up + DEADLINE;
    let found = loop {
        let found = lines(&out.join("mismatches.jsonl"));
        if found.len() >= 3 {
            break found;
        }
        assert!(Instant::now() < until, "only {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = caught_up.elapsed();
    assert!(
        elapsed <= grace + Duration::from_secs(5),
        "confirmed after {elapsed:?}"
    );
    // SIGTERM ends the run with the summary.
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    let mut got: Vec<(String, String, String)> = v["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["table"]["source"].as_str().unwrap_or("").to_string(),
                m["key"].to_string(),
                m["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    let want = |id: u32, kind: &str| {
        (
            "vf.t".to_string(),
            format!("{{\"id\":{id}}}"),
            kind.to_string(),
        )
    };
    assert_eq!(
        got,
        vec![
            want(1000, "missing_in_target"),
            want(7, "mismatched"),
            want(8, "extra_in_target"),
        ],
        "{v:#}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
    let seven = found.iter().find(|m| m["key"]["id"] == 7).unwrap();
    assert_eq!(seven["source"]["v"], -7, "{seven}");
    assert_eq!(seven["target"]["v"], 7, "{seven}");
    assert_eq!(v["pending"], 0, "{v:#}");
    assert!(v["resolved"].as_u64().unwrap_or(0) >= 1, "{v:#}");
    assert!(v["rows_checked"].as_u64().unwrap_or(0) >= 27, "{v:#}");
    // Keys that arrived as their binlog rows say are verified on the target alone; only the
    // keys that kept failing once the replica was past them (the three skipped ones, at each
    // check until confirmed) are read from the source.
    let (reads, checked) = (
        v["source_reads"].as_u64().unwrap_or(u64::MAX),
        v["rows_checked"].as_u64().unwrap_or(0),
    );
    assert!(reads >= 3 && reads * 3 < checked, "{v:#}");
    assert_eq!(v["busy"], 0, "{v:#}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap()).unwrap();
    assert_eq!(written["mismatches"], v["mismatches"]);
}

#[test]
fn verify_bad_input_is_one_clear_error() {
    let r = run(cutover().args([
        "verify",
        "--source",
        "mysql://root@127.0.0.1:1",
        "--target",
        "mysql://root@127.0.0.1:1",
        "--start",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-1",
    ]));
    r.assert_clean_error("--start");
    let r = run(cutover().args([
        "verify",
        "--source",
        "mysql://root:hunter2@127.0.0.1:1",
        "--target",
        "mysql://root@127.0.0.1:1",
        "--grace",
        "soon",
    ]));
    r.assert_clean_error("--grace");
    assert!(!r.stderr.contains("hunter2"));
    let r = run(cutover().args([
        "verify",
        "--source",
        "mysql://root:hunter2@127.0.0.1:1",
        "--target",
        "mysql://root@127.0.0.1:1",
    ]));
    r.assert_clean_error("cannot connect");
    assert!(!r.stderr.contains("hunter2"));
}

#[test]
fn verify_from_a_position_not_in_the_binlog_fails_at_once() {
    let started = Instant::now();
    let r = run(cutover()
        .args([
            "verify",
            "--source",
            &crate::harness::dsn(crate::harness::Side::Source),
        ])
        .args([
            "--target",
            &crate::harness::dsn(crate::harness::Side::Target),
        ])
        .args(["--start", "binlog.999999:4", "--for", "60s"]));
    r.assert_clean_error("not in the source's binlog");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_key_that_keeps_changing_while_the_replica_lags_is_busy_not_a_mismatch() {
    let sb = cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE vb; USE vb; CREATE TABLE vb.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO vb.t VALUES (1, 0), (2, 0)",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    // The replica is stopped, so it never gets past these changes: even a short grace must
    // not confirm a key in flight.
    let verify = Running::start(&sb, "vb.*", "1s");
    let port = verify.port;
    let mut hot = String::new();
    for _ in 0..30 {
        hot.push_str("UPDATE vb.t SET v = v + 1 WHERE id = 1; ");
    }
    hot.push_str("UPDATE vb.t SET v = 5 WHERE id = 2");
    sb.source.sql(&hot).unwrap();
    // The lag lasts until both keys have waited well past grace, checked again and again.
    wait_for_metrics(port, "both keys pending for longer than grace", |m| {
        metric(m, "cutover_verify_changes_total") == Some(31.0)
            && metric(m, "cutover_verify_busy") == Some(1.0)
            && metric(m, "cutover_verify_oldest_pending_seconds").unwrap_or(0.0) > 2.5
    })
    .await;
    let (code, v) = verify.stop().await;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["mismatches"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["busy"], 1, "{v:#}");
    assert_eq!(v["pending"], 2, "{v:#}");
    assert_eq!(v["changes"], 31, "{v:#}");
    sb.target.sql("START SLAVE SQL_THREAD").unwrap();
}

/// Verify running as a process; its `--out` directory and a way to end it with the summary.
struct Running {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(sb: &cutover_sandbox::Sandbox, tables: &str, grace: &str) -> Running {
        let status = sb.source.sql("SHOW MASTER STATUS").unwrap();
        let start = format!("{}:{}", status[0][0], status[0][1]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let port = free_port();
        let child = cutover()
            .args(["verify", "--source", &sb.source.dsn(None)])
            .args(["--target", &sb.target.dsn(None)])
            .args(["--tables", tables, "--start", &start, "--grace", grace])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--format", "json", "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Running {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    /// Waits until `n` mismatches are confirmed.
    async fn confirmed(&self, n: usize) -> Vec<serde_json::Value> {
        let until = Instant::now() + DEADLINE;
        loop {
            let found = lines(&self.out.join("mismatches.jsonl"));
            if found.len() >= n {
                return found;
            }
            assert!(Instant::now() < until, "only {found:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit code and the JSON summary.
    async fn stop(self) -> (i32, serde_json::Value) {
        let output = crate::harness::sigterm_and_wait(self.child).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let v = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&output.stdout))
        });
        (output.status.code().unwrap_or(-1), v)
    }
}

#[tokio::test]
async fn verify_finds_an_update_an_idempotent_replica_skipped_and_follows_ddl() {
    let sb = cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE vi; USE vi; CREATE TABLE vi.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO vi.t SELECT seq, seq FROM seq_1_to_50",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    sb.target
        .sql("STOP SLAVE; SET GLOBAL slave_exec_mode = 'IDEMPOTENT'; START SLAVE")
        .unwrap();
    let verify = Running::start(&sb, "vi.*", "2s");
    // Deleted on the target behind replication's back; the source's update then finds no
    // row there, and an idempotent replica skips it without a word.
    sb.target
        .sql("SET SESSION sql_log_bin = 0; DELETE FROM vi.t WHERE id = 5")
        .unwrap();
    sb.source
        .sql("UPDATE vi.t SET v = 55 WHERE id = 5")
        .unwrap();
    // The update is read, with the definition of its time, before the DDL below runs: this
    // test follows DDL that passes in the stream after the rows before it were read. (A
    // reader that is behind a DDL is `a_reader_behind_a_ddl_reads_rows_by_name_or_counts_them`.)
    wait_for_metrics(verify.port, "the update read", |m| {
        metric(m, "cutover_verify_changes_total").unwrap_or(0.0) >= 1.0
    })
    .await;
    // DDL in the stream: a new column, and a new table; their rows are checked too.
    sb.source
        .sql(
            "ALTER TABLE vi.t ADD COLUMN w VARCHAR(10) DEFAULT 'x'; \
             UPDATE vi.t SET w = 'y' WHERE id = 6; \
             CREATE TABLE vi.u (k VARCHAR(10) PRIMARY KEY, n INT); \
             INSERT INTO vi.u VALUES ('a', 1), ('b', 2)",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    // A change in the new column that the replica skips.
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    sb.source
        .sql("UPDATE vi.t SET w = 'lost' WHERE id = 9")
        .unwrap();
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")
        .unwrap();
    sb.source
        .sql("UPDATE vi.u SET n = 3 WHERE k = 'a'")
        .unwrap();
    let found = verify.confirmed(2).await;
    let (code, v) = verify.stop().await;
    assert_eq!(code, 1, "{v:#}");
    let mut got: Vec<String> = v["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {} {}", m["table"]["source"], m["key"], m["kind"]))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            r#""vi.t" {"id":5} "missing_in_target""#,
            r#""vi.t" {"id":9} "mismatched""#,
        ],
        "{v:#}"
    );
    let nine = found.iter().find(|m| m["key"]["id"] == 9).unwrap();
    assert_eq!(nine["source"]["w"], "lost", "{nine}");
    assert_eq!(nine["target"]["w"], "x", "{nine}");
    assert_eq!(v["pending"], 0, "{v:#}");
}

#[tokio::test]
async fn verify_reopens_a_dropped_binlog_stream_and_misses_nothing() {
    let sb = cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE vr; USE vr; CREATE TABLE vr.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO vr.t SELECT seq, seq FROM seq_1_to_20",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let verify = Running::start(&sb, "vr.*", "2s");
    // Wait until verify's binlog connection is there, then drop every binlog connection
    // (the real replica's too: it reconnects by itself).
    let dumps = || {
        sb.source
            .sql("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
            .unwrap()
    };
    let until = Instant::now() + DEADLINE;
    while dumps().len() < 2 {
        assert!(
            Instant::now() < until,
            "verify never connected to the binlog"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for row in dumps() {
        let _ = sb.source.sql(&format!("KILL {}", row[0]));
    }
    // Changes made while the stream is down: one the replica skips, others it applies.
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    sb.source
        .sql("UPDATE vr.t SET v = -3 WHERE id = 3")
        .unwrap();
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")
        .unwrap();
    sb.source
        .sql("UPDATE vr.t SET v = v + 100 WHERE id > 10")
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let found = verify.confirmed(1).await;
    let (code, v) = verify.stop().await;
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        v["mismatches"],
        serde_json::json!([{"table": {"source": "vr.t", "target": "vr.t"}, "key": {"id": 3},
            "kind": "mismatched"}]),
        "{v:#}"
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(v["reconnects"].as_u64().unwrap_or(0) >= 1, "{v:#}");
    assert!(v["rows_checked"].as_u64().unwrap_or(0) >= 11, "{v:#}");
    assert_eq!(v["pending"], 0, "{v:#}");
}

#[tokio::test]
async fn without_a_replica_grace_counts_from_reading_and_a_missing_target_table_is_reported() {
    use crate::harness::{conn, exec, fresh_db, Side};
    use mysql_async::prelude::Queryable;
    fresh_db("vm").await;
    exec(
        Side::Source,
        "CREATE TABLE vm.only_source (id INT PRIMARY KEY)",
    )
    .await;
    crate::harness::both(
        "CREATE TABLE vm.t (id INT PRIMARY KEY, v INT); CREATE TABLE vm.nokey (a DOUBLE)",
    )
    .await;
    let mut c = conn(Side::Source).await;
    let row: (String, u64, String, String) =
        c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let _ = c.disconnect().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = cutover()
        .args(["verify", "--source", &crate::harness::dsn(Side::Source)])
        .args(["--target", &crate::harness::dsn(Side::Target)])
        .args([
            "--tables",
            "vm.*",
            "--start",
            &format!("{}:{}", row.0, row.1),
        ])
        .args([
            "--grace",
            "1s",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The same change made on both sides (no replication here) is equal; a row of a table
    // the target lacks is missing there.
    crate::harness::both("INSERT INTO vm.t VALUES (1, 1)").await;
    // A keyless table whose rows cannot be looked up (only a DOUBLE column) is left out
    // with the reason, without stopping the run.
    exec(Side::Source, "INSERT INTO vm.nokey VALUES (7)").await;
    exec(Side::Source, "INSERT INTO vm.only_source VALUES (42)").await;
    let running = Running {
        child,
        port: 0,
        out,
        _dir: dir,
    };
    let found = running.confirmed(1).await;
    let (code, v) = running.stop().await;
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        v["mismatches"],
        serde_json::json!([{"table": {"source": "vm.only_source", "target": "vm.only_source"},
            "key": {"id": 42}, "kind": "missing_in_target"}]),
        "{v:#}"
    );
    assert_eq!(found[0]["target"], serde_json::Value::Null, "{found:?}");
    assert!(
        v["unchecked_tables"]["vm.nokey"]
            .as_str()
            .is_some_and(|w| w.contains("keyless")),
        "{v:#}"
    );
    assert_eq!(v["pending"], 0, "{v:#}");
}

#[tokio::test]
async fn routes_check_a_shards_change_in_the_merged_target_table() {
    use crate::harness::{conn, exec, Side};
    use mysql_async::prelude::Queryable;
    for db in ["vs_s1", "vs_s2", "vs_t"] {
        crate::harness::fresh_db(db).await;
    }
    exec(
        Side::Source,
        "CREATE TABLE vs_s1.t (id INT PRIMARY KEY, v INT); \
         CREATE TABLE vs_s2.t (id INT PRIMARY KEY, v INT)",
    )
    .await;
    exec(
        Side::Target,
        "CREATE TABLE vs_t.t (id INT PRIMARY KEY, v INT)",
    )
    .await;
    let mut c = conn(Side::Source).await;
    let row: (String, u64, String, String) =
        c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let _ = c.disconnect().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cutover.toml");
    std::fs::write(
        &config,
        "[filter]\nexclude = [\"vs_s2.*\"]\n[[route]]\nsource = \"vs_s*.*\"\ntarget = \"vs_t.*\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let child = cutover()
        .args(["--config", config.to_str().unwrap()])
        .args(["verify", "--source", &crate::harness::dsn(Side::Source)])
        .args(["--target", &crate::harness::dsn(Side::Target)])
        .args([
            "--tables",
            "vs_s1.*,vs_s2.*",
            "--start",
            &format!("{}:{}", row.0, row.1),
        ])
        .args([
            "--grace",
            "1s",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Shard 1's rows land in the merged table (one arrives, one does not); shard 2 is
    // excluded by the config, so its lost row is not looked at.
    exec(Side::Source, "INSERT INTO vs_s1.t VALUES (1, 1), (2, 2)").await;
    exec(Side::Target, "INSERT INTO vs_t.t VALUES (1, 1)").await;
    exec(Side::Source, "INSERT INTO vs_s2.t VALUES (3, 3)").await;
    let running = Running {
        child,
        port: 0,
        out,
        _dir: dir,
    };
    running.confirmed(1).await;
    let (code, v) = running.stop().await;
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        v["mismatches"],
        serde_json::json!([{"table": {"source": "vs_s1.t", "target": "vs_t.t"},
            "key": {"id": 2}, "kind": "missing_in_target"}]),
        "{v:#}"
    );
    assert_eq!(v["changes"], 2, "{v:#}");
}

#[test]
fn verify_for_a_while_prints_the_human_summary() {
    use crate::harness::{dsn, Side};
    // A table no other test writes: the summary counts nothing.
    crate::harness::sandbox()
        .source
        .sql(
            "CREATE DATABASE IF NOT EXISTS quiet_for_verify; \
             CREATE TABLE IF NOT EXISTS quiet_for_verify.t (id INT PRIMARY KEY)",
        )
        .unwrap();
    let started = Instant::now();
    let r = run(cutover()
        .args([
            "verify",
            "--source",
            &dsn(Side::Source),
            "--target",
            &dsn(Side::Target),
        ])
        .args(["--tables", "quiet_for_verify.*", "--for", "1s"]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("\nverify: "), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("pending 0, resolved 0, busy 0, confirmed mismatches 0"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn a_mysql_gtid_set_on_a_mariadb_source_is_refused_with_the_right_form() {
    let r = run(cutover()
        .args([
            "verify",
            "--source",
            &crate::harness::dsn(crate::harness::Side::Source),
        ])
        .args([
            "--target",
            &crate::harness::dsn(crate::harness::Side::Target),
        ])
        .args(["--start", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"]));
    r.assert_clean_error("@@gtid_binlog_pos");
}

/// A reader that is behind a DDL (it starts, resumes or lags before it) meets rows written
/// with the older definition. With column names in the binlog (`binlog_row_metadata=FULL`)
/// they are read by name and checked; without, they are counted as not checked and the run
/// exits 2, never "no mismatches".
#[tokio::test]
async fn a_reader_behind_a_ddl_reads_rows_by_name_or_counts_them() {
    let sb = cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default()).unwrap();
    let setup = "CREATE DATABASE vd; USE vd; CREATE TABLE vd.t (id INT PRIMARY KEY, v INT); \
                 INSERT INTO vd.t SELECT seq, seq FROM seq_1_to_20";
    sb.source.sql(setup).unwrap();
    sb.target.sql(setup).unwrap();
    let position = |sb: &cutover_sandbox::Sandbox| {
        let status = sb.source.sql("SHOW MASTER STATUS").unwrap();
        (status[0][0].clone(), status[0][1].parse::<f64>().unwrap())
    };
    // A change only the source has (the target is no replica here), then a new column on
    // both; verify starts from before the change, so its reader is behind the DDL.
    let run = |metadata: &str, id: u32, column: &str| {
        sb.source
            .sql(&format!("SET GLOBAL binlog_row_metadata = '{metadata}'"))
            .unwrap();
        let (file, pos) = position(&sb);
        sb.source
            .sql(&format!("UPDATE vd.t SET v = -1 WHERE id = {id}"))
            .unwrap();
        let ddl = format!("ALTER TABLE vd.t ADD COLUMN {column} INT DEFAULT 0");
        sb.source.sql(&ddl).unwrap();
        sb.target.sql(&ddl).unwrap();
        let (_, end) = position(&sb);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let port = free_port();
        let child = cutover()
            .args(["verify", "--source", &sb.source.dsn(None)])
            .args(["--target", &sb.target.dsn(None)])
            .args(["--tables", "vd.*", "--start", &format!("{file}:{pos}")])
            .args([
                "--grace",
                "1s",
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--format", "json", "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (child, port, out, dir, end)
    };

    // Without names: the row cannot be placed; it is counted, named, and the exit code says so.
    let (child, port, _out, _dir, end) = run("NO_LOG", 5, "w");
    wait_for_metrics(port, "the stream read past the DDL", |m| {
        metric(m, "cutover_verify_binlog_position").unwrap_or(0.0) >= end
    })
    .await;
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(v["skipped_rows"], 1, "{v:#}");
    assert_eq!(v["mismatches"], serde_json::json!([]), "{v:#}");
    assert_eq!(output.status.code(), Some(2), "{v:#}\n{stderr}");

    // With names: the row is read by name and its difference confirmed.
    let (child, _port, out, _dir, _end) = run("FULL", 6, "x");
    let until = Instant::now() + DEADLINE;
    while lines(&out.join("mismatches.jsonl")).is_empty() {
        assert!(
            Instant::now() < until,
            "the change behind the DDL was never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(output.status.code(), Some(1), "{v:#}\n{stderr}");
    assert_eq!(v["skipped_rows"], 0, "{v:#}");
    assert_eq!(
        v["mismatches"],
        serde_json::json!([{"table": {"source": "vd.t", "target": "vd.t"}, "key": {"id": 6},
            "kind": "mismatched"}]),
        "{v:#}"
    );
}
