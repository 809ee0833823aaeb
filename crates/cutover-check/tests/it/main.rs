//! The rules against recorded answers of servers that cannot run here (MySQL 8, Aurora,
//! TiDB; `tests/fixtures/`), through the same interpretation as live answers.

use std::collections::BTreeMap;

use cutover_check::facts::{KeyValueRow, Recorded, SchemaAnswers};
use cutover_check::finding::{Finding, Severity};
use cutover_check::profile::{Profile, TargetFlavor};
use cutover_check::rules::{evaluate, Facts, RuleOptions};
use cutover_check::snowflake::Layout;

fn fixture(name: &str) -> Recorded {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Recorded::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Facts of a recorded source, checked against a recorded target or an assumed flavor.
fn facts(source: &str, target: Option<&str>, flavor: TargetFlavor) -> Facts {
    let s = fixture(source);
    let (profile, target) = match target {
        Some(t) => {
            let t = fixture(t);
            (Profile::from_answers(&t.server), Some((t.server, t.schema)))
        }
        None => (Profile::assumed(flavor), None),
    };
    Facts {
        source: s.server,
        schema: s.schema,
        profile,
        target,
        rates: BTreeMap::new(),
    }
}

fn run(f: &Facts) -> Vec<Finding> {
    evaluate(f, &RuleOptions::default()).0
}

fn find<'a>(all: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    all.iter().filter(|f| f.rule == rule).collect()
}

fn one<'a>(all: &'a [Finding], rule: &str, object: Option<&str>) -> &'a Finding {
    let v: Vec<_> = all
        .iter()
        .filter(|f| f.rule == rule && f.object.as_deref() == object)
        .collect();
    assert_eq!(v.len(), 1, "{rule} {object:?} in {all:#?}");
    v[0]
}

#[test]
fn fixtures_name_their_sources() {
    for name in [
        "mysql-8.0",
        "aurora-mysql-3",
        "tidb-v7.5",
        "tidb-v6.5-optimistic",
    ] {
        let f = fixture(name);
        assert!(
            f.about.contains("https://"),
            "{name}: say which documentation it follows"
        );
        assert!(f.server.grants.is_some(), "{name}");
    }
}

#[test]
fn mysql8_gtid_off_is_a_warning_and_on_is_not() {
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    assert_eq!(
        one(&run(&f), "source.gtid", None).severity,
        Severity::Warning
    );
    f.source.variables.insert("gtid_mode".into(), "ON".into());
    assert_eq!(one(&run(&f), "source.gtid", None).severity, Severity::Info);
}

#[test]
fn an_old_source_version_is_a_warning() {
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    assert_eq!(
        one(&run(&f), "source.version", None).severity,
        Severity::Info
    );
    f.source.version = "5.6.51-log".into();
    assert_eq!(
        one(&run(&f), "source.version", None).severity,
        Severity::Warning
    );
}

#[test]
fn server_id_zero_refuses_replicas() {
    // MySQL accepts server_id = 0 (MariaDB raises it to 1): no replica may connect then.
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    assert!(find(&run(&f), "source.server_id").is_empty());
    f.source.variables.insert("server_id".into(), "0".into());
    assert_eq!(
        one(&run(&f), "source.server_id", None).severity,
        Severity::Error
    );
}

#[test]
fn mysql8_default_collation_changes_on_tidb_but_explicit_bin_does_not() {
    let all = run(&facts("mysql-8.0", Some("tidb-v7.5"), TargetFlavor::TiDb));
    let f = one(&all, "schema.collation_change", Some("shop.orders"));
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.message
            .contains("customer (utf8mb4_0900_ai_ci → utf8mb4_bin)"),
        "{}",
        f.message
    );
    // v7.4+ has the collation itself: no error.
    assert!(find(&all, "schema.collation").is_empty(), "{all:#?}");
    // utf8mb4_0900_bin is not the default: nothing changes.
    let aurora = run(&facts(
        "aurora-mysql-3",
        Some("tidb-v7.5"),
        TargetFlavor::TiDb,
    ));
    assert!(
        find(&aurora, "schema.collation_change").is_empty(),
        "{aurora:#?}"
    );
    // MySQL 8 → MySQL 8: same default.
    let same = run(&facts("mysql-8.0", None, TargetFlavor::MySql));
    assert!(
        find(&same, "schema.collation_change").is_empty(),
        "{same:#?}"
    );
}

