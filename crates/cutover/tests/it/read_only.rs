//! Read-only by default, proved from the servers' side: `diff` (every strategy, with
//! `--recheck`, a checkpoint and fix SQL to a file), `check` (with `--transactions`, reading
//! the binlog) and `verify` (following the binlog while rows change) run against a pair that
//! logs every statement to `mysql.general_log`, as a user allowed to do anything. Every
//! statement they sent must be a read or a session setting of their own, every connection
//! that read a table must have made itself `READ ONLY` first, and no table may change.
//! (`replay --read-only` has its own, larger proof: `replay_read_only.rs`; the writers the
//! user asks for by name are listed in ARCHITECTURE.md.)

use std::sync::OnceLock;
use std::time::Duration;

use cutover_sandbox::{Sandbox, Settings};
use mysql_async::prelude::Queryable;

use crate::harness::{conn_at, cutover, general_log, run};

/// The commands' login on both servers: their statements are told apart in the general
/// logs by this user, which holds every privilege (so only the commands themselves keep the
/// servers unchanged).
const READER: &str = "ro_reader";

fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| {
        let sb = Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}"));
        for s in [&sb.source, &sb.target] {
            s.sql(&format!(
                "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON; \
                 CREATE USER IF NOT EXISTS '{READER}'@'%'; \
                 GRANT ALL ON *.* TO '{READER}'@'%' WITH GRANT OPTION"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        }
        sb
    })
}

fn dsn(port: u16) -> String {
    format!("mysql://{READER}@127.0.0.1:{port}")
}

async fn sql(port: u16, text: &str) {
    let mut c = conn_at(port).await;
    c.query_drop(text)
        .await
        .unwrap_or_else(|e| panic!("{port}: {e}\n{text}"));
    let _ = c.disconnect().await;
}

/// Every table's checksum and the list of the test's tables: what must not change.
async fn state(port: u16) -> Vec<String> {
    let mut c = conn_at(port).await;
    let tables: Vec<(String, String)> = c
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'ro1' ORDER BY 1, 2",
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for (db, t) in tables {
        let sum: Vec<(String, Option<i64>)> = c
            .query(format!("CHECKSUM TABLE `{db}`.`{t}` EXTENDED"))
            .await
            .unwrap();
        out.push(format!("{db}.{t} {sum:?}"));
    }
    let _ = c.disconnect().await;
    out
}

/// `(thread, command, argument)` of every general-log entry of the commands' connections.
async fn sent(port: u16) -> Vec<(u64, String, String)> {
    general_log(port, READER).await
}

/// Whether a statement text is a read or a setting of the session that sent it. An
/// allow-list: anything not recognised here fails the test.
fn is_read(text: &str) -> bool {
    let t = text.trim_start().to_ascii_uppercase();
    let t = t.trim_start_matches('(');
    let first = t.split_whitespace().next().unwrap_or("");
    match first {
        "SELECT" | "SHOW" | "DESCRIBE" | "EXPLAIN" | "COMMIT" | "ROLLBACK" | "USE" => {
            !t.contains(" INTO ") && !t.contains("FOR UPDATE") && !t.contains("LOCK IN SHARE")
        }
        // Session variables only (`SET GLOBAL` or `SET PASSWORD` would change the server).
        "SET" => {
            !t.contains("GLOBAL")
                && !t.contains("PASSWORD")
                && !t.contains("PERSIST")
                && !t.contains("@@GLOBAL")
                && !t.contains("READ WRITE")
        }
        "START" => t.contains("READ ONLY") || !t.contains("READ WRITE"),
        "BEGIN" => false,
        // Ending its own queries on Ctrl-C.
        "KILL" => t.starts_with("KILL QUERY"),
        _ => false,
    }
}

/// Commands of the general log that carry no statement, or only the binlog reader's.
fn is_quiet_command(command: &str) -> bool {
    matches!(
        command,
        "Connect"
            | "Quit"
            | "Init DB"
            | "Ping"
            | "Close stmt"
            | "Reset stmt"
            | "Fetch"
            | "Statistics"
            | "Register Slave"
            | "Binlog Dump"
            | "Binlog Dump GTID"
            | "Field List"
    )
}

