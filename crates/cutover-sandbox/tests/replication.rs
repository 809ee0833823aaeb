//! The target as a replica of the source.

use std::time::Duration;

use cutover_sandbox::{ReplicationError, Sandbox, SandboxError, Settings};

const DEADLINE: Duration = Duration::from_secs(60);

fn count(sb_side: &cutover_sandbox::Server, sql: &str) -> String {
    let rows = sb_side
        .sql(sql)
        .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", sb_side.role));
    rows.first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default()
}

#[test]
fn replication_carries_logged_changes_only() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}"));

    // Written before replication starts: never replayed on the target.
    sb.source
        .sql("CREATE DATABASE before_repl")
        .expect("create before");

    // Not a replica yet.
    match sb.wait_replica_caught_up(Duration::from_secs(1)) {
        Err(SandboxError::Replication(ReplicationError::NotAReplica)) => {}
        other => panic!("expected a replication error, got {other:?}"),
    }

    sb.start_replication().expect("start replication");
    let status = sb.target.sql("SHOW SLAVE STATUS").expect("status");
    assert_eq!(status.len(), 1);

    sb.source
        .sql(
            "CREATE DATABASE repl; \
             CREATE TABLE repl.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO repl.t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        )
        .expect("source writes");
    sb.wait_replica_caught_up(DEADLINE).expect("caught up");
    assert_eq!(count(&sb.target, "SELECT COUNT(*) FROM repl.t"), "3");
    assert_eq!(
        sb.target
            .sql("SELECT v FROM repl.t WHERE id = 2")
            .expect("read"),
        vec![vec!["two".to_string()]]
    );
    assert_eq!(
        count(
            &sb.target,
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'before_repl'"
        ),
        "0"
    );

    // A lost change: not logged, so it never reaches the target …
    sb.source
        .sql(
            "SET SESSION sql_log_bin = 0; \
             UPDATE repl.t SET v = 'lost' WHERE id = 1; \
             INSERT INTO repl.t VALUES (4, 'lost')",
        )
        .expect("unlogged writes");
    // … while a logged change made after it does.
    sb.source
        .sql("INSERT INTO repl.t VALUES (5, 'five')")
        .expect("logged write");
    sb.wait_replica_caught_up(DEADLINE).expect("caught up");
    assert_eq!(count(&sb.source, "SELECT COUNT(*) FROM repl.t"), "5");
    assert_eq!(count(&sb.target, "SELECT COUNT(*) FROM repl.t"), "4");
    assert_eq!(
        count(&sb.target, "SELECT v FROM repl.t WHERE id = 1"),
        "one"
    );
    assert_eq!(
        count(&sb.target, "SELECT COUNT(*) FROM repl.t WHERE id = 4"),
        "0"
    );

    // Stopped: the target stays configured as a replica, with no lag known.
    sb.stop_replication().expect("stop");
    let lag = sb
        .target
        .sql("SHOW SLAVE STATUS")
        .expect("status after stop");
    assert_eq!(lag.len(), 1);
    match sb.wait_replica_caught_up(Duration::from_secs(1)) {
        Err(SandboxError::Replication(e @ ReplicationError::NotRunning { .. })) => {
            assert!(e.to_string().contains("not running"), "{e}")
        }
        other => panic!("expected a replication error, got {other:?}"),
    }

    // And it can start again, from the source's position at that moment.
    sb.source
        .sql("INSERT INTO repl.t VALUES (6, 'while stopped')")
        .expect("write while stopped");
    sb.start_replication().expect("restart replication");
    sb.source
        .sql("INSERT INTO repl.t VALUES (7, 'seven')")
        .expect("write after restart");
    sb.wait_replica_caught_up(DEADLINE)
        .expect("caught up again");
    assert_eq!(
        count(&sb.target, "SELECT COUNT(*) FROM repl.t WHERE id = 7"),
        "1"
    );
    assert_eq!(
        count(&sb.target, "SELECT COUNT(*) FROM repl.t WHERE id = 6"),
        "0"
    );
}

#[test]
fn sql_errors_are_reported() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    match sb.source.sql("SELECT * FROM no_such_db.t") {
        Err(SandboxError::Sql { role, message }) => {
            assert_eq!(role, "source");
            assert!(message.contains("no_such_db"), "{message}");
        }
        other => panic!("expected an SQL error, got {other:?}"),
    }
    assert_eq!(
        sb.source.sql("SELECT NULL, 'a\tb'").expect("select"),
        vec![vec!["NULL".to_string(), "a\tb".to_string()]]
    );
}
