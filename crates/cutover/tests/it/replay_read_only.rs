//! `cutover replay --read-only` of a workload made of every way a recorded statement has
//! been seen to write, or to take a lock, through a read-only replay: executable comments of
//! each form, statements whose class was first seen as a read, switches of the session to
//! read-write, reset and change-user records, a data-changing stored function, a sequence,
//! `INTO OUTFILE`/`DUMPFILE`, user locks, locking reads and prepared writes. Both servers
//! (target and baseline) log every statement; the test reads what the replay sent from
//! their general logs and checks that no table, sequence or file changed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cutover_sandbox::{Sandbox, Settings};
use cutover_workload::{Command, Header, Record, Writer};
use mysql_async::prelude::Queryable;

use crate::harness::{conn_at, cutover, general_log, run};

/// The replay's login on both servers: its statements are told apart in the general logs
/// by this user.
const REPLAYER: &str = "ro_replayer";

/// This test's own pair, both logging every statement to the `mysql.general_log` table.
fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| {
        let sb = Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}"));
        for s in [&sb.source, &sb.target] {
            s.sql(&format!(
                "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON; \
                 CREATE USER IF NOT EXISTS '{REPLAYER}'@'%'; \
                 GRANT ALL ON *.* TO '{REPLAYER}'@'%'"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        }
        sb
    })
}

/// What must not change: the rows, the function's audit rows, the sequence, the user lock.
async fn state(port: u16) -> Vec<String> {
    let mut c = conn_at(port).await;
    let rows: Vec<(i64, i64, i64)> = c
        .query("SELECT COUNT(*), COALESCE(SUM(v), 0), COALESCE(SUM(id * v), 0) FROM ro.t")
        .await
        .unwrap();
    let audit: Vec<i64> = c.query("SELECT COUNT(*) FROM ro.audit").await.unwrap();
    let seq: Vec<i64> = c
        .query("SELECT next_not_cached_value FROM ro.s")
        .await
        .unwrap();
    let lock: Vec<Option<i64>> = c.query("SELECT IS_USED_LOCK('ro_lock')").await.unwrap();
    let _ = c.disconnect().await;
    vec![
        format!("t {rows:?}"),
        format!("audit {audit:?}"),
        format!("sequence {seq:?}"),
        format!("user lock held by {lock:?}"),
    ]
}

fn record(session: u64, ts: &mut i64, command: Command) -> Record {
    *ts += 1_000;
    Record {
        session,
        ts_us: *ts,
        db: Some("ro".into()),
        user: Some("app".into()),
        command,
        response: None,
    }
}

fn query(sql: &str) -> Command {
    Command::Query { sql: sql.into() }
}

