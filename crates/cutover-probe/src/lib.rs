//! Concurrency probes: how do source and target behave when transactions meet?
//!
//! A diff compares data and a replay compares one session's answers; neither shows what two
//! databases allow when transactions overlap, and that is where "concurrent read-write
//! errors nobody can explain" come from after a cutover. `cutover probe isolation` runs the
//! same suite on both sides ([`anomaly`]: the Hermitage isolation-anomaly tests and the
//! locking behaviours applications rely on), each test step by step over two or three
//! connections in its documented order ([`runner`]), and reports per test and side whether
//! the anomaly was prevented (and how) or allowed (and what was seen), and whether the sides
//! differ ([`report`]); for a TiDB target, what TiDB documents about each difference
//! ([`flavor`]).
//!
//! Writes: only in the scratch database the probe creates on each side, marks as its own,
//! and drops when it ends, interrupted or not ([`scratch`]). Nothing else is written.
//!
//! Data flow: two [`Db`] pools (read-only; lock-wait views) → [`scratch::create`] on both →
//! per side, concurrently: the session settings read once, then for each test a fresh table
//! ([`scratch::table`]) and [`runner::Side::run`] → [`anomaly::Trace`] → [`anomaly::judge`]
//! → both sides paired → [`Report`] → [`scratch::drop`] on both.

pub mod anomaly;
pub mod flavor;
pub mod report;
pub mod runner;
pub mod scratch;

use std::time::Instant;

use cutover_core::{Db, DbError, Flavor, Role};
use mysql_async::prelude::*;
use tokio_util::sync::CancellationToken;

pub use anomaly::{Behaviour, How};
pub use report::{AnomalyResult, Report, SideInfo};
pub use runner::Detection;

/// The scratch database's default name.
pub const DEFAULT_SCRATCH_DB: &str = "cutover_probe";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error(transparent)]
    Db(DbError),
    #[error("{role}: {message}")]
    Scratch { role: Role, message: String },
    #[error("the {role} refused the session setting `{statement}`: {message}")]
    Session {
        role: Role,
        statement: String,
        message: String,
    },
    #[error("--scratch-db: {0}")]
    Name(#[from] scratch::BadName),
    /// `only` named a test the suite does not have.
    #[error("--scratch-db: no test `{0}` in the suite")]
    UnknownTest(String),
    #[error("interrupted")]
    Interrupted,
}

/// An isolation level none of the four (as `--isolation` or a server named it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown isolation level `{}` (expected READ-UNCOMMITTED, READ-COMMITTED, REPEATABLE-READ or SERIALIZABLE)", .0.escape_debug())]
pub struct UnknownIsolation(pub String);

/// A transaction isolation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    /// `READ-COMMITTED`, `read committed`, `rc`, … (as servers and people write them).
    pub fn parse(s: &str) -> Result<Isolation, UnknownIsolation> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| match c {
                '-' | '_' | ' ' => ' ',
                c => c.to_ascii_lowercase(),
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        match norm.as_str() {
            "read uncommitted" | "ru" => Ok(Isolation::ReadUncommitted),
            "read committed" | "rc" => Ok(Isolation::ReadCommitted),
            "repeatable read" | "rr" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            _ => Err(UnknownIsolation(s.to_string())),
        }
    }
    /// The words of `SET TRANSACTION ISOLATION LEVEL`.
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "READ UNCOMMITTED",
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// How one side's test sessions are set up.
#[derive(Clone, Debug, Default)]
pub struct SideOptions {
    /// The level to run at; `None`: the server's default.
    pub isolation: Option<Isolation>,
    /// Further session statements (`SET SESSION innodb_snapshot_isolation = ON`), run by
    /// every test session after the isolation level.
    pub session: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub scratch_db: String,
    pub source: SideOptions,
    pub target: SideOptions,
    /// Run only these tests (ids); empty: the whole suite.
    pub only: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scratch_db: DEFAULT_SCRATCH_DB.to_string(),
            source: SideOptions::default(),
            target: SideOptions::default(),
            only: Vec::new(),
        }
    }
}

