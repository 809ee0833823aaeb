use super::*;
use crate::profile::TargetFlavor;
use crate::Severity;

struct W {
    records: Vec<Record>,
    ts: i64,
}

impl W {
    fn new() -> W {
        W {
            records: Vec::new(),
            ts: 1_700_000_000_000_000,
        }
    }
    fn push(&mut self, session: u64, command: Command) -> &mut W {
        self.ts += 1_000;
        self.records.push(Record {
            session,
            ts_us: self.ts,
            db: Some("shop".into()),
            user: None,
            command,
            response: None,
        });
        self
    }
    fn q(&mut self, session: u64, sql: &str) -> &mut W {
        self.push(session, Command::Query { sql: sql.into() })
    }
    fn run(&self, target: &Profile) -> (Vec<Finding>, WorkloadSummary) {
        let mut a = Analyzer::new(target, false, &WorkloadOptions::default());
        for r in &self.records {
            a.record(r);
        }
        let mut out = Vec::new();
        let s = a.finish(&mut out);
        (out, s)
    }
}

fn tidb() -> Profile {
    Profile::assumed(TargetFlavor::TiDb)
}

fn rules(f: &[Finding]) -> Vec<&str> {
    let mut r: Vec<&str> = f.iter().map(|f| f.rule).collect();
    r.sort();
    r
}