#[test]
fn tidb_before_7_4_lacks_0900_collations_and_the_old_framework_compares_binary() {
    let all = run(&facts(
        "mysql-8.0",
        Some("tidb-v6.5-optimistic"),
        TargetFlavor::TiDb,
    ));
    let f = one(&all, "schema.collation", Some("shop.orders.customer"));
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("from v7.4"), "{}", f.message);
    assert_eq!(
        one(&all, "target.collation_framework", None).severity,
        Severity::Warning
    );
    let fresh = run(&facts("mysql-8.0", Some("tidb-v7.5"), TargetFlavor::TiDb));
    assert!(find(&fresh, "target.collation_framework").is_empty());
}

#[test]
fn mysql8_descending_index_is_ignored_by_tidb_only() {
    let all = run(&facts("mysql-8.0", None, TargetFlavor::TiDb));
    let f = one(&all, "schema.descending_index", Some("shop.orders"));
    assert!(f.message.contains("idx_created"));
    let mysql = run(&facts("mysql-8.0", None, TargetFlavor::MySql));
    assert!(find(&mysql, "schema.descending_index").is_empty());
}

#[test]
fn privileges_are_read_from_grants_of_each_flavor() {
    // MySQL 8 user: REPLICATION SLAVE/CLIENT present, LOCK TABLES missing.
    let all = run(&facts("mysql-8.0", None, TargetFlavor::TiDb));
    let p = find(&all, "source.privileges");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].severity, Severity::Warning);
    assert!(p[0].message.contains("LOCK TABLES") && !p[0].message.contains("RELOAD"));
    // Aurora user has everything.
    let all = run(&facts("aurora-mysql-3", None, TargetFlavor::TiDb));
    assert!(find(&all, "source.privileges").is_empty(), "{all:#?}");
    // MariaDB prints REPLICATION CLIENT as BINLOG MONITOR.
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    f.source.grants = Some(cutover_check::facts::parse_grants(&[
        "GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `c`@`%`"
            .into(),
    ]));
    assert!(find(&run(&f), "source.privileges").is_empty());
    f.source.grants = Some(cutover_check::facts::parse_grants(&[
        "GRANT SELECT ON `shop`.* TO `c`@`%`".into(),
    ]));
    let all = run(&f);
    let errors: Vec<_> = find(&all, "source.privileges")
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0]
        .message
        .contains("REPLICATION SLAVE and REPLICATION CLIENT"));
}

#[test]
fn aurora_binlog_retention() {
    let mut f = facts("aurora-mysql-3", None, TargetFlavor::TiDb);
    let r = one(&run(&f), "source.binlog_retention", None).clone();
    assert_eq!(r.severity, Severity::Error, "{r:?}");
    assert!(r.message.contains("NULL"));
    f.source
        .aurora_configuration
        .insert("binlog retention hours".into(), Some("12".into()));
    assert_eq!(
        one(&run(&f), "source.binlog_retention", None).severity,
        Severity::Warning
    );
    f.source
        .aurora_configuration
        .insert("binlog retention hours".into(), Some("168".into()));
    assert_eq!(
        one(&run(&f), "source.binlog_retention", None).severity,
        Severity::Info
    );
    // Aurora says which it is.
    assert!(one(&run(&f), "source.version", None)
        .message
        .contains("Aurora MySQL 3.05.2"));
}