/// The workload: session 1 holds every vector, session 2 a reset and a change of user.
fn workload(dir: &Path, files: &[PathBuf]) -> (PathBuf, usize) {
    let f = |i: usize| files[i].display().to_string();
    let reads_then_writes: Vec<String> = vec![
        "SELECT v FROM t WHERE id = 1".into(),
        // The class of a read first, then writes of the same class (fingerprint).
        "SELECT 13".into(),
        // TiDB runs `/*T!` (MariaDB skips it).
        "/*T! DELETE FROM t WHERE id IN (*/ SELECT 13 /*T! ) */".into(),
        // Of class `select ?` too: a string by default, a DELETE in a session that set
        // NO_BACKSLASH_ESCAPES.
        "SELECT 'a\\' ; DELETE FROM t WHERE id = 15; -- '".into(),
        "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */".into(),
        "DELETE FROM t WHERE id IN (SELECT 21)".into(),
        format!("SELECT 1 /*M!100000 INTO OUTFILE '{}' */", f(0)),
        format!("SELECT 2 INTO OUTFILE '{}'", f(1)),
        format!("SELECT 3 /*!50000 INTO DUMPFILE '{}' */", f(2)),
        format!("SELECT 4 /*! INTO OUTFILE '{}' */", f(3)),
        "SELECT v INTO @x FROM t WHERE id = 1".into(),
        // Executable comments of each form.
        "/*! DELETE FROM t WHERE id = 1 */".into(),
        "/*!50000 UPDATE t SET v = v + 100 */".into(),
        "/*!100000 UPDATE t SET v = v + 1000 */".into(),
        "/*M! INSERT INTO t VALUES (100, 1) */".into(),
        "/*M!100000 INSERT INTO t VALUES (101, 1) */".into(),
        "/*T! DELETE FROM t */".into(),
        "/*T![auto_rand] DELETE FROM t */".into(),
        "SELECT 1 /*M! ; DELETE FROM t WHERE id = 2 */".into(),
        // A stored function that changes data.
        "SELECT bump()".into(),
        "SELECT v FROM t WHERE id = bump()".into(),
        // The sequence.
        "SELECT NEXTVAL(s)".into(),
        "SELECT NEXT VALUE FOR s".into(),
        "SELECT SETVAL(s, 1000)".into(),
        // A user lock.
        "SELECT GET_LOCK('ro_lock', 0)".into(),
        // Switches of the session to read-write, then writes.
        "SET SESSION TRANSACTION READ WRITE".into(),
        "START TRANSACTION READ WRITE".into(),
        "UPDATE t SET v = -1 WHERE id = 3".into(),
        "COMMIT".into(),
        "SET SESSION tx_read_only = 1".into(),
        // Of the class of the read just before.
        "SET SESSION tx_read_only = 0".into(),
        "SET @@session.transaction_read_only=OFF".into(),
        "UPDATE t SET v = -1 WHERE id = 4".into(),
    ];
    // Sent without their lock.
    let locking = [
        "BEGIN",
        "SELECT v FROM t WHERE id = 5 FOR UPDATE",
        "SELECT v FROM t WHERE id = 6 LOCK IN SHARE MODE",
        "SELECT v FROM t WHERE id = 7 FOR SHARE",
        "COMMIT",
    ];
    let path = dir.join("read-only.cwl");
    let mut w = Writer::create(&path, &Header::new("general-log", None)).unwrap();
    let mut ts = 1_700_000_000_000_000;
    let mut write = |r: Record| w.write(&r).unwrap();
    write(record(1, &mut ts, Command::Connect));
    for sql in &reads_then_writes {
        write(record(1, &mut ts, query(sql)));
    }
    for sql in locking {
        write(record(1, &mut ts, query(sql)));
    }
    // A prepared write, and an execute whose prepare is not in the recording.
    write(record(
        1,
        &mut ts,
        Command::Prepare {
            stmt: 1,
            sql: "DELETE FROM t WHERE id = ?".into(),
        },
    ));
    write(record(
        1,
        &mut ts,
        Command::Execute {
            stmt: 1,
            params: vec![cutover_workload::Param::from_plain(&serde_json::json!(8))],
        },
    ));
    write(record(
        1,
        &mut ts,
        Command::Execute {
            stmt: 7,
            params: vec![cutover_workload::Param::from_plain(&serde_json::json!(9))],
        },
    ));
    write(record(1, &mut ts, Command::Quit));

    // Session 2: a reset and a change of user drop the session's READ ONLY set-up.
    write(record(2, &mut ts, Command::Connect));
    write(record(2, &mut ts, query("SELECT v FROM t WHERE id = 11")));
    write(record(2, &mut ts, Command::Reset));
    write(record(2, &mut ts, query("SELECT v FROM t WHERE id = 12")));
    write(record(2, &mut ts, query("DELETE FROM t WHERE id = 10")));
    write(record(2, &mut ts, Command::ChangeUser));
    write(record(2, &mut ts, query("SELECT v FROM t WHERE id = 14")));
    write(record(2, &mut ts, query("UPDATE t SET v = 0")));
    write(record(2, &mut ts, Command::Quit));
    w.finish().unwrap();
    // Statements (queries and executes) that must not be sent.
    // All of session 1's but its three reads and the COMMIT, its two executes, two of
    // session 2.
    let not_sent = reads_then_writes.len() - 4 + 2 + 2;
    (path, not_sent)
}