#[test]
fn a_range_lock_then_an_insert_in_one_transaction() {
    let mut w = W::new();
    w.q(1, "BEGIN")
        .q(
            1,
            "SELECT * FROM slots WHERE day BETWEEN 1 AND 7 FOR UPDATE",
        )
        .q(1, "INSERT INTO slots (day) VALUES (3)")
        .q(1, "COMMIT")
        // Not in a transaction: the insert is another statement's business.
        .q(2, "SELECT * FROM slots WHERE day > 3 FOR UPDATE")
        .q(2, "INSERT INTO slots (day) VALUES (4)")
        // A key lock then an insert: no gap involved.
        .q(3, "BEGIN")
        .q(3, "SELECT * FROM slots WHERE id = 5 FOR UPDATE")
        .q(3, "INSERT INTO slots (day) VALUES (5)")
        .q(3, "COMMIT");
    let (f, s) = w.run(&tidb());
    assert_eq!(
        rules(&f),
        vec![
            "workload.autocommit_for_update",
            "workload.range_lock_insert"
        ]
    );
    let r = f
        .iter()
        .find(|f| f.rule == "workload.range_lock_insert")
        .unwrap();
    assert_eq!(r.severity, Severity::Error);
    let e = r.evidence.as_ref().unwrap();
    assert_eq!((e.statements, e.sessions), (1, 1));
    assert_eq!(e.examples[0].session, 1);
    assert!(e.examples[0].sql.contains("BETWEEN"), "{e:?}");
    assert_eq!(
        e.class,
        "select * from slots where day between ? and ? for update"
    );
    assert_eq!(s.transactions, 2);
    // On MariaDB the gap lock holds: nothing to say.
    let (f, _) = w.run(&Profile::assumed(TargetFlavor::MariaDb));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn autocommit_off_opens_a_transaction_and_ddl_commits_it() {
    let mut w = W::new();
    w.q(1, "SET autocommit = 0")
        .q(1, "SELECT * FROM t WHERE a < 3 FOR UPDATE")
        .q(1, "INSERT INTO t VALUES (1)")
        .q(1, "COMMIT")
        // After the implicit commit of a DDL, the insert is in a new transaction.
        .q(1, "SELECT * FROM t WHERE a < 3 FOR UPDATE")
        .q(1, "ALTER TABLE t ADD COLUMN b INT")
        .q(1, "INSERT INTO t VALUES (2)");
    let (f, _) = w.run(&tidb());
    assert_eq!(rules(&f), vec!["workload.range_lock_insert"]);
    assert_eq!(f[0].evidence.as_ref().unwrap().statements, 1);
}

#[test]
fn a_locking_read_in_an_optimistic_transaction_cannot_be_retried() {
    let mut w = W::new();
    // Optimistic by its BEGIN, and by the session's mode.
    w.q(1, "BEGIN OPTIMISTIC")
        .q(1, "SELECT bal FROM acct WHERE id = 1 FOR UPDATE")
        .q(1, "UPDATE acct SET bal = bal - 1 WHERE id = 1")
        .q(1, "COMMIT")
        .q(2, "SET SESSION tidb_txn_mode = 'optimistic'")
        .q(2, "BEGIN")
        .q(2, "SELECT bal FROM acct WHERE id = 2 FOR UPDATE")
        .q(2, "COMMIT")
        // BEGIN PESSIMISTIC wins over the session's mode; plain reads take no lock.
        .q(2, "BEGIN PESSIMISTIC")
        .q(2, "SELECT bal FROM acct WHERE id = 3 FOR UPDATE")
        .q(2, "COMMIT")
        .q(2, "BEGIN")
        .q(2, "SELECT bal FROM acct WHERE id = 4")
        .q(2, "COMMIT")
        // The session back on the cluster's mode (pessimistic by default).
        .q(2, "SET tidb_txn_mode = ''")
        .q(2, "BEGIN")
        .q(2, "SELECT bal FROM acct WHERE id = 5 FOR UPDATE")
        .q(2, "COMMIT")
        .q(3, "BEGIN")
        .q(3, "SELECT bal FROM acct WHERE id = 6 FOR UPDATE")
        .q(3, "COMMIT");
    let (f, _) = w.run(&tidb());
    assert_eq!(rules(&f), vec!["workload.optimistic_for_update"]);
    let e = f[0].evidence.as_ref().unwrap();
    assert_eq!((e.statements, e.sessions), (2, 2));
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].message.contains("8002"), "{}", f[0].message);
    // A cluster whose tidb_txn_mode is optimistic: every plain BEGIN is optimistic
    // (sessions 2's reset one and 3's), but not BEGIN PESSIMISTIC.
    let mut optimistic = tidb();
    optimistic.optimistic = true;
    let (f, _) = w.run(&optimistic);
    let e = f[0].evidence.as_ref().unwrap();
    assert_eq!((e.statements, e.sessions), (4, 3));
    // MariaDB and MySQL have no optimistic transactions.
    let (f, _) = w.run(&Profile::assumed(TargetFlavor::MySql));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn a_ddl_across_other_sessions_transactions() {
    let mut w = W::new();
    w.q(1, "BEGIN")
        .q(1, "UPDATE t SET v = 1 WHERE id = 1")
        .q(2, "BEGIN")
        .q(2, "UPDATE t SET v = 2 WHERE id = 2")
        .q(3, "CREATE TABLE other (a INT)")
        .q(1, "COMMIT")
        .q(2, "ROLLBACK")
        .q(4, "BEGIN")
        .q(4, "UPDATE t SET v = 3 WHERE id = 3")
        .q(4, "COMMIT");
    let mut old = tidb();
    old.version = Some((6, 1, 0));
    let (f, _) = w.run(&old);
    assert_eq!(rules(&f), vec!["workload.ddl_during_transactions"]);
    let e = f[0].evidence.as_ref().unwrap();
    // Session 1 committed across the DDL; 2 rolled back; 4 began after it.
    assert_eq!((e.statements, e.sessions), (1, 1));
    assert_eq!(e.class, "create table other (a int)");
    assert_eq!(f[0].severity, Severity::Error);
    let (f, _) = w.run(&tidb());
    assert_eq!(f[0].severity, Severity::Info);
}

