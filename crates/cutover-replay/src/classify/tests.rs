use super::*;
use proptest::prelude::*;

/// Statements `--read-only` must not send, in every form the issue names (each a
/// vector seen to write through the earlier classifier, or a variant of one).
pub const WRITES_CORPUS: &[&str] = &[
    "INSERT INTO t VALUES (1)",
    "/* select */ DELETE FROM t",
    "UPDATE t SET a = 1",
    "REPLACE INTO t VALUES (1)",
    "CREATE TABLE x (a INT)",
    "DROP TABLE t",
    "TRUNCATE TABLE t",
    "RENAME TABLE a TO b",
    "GRANT ALL ON *.* TO u",
    "this is not sql",
    "SELECT 1; DELETE FROM t",
    "SHOW TABLES; DELETE FROM t",
    "WITH x AS (SELECT 1) DELETE FROM t",
    "INSERT INTO t SELECT * FROM u",
    // Executable comments of every form.
    "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */",
    "SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */",
    "/*! DELETE FROM t */",
    "/*!50000 DELETE FROM t */",
    "/*!100000 DELETE FROM t */",
    "/*!99999 DELETE FROM t */",
    "/*M! DELETE FROM t */",
    "/*M!100100 DELETE FROM t */",
    "/*T! DELETE FROM t */",
    "/*T![auto_rand] DELETE FROM t */",
    "SELECT 1 /*!, f() */",
    "SELECT 1 /*M! ; DELETE FROM t */",
    "SELECT 1 /*T! ; UPDATE t SET a = 2 */",
    "/*!40101 SET @x = 1 */; DELETE FROM t",
    "SELECT 1 /*!99999 ' */ ; DELETE FROM t; -- ' */",
    // Quoting that reads otherwise under NO_BACKSLASH_ESCAPES.
    "SELECT 'a\\' ; DELETE FROM t; -- '",
    // INTO.
    "SELECT 1 INTO OUTFILE '/tmp/x'",
    "SELECT a FROM t INTO OUTFILE '/tmp/x'",
    "SELECT 1 INTO DUMPFILE '/tmp/x'",
    "SELECT 1 INTO @v",
    "SELECT a INTO @v FROM t",
    "SELECT * INTO t2 FROM t",
    // Stored (or unknown) functions.
    "SELECT f(1)",
    "SELECT shop.f(1)",
    "SELECT `now`()",
    "SELECT * FROM t WHERE a = f()",
    "SELECT (SELECT f())",
    "SELECT a FROM t ORDER BY f(a)",
    "SET @x = f()",
    "EXPLAIN SELECT f()",
    "SELECT * FROM f(1)",
    // Sequences.
    "SELECT NEXTVAL(s)",
    "SELECT NEXT VALUE FOR s",
    "SELECT PREVIOUS VALUE FOR s",
    "SELECT LASTVAL(s)",
    "SELECT SETVAL(s, 100)",
    "SELECT s.nextval",
    "SELECT `s`.`nextval`",
    // User locks and server files.
    "SELECT GET_LOCK('a', 0)",
    "SELECT RELEASE_LOCK('a')",
    "SELECT RELEASE_ALL_LOCKS()",
    "SELECT IS_USED_LOCK('a')",
    "SELECT LOAD_FILE('/etc/passwd')",
    "DO GET_LOCK('a', 0)",
    // The session's read-only state, isolation, globals, roles, passwords.
    "SET SESSION TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "START TRANSACTION READ WRITE",
    "START TRANSACTION READ ONLY, READ WRITE",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
    "SET SESSION tx_read_only = 0",
    "SET tx_read_only = OFF",
    "SET @@session.transaction_read_only=OFF",
    "SET @@transaction_read_only = 0",
    "SET transaction_read_only = DEFAULT",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET tx_isolation = 'READ-COMMITTED'",
    "SET GLOBAL max_connections = 10",
    "SET @@global.max_connections = 10",
    "SET GLOBAL TRANSACTION READ WRITE",
    "SET GLOBAL TRANSACTION READ ONLY",
    "SET PERSIST max_connections = 10",
    "SET @@persist.max_connections = 10",
    "SET autocommit = 1, GLOBAL read_only = 0",
    "SET PASSWORD = 'x'",
    "SET ROLE ALL",
    "SET CHARACTER SET utf8, GLOBAL read_only = 0",
    "SET CHARSET utf8; DELETE FROM t",
    "SET sql_log_bin = 0",
    "SET sql_log_off = 1",
    "SET STATEMENT max_statement_time = 1 FOR DELETE FROM t",
    // Statements that are not reads.
    "CALL p()",
    "DO 1",
    "HANDLER t OPEN",
    "LOCK TABLES t READ",
    "XA START 'x'",
    "FLUSH TABLES",
    "KILL 1",
    "INSTALL PLUGIN x SONAME 'y'",
    "CHECK TABLE t",
    "ANALYZE TABLE t",
    "OPTIMIZE TABLE t",
    "ANALYZE SELECT * FROM t",
    "EXPLAIN ANALYZE DELETE FROM t",
    "EXPLAIN DELETE FROM t",
    "LOAD DATA INFILE 'x' INTO TABLE t",
    "PREPARE s FROM 'DELETE FROM t'",
    "EXECUTE s",
    "BEGIN NOT ATOMIC DELETE FROM t; END",
    // Locking reads that cannot be sent without their lock.
    "SELECT * FROM (SELECT * FROM t FOR UPDATE) x",
    "SELECT a FROM t /*!50000 FOR UPDATE */",
    "SELECT f() FROM t FOR UPDATE",
    "SELECT * FROM t FOR UPDATE; DELETE FROM t",
    "SELECT * FROM t FOR UPDATE INTO @x",
];