#[test]
fn tidb_target_facts() {
    let all = run(&facts("mysql-8.0", Some("tidb-v7.5"), TargetFlavor::TiDb));
    assert!(one(&all, "target.version", None)
        .message
        .contains("TiDB 7.5.1"));
    assert!(find(&all, "target.privileges").is_empty(), "{all:#?}");
    assert!(find(&all, "target.txn_mode").is_empty());
    assert!(find(&all, "target.gc_life_time").is_empty());
    assert_eq!(
        one(&all, "target.non_empty", Some("shop.WORKER_NODE")).severity,
        Severity::Warning
    );
    // The allocator table with TiDB's default cache: the go-live incident.
    let cache = one(&all, "target.auto_id_cache", Some("shop.WORKER_NODE"));
    assert_eq!(cache.severity, Severity::Error);

    let old = run(&facts(
        "mysql-8.0",
        Some("tidb-v6.5-optimistic"),
        TargetFlavor::TiDb,
    ));
    assert_eq!(
        one(&old, "target.txn_mode", None).severity,
        Severity::Warning
    );
    assert_eq!(
        one(&old, "target.auto_id_cache", Some("shop.WORKER_NODE")).severity,
        Severity::Info
    );
    assert!(find(&old, "target.non_empty").is_empty());
    // With AUTO_ID_CACHE 1 on the target, restarts burn nothing.
    let w = one(&old, "id.worker_table", Some("shop.WORKER_NODE.ID"));
    assert!(!w.message.contains("restart"), "{}", w.message);

    // A large source against a 10-minute GC life time.
    let mut f = facts("mysql-8.0", Some("tidb-v7.5"), TargetFlavor::TiDb);
    f.schema.tables[0].data_length = Some(100 << 30);
    let g = run(&f);
    let gc = one(&g, "target.gc_life_time", None);
    assert!(gc.message.contains("10m0s"));
}

#[test]
fn target_privileges_missing_on_tidb() {
    let mut f = facts("mysql-8.0", Some("tidb-v7.5"), TargetFlavor::TiDb);
    if let Some((t, _)) = f.target.as_mut() {
        t.grants = Some(cutover_check::facts::parse_grants(&[
            "GRANT SELECT ON `shop`.* TO 'cutover'@'%'".into(),
        ]));
    }
    let all = run(&f);
    let p = one(&all, "target.privileges", None);
    assert_eq!(p.severity, Severity::Error);
    assert!(p.message.contains("INSERT"));
}

#[test]
fn row_size_beyond_tidbs_entry_limit() {
    // A JSON column can hold up to max_allowed_packet on MySQL.
    let all = run(&facts("mysql-8.0", None, TargetFlavor::TiDb));
    assert_eq!(
        one(&all, "schema.row_size", Some("shop.orders")).severity,
        Severity::Warning
    );
    assert!(find(&all, "schema.row_size")
        .iter()
        .all(|f| f.object.as_deref() != Some("shop.WORKER_NODE")));
    let mysql = run(&facts("mysql-8.0", None, TargetFlavor::MySql));
    assert!(find(&mysql, "schema.row_size").is_empty());
}

#[test]
fn identifiers_over_64_characters() {
    let mut f = facts("aurora-mysql-3", None, TargetFlavor::TiDb);
    assert!(find(&run(&f), "schema.identifier_length").is_empty());
    f.schema.columns[1].name = "e".repeat(65);
    let all = run(&f);
    assert_eq!(
        one(&all, "schema.identifier_length", Some("app.users")).severity,
        Severity::Error
    );
}

#[test]
fn worker_table_under_tidb_restarts() {
    let f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    // 812 used of 4,194,303: ~139 batches of 30,000 left; at one restart a day that is
    // beyond the 90-day horizon, so a warning…
    let w = one(&run(&f), "id.worker_table", Some("shop.WORKER_NODE.ID")).clone();
    assert_eq!(w.severity, Severity::Warning, "{}", w.message);
    assert!(w.message.contains("139 restarts"), "{}", w.message);
    // …and at two a day, within it: an error.
    let opts = RuleOptions {
        tidb_restarts_per_day: 2.0,
        ..RuleOptions::default()
    };
    let all = evaluate(&f, &opts).0;
    assert_eq!(
        one(&all, "id.worker_table", Some("shop.WORKER_NODE.ID")).severity,
        Severity::Error
    );
    // On MySQL the allocator is only a fact.
    let m = run(&facts("mysql-8.0", None, TargetFlavor::MySql));
    assert_eq!(
        one(&m, "id.worker_table", Some("shop.WORKER_NODE.ID")).severity,
        Severity::Info
    );
}

