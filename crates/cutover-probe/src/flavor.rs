//! What TiDB documents about each test, for a report whose target is TiDB.
//!
//! A difference in the table says *that* the target behaves otherwise; these notes say *why*,
//! in TiDB's own documented terms, and what applications do about it. Each note keeps the
//! page it comes from, so a reader can check it and it can be kept current. Notes are added
//! only to tests whose outcome differs, so a report stays short.

pub use crate::report::Note;
use crate::report::SideInfo;

const ISOLATION: &str = "https://docs.pingcap.com/tidb/stable/transaction-isolation-levels";
const PESSIMISTIC: &str =
    "https://docs.pingcap.com/tidb/stable/pessimistic-transaction#difference-with-mysql-innodb";
const OPTIMISTIC: &str = "https://docs.pingcap.com/tidb/stable/optimistic-transaction";
const NOOP: &str =
    "https://docs.pingcap.com/tidb/stable/system-variables#tidb_enable_noop_functions-new-in-v40";
const SHARED_LOCK: &str =
    "https://docs.pingcap.com/tidb/stable/system-variables#tidb_enable_shared_lock_promotion-new-in-v830";
const HERMITAGE_TIDB: &str = "https://github.com/ept/hermitage/blob/master/tidb.md";
const JEPSEN_TIDB: &str = "https://jepsen.io/analyses/tidb-2.1.7";

/// Per test id: what TiDB documents (pessimistic mode, the default since v3.0.8).
const NOTES: &[(&str, &str, &str)] = &[
    (
        "p4",
        "TiDB REPEATABLE READ is snapshot isolation. In a pessimistic transaction an UPDATE is a current read of the latest committed row, so a read-modify-write computed from an earlier plain SELECT overwrites a concurrent update (Hermitage: TiDB RR does not prevent P4). Read the row with SELECT ... FOR UPDATE, or write relative updates (SET value = value + 1).",
        HERMITAGE_TIDB,
    ),
    (
        "p4",
        "With automatic retries (tidb_retry_limit, tidb_disable_txn_auto_retry OFF in old releases) TiDB re-ran transactions after conflicts and lost updates; keep retries off and retry in the application.",
        JEPSEN_TIDB,
    ),
    (
        "g2-item",
        "TiDB REPEATABLE READ is snapshot isolation: write skew is allowed. Use SELECT ... FOR UPDATE on the rows the decision reads.",
        ISOLATION,
    ),
    (
        "g2",
        "TiDB REPEATABLE READ is snapshot isolation: two transactions may each insert what the other's predicate read would have found. Lock a row that stands for the predicate (SELECT ... FOR UPDATE) or use a unique key that makes the second insert fail.",
        ISOLATION,
    ),
    (
        "pmp-write",
        "Pessimistic transactions in TiDB read a snapshot in SELECT and the latest committed data in DML (current read): a DELETE or UPDATE can act on rows the transaction's own SELECTs do not show (Hermitage: TiDB RR does not prevent PMP with a write predicate).",
        PESSIMISTIC,
    ),
    (
        "g-single-write",
        "Pessimistic transactions in TiDB read a snapshot in SELECT and the latest committed data in DML (current read): a write predicate sees other transactions' commits that the transaction's reads do not (Hermitage: TiDB RR does not prevent G-single with a write predicate).",
        PESSIMISTIC,
    ),
    (
        "pmp",
        "TiDB READ COMMITTED takes a new snapshot for every statement, and takes effect only in pessimistic transactions; under optimistic transactions the level is REPEATABLE READ.",
        ISOLATION,
    ),
    (
        "g-single",
        "TiDB READ COMMITTED takes a new snapshot for every statement, and takes effect only in pessimistic transactions; under optimistic transactions the level is REPEATABLE READ.",
        ISOLATION,
    ),
    (
        "gap-lock",
        "TiDB does not take gap locks: a range SELECT ... FOR UPDATE locks the rows that exist, and an INSERT into the range by another transaction is not blocked. Code that relies on next-key locking to keep a range free needs a lock on a row that stands for the range, or a unique key.",
        PESSIMISTIC,
    ),
    (
        "autocommit-for-update",
        "In TiDB an autocommit SELECT ... FOR UPDATE does not wait for locks and reads the latest committed data; take the lock inside an explicit transaction (BEGIN ... SELECT ... FOR UPDATE ... COMMIT).",
        PESSIMISTIC,
    ),
    (
        "share-mode",
        "TiDB has no shared locks: LOCK IN SHARE MODE is refused (error 1235) unless tidb_enable_noop_functions is ON, and then it takes no lock at all.",
        NOOP,
    ),
    (
        "share-mode",
        "From v8.3, tidb_enable_shared_lock_promotion = ON turns LOCK IN SHARE MODE into an exclusive lock (SELECT ... FOR UPDATE): writers wait, as on MySQL, and so do other readers that lock.",
        SHARED_LOCK,
    ),
    (
        "nowait",
        "TiDB supports FOR UPDATE NOWAIT in pessimistic transactions and answers a locked row with error 3572 at once; MariaDB answers the same with error 1205.",
        PESSIMISTIC,
    ),
];