/// Statements `--read-only` sends as they are: what applications and drivers send.
const READS_CORPUS: &[&str] = &[
    "SHOW TABLES",
    "DESCRIBE t",
    "EXPLAIN SELECT 1",
    "EXPLAIN SELECT * FROM t WHERE id = 1",
    "SET @x = 1",
    "SET SESSION sql_mode = ''",
    "SET autocommit = 0",
    "SET autocommit=1",
    "SET NAMES utf8mb4",
    "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
    "SET character_set_results = NULL",
    "SET sql_mode='STRICT_TRANS_TABLES'",
    "SET @@session.sql_mode = 'ANSI'",
    "SET time_zone = '+00:00'",
    "SET SESSION TRANSACTION READ ONLY",
    "SET TRANSACTION READ ONLY",
    "SET SESSION tx_read_only = 1",
    "SET @@session.transaction_read_only = ON",
    "USE shop",
    "BEGIN",
    "START TRANSACTION",
    "START TRANSACTION READ ONLY",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "ROLLBACK TO SAVEPOINT a",
    "RELEASE SAVEPOINT a",
    "/* delete */ SELECT 1",
    "/* ApplicationName=DBeaver */ SELECT 1",
    "SELECT 1 -- delete\n",
    "SELECT 1 # delete",
    "SELECT 'DELETE FROM t', '/*! DELETE */'",
    "SELECT a FROM t UNION SELECT b FROM u",
    // sysbench oltp_read_only.
    "SELECT c FROM sbtest1 WHERE id=5",
    "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 10",
    "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 10",
    "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c",
    "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c",
    // JDBC (Connector/J) and other drivers.
    "SELECT @@max_allowed_packet,@@system_time_zone,@@time_zone,@@auto_increment_increment",
    "SELECT @@session.autocommit",
    "SELECT @@session.transaction_read_only",
    "SHOW WARNINGS",
    "SHOW VARIABLES LIKE 'sql_mode'",
    "SHOW FULL PROCESSLIST",
    "SHOW CREATE TABLE t",
    "SHOW COLUMNS FROM t",
    "SELECT DATABASE()",
    "/* mysql-connector-java-8.0.33 */SELECT @@session.auto_increment_increment AS \
     auto_increment_increment, @@character_set_client AS character_set_client, \
     @@character_set_connection AS character_set_connection, @@wait_timeout AS wait_timeout",
    "SET SQL_SELECT_LIMIT=DEFAULT",
    "SET @@SQL_SELECT_LIMIT = DEFAULT",
    "SET AUTOCOMMIT = 0",
    "SET NAMES utf8mb4 COLLATE 'utf8mb4_general_ci'",
    "SET CHARACTER SET utf8",
    "SET CHARSET utf8mb4",
    "SET character_set_client = utf8mb4, character_set_results = utf8mb4",
    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')",
    "SET @@session.max_execution_time = 1000",
    "SHOW VARIABLES WHERE Variable_name = 'language' OR Variable_name = 'net_write_timeout'",
    "SHOW FULL TABLES FROM `shop` LIKE 't%'",
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop'",
    "SELECT * FROM t WHERE a = ? AND b IN (?, ?)",
    "SELECT 1 FROM DUAL",
    "SELECT CONNECTION_ID()",
    "SELECT VERSION(), CURRENT_USER(), CONNECTION_ID()",
    // Executable comments that only read.
    "SELECT /*! STRAIGHT_JOIN */ a FROM t, u",
    "SELECT 1 /*!50000 , 2 */",
    "SELECT 1 /*M!100000 , 2 */",
    "SELECT 1 /*T![clustered_index] , 2 */",
    "/*!40101 SET NAMES utf8 */",
    "/*!40101 SET character_set_client = utf8 */",
    // Built-in functions.
    "SELECT NOW(), UUID(), RAND()",
    "SELECT COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1",
    "SELECT JSON_EXTRACT(j, '$.a') FROM t",
    "SELECT CAST(a AS CHAR) FROM t",
    "SELECT CONCAT('a', b), IFNULL(c, 0), COALESCE(d, 1) FROM t",
    "SELECT DATE_FORMAT(NOW(), '%Y')",
    "SELECT COUNT(DISTINCT a) FROM t",
    "SELECT ROW_NUMBER() OVER (ORDER BY a) FROM t",
    "SELECT SLEEP(0)",
    "SELECT REPLACE(a, 'x', 'y'), INSERT(a, 1, 1, 'z') FROM t",
    "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT * FROM t LIMIT 10 OFFSET 5",
    // Backslash escapes (readings under NO_BACKSLASH_ESCAPES are syntax errors).
    "SELECT 'it\\'s'",
    "SELECT * FROM t WHERE name = 'O\\'Brien'",
    "SELECT \"a\" FROM t",
    "",
    "/* only a comment */",
];