fn with_key(f: &mut Facts, max: i64) {
    let s: &mut SchemaAnswers = &mut f.schema;
    s.tables.push(cutover_check::facts::TableRow {
        schema: "shop".into(),
        name: "uids".into(),
        table_type: "BASE TABLE".into(),
        ..Default::default()
    });
    s.columns.push(cutover_check::facts::ColumnRow {
        schema: "shop".into(),
        table: "uids".into(),
        name: "id".into(),
        position: 1,
        data_type: "bigint".into(),
        column_type: "bigint".into(),
        ..Default::default()
    });
    s.indexes.push(cutover_check::facts::IndexRow {
        schema: "shop".into(),
        table: "uids".into(),
        name: "PRIMARY".into(),
        non_unique: false,
        seq: 1,
        column: Some("id".into()),
        collation: Some("A".into()),
        index_type: "BTREE".into(),
    });
    s.key_values.push(KeyValueRow {
        schema: "shop".into(),
        table: "uids".into(),
        column: "id".into(),
        max: Some(i128::from(max)),
        min: Some(1),
    });
}

#[test]
fn uid_generator_ids_past_their_time_field() {
    let now = 1_795_000_000; // 2026-11-18
    let l = Layout::uid_generator();
    // An ID made on 2024-11-01, worker 812.
    let ticks = ((1_730_419_200_000 - l.epoch_ms) / 1000) as u64;
    let id = l.encode(ticks, 812, 5).unwrap();
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    with_key(&mut f, id);
    let opts = RuleOptions {
        now,
        ..RuleOptions::default()
    };
    let all = evaluate(&f, &opts).0;
    let s = one(&all, "id.snowflake", Some("shop.uids.id"));
    assert_eq!(s.severity, Severity::Error);
    assert!(
        s.message.contains("uid-generator") && s.message.contains("ran out on 2024-11-"),
        "{}",
        s.message
    );
    assert!(s.message.contains("worker 812"), "{}", s.message);
    // The same key under Twitter's layout, made now: a fact, not a problem.
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    let t = Layout::twitter();
    with_key(
        &mut f,
        t.encode((now * 1000 - t.epoch_ms) as u64, 3, 0).unwrap(),
    );
    let all = evaluate(&f, &opts).0;
    let s = one(&all, "id.snowflake", Some("shop.uids.id"));
    assert_eq!(s.severity, Severity::Info, "{}", s.message);
    assert!(s.message.contains("2080-07-10"));
    // A plain counter is not a snowflake.
    let mut f = facts("mysql-8.0", None, TargetFlavor::TiDb);
    with_key(&mut f, 123_456);
    let all = evaluate(&f, &opts).0;
    assert!(find(&all, "id.snowflake").is_empty());
}

#[test]
fn the_json_shape_of_a_finding() {
    let all = run(&facts("aurora-mysql-3", None, TargetFlavor::TiDb));
    let v = serde_json::to_value(&all[0]).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["rule", "severity", "object", "message", "advice"]);
}

#[test]
fn the_reports_of_a_recorded_check() {
    use cutover_check::finding::{Report, Summary};
    use cutover_check::forecast::{rate, Reading};
    let mut f = facts("mysql-8.0", Some("tidb-v7.5"), TargetFlavor::TiDb);
    // orders.id: 500 IDs a day over the last two days.
    let r = rate(&[
        Reading { at: 0.0, value: 0 },
        Reading {
            at: 172_800.0,
            value: 1000,
        },
    ])
    .unwrap();
    f.rates.insert("shop.orders.id".into(), (r, "history"));
    let opts = RuleOptions {
        now: 1_795_000_000,
        ..RuleOptions::default()
    };
    let (findings, forecasts) = evaluate(&f, &opts);
    let mut report = Report {
        findings,
        summary: Summary {
            source: "mysql://cutover:***@10.0.0.1:3306".into(),
            source_server: f.source.version.clone(),
            target: Some("mysql://cutover:***@10.0.0.2:4000".into()),
            target_server: f.profile.describe(),
            target_flavor: "TiDB".into(),
            databases: 1,
            tables: 2,
            id_spaces: 2,
            horizon_days: 90.0,
            tidb_restarts_per_day: 1.0,
            rates_from: vec!["history".into()],
            elapsed_ms: 42,
            forecasts,
            ..Summary::default()
        },
        ..Report::default()
    };
    report.finish();
    assert_eq!(report.exit_code(), 1);
    let mut json = serde_json::to_string_pretty(&report).unwrap();
    json.push('\n');
    insta::assert_snapshot!("check.json", json);
    insta::assert_snapshot!(
        "check.md",
        cutover_check::report_doc::document(&report).markdown()
    );
}

mod workload;