/// Runs the suite on both sides and pairs the results. The scratch database is created on
/// both sides first and dropped on both at the end, whatever happened in between.
pub async fn probe(
    source: &Db,
    target: &Db,
    opts: &Options,
    cancel: CancellationToken,
) -> Result<Report, ProbeError> {
    let started = Instant::now();
    scratch::check_name(&opts.scratch_db).map_err(ProbeError::Name)?;
    for id in &opts.only {
        if anomaly::find(id).is_none() {
            return Err(ProbeError::UnknownTest(id.clone()));
        }
    }
    let name = opts.scratch_db.as_str();
    let run = scratch::run_id();
    scratch::create(source, name, &run).await?;
    if let Err(e) = scratch::create(target, name, &run).await {
        let _ = scratch::drop(source, name).await;
        return Err(e);
    }
    let (s, t) = tokio::join!(
        run_side(source, name, &opts.source, &opts.only, cancel.clone()),
        run_side(target, name, &opts.target, &opts.only, cancel.clone())
    );
    // The scratch databases go whatever happened; with fresh connections, since the pools'
    // own may be interrupted.
    let dropped = (
        scratch::drop(source, name).await,
        scratch::drop(target, name).await,
    );
    if cancel.is_cancelled() {
        return Err(ProbeError::Interrupted);
    }
    let (source_info, source_results) = s?;
    let (target_info, target_results) = t?;
    dropped.0?;
    dropped.1?;
    Ok(pair(
        source_info,
        target_info,
        source_results,
        target_results,
        name,
        started.elapsed().as_millis() as u64,
    ))
}

/// Pairs the two sides' results test by test into the report: a test differs when both
/// sides were judged and behaved otherwise; a TiDB target's differences get their notes.
pub fn pair(
    source_info: SideInfo,
    target_info: SideInfo,
    source_results: SideResults,
    target_results: SideResults,
    scratch_db: &str,
    elapsed_ms: u64,
) -> Report {
    let mut anomalies = Vec::new();
    for ((test, (strace, sb)), (_, (ttrace, tb))) in source_results.into_iter().zip(target_results)
    {
        let unknown =
            matches!(sb, Behaviour::Unknown { .. }) || matches!(tb, Behaviour::Unknown { .. });
        let differs = !unknown && !sb.same_as(&tb);
        let notes = if differs {
            flavor::notes(test.id, &target_info)
        } else {
            Vec::new()
        };
        anomalies.push(AnomalyResult {
            id: test.id.to_string(),
            name: test.name.to_string(),
            kind: test.kind,
            evidence: report::Evidence {
                source: sb.evidence().to_string(),
                target: tb.evidence().to_string(),
            },
            source: sb,
            target: tb,
            differs,
            notes,
            steps: report::Steps {
                source: strace.steps,
                target: ttrace.steps,
            },
        });
    }
    let unknown = anomalies
        .iter()
        .filter(|a| {
            matches!(a.source, Behaviour::Unknown { .. })
                || matches!(a.target, Behaviour::Unknown { .. })
        })
        .count();
    let differ = anomalies.iter().filter(|a| a.differs).count();
    let summary = report::Summary {
        tests: anomalies.len(),
        same: anomalies.len() - differ - unknown,
        differ,
        unknown,
        elapsed_ms,
    };
    Report {
        source: source_info,
        target: target_info,
        scratch_db: scratch_db.to_string(),
        anomalies,
        summary,
    }
}

/// One side's results: per test run, its steps and how it was judged.
pub type SideResults = Vec<(&'static anomaly::Test, (anomaly::Trace, Behaviour))>;

async fn run_side(
    db: &Db,
    scratch_db: &str,
    opts: &SideOptions,
    only: &[String],
    cancel: CancellationToken,
) -> Result<(SideInfo, SideResults), ProbeError> {
    let detection = runner::Side::detect(db).await;
    // The test sessions work in the scratch database, so the steps name their table alone
    // (as Hermitage writes them, and as the report shows them).
    let mut session = vec![
        "SET NAMES utf8mb4".to_string(),
        format!("USE `{scratch_db}`"),
        format!(
            "SET SESSION innodb_lock_wait_timeout = {}",
            runner::LOCK_WAIT_SECS
        ),
    ];
    if let Some(level) = opts.isolation {
        session.push(format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL {}",
            level.sql()
        ));
    }
    session.extend(opts.session.iter().cloned());
    let side = runner::Side {
        db: db.clone(),
        session,
        detection,
        cancel,
    };
    let info = side_info(&side).await?;
    let mut results = Vec::new();
    for test in anomaly::suite() {
        if !only.is_empty() && !only.iter().any(|o| o == test.id) {
            continue;
        }
        if side.cancel.is_cancelled() {
            return Err(ProbeError::Interrupted);
        }
        let table = test.id.replace('-', "_");
        scratch::table(db, scratch_db, &table).await?;
        let trace = side.run(test, &table).await?;
        let behaviour = anomaly::judge(test, &trace);
        results.push((test, (trace, behaviour)));
    }
    Ok((info, results))
}