#[test]
fn writes_are_refused() {
    let sent: Vec<String> = WRITES_CORPUS
        .iter()
        .filter_map(|sql| {
            let c = classify(sql);
            (c.refusal.is_none() || c.read_only).then(|| format!("{sql}: {c:?}"))
        })
        .collect();
    assert!(sent.is_empty(), "sent under --read-only: {sent:#?}");
}

#[test]
fn reads_are_sent() {
    let bad: Vec<String> = READS_CORPUS
        .iter()
        .filter_map(|sql| {
            let c = classify(sql);
            (c.refusal.is_some() || c.unlocked.is_some() || !c.read_only)
                .then(|| format!("{sql}: {c:?}"))
        })
        .collect();
    assert!(bad.is_empty(), "refused: {bad:#?}");
}

#[test]
fn reasons() {
    for (sql, reason) in [
        ("SELECT NEXTVAL(s)", SEQUENCE),
        ("SELECT NEXT VALUE FOR s", SEQUENCE),
        ("SELECT GET_LOCK('a', 0)", USER_LOCK),
        ("SELECT f(1)", "calls stored function f"),
        ("SELECT shop.f(1)", "calls stored function shop.f"),
        ("SET SESSION TRANSACTION READ WRITE", READ_ONLY_STATE),
        ("START TRANSACTION READ WRITE", READ_ONLY_STATE),
        ("SET SESSION tx_read_only = 0", READ_ONLY_STATE),
        ("SET @@session.transaction_read_only=OFF", READ_ONLY_STATE),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        (
            "SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */",
            "INTO OUTFILE",
        ),
        ("DELETE FROM t", WRITES),
        (
            "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */",
            WRITES,
        ),
        ("SELECT * FROM (SELECT * FROM t FOR UPDATE) x", LOCKING_READ),
        ("SELECT 1 /*! /* */ */", NOT_UNDERSTOOD),
        ("this is not sql", NOT_UNDERSTOOD),
    ] {
        let r = classify(sql).refusal.unwrap_or_default();
        assert!(r.starts_with(reason), "{sql}: {r}");
    }
}

#[test]
fn stored_functions_under_assume() {
    let rules = Rules {
        assume_functions_read_only: true,
    };
    assert_eq!(classify_with("SELECT f(1)", rules).refusal, None);
    assert_eq!(
        classify_with("SELECT shop.f(a) FROM t", rules).refusal,
        None
    );
    // Never sequences, user locks or server files.
    for sql in [
        "SELECT NEXTVAL(s)",
        "SELECT GET_LOCK('a', 0)",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT 1 INTO OUTFILE '/tmp/x'",
    ] {
        assert!(classify_with(sql, rules).refusal.is_some(), "{sql}");
    }
}