#[test]
fn statements_tidb_refuses_or_runs_differently() {
    let mut w = W::new();
    for s in [
        "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE",
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10",
        "START TRANSACTION READ ONLY",
        "COMMIT",
        "SET SESSION TRANSACTION READ ONLY",
        "SET SESSION sql_auto_is_null = 1",
        "CALL refresh_totals(1)",
        "XA START 'x1'",
        "SELECT * FROM jobs WHERE done = 0 LIMIT 1 FOR UPDATE SKIP LOCKED",
        "SELECT ST_Distance(POINT(0, 0), POINT(1, 1))",
        "SELECT * FROM docs WHERE MATCH (body) AGAINST ('tidb')",
        "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t",
        "SELECT GET_LOCK('job', 0)",
    ] {
        w.q(7, s);
    }
    let (f, _) = w.run(&tidb());
    let got = rules(&f);
    for r in [
        "workload.lock_in_share_mode",
        "workload.sql_calc_found_rows",
        "workload.read_only_transaction",
        "workload.read_only_variable",
        "workload.call",
        "workload.xa",
        "workload.skip_locked",
        "workload.spatial",
        "workload.fulltext",
        "workload.load_data",
        "workload.get_lock",
    ] {
        assert!(got.contains(&r), "{r} missing from {got:?}");
    }
    let ro = f
        .iter()
        .filter(|f| f.rule == "workload.read_only_transaction")
        .count();
    assert_eq!(ro, 2, "two classes: START … READ ONLY and SET TRANSACTION");
    let gl = f.iter().find(|f| f.rule == "workload.get_lock").unwrap();
    assert!(gl.message.contains("timeout 0 s"), "{}", gl.message);
    for x in &f {
        assert!(x.fix.is_some() && x.evidence.is_some(), "{x:?}");
    }
    // A MySQL 8.0 target has all of it but SQL_CALC_FOUND_ROWS's deprecation.
    let (f, _) = w.run(&Profile::assumed(TargetFlavor::MySql));
    assert_eq!(rules(&f), vec!["workload.sql_calc_found_rows"]);
    assert_eq!(f[0].severity, Severity::Info);
}

#[test]
fn prepare_close_per_execute_is_churn_and_a_cached_statement_is_not() {
    let mut w = W::new();
    for i in 0..10u32 {
        w.push(
            1,
            Command::Prepare {
                stmt: i + 1,
                sql: "SELECT v FROM t WHERE id = ?".into(),
            },
        )
        .push(
            1,
            Command::Execute {
                stmt: i + 1,
                params: vec![cutover_workload::Param::from_plain(&serde_json::json!(i))],
            },
        )
        .push(1, Command::Close { stmt: i + 1 });
    }
    w.push(
        2,
        Command::Prepare {
            stmt: 1,
            sql: "SELECT w FROM t WHERE id = ?".into(),
        },
    );
    for i in 0..50 {
        w.push(
            2,
            Command::Execute {
                stmt: 1,
                params: vec![cutover_workload::Param::from_plain(&serde_json::json!(i))],
            },
        );
    }
    // An execute whose prepare came before the recording.
    w.push(
        3,
        Command::Execute {
            stmt: 9,
            params: vec![],
        },
    );
    let (f, s) = w.run(&tidb());
    assert_eq!(rules(&f), vec!["workload.prepared_churn"]);
    assert!(
        f[0].message
            .starts_with("10 prepares and 10 closes for 10 executes"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].object.as_deref(), Some("select v from t where id = ?"));
    assert_eq!(s.unknown_executes, 1);
    assert_eq!(s.statements, 60);
}