/// Statements that change data or take a lock (or switch the session to read-write), by
/// what they must contain: none of these may reach either server, not even prepared.
const FORBIDDEN: &[&str] = &[
    "delete",
    "update t",
    "insert",
    "bump",
    "nextval",
    "next value",
    "setval",
    "get_lock",
    "outfile",
    "dumpfile",
    "into @",
    "for update",
    "for share",
    "share mode",
    "read write",
    "tx_read_only = 0",
    "transaction_read_only=off",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sends_no_write_and_takes_no_lock() {
    let sb = sandbox();
    let ports = [sb.source.port, sb.target.port];
    let files: Vec<PathBuf> = (0..4)
        .map(|i| sb.dir.join(format!("ro-out-{i}.txt")))
        .collect();
    for port in ports {
        let mut c = conn_at(port).await;
        for sql in [
            "DROP DATABASE IF EXISTS ro",
            "CREATE DATABASE ro",
            "USE ro",
            "CREATE TABLE ro.t (id INT PRIMARY KEY, v INT)",
            "INSERT INTO ro.t SELECT seq, seq * 10 FROM seq_1_to_30",
            "CREATE TABLE ro.audit (id INT AUTO_INCREMENT PRIMARY KEY)",
            "CREATE SEQUENCE ro.s",
            "CREATE FUNCTION ro.bump() RETURNS INT DETERMINISTIC MODIFIES SQL DATA \
             BEGIN INSERT INTO ro.audit VALUES (NULL); UPDATE ro.t SET v = v + 1; RETURN 1; END",
        ] {
            c.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        // What the replay sent is told from a clean log.
        c.query_drop("SET GLOBAL general_log = OFF").await.unwrap();
        c.query_drop("TRUNCATE TABLE mysql.general_log")
            .await
            .unwrap();
        c.query_drop("SET GLOBAL general_log = ON").await.unwrap();
        let _ = c.disconnect().await;
    }
    let before = [state(ports[0]).await, state(ports[1]).await];

    let dir = tempfile::tempdir().unwrap();
    let (path, not_sent) = workload(dir.path(), &files);
    let dsn = |port: u16| format!("mysql://{REPLAYER}@127.0.0.1:{port}/ro");
    let r = run(cutover()
        .arg("replay")
        .arg(&path)
        .args(["--target", &dsn(sb.target.port)])
        .args(["--baseline", &dsn(sb.source.port)])
        .args(["--read-only", "--speed", "max", "--format", "json"]));
    assert!(r.code == 0 || r.code == 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);

    let mut failures = Vec::new();
    // Nothing changed on either server, and no file was written.
    let after = [state(ports[0]).await, state(ports[1]).await];
    if after != before {
        failures.push(format!("state changed: {before:?} -> {after:?}"));
    }
    for f in &files {
        if f.exists() {
            failures.push(format!("{} was written", f.display()));
        }
    }
    for (side, port) in [("baseline", ports[0]), ("target", ports[1])] {
        let log = general_log(port, REPLAYER).await;
        if std::env::var_os("CUTOVER_TEST_SHOW_LOG").is_some() {
            eprintln!("{side}: {log:#?}");
        }
        assert!(
            log.iter().any(|(_, c, _)| c == "Query"),
            "{side}: no statement of the replay in the general log"
        );
        let queries: Vec<String> = log
            .iter()
            .filter(|(_, c, _)| c == "Query" || c == "Execute" || c == "Prepare")
            .map(|(_, _, a)| a.to_ascii_lowercase())
            .collect();
        // No statement that changes data or takes a lock was sent.
        for q in &queries {
            if let Some(bad) = FORBIDDEN.iter().find(|f| q.contains(*f)) {
                failures.push(format!("{side}: sent `{q}` ({bad})"));
            }
        }
        // The reads were sent; the locking reads without their lock.
        for read in [
            "select v from t where id = 1",
            "select 13",
            "select v from t where id = 5",
            "select v from t where id = 6",
            "select v from t where id = 7",
            "select v from t where id = 11",
            "select v from t where id = 12",
            "select v from t where id = 14",
        ] {
            if !queries.iter().any(|q| q.trim() == read) {
                failures.push(format!("{side}: `{read}` was not sent"));
            }
        }
        // The session guard is applied again after the reset and after the change of user
        // (which the general log does not show): session 2's reads before and after them are
        // `id = 11`, `id = 12` and `id = 14`, and a `SET SESSION TRANSACTION READ ONLY` must
        // come between each two, on the same connection.
        let at = |id: u32| {
            log.iter().position(|(_, c, a)| {
                c == "Query" && a == &format!("SELECT v FROM t WHERE id = {id}")
            })
        };
        if let (Some(a), Some(b), Some(c)) = (at(11), at(12), at(14)) {
            let thread = log[b].0;
            for (from, to, what) in [(a, b, "reset"), (b, c, "change of user")] {
                let guarded = log[from..to].iter().any(|(t, c, q)| {
                    *t == thread
                        && c == "Query"
                        && q.eq_ignore_ascii_case("SET SESSION TRANSACTION READ ONLY")
                });
                if !guarded {
                    failures.push(format!(
                        "{side}: no READ ONLY guard on connection {thread} after the {what}"
                    ));
                }
            }
        }
    }
    // The statements not sent are counted: writes as not sent under --read-only, the execute
    // whose prepare is not in the recording as not compared (prepare missing).
    let v = r.json();
    let skipped =
        (v["skipped"].as_u64().unwrap_or(0) + v["not_compared"].as_u64().unwrap_or(0)) as usize;
    if skipped < not_sent {
        failures.push(format!(
            "{skipped} statements counted as not sent, {not_sent} expected"
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", r.stdout);
}