#[test]
fn locking_reads_are_sent_unlocked() {
    for (sql, unlocked) in [
        (
            "SELECT * FROM t WHERE id = 1 FOR UPDATE",
            "SELECT * FROM t WHERE id = 1",
        ),
        ("select * from t lock in share mode", "select * from t"),
        ("SELECT * FROM t FOR SHARE NOWAIT", "SELECT * FROM t"),
        ("SELECT * FROM t FOR UPDATE SKIP LOCKED", "SELECT * FROM t"),
        (
            "SELECT * FROM t FOR UPDATE OF t, `u` NOWAIT",
            "SELECT * FROM t",
        ),
        ("SELECT * FROM t FOR UPDATE WAIT 5", "SELECT * FROM t"),
        (
            "SELECT * FROM t LOCK IN SHARE MODE NOWAIT",
            "SELECT * FROM t",
        ),
        ("SELECT * FROM t FOR UPDATE;", "SELECT * FROM t;"),
        (
            "SELECT c FROM sbtest1 WHERE id = 5 FOR UPDATE /* app */",
            "SELECT c FROM sbtest1 WHERE id = 5 /* app */",
        ),
        (
            "EXPLAIN SELECT * FROM t FOR UPDATE",
            "EXPLAIN SELECT * FROM t",
        ),
    ] {
        let c = classify(sql);
        assert_eq!(c.refusal, None, "{sql}");
        assert!(c.read_only, "{sql}");
        assert_eq!(c.unlocked.as_deref(), Some(unlocked), "{sql}");
    }
}

#[test]
fn order_and_transactions_on_the_expanded_text() {
    assert!(classify("SELECT a FROM t /*!50000 ORDER BY a */").ordered);
    assert_eq!(classify("/*!40101 BEGIN */").txn, Txn::Begin);
    assert!(classify("SELECT /*M! NOW() */").nondeterministic.is_some());
    assert!(classify("SELECT /*T! RAND() */").nondeterministic.is_some());
}

/// Executable-comment openings of every form, run or skipped by some server.
const OPENINGS: &[&str] = &[
    "/*!",
    "/*! ",
    "/*!50000 ",
    "/*!99999 ",
    "/*!100000 ",
    "/*!800000 ",
    "/*M!",
    "/*M! ",
    "/*M!100000 ",
    "/*M!999999 ",
    "/*T!",
    "/*T! ",
    "/*T![auto_rand] ",
    "/*m! ",
];

/// A write of the corpus in random letter case (outside quotes, so a quoted value is
/// the same value), with random whitespace for its spaces.
fn disguised(sql: &str, upper: &[bool], ws: &[&str]) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut k = 0;
    let mut prev = '\0';
    for ch in sql.chars() {
        k += 1;
        match quote {
            Some(q) => {
                out.push(ch);
                if ch == q && prev != '\\' {
                    quote = None;
                }
            }
            None if ch == '\'' || ch == '"' || ch == '`' => {
                quote = Some(ch);
                out.push(ch);
            }
            None if ch == ' ' => out.push_str(ws[k % ws.len()]),
            None if upper[k % upper.len()] => out.push(ch.to_ascii_uppercase()),
            None => out.push(ch.to_ascii_lowercase()),
        }
        prev = ch;
    }
    out
}