#[test]
fn hot_rows_are_keys_two_sessions_write_within_the_window() {
    let mut w = W::new();
    w.push(
        1,
        Command::Prepare {
            stmt: 1,
            sql: "UPDATE stock SET n = n - 1 WHERE sku = ?".into(),
        },
    );
    w.push(
        2,
        Command::Prepare {
            stmt: 1,
            sql: "UPDATE stock SET n = n - 1 WHERE sku = ?".into(),
        },
    );
    for _ in 0..4 {
        w.push(
            1,
            Command::Execute {
                stmt: 1,
                params: vec![cutover_workload::Param::from_plain(&serde_json::json!(
                    "A-1"
                ))],
            },
        );
        w.push(
            2,
            Command::Execute {
                stmt: 1,
                params: vec![cutover_workload::Param::from_plain(&serde_json::json!(
                    "A-1"
                ))],
            },
        );
    }
    // Text keys too; one session alone is no conflict; another key is no conflict.
    w.q(3, "UPDATE stock SET n = 0 WHERE sku = 'B-2'")
        .q(3, "UPDATE stock SET n = 0 WHERE sku = 'B-2'")
        .q(4, "DELETE FROM stock WHERE sku = 'C-3'")
        .q(5, "UPDATE stock SET n = 0 WHERE sku = 'B-2'");
    // Far apart in time: no conflict.
    w.ts += 5_000_000;
    w.q(6, "UPDATE stock SET n = 0 WHERE sku = 'C-3'");
    let (f, _) = w.run(&tidb());
    assert_eq!(rules(&f), vec!["workload.hot_rows"]);
    let e = f[0].evidence.as_ref().unwrap();
    // 7 alternations; B-2: 1.
    assert_eq!(e.statements, 8);
    assert_eq!(e.sessions, 4);
    assert_eq!(f[0].object.as_deref(), Some("stock"));
    assert!(
        f[0].message.contains("sku=A-1 (7 conflicts"),
        "{}",
        f[0].message
    );
    // Redacted: no values, no hot rows.
    let target = tidb();
    let mut a = Analyzer::new(&target, true, &WorkloadOptions::default());
    for r in &w.records {
        a.record(r);
    }
    let mut out = Vec::new();
    a.finish(&mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_redacted_workload_yields_every_rule_that_needs_no_value() {
    let statements = [
        "BEGIN",
        "SELECT * FROM slots WHERE day BETWEEN 1 AND 7 FOR UPDATE",
        "INSERT INTO slots (day) VALUES (3)",
        "COMMIT",
        "SELECT * FROM t WHERE id = 1 FOR UPDATE",
        "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE",
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10",
        "START TRANSACTION READ ONLY",
        "COMMIT",
        "SET SESSION sql_auto_is_null = 1",
        "CALL p(1)",
        "XA START 'x'",
        "SELECT * FROM jobs LIMIT 1 FOR UPDATE SKIP LOCKED",
        "SELECT ST_X(POINT(1, 2))",
        "SELECT * FROM d WHERE MATCH (b) AGAINST ('x')",
        "LOAD DATA LOCAL INFILE 'x' INTO TABLE t",
        "SELECT GET_LOCK('a', 10)",
    ];
    let mut plain = W::new();
    let mut redacted = W::new();
    for s in statements {
        plain.q(1, s);
        redacted.q(1, &cutover_workload::fingerprint::redact(s));
    }
    let (a, _) = plain.run(&tidb());
    let (b, _) = redacted.run(&tidb());
    assert_eq!(rules(&a), rules(&b));
    assert_eq!(rules(&a).len(), 14, "{:?}", rules(&a));
}

#[test]
fn an_ordinary_workload_has_no_finding() {
    let mut w = W::new();
    for s in 1..=3u64 {
        w.q(s, "SET NAMES utf8mb4")
            .q(s, "BEGIN")
            .q(s, &format!("SELECT * FROM acct WHERE id = {s} FOR UPDATE"))
            .q(s, &format!("UPDATE acct SET bal = bal - 1 WHERE id = {s}"))
            .q(s, "INSERT INTO ledger (acct, amount) VALUES (1, -1)")
            .q(s, "COMMIT")
            .q(s, "SELECT COUNT(*) FROM ledger WHERE acct > 0")
            .q(s, "SET SESSION TRANSACTION READ WRITE")
            .q(s, "SET GLOBAL read_only = OFF")
            .push(s, Command::Quit);
    }
    let (f, s) = w.run(&tidb());
    assert!(f.is_empty(), "{f:#?}");
    assert_eq!(s.sessions, 3);
    assert_eq!(s.transactions, 3);
}
