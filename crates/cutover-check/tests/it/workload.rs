//! `check_workload` on any file: findings or a clear error, never a panic. Workload files
//! are outside input (a capture, a proxy recording, a file someone edited or cut short).

use std::io::Write as _;

use cutover_check::profile::{Profile, TargetFlavor};
use cutover_check::{check_workload, WorkloadOptions};
use proptest::prelude::*;

const HEADER: &str = r#"{"format":"cutover-workload","version":1,"source":"proxy"}"#;

fn gz(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

fn check(bytes: &[u8]) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.cwl");
    std::fs::write(&p, bytes).unwrap();
    let target = Profile::assumed(TargetFlavor::TiDb);
    check_workload(&p, &target, &WorkloadOptions::default(), &|| false)
        .map(|(f, _)| f.len())
        .map_err(|e| e.to_string())
}

/// Statements made of the words the rules look for, in any order.
fn statement() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "SELECT",
        "*",
        "FROM",
        "t",
        "WHERE",
        "id",
        "=",
        "?",
        "<",
        "BETWEEN",
        "AND",
        "FOR",
        "UPDATE",
        "LOCK",
        "IN",
        "SHARE",
        "MODE",
        "INSERT",
        "INTO",
        "VALUES",
        "(",
        ")",
        ",",
        "1",
        "'a'",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SET",
        "autocommit",
        "0",
        "TRANSACTION",
        "READ",
        "ONLY",
        "CALL",
        "XA",
        "GET_LOCK",
        "ST_X",
        "MATCH",
        "AGAINST",
        "LOAD",
        "DATA",
        "LOCAL",
        "CREATE",
        "TABLE",
        "DELETE",
        ";",
        "`q`",
        "@@session.tx_read_only",
        "-",
        "SKIP",
        "LOCKED",
        "OPTIMISTIC",
        "PESSIMISTIC",
        "tidb_txn_mode",
        "é",
        "'unterminated",
        "/*",
        "--",
    ]);
    prop::collection::vec(words, 0..14).prop_map(|w| w.join(" "))
}

fn record() -> impl Strategy<Value = String> {
    (
        0u64..4,
        0i64..3_000_000,
        statement(),
        0u32..4,
        prop::sample::select(vec![
            "query", "prepare", "execute", "close", "quit", "reset", "connect",
        ]),
    )
        .prop_map(|(session, ts, sql, stmt, cmd)| {
            serde_json::json!({
                "session": session,
                "ts_us": 1_700_000_000_000_000i64 + ts,
                "cmd": cmd,
                "sql": sql,
                "stmt": stmt,
                "params": [1, "a", null],
            })
            .to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_records_give_findings(records in prop::collection::vec(record(), 0..40)) {
        let text = format!("{HEADER}\n{}\n", records.join("\n"));
        prop_assert!(check(&gz(text.as_bytes())).is_ok());
    }

    #[test]
    fn damaged_files_give_findings_or_a_clear_error(
        records in prop::collection::vec(record(), 1..20),
        cut in 0usize..4000,
        flip in prop::option::of((0usize..4000, any::<u8>())),
        compress in any::<bool>(),
    ) {
        let text = format!("{HEADER}\n{}\n", records.join("\n"));
        let mut bytes = if compress { gz(text.as_bytes()) } else { text.into_bytes() };
        if let Some((at, b)) = flip {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= b;
            }
        }
        bytes.truncate(cut.min(bytes.len()));
        if let Err(e) = check(&bytes) {
            prop_assert!(e.contains("w.cwl"), "the error names the file: {e}");
            prop_assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn any_bytes_give_findings_or_a_clear_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Err(e) = check(&bytes) {
            prop_assert!(e.contains("w.cwl"), "{e}");
        }
    }
}

#[test]
fn a_truncated_file_is_an_error_not_a_partial_check() {
    let line = r#"{"session":1,"ts_us":1,"cmd":"query","sql":"CALL p()"}"#;
    let text = format!("{HEADER}\n{}", format!("{line}\n").repeat(2000));
    let mut bytes = gz(text.as_bytes());
    bytes.truncate(bytes.len() / 2);
    let e = check(&bytes).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
    assert_eq!(check(&gz(text.as_bytes())), Ok(1));
}

/// A locking read inside a plain transaction is an 8002 risk only on a target whose
/// `tidb_txn_mode` is optimistic (read from the recorded TiDB answers, as from a live one).
#[test]
fn locking_reads_in_transactions_on_an_optimistic_target() {
    let lines = [
        r#"{"session":1,"ts_us":1,"cmd":"query","sql":"BEGIN"}"#,
        r#"{"session":1,"ts_us":2,"cmd":"query","sql":"SELECT bal FROM acct WHERE id = 7 FOR UPDATE"}"#,
        r#"{"session":1,"ts_us":3,"cmd":"query","sql":"UPDATE acct SET bal = bal - 1 WHERE id = 7"}"#,
        r#"{"session":1,"ts_us":4,"cmd":"query","sql":"COMMIT"}"#,
    ];
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.cwl");
    std::fs::write(
        &p,
        gz(format!("{HEADER}\n{}\n", lines.join("\n")).as_bytes()),
    )
    .unwrap();
    let rules = |fixture: &str| -> Vec<&'static str> {
        let path = format!(
            "{}/tests/fixtures/{fixture}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let recorded =
            cutover_check::facts::Recorded::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let target = Profile::from_answers(&recorded.server);
        let (f, _) = check_workload(&p, &target, &WorkloadOptions::default(), &|| false).unwrap();
        f.iter().map(|f| f.rule).collect()
    };
    assert_eq!(
        rules("tidb-v6.5-optimistic"),
        vec!["workload.optimistic_for_update"]
    );
    assert!(rules("tidb-v7.5").is_empty());
}
