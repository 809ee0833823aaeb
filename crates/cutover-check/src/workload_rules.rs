//! The `workload.*` rules: what a statement or transaction of the application will meet on
//! the target, how bad it is there, what to change, and the documentation page each fact
//! comes from. The analysis that finds them is the `transactions` module; this module holds
//! the catalogue and turns what was counted into [`Finding`]s.

use std::collections::{HashMap, HashSet};

use crate::finding::{Evidence, Example, Finding, Fix, Severity};
use crate::profile::{Profile, TargetFlavor};

/// One workload rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadRule {
    RangeLockInsert,
    AutocommitForUpdate,
    OptimisticForUpdate,
    LockInShareMode,
    SqlCalcFoundRows,
    ReadOnlyTransaction,
    ReadOnlyVariable,
    Call,
    Xa,
    SkipLocked,
    Spatial,
    Fulltext,
    LoadData,
    GetLock,
    DdlDuringTransactions,
    PreparedChurn,
    HotRows,
}

/// The text of a rule's finding for one target.
#[derive(Clone)]
pub struct RuleText {
    pub severity: Severity,
    /// What the statements will meet, in a sentence.
    pub meaning: String,
    pub advice: String,
    pub fix: Fix,
}

const PESSIMISTIC: &str = "https://docs.pingcap.com/tidb/stable/pessimistic-transaction";
const NOOP: &str =
    "https://docs.pingcap.com/tidb/stable/system-variables#tidb_enable_noop_functions-new-in-v40";
const COMPAT: &str = "https://docs.pingcap.com/tidb/stable/mysql-compatibility";
const OPTIMISTIC: &str = "https://docs.pingcap.com/tidb/stable/optimistic-transaction";

fn fix(kind: &'static str, change: impl Into<String>) -> Fix {
    Fix {
        kind,
        change: change.into(),
    }
}

impl WorkloadRule {
    pub const ALL: [WorkloadRule; 17] = [
        WorkloadRule::RangeLockInsert,
        WorkloadRule::AutocommitForUpdate,
        WorkloadRule::OptimisticForUpdate,
        WorkloadRule::LockInShareMode,
        WorkloadRule::SqlCalcFoundRows,
        WorkloadRule::ReadOnlyTransaction,
        WorkloadRule::ReadOnlyVariable,
        WorkloadRule::Call,
        WorkloadRule::Xa,
        WorkloadRule::SkipLocked,
        WorkloadRule::Spatial,
        WorkloadRule::Fulltext,
        WorkloadRule::LoadData,
        WorkloadRule::GetLock,
        WorkloadRule::DdlDuringTransactions,
        WorkloadRule::PreparedChurn,
        WorkloadRule::HotRows,
    ];