/// For an optimistic target, whatever the test: where the source blocks, TiDB lets both
/// transactions go on and one COMMIT fails.
const OPTIMISTIC_NOTE: &str = "The target ran with tidb_txn_mode = optimistic: no statement waits for another transaction's locks; write conflicts are found at COMMIT (error 9007), where the source would have blocked, and SELECT ... FOR UPDATE takes no lock that others wait for.";

/// The notes for a test whose outcome differs, when the target is TiDB.
pub fn notes(test_id: &str, target: &SideInfo) -> Vec<Note> {
    if !target.is_tidb() {
        return Vec::new();
    }
    let mut out: Vec<Note> = NOTES
        .iter()
        .filter(|(id, _, _)| *id == test_id)
        .map(|(_, text, source)| Note {
            text: (*text).to_string(),
            source,
        })
        .collect();
    if target
        .txn_mode
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("optimistic"))
    {
        out.push(Note {
            text: OPTIMISTIC_NOTE.to_string(),
            source: OPTIMISTIC,
        });
    }
    if out.is_empty() {
        out.push(Note {
            text: "TiDB documents its isolation levels, and how they differ from MySQL's, on this page.".to_string(),
            source: ISOLATION,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::suite;

    fn tidb(mode: &str) -> SideInfo {
        SideInfo {
            endpoint: "mysql://root@tidb:4000".into(),
            server: "8.0.11-TiDB-v7.5.0".into(),
            flavor: "tidb".into(),
            isolation: "REPEATABLE-READ".into(),
            txn_mode: Some(mode.into()),
            settings: Default::default(),
            detection: crate::runner::Detection::LockWaitView,
        }
    }

    #[test]
    fn every_note_is_for_a_test_of_the_suite_and_has_a_source() {
        for (id, text, source) in NOTES {
            assert!(suite().iter().any(|t| t.id == *id), "{id}");
            assert!(source.starts_with("https://"), "{id}");
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn tidb_target_gets_documented_notes_per_test() {
        let n = notes("g2-item", &tidb("pessimistic"));
        assert_eq!(n.len(), 1);
        assert!(n[0].text.contains("write skew is allowed"));
        assert!(n[0].text.contains("SELECT ... FOR UPDATE"));
        assert_eq!(n[0].source, ISOLATION);
        let gap = notes("gap-lock", &tidb("pessimistic"));
        assert!(gap[0].text.contains("gap locks"));
        // Every test that can differ has something to say.
        for t in suite() {
            assert!(!notes(t.id, &tidb("pessimistic")).is_empty(), "{}", t.id);
        }
    }

    #[test]
    fn optimistic_mode_adds_its_note() {
        let n = notes("p4", &tidb("optimistic"));
        assert!(n
            .iter()
            .any(|n| n.text.contains("9007") && n.source == OPTIMISTIC));
        let p = notes("p4", &tidb("pessimistic"));
        assert!(!p.iter().any(|n| n.source == OPTIMISTIC));
    }

    #[test]
    fn no_notes_for_other_targets() {
        let mut m = tidb("pessimistic");
        m.server = "10.11.19-MariaDB".into();
        m.flavor = "mariadb".into();
        m.txn_mode = None;
        assert!(notes("p4", &m).is_empty());
    }
}