/// What the test sessions run at, read from a session set up like them.
async fn side_info(side: &runner::Side) -> Result<SideInfo, ProbeError> {
    let (mut c, _) = side.connect().await?;
    let mut isolation: Option<String> = None;
    for var in ["@@SESSION.transaction_isolation", "@@SESSION.tx_isolation"] {
        if let Ok(Some(v)) = c.query_first::<String, _>(format!("SELECT {var}")).await {
            isolation = Some(v);
            break;
        }
    }
    let txn_mode = if side.db.flavor() == Flavor::TiDb {
        match c
            .query_first::<String, _>("SELECT @@SESSION.tidb_txn_mode")
            .await
        {
            // An empty mode is optimistic (TiDB before v3.0.8 and its docs).
            Ok(Some(m)) if m.is_empty() => Some("optimistic".to_string()),
            Ok(Some(m)) => Some(m),
            _ => None,
        }
    } else {
        None
    };
    let mut settings = std::collections::BTreeMap::new();
    if side.db.flavor() == Flavor::MariaDb {
        if let Ok(Some(v)) = c
            .query_first::<String, _>("SELECT IF(@@SESSION.innodb_snapshot_isolation, 'ON', 'OFF')")
            .await
        {
            settings.insert("innodb_snapshot_isolation".to_string(), v);
        }
    }
    let _ = c.disconnect().await;
    Ok(SideInfo {
        endpoint: side.db.endpoint().redacted(),
        server: side.db.version().to_string(),
        flavor: side.db.flavor().name().to_ascii_lowercase(),
        isolation: isolation.unwrap_or_else(|| "unknown".to_string()),
        txn_mode,
        settings,
        detection: side.detection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn isolation_levels_parse_as_servers_and_people_write_them() {
        assert_eq!(
            Isolation::parse("REPEATABLE-READ"),
            Ok(Isolation::RepeatableRead)
        );
        assert_eq!(
            Isolation::parse("read committed"),
            Ok(Isolation::ReadCommitted)
        );
        assert_eq!(Isolation::parse(" RC "), Ok(Isolation::ReadCommitted));
        assert_eq!(
            Isolation::parse("Serializable"),
            Ok(Isolation::Serializable)
        );
        assert!(Isolation::parse("snapshot").is_err());
    }

    use anomaly::{Answer, StepRecord, Trace};

    /// A side's run of one test from recorded answers (`blocked` per step).
    fn recorded(
        id: &str,
        answers: &[(Answer, bool)],
    ) -> (&'static anomaly::Test, (Trace, Behaviour)) {
        let test = anomaly::find(id).unwrap();
        let trace = Trace {
            steps: test
                .steps
                .iter()
                .zip(answers)
                .map(|(s, (a, b))| StepRecord {
                    conn: s.conn,
                    sql: s.sql.to_string(),
                    blocked: *b,
                    deferred: false,
                    answer: a.clone(),
                })
                .collect(),
        };
        let b = anomaly::judge(test, &trace);
        (test, (trace, b))
    }
    fn ok() -> (Answer, bool) {
        (Answer::Done { affected: 0 }, false)
    }
    fn rows(r: &[(i64, i64)]) -> (Answer, bool) {
        (Answer::Rows { rows: r.to_vec() }, false)
    }
    fn info(server: &str, txn_mode: Option<&str>) -> SideInfo {
        SideInfo {
            endpoint: "mysql://app:***@db:3306".into(),
            server: server.into(),
            flavor: Flavor::from_version(server).name().to_ascii_lowercase(),
            isolation: "REPEATABLE-READ".into(),
            txn_mode: txn_mode.map(str::to_string),
            settings: Default::default(),
            detection: Detection::LockWaitView,
        }
    }

    /// A MySQL source against a TiDB target, from recorded answers: the gap-lock insert
    /// waits on MySQL and goes through on TiDB; TiDB refuses LOCK IN SHARE MODE (noop
    /// functions off); aborted reads are prevented on both. The report notes what TiDB
    /// documents for the two differences, and the txn mode it ran under.
    #[test]
    fn tidb_target_differences_carry_documented_notes() {
        let range = rows(&[(1, 10), (2, 20)]);
        let source = vec![
            recorded(
                "gap-lock",
                &[
                    ok(),
                    ok(),
                    range.clone(),
                    (Answer::Done { affected: 1 }, true),
                    ok(),
                    ok(),
                ],
            ),
            recorded(
                "share-mode",
                &[
                    ok(),
                    rows(&[(1, 10)]),
                    ok(),
                    (Answer::Done { affected: 1 }, true),
                    ok(),
                    ok(),
                ],
            ),
            recorded(
                "g1a",
                &[ok(), ok(), ok(), range.clone(), ok(), range.clone(), ok()],
            ),
        ];
        let refused = (
            Answer::Error {
                code: 1235,
                message: "function LOCK IN SHARE MODE has only noop implementation in tidb now"
                    .into(),
            },
            false,
        );
        let target = vec![
            recorded(
                "gap-lock",
                &[
                    ok(),
                    ok(),
                    range.clone(),
                    (Answer::Done { affected: 1 }, false),
                    ok(),
                    ok(),
                ],
            ),
            recorded(
                "share-mode",
                &[
                    ok(),
                    refused,
                    ok(),
                    (Answer::Done { affected: 1 }, false),
                    ok(),
                    ok(),
                ],
            ),
            recorded(
                "g1a",
                &[ok(), ok(), ok(), range.clone(), ok(), range.clone(), ok()],
            ),
        ];
        let r = pair(
            info("8.0.36", None),
            info("8.0.11-TiDB-v7.5.0", Some("pessimistic")),
            source,
            target,
            "cutover_probe",
            10,
        );
        assert_eq!(r.exit_code(), 1);
        let gap = &r.anomalies[0];
        assert!(gap.differs);
        assert_eq!(gap.source.label(), "prevented (blocked)");
        assert_eq!(gap.target.label(), "allowed");
        assert!(gap.notes[0].text.contains("does not take gap locks"));
        assert!(gap.notes[0].source.starts_with("https://docs.pingcap.com/"));
        let share = &r.anomalies[1];
        assert!(share.differs);
        assert_eq!(share.target.label(), "refused (error 1235)");
        assert!(share
            .notes
            .iter()
            .any(|n| n.text.contains("tidb_enable_noop_functions")));
        let g1a = &r.anomalies[2];
        assert!(!g1a.differs && g1a.notes.is_empty());
        let human = r.human();
        assert!(human.contains("tidb_txn_mode pessimistic"), "{human}");
        assert!(
            human.contains("note: TiDB does not take gap locks"),
            "{human}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["anomalies"][0]["id"], "gap-lock");
        assert_eq!(json["anomalies"][0]["source"]["outcome"], "prevented");
        assert_eq!(json["anomalies"][0]["source"]["how"]["by"], "blocked");
        assert_eq!(json["anomalies"][0]["target"]["outcome"], "allowed");
        assert!(json["anomalies"][0]["evidence"]["target"]
            .as_str()
            .unwrap()
            .contains("without waiting"));
        let md = r.document().markdown();
        assert!(md.contains("TiDB: TiDB does not take gap locks"), "{md}");
    }

    proptest! {
        #[test]
        fn isolation_parse_never_panics_and_round_trips(s in ".{0,40}") {
            if let Ok(level) = Isolation::parse(&s) {
                prop_assert_eq!(Isolation::parse(level.sql()), Ok(level));
            }
        }
    }
}