    pub fn id(self) -> &'static str {
        match self {
            WorkloadRule::RangeLockInsert => "workload.range_lock_insert",
            WorkloadRule::AutocommitForUpdate => "workload.autocommit_for_update",
            WorkloadRule::OptimisticForUpdate => "workload.optimistic_for_update",
            WorkloadRule::LockInShareMode => "workload.lock_in_share_mode",
            WorkloadRule::SqlCalcFoundRows => "workload.sql_calc_found_rows",
            WorkloadRule::ReadOnlyTransaction => "workload.read_only_transaction",
            WorkloadRule::ReadOnlyVariable => "workload.read_only_variable",
            WorkloadRule::Call => "workload.call",
            WorkloadRule::Xa => "workload.xa",
            WorkloadRule::SkipLocked => "workload.skip_locked",
            WorkloadRule::Spatial => "workload.spatial",
            WorkloadRule::Fulltext => "workload.fulltext",
            WorkloadRule::LoadData => "workload.load_data",
            WorkloadRule::GetLock => "workload.get_lock",
            WorkloadRule::DdlDuringTransactions => "workload.ddl_during_transactions",
            WorkloadRule::PreparedChurn => "workload.prepared_churn",
            WorkloadRule::HotRows => "workload.hot_rows",
        }
    }

    /// The rule on `target`, or `None` where the target behaves as MySQL/MariaDB do.
    pub fn text(self, target: &Profile) -> Option<RuleText> {
        let tidb = target.is_tidb();
        let t = |severity, meaning: &str, advice: &str, fix: Fix| {
            Some(RuleText {
                severity,
                meaning: meaning.to_string(),
                advice: advice.to_string(),
                fix,
            })
        };
        match self {
            // Source: PESSIMISTIC, "Difference with MySQL InnoDB": TiDB takes no gap locks;
            // a range locking read locks the rows that exist, not the range.
            WorkloadRule::RangeLockInsert if tidb => t(
                Severity::Error,
                "a transaction locks a range with SELECT … FOR UPDATE and then inserts into the same table: on InnoDB the gap lock keeps other sessions from inserting into the range until COMMIT; TiDB has no gap locks, so two sessions can both see the range empty and both insert (a lost check)",
                &format!("make the check a key the database enforces (a UNIQUE index the INSERT collides on, or a lock row per range that every writer locks with SELECT … FOR UPDATE by its key); source: {PESSIMISTIC}"),
                fix("code_change", "lock a row by key (or rely on a UNIQUE index) instead of a range"),
            ),
            // Source: PESSIMISTIC: an autocommit locking read takes its lock only for the
            // statement and, in pessimistic mode, does not wait for locks.
            WorkloadRule::AutocommitForUpdate if tidb => t(
                Severity::Warning,
                "SELECT … FOR UPDATE runs outside a transaction (autocommit): the lock ends with the statement, so it protects nothing; on TiDB it does not even wait for other sessions' locks",
                &format!("run the locking read and the writes it protects in one transaction (BEGIN … COMMIT), or drop FOR UPDATE; source: {PESSIMISTIC}"),
                fix("code_change", "wrap the SELECT … FOR UPDATE and its writes in BEGIN … COMMIT"),
            ),
            // Source: the 8002 entry of https://docs.pingcap.com/tidb/stable/error-codes ("a
            // transaction with the SELECT FOR UPDATE statement cannot be retried when it
            // encounters a commit conflict"), and OPTIMISTIC: conflicts are found at COMMIT;
            // BEGIN PESSIMISTIC / BEGIN OPTIMISTIC take precedence over tidb_txn_mode (PESSIMISTIC).
            WorkloadRule::OptimisticForUpdate if tidb => t(
                Severity::Warning,
                "SELECT … FOR UPDATE inside an optimistic transaction: TiDB finds conflicts only at COMMIT, and a transaction that read FOR UPDATE cannot be retried there: when another session wrote a row it locked, TiDB rolls it back with error 8002, where InnoDB would have made the other session wait",
                &format!("run these transactions in pessimistic mode (BEGIN PESSIMISTIC, or tidb_txn_mode = 'pessimistic', the default since v3.0.8), or retry the whole transaction on 8002; sources: https://docs.pingcap.com/tidb/stable/error-codes, {OPTIMISTIC}"),
                fix("tidb_setting", "SET GLOBAL tidb_txn_mode = 'pessimistic' (or BEGIN PESSIMISTIC)"),
            ),
            // Source: NOOP; https://docs.pingcap.com/tidb/stable/system-variables#tidb_enable_shared_lock_promotion-new-in-v830
            WorkloadRule::LockInShareMode if tidb => {
                if target.at_least((8, 3)) {
                    t(
                        Severity::Error,
                        "LOCK IN SHARE MODE / FOR SHARE is an error on TiDB unless tidb_enable_shared_lock_promotion (v8.3+) turns it into an exclusive lock, or tidb_enable_noop_functions accepts it and takes no lock at all",
                        &format!("SET GLOBAL tidb_enable_shared_lock_promotion = ON (shared locks become exclusive: readers then block each other), or change the statement to FOR UPDATE; sources: {NOOP}, https://docs.pingcap.com/tidb/stable/system-variables#tidb_enable_shared_lock_promotion-new-in-v830"),
                        fix("tidb_setting", "SET GLOBAL tidb_enable_shared_lock_promotion = ON"),
                    )
                } else {
                    t(
                        Severity::Error,
                        "LOCK IN SHARE MODE / FOR SHARE is an error on this TiDB version unless tidb_enable_noop_functions is on, and then it takes no lock at all",
                        &format!("change the statement to FOR UPDATE where the lock matters, or drop it; tidb_enable_noop_functions = ON only hides the error; source: {NOOP}"),
                        fix("code_change", "use SELECT … FOR UPDATE"),
                    )
                }
            }
            // Source: NOOP (TiDB); MySQL 8.0.17 deprecates SQL_CALC_FOUND_ROWS and FOUND_ROWS().
            WorkloadRule::SqlCalcFoundRows => match target.flavor {
                TargetFlavor::TiDb => t(
                    Severity::Error,
                    "SQL_CALC_FOUND_ROWS is an error on TiDB unless tidb_enable_noop_functions is on",
                    &format!("run a separate SELECT COUNT(*) with the same condition, or SET GLOBAL tidb_enable_noop_functions = ON; source: {NOOP}"),
                    fix("code_change", "replace SQL_CALC_FOUND_ROWS/FOUND_ROWS() with SELECT COUNT(*)"),
                ),
                TargetFlavor::MySql => t(
                    Severity::Info,
                    "SQL_CALC_FOUND_ROWS and FOUND_ROWS() are deprecated since MySQL 8.0.17",
                    "plan a separate SELECT COUNT(*); source: https://dev.mysql.com/doc/refman/8.0/en/information-functions.html#function_found-rows",
                    fix("code_change", "replace SQL_CALC_FOUND_ROWS/FOUND_ROWS() with SELECT COUNT(*)"),
                ),
                TargetFlavor::MariaDb => None,
            },
            // Source: NOOP; https://docs.pingcap.com/tidb/stable/sql-statement-start-transaction
            // ("START TRANSACTION READ ONLY is parsed … but still allows write operations").
            WorkloadRule::ReadOnlyTransaction if tidb => t(
                Severity::Error,
                "a READ ONLY transaction (START TRANSACTION READ ONLY, SET TRANSACTION READ ONLY, tx_read_only/transaction_read_only = ON) is an error on TiDB unless tidb_enable_noop_functions is on, and with it on the transaction can still write",
                &format!("drop READ ONLY and enforce read-only with privileges or a read-only user; never rely on TiDB refusing writes; source: {NOOP}"),
                fix("code_change", "remove READ ONLY; use a user without write privileges"),
            ),
            WorkloadRule::ReadOnlyVariable if tidb => t(
                Severity::Error,
                "setting read_only, super_read_only, offline_mode or sql_auto_is_null to ON is an error on TiDB unless tidb_enable_noop_functions is on (and then it does nothing)",
                &format!("remove the statement (or the connection-pool setting that sends it); source: {NOOP}"),
                fix("client_setting", "stop setting the variable (check the pool's init SQL)"),
            ),
            // Source: COMPAT: stored procedures, XA, SKIP LOCKED, spatial and FULLTEXT are
            // not supported.
            WorkloadRule::Call if tidb => t(
                Severity::Error,
                "CALL runs a stored procedure; TiDB has no stored procedures",
                &format!("move the procedure's logic into the application; source: {COMPAT}"),
                fix("code_change", "replace the procedure with application code"),
            ),
            WorkloadRule::Xa if tidb => t(
                Severity::Error,
                "XA transactions are not supported by TiDB",
                &format!("replace the distributed transaction (an outbox table, or a saga); source: {COMPAT}"),
                fix("code_change", "replace XA with local transactions"),
            ),
            WorkloadRule::SkipLocked if tidb => t(
                Severity::Error,
                "SKIP LOCKED is not supported by TiDB",
                &format!("queue consumers must claim rows another way (UPDATE … SET owner = ? WHERE owner IS NULL LIMIT n, then read what was claimed); source: {COMPAT}"),
                fix("code_change", "claim queue rows with an UPDATE instead of SKIP LOCKED"),
            ),
            WorkloadRule::Spatial if tidb => t(
                Severity::Error,
                "spatial functions and types are not supported by TiDB",
                &format!("compute geometry in the application or a service that supports it; source: {COMPAT}"),
                fix("code_change", "move spatial computation out of SQL"),
            ),
            WorkloadRule::Fulltext if tidb => t(
                Severity::Error,
                "MATCH … AGAINST (FULLTEXT search) is not supported by self-managed TiDB",
                &format!("use an external search index, or LIKE on small tables; source: {COMPAT}"),
                fix("code_change", "replace MATCH … AGAINST"),
            ),
            // Source: https://docs.pingcap.com/tidb/stable/sql-statement-load-data
            WorkloadRule::LoadData if tidb => t(
                Severity::Warning,
                "LOAD DATA behaves differently on TiDB: LOCAL needs the client's local-infile enabled (ERROR 1148 otherwise) and the data must fit TiDB's transaction limits; without LOCAL the file is read by the TiDB server (v7.0+, local path or object storage), not by MySQL's server",
                "enable local infile in the client (JDBC allowLoadLocalInfile=true, mysql --local-infile=1) and test the load against TiDB; source: https://docs.pingcap.com/tidb/stable/sql-statement-load-data",
                fix("client_setting", "allowLoadLocalInfile=true (JDBC) / --local-infile=1"),
            ),
            // Source: https://docs.pingcap.com/tidb/stable/locking-functions
            WorkloadRule::GetLock if tidb => t(
                Severity::Warning,
                "GET_LOCK on TiDB: timeouts are clamped to 1 s … 3600 s (0 waits 1 s, -1 waits at most an hour), names are at most 64 characters, deadlocks between user locks are not detected, and the lock is cluster-wide",
                "check every GET_LOCK's timeout and name length; acquire user locks in one order; source: https://docs.pingcap.com/tidb/stable/locking-functions",
                fix("code_change", "use timeouts of 1–3600 s and names ≤ 64 characters"),
            ),
            // Source: https://docs.pingcap.com/tidb/stable/metadata-lock and the 8028 entry of
            // https://docs.pingcap.com/tidb/stable/error-codes.
            WorkloadRule::DdlDuringTransactions if tidb => {
                match target.version {
                    Some(_) if !target.at_least((6, 3)) => t(
                        Severity::Error,
                        "a DDL ran while other sessions' transactions were open; before the metadata lock (v6.3) their COMMIT fails with 8028 \"Information schema is changed\" when the DDL touched a table they used (and in older releases even when it did not)",
                        "upgrade to v6.5+ (metadata lock on by default), run DDL outside busy hours, and retry transactions that fail with 8028; source: https://docs.pingcap.com/tidb/stable/metadata-lock",
                        fix("tidb_setting", "TiDB v6.5+ with tidb_enable_metadata_lock = ON"),
                    ),
                    _ => t(
                        Severity::Info,
                        "a DDL ran while other sessions' transactions were open; with TiDB's metadata lock (v6.3+, tidb_enable_metadata_lock) the DDL waits for them instead of their COMMIT failing with 8028",
                        "keep tidb_enable_metadata_lock = ON (the default) and expect the DDL to wait for long transactions; source: https://docs.pingcap.com/tidb/stable/metadata-lock",
                        fix("tidb_setting", "tidb_enable_metadata_lock = ON"),
                    ),
                }
            }
            // Source: https://docs.pingcap.com/tidb/stable/java-app-best-practices (prepared
            // statement cache; useServerPrepStmts with cachePrepStmts) and
            // https://docs.pingcap.com/tidb/stable/system-variables#tidb_ignore_prepared_cache_close_stmt-new-in-v600
            WorkloadRule::PreparedChurn if tidb => t(
                Severity::Warning,
                "the client prepares and closes a server-side statement for (almost) every execute: on TiDB each close drops the plan from the plan cache, so every execute is planned again (PingCAP's own tuning case: 24.2k QPS fell to 19.7k; 30.9k with the client cache)",
                "JDBC: useServerPrepStmts=true&cachePrepStmts=true&prepStmtCacheSize=1000; or SET GLOBAL tidb_ignore_prepared_cache_close_stmt = ON (v6.0+); source: https://docs.pingcap.com/tidb/stable/java-app-best-practices",
                fix("client_setting", "cachePrepStmts=true (JDBC), or TiDB tidb_ignore_prepared_cache_close_stmt = ON"),
            ),
            // Source: https://docs.pingcap.com/tidb/stable/optimistic-transaction and
            // https://docs.pingcap.com/tidb/stable/troubleshoot-write-conflicts
            WorkloadRule::HotRows if tidb => t(
                Severity::Warning,
                "rows written by several sessions within moments of each other: on TiDB these are write conflicts (9007 in optimistic transactions and in pessimistic autocommit writes with tidb_retry_limit = 0) or lock waits, where InnoDB queued them",
                "spread the writes (shard the counter row, batch per key in one session), keep transactions on hot rows short, and retry on 9007; source: https://docs.pingcap.com/tidb/stable/troubleshoot-write-conflicts",
                fix("code_change", "shard or batch writes to the hot keys; retry on 9007"),
            ),
            _ => None,
        }
    }
}