/// Checks everything the commands sent to one server.
fn assert_only_reads(side: &str, log: &[(u64, String, String)]) {
    assert!(
        log.iter().any(|(_, c, _)| c == "Query" || c == "Execute"),
        "{side}: the general log shows nothing of the commands: the test would prove nothing"
    );
    let mut read_only = std::collections::HashSet::new();
    for (thread, command, text) in log {
        if is_quiet_command(command) {
            continue;
        }
        assert!(
            matches!(command.as_str(), "Query" | "Prepare" | "Execute"),
            "{side}: thread {thread} sent a `{command}`: {text}"
        );
        assert!(
            is_read(text),
            "{side}: thread {thread} sent something that is not a read: {text}"
        );
        let upper = text.to_ascii_uppercase();
        if upper.contains("TRANSACTION READ ONLY")
            || (upper.contains("START TRANSACTION") && upper.contains("READ ONLY"))
        {
            read_only.insert(*thread);
        }
        // A read of a user table (not of the server's catalog or variables) comes from a
        // session that made itself READ ONLY first.
        let reads_data = upper.starts_with("SELECT")
            && upper.contains(" FROM ")
            && upper.contains("`RO")
            && !upper.contains("INFORMATION_SCHEMA");
        if reads_data {
            assert!(
                read_only.contains(thread),
                "{side}: thread {thread} read a table before its session was READ ONLY: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_check_and_verify_send_only_reads_from_read_only_sessions() {
    let sb = sandbox();
    let (s, t) = (sb.source.port, sb.target.port);
    let schema = "DROP DATABASE IF EXISTS ro1; CREATE DATABASE ro1; USE ro1; \
        CREATE TABLE ro1.ints (id INT PRIMARY KEY, v VARCHAR(20), b BLOB); \
        CREATE TABLE ro1.texts (k VARCHAR(20) PRIMARY KEY, v INT) CHARSET latin1; \
        CREATE TABLE ro1.pairs (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b)); \
        CREATE TABLE ro1.bag (v INT, w VARCHAR(10)); \
        INSERT INTO ro1.ints SELECT seq, CONCAT('v', seq), UNHEX('FF00') FROM seq_1_to_3000; \
        INSERT INTO ro1.texts SELECT CONCAT('k', seq), seq FROM seq_1_to_500; \
        INSERT INTO ro1.pairs SELECT seq % 7, CONCAT('b', seq), seq FROM seq_1_to_700; \
        INSERT INTO ro1.bag SELECT seq % 5, 'x' FROM seq_1_to_50";
    sql(s, schema).await;
    sql(t, schema).await;
    sql(
        t,
        "UPDATE ro1.ints SET v = 'changed' WHERE id = 1700; DELETE FROM ro1.texts WHERE k = 'k250'; \
         UPDATE ro1.pairs SET v = -1 WHERE a = 3 AND b = 'b10'; INSERT INTO ro1.bag VALUES (9, 'y')",
    )
    .await;
    let before = (state(s).await, state(t).await);

    let dir = tempfile::tempdir().unwrap();
    let fix = dir.path().join("fix.sql");
    let checkpoint = dir.path().join("checkpoint");
    // diff: every strategy (integer ranges, text ranges, hash buckets, multiset), the
    // re-reads of --recheck and fix SQL to a file; then again with a checkpoint.
    let base = [
        "diff",
        "--source",
        &dsn(s),
        "--target",
        &dsn(t),
        "--tables",
        "ro1.*",
    ];
    let r = run(cutover().args(base).args([
        "--recheck",
        "100ms",
        "--recheck-rounds",
        "1",
        "--fix-sql",
        fix.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(
        r.code, 1,
        "diff finds the planted differences: {}",
        r.stderr
    );
    let r = run(cutover().args(base).args([
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 1, "diff with a checkpoint: {}", r.stderr);
    // check against the target, reading the binlog's transactions too.
    let r = run(cutover().args([
        "check",
        "--source",
        &dsn(s),
        "--target",
        &dsn(t),
        "--databases",
        "ro1",
        "--transactions",
        "1h",
        "--format",
        "json",
    ]));
    assert!(r.code == 0 || r.code == 1, "check ran: {}", r.stderr);
    // verify, while rows change on the source (the target replicates nothing: the changes
    // stay different, which verify reads from both sides).
    let child = cutover()
        .args([
            "verify",
            "--source",
            &dsn(s),
            "--target",
            &dsn(t),
            "--tables",
            "ro1.*",
            "--grace",
            "1s",
            "--for",
            "6s",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::harness::wait_for(
        "verify reading the binlog",
        Duration::from_secs(60),
        || async {
            sent(s)
                .await
                .iter()
                .any(|(_, c, _)| c.starts_with("Binlog Dump"))
        },
    )
    .await;
    sql(
        s,
        "UPDATE ro1.ints SET v = 'moved' WHERE id BETWEEN 10 AND 20",
    )
    .await;
    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "verify ran: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_only_reads("source", &sent(s).await);
    assert_only_reads("target", &sent(t).await);
    // Nothing changed but what the test itself wrote on the source.
    sql(
        s,
        "UPDATE ro1.ints SET v = CONCAT('v', id) WHERE id BETWEEN 10 AND 20",
    )
    .await;
    assert_eq!((state(s).await, state(t).await), before);
}

/// `check` reads the catalog one view at a time for all selected tables, never table by
/// table: sixty tables cost the same statements as three.
#[tokio::test(flavor = "multi_thread")]
async fn check_sends_as_many_queries_for_sixty_tables_as_for_three() {
    let sb = sandbox();
    let s = sb.source.port;
    let mut ddl = String::from("DROP DATABASE IF EXISTS q3; CREATE DATABASE q3; DROP DATABASE IF EXISTS q60; CREATE DATABASE q60;");
    for (db, n) in [("q3", 3), ("q60", 60)] {
        for i in 0..n {
            ddl.push_str(&format!(
                " CREATE TABLE {db}.t{i} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10) COLLATE utf8mb4_general_ci, \
                 u BIGINT UNSIGNED, KEY (v)); INSERT INTO {db}.t{i} (v, u) VALUES ('a', {i});"
            ));
        }
    }
    for user in ["ro_count3", "ro_count60"] {
        ddl.push_str(&format!(
            " CREATE USER IF NOT EXISTS '{user}'@'%'; GRANT ALL ON *.* TO '{user}'@'%';"
        ));
    }
    sql(s, &ddl).await;
    let mut counts = Vec::new();
    for (db, user) in [("q3", "ro_count3"), ("q60", "ro_count60")] {
        let r = run(cutover().args([
            "check",
            "--source",
            &format!("mysql://{user}@127.0.0.1:{s}"),
            "--databases",
            db,
            "--format",
            "json",
        ]));
        assert!(r.code == 0 || r.code == 1, "check ran: {}", r.stderr);
        let v = r.json();
        let tables = v["tables_checked"]
            .as_u64()
            .or_else(|| v["summary"]["tables"].as_u64());
        let statements = general_log(s, user)
            .await
            .into_iter()
            .filter(|(_, c, _)| c == "Query" || c == "Execute")
            .count();
        counts.push((db, tables, statements));
    }
    assert!(
        counts[0].2 > 0,
        "the general log shows the check: {counts:?}"
    );
    assert_eq!(
        counts[0].2, counts[1].2,
        "statements sent for 3 and for 60 tables: {counts:?}"
    );
}

/// The allow-list the proof rests on refuses what writes or locks.
#[test]
fn the_read_allow_list_refuses_every_write_and_lock() {
    for write in [
        "INSERT INTO t VALUES (1)",
        "update t set v = 1",
        "DELETE FROM t",
        "REPLACE INTO t VALUES (1)",
        "CREATE TABLE t (id INT)",
        "DROP DATABASE d",
        "ALTER TABLE t ADD c INT",
        "TRUNCATE TABLE t",
        "SET GLOBAL read_only = 0",
        "SET @@global.max_connections = 1",
        "SET SESSION TRANSACTION READ WRITE",
        "START TRANSACTION READ WRITE",
        "BEGIN",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT 1 INTO @x",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "LOCK TABLES t WRITE",
        "FLUSH TABLES",
        "CALL p()",
        "KILL 12",
        "GRANT ALL ON *.* TO u",
    ] {
        assert!(!is_read(write), "{write}");
    }
    for read in [
        "SELECT COUNT(*) FROM `ro1`.`ints` WHERE `id` >= 1",
        "SHOW MASTER STATUS",
        "SET NAMES utf8mb4",
        "SET SESSION TRANSACTION READ ONLY",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "KILL QUERY 12",
        "COMMIT",
    ] {
        assert!(is_read(read), "{read}");
    }
}