proptest! {
    /// The property (ARCHITECTURE.md, replay): for every statement of the corpus of
    /// writes, in any letter case and whitespace, after or before any comment, whole in
    /// an executable comment of any form, or following a read as a second statement,
    /// `classify` refuses it: `refusal` is `Some` and no `unlocked` form is sent.
    #[test]
    fn no_write_in_any_disguise_is_sent(
        w in prop::sample::select(WRITES_CORPUS),
        upper in prop::collection::vec(any::<bool>(), 1..8),
        ws in prop::collection::vec(prop::sample::select(&[" ", "  ", "\t", "\n", " \r\n "][..]), 1..4),
        opening in prop::sample::select(OPENINGS),
        wrap in 0..5u8,
        note in "[a-zA-Z0-9 =,.;'()]{0,12}",
    ) {
        let d = disguised(w, &upper, &ws);
        let note = note.replace('\'', "");
        let sql = match wrap {
            0 => d,
            1 => format!("/* {note} */ {d} -- {note}\n"),
            // A write that has a `*/` or a quote in it may not be wrapped whole: then the
            // comment ends early or becomes ambiguous, and is refused as not understood.
            2 => format!("{opening}{d} */"),
            3 => format!("SELECT 1; {opening}{d} */"),
            _ => format!("# {note}\n{d}"),
        };
        let c = classify(&sql);
        prop_assert!(c.refusal.is_some() && !c.read_only, "sent: {:?}: {:?}", sql, c);
        prop_assert!(c.unlocked.is_none(), "sent unlocked: {:?}: {:?}", sql, c);
    }

    /// The fuzzed property: a statement assembled from random read fragments, string
    /// literals and executable-comment openings and ends, with no plain comment, with at
    /// least one write fragment inserted anywhere (so every write fragment is code, or
    /// inside an executable comment some server runs, or breaks the text), is refused.
    #[test]
    fn fuzzed_statements_with_a_write_are_refused(
        parts in prop::collection::vec(prop::sample::select(&[
            "SELECT", "1", "a", "FROM", "t", "WHERE", "=", ",", "(", ")", "'x'",
            "'it''s'", "\"y\"", "`c`", ";", " ", "\n", "UNION", "ALL", "AS", "ORDER BY a",
            "LIMIT 1", "NOW()", "/*!", "/*! ", "/*M!", "/*!50000 ", "/*M!100000 ", "/*T! ",
            "/*T![f] ", "*/", "@v", ":=",
        ][..]), 0..24),
        writes in prop::collection::vec(prop::sample::select(&[
            "DELETE FROM t", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1",
            "DROP TABLE t", "CALL p()", "INTO OUTFILE '/tmp/o'", "INTO @v", "f()",
            "NEXTVAL(s)", "NEXT VALUE FOR s", "GET_LOCK('a', 0)", "LOAD_FILE('/x')",
            "SET SESSION TRANSACTION READ WRITE", "SET tx_read_only = 0",
        ][..]), 1..3),
        at in prop::collection::vec(any::<prop::sample::Index>(), 3),
        sep in prop::collection::vec(prop::sample::select(&[" ", "", "\n"][..]), 32),
    ) {
        let mut parts: Vec<&str> = parts;
        for (i, w) in writes.iter().enumerate() {
            let pos = at[i].index(parts.len() + 1);
            parts.insert(pos, w);
        }
        let mut sql = String::new();
        for (i, p) in parts.iter().enumerate() {
            sql.push_str(p);
            sql.push_str(sep[i % sep.len()]);
        }
        let c = classify(&sql);
        prop_assert!(c.refusal.is_some(), "sent: {:?}: {:?}", sql, c);
    }

    /// Any text at all: classifying never panics, and what is sent unlocked is itself
    /// sent as it is.
    #[test]
    fn any_text(sql in "\\PC{0,80}") {
        let c = classify(&sql);
        if let Some(u) = &c.unlocked {
            let cu = classify(u);
            prop_assert!(cu.refusal.is_none() && cu.unlocked.is_none());
        }
    }
}

#[test]
fn order_and_transactions() {
    assert!(classify("SELECT a FROM t ORDER BY a").ordered);
    assert!(!classify("SELECT a FROM (SELECT a FROM t ORDER BY a) x").ordered);
    assert_eq!(classify("BEGIN").txn, Txn::Begin);
    assert_eq!(classify("START TRANSACTION").txn, Txn::Begin);
    assert_eq!(classify("COMMIT").txn, Txn::End);
    assert_eq!(classify("SELECT 1").txn, Txn::None);
}

#[test]
fn noise() {
    assert!(nondeterminism("SELECT NOW()").is_some());
    assert!(nondeterminism("select rand() from t").is_some());
    assert!(nondeterminism("INSERT INTO t VALUES (UUID())").is_some());
    assert!(nondeterminism("select * from t limit 5").is_some());
    assert!(nondeterminism("select * from t order by id limit 5").is_none());
    assert!(nondeterminism("select unix_timestamp(created) from t").is_none());
    assert!(nondeterminism("select 'now()' from t").is_none());
    assert!(nondeterminism("select * from t where id = 1").is_none());
}