/// What a rule counted for one statement class.
#[derive(Default)]
struct Tally {
    statements: u64,
    sessions: HashSet<u64>,
    examples: Vec<Example>,
    /// Extra words for the message (the insert that followed a range lock, …).
    detail: Option<String>,
}

/// Classes kept per rule; the rest are counted together, so a workload of millions of
/// distinct statements stays in bounded memory.
const CLASSES_PER_RULE: usize = 100;
/// The class the statements beyond [`CLASSES_PER_RULE`] are counted under.
pub const OTHER_CLASSES: &str = "(other statement classes)";

/// The hits of every rule, by statement class.
#[derive(Default)]
pub struct Tallies {
    by: HashMap<(WorkloadRule, String), Tally>,
    classes: HashMap<WorkloadRule, usize>,
}

impl Tallies {
    /// Counts one statement of `class` for `rule`; `example` is called only while fewer
    /// than 3 examples are kept.
    pub fn hit(
        &mut self,
        rule: WorkloadRule,
        class: &str,
        session: u64,
        example: impl FnOnce() -> Example,
        detail: impl FnOnce() -> Option<String>,
    ) {
        let mut key = (rule, class.to_string());
        if !self.by.contains_key(&key) {
            let n = self.classes.entry(rule).or_default();
            if *n >= CLASSES_PER_RULE {
                key.1 = OTHER_CLASSES.to_string();
            } else {
                *n += 1;
            }
        }
        let t = self.by.entry(key).or_default();
        t.statements += 1;
        t.sessions.insert(session);
        if t.examples.len() < 3 {
            t.examples.push(example());
        }
        if t.detail.is_none() {
            t.detail = detail();
        }
    }

    pub fn findings(self, target: &Profile, out: &mut Vec<Finding>) {
        let mut all: Vec<_> = self.by.into_iter().collect();
        all.sort_by(|a, b| (a.0 .0, &a.0 .1).cmp(&(b.0 .0, &b.0 .1)));
        for ((rule, class), t) in all {
            let Some(text) = rule.text(target) else {
                continue;
            };
            let mut message = format!(
                "{} statement{} in {} session{}: {}",
                t.statements,
                plural(t.statements),
                t.sessions.len(),
                plural(t.sessions.len() as u64),
                text.meaning
            );
            if let Some(d) = &t.detail {
                message.push_str(&format!(" ({d})"));
            }
            out.push(finding(
                rule,
                text,
                Some(object(&class)),
                message,
                Evidence {
                    class,
                    statements: t.statements,
                    sessions: t.sessions.len() as u64,
                    examples: t.examples,
                },
            ));
        }
    }
}

pub fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A statement class as a finding's object: at most 120 characters.
pub fn object(class: &str) -> String {
    if class.chars().count() <= 120 {
        class.to_string()
    } else {
        let mut s: String = class.chars().take(119).collect();
        s.push('…');
        s
    }
}

pub fn finding(
    rule: WorkloadRule,
    text: RuleText,
    object: Option<String>,
    message: String,
    evidence: Evidence,
) -> Finding {
    let mut f = Finding::new(rule.id(), text.severity, object, message, text.advice);
    f.evidence = Some(evidence);
    f.fix = Some(text.fix);
    f
}

/// `ts_us` as RFC 3339 with microseconds (UTC).
pub fn time_text(ts_us: i64) -> String {
    let t = if ts_us >= 0 {
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_micros(ts_us as u64))
    } else {
        None
    };
    match t {
        Some(t) => humantime::format_rfc3339_micros(t).to_string(),
        None => format!("{ts_us} µs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_a_text_and_a_source_on_tidb() {
        let p = Profile::assumed(TargetFlavor::TiDb);
        for r in WorkloadRule::ALL {
            let t = r.text(&p).unwrap_or_else(|| panic!("{r:?}"));
            assert!(t.advice.contains("https://"), "{r:?} has no source");
            assert!(r.id().starts_with("workload."));
        }
        // The same statements on MariaDB behave as on the source.
        assert!(WorkloadRule::RangeLockInsert
            .text(&Profile::assumed(TargetFlavor::MariaDb))
            .is_none());
    }

    #[test]
    fn the_metadata_lock_decides_the_ddl_severity() {
        let mut p = Profile::assumed(TargetFlavor::TiDb);
        p.version = Some((6, 1, 0));
        assert_eq!(
            WorkloadRule::DdlDuringTransactions
                .text(&p)
                .map(|t| t.severity),
            Some(Severity::Error)
        );
        p.version = Some((7, 5, 1));
        assert_eq!(
            WorkloadRule::DdlDuringTransactions
                .text(&p)
                .map(|t| t.severity),
            Some(Severity::Info)
        );
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(
            time_text(1_700_000_000_000_001),
            "2023-11-14T22:13:20.000001Z"
        );
        assert_eq!(time_text(-5), "-5 µs");
    }
}
