//! `cutover probe isolation`: exit codes, JSON and `--out`, the scratch database gone after
//! every ending (done, refused, Ctrl-C), and a drill gating on it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::harness::*;

fn probe(scratch: &str, extra: &[&str]) -> std::process::Command {
    let mut c = cutover();
    c.args(["probe", "isolation", "--source", &dsn(Side::Source)])
        .args(["--target", &dsn(Side::Target)])
        .args(["--scratch-db", scratch])
        .args(extra);
    c
}

async fn schema_exists(side: Side, name: &str) -> bool {
    let mut c = conn(side).await;
    let n: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await
        .unwrap();
    let _ = c.disconnect().await;
    n.unwrap_or(0) > 0
}

#[tokio::test(flavor = "multi_thread")]
async fn same_level_on_both_sides_exits_0_with_json_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cmd = probe(
        "probe_cli_same",
        &[
            "--isolation",
            "REPEATABLE-READ",
            "--format",
            "json",
            "--out",
        ],
    );
    cmd.arg(&out);
    let r = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let list = v["anomalies"].as_array().unwrap();
    assert_eq!(list.len(), 16);
    for a in list {
        for k in ["id", "name", "source", "target", "differs", "evidence"] {
            assert!(!a[k].is_null(), "{k} in {a}");
        }
        assert_eq!(a["differs"], false, "{a}");
    }
    assert_eq!(v["source"]["isolation"], "REPEATABLE-READ");
    assert_eq!(v["target"]["isolation"], "REPEATABLE-READ");
    for f in ["probe.json", "probe.md", "probe.html"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("probe.md")).unwrap();
    assert!(md.contains("SAME BEHAVIOUR"), "{md}");
    assert!(!schema_exists(Side::Source, "probe_cli_same").await);
    assert!(!schema_exists(Side::Target, "probe_cli_same").await);

    // The human form, over two tests; the scratch database of the first run can be made again.
    let mut cmd = probe("probe_cli_same", &["--tests", "pmp,gap-lock"]);
    let r = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("isolation REPEATABLE-READ"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("same behaviour: 2 tests"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_are_refused_before_connecting() {
    let r = run(&mut probe("probe_cli_bad", &["--isolation", "snapshot"]));
    r.assert_clean_error("--isolation: unknown isolation level `snapshot`");
    let r = run(&mut probe("a`b", &[]));
    r.assert_clean_error("--scratch-db");
    let r = run(&mut probe("probe_cli_bad", &["--tests", "g9"]));
    r.assert_clean_error("--tests: no test `g9`");
}

/// No privilege to create the scratch database on the target: exit 2, one line, and
/// nothing left on either side (the source's was made first and is dropped again).
#[tokio::test(flavor = "multi_thread")]
async fn without_privileges_exits_2_with_one_line_and_leaves_nothing() {
    exec(
        Side::Target,
        "CREATE USER IF NOT EXISTS 'probe_cli_ro'@'%'; GRANT SELECT ON *.* TO 'probe_cli_ro'@'%'",
    )
    .await;
    exec(
        Side::Source,
        "CREATE USER IF NOT EXISTS 'probe_cli_ro'@'%'; GRANT ALL ON *.* TO 'probe_cli_ro'@'%'",
    )
    .await;
    let mut c = cutover();
    c.args(["probe", "isolation"])
        .args([
            "--source",
            &format!("mysql://probe_cli_ro@127.0.0.1:{}", port(Side::Source)),
        ])
        .args([
            "--target",
            &format!("mysql://probe_cli_ro@127.0.0.1:{}", port(Side::Target)),
        ])
        .args(["--scratch-db", "probe_cli_denied"]);
    let r = tokio::task::spawn_blocking(move || run(&mut c))
        .await
        .unwrap();
    r.assert_clean_error("cannot create the scratch database `probe_cli_denied`");
    assert!(r.stderr.contains("Access denied"), "{}", r.stderr);
    assert!(!schema_exists(Side::Source, "probe_cli_denied").await);
    assert!(!schema_exists(Side::Target, "probe_cli_denied").await);
}

/// Ctrl-C while the suite runs: the scratch database is dropped on both sides, no session of
/// the probe is left, exit 130.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_drops_the_scratch_database_and_exits_130() {
    let child = probe("probe_cli_intr", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the scratch database to be made",
        Duration::from_secs(60),
        || async { schema_exists(Side::Target, "probe_cli_intr").await },
    )
    .await;
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("was dropped on both sides"), "{stderr}");
    assert!(!schema_exists(Side::Source, "probe_cli_intr").await);
    assert!(!schema_exists(Side::Target, "probe_cli_intr").await);
    assert!(our_queries(Side::Source, "probe_cli_intr").await.is_empty());
    assert!(our_queries(Side::Target, "probe_cli_intr").await.is_empty());
}

/// A drill's `check` step gates on the probe: same behaviour passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_drill_check_step_gates_on_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("runbook.toml");
    std::fs::write(
        &rb,
        r#"
[runbook]
name = "probe gate"
announce = ["stdout"]

[[step]]
id = "probe"
title = "Same behaviour under concurrency"
dri = "carol"
reviewer = "dave"
expect = "1m"
check = "probe isolation --source ${SRC} --target ${TGT} --isolation REPEATABLE-READ --scratch-db probe_cli_drill --tests p4,gap-lock"
gate = true
side_effects = false
"#,
    )
    .unwrap();
    let journal = dir.path().join("journal");
    let mut c = cutover();
    c.args(["drill", "run"])
        .arg(&rb)
        .arg("--journal")
        .arg(&journal)
        .env("SRC", dsn(Side::Source))
        .env("TGT", dsn(Side::Target));
    let r = tokio::task::spawn_blocking(move || run(&mut c))
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(Path::new(&journal).join("journal.jsonl").exists());
    assert!(!schema_exists(Side::Target, "probe_cli_drill").await);
}

/// Each side at its server's default: a pair of its own whose target runs READ COMMITTED
/// (`transaction-isolation` set on the server) and whose source keeps REPEATABLE READ. The
/// probe differs in exactly the tests InnoDB documents (PMP, G-single, the gap lock), exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn server_defaults_read_committed_target_differs_where_innodb_documents() {
    let sb = tokio::task::spawn_blocking(|| {
        cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default())
    })
    .await
    .unwrap()
    .unwrap();
    sb.target
        .sql("SET GLOBAL tx_isolation = 'READ-COMMITTED'")
        .unwrap();
    let mut c = cutover();
    c.args(["probe", "isolation", "--format", "json"])
        .args([
            "--source",
            &format!("mysql://root@127.0.0.1:{}", sb.source.port),
        ])
        .args([
            "--target",
            &format!("mysql://root@127.0.0.1:{}", sb.target.port),
        ]);
    let started = std::time::Instant::now();
    let r = tokio::task::spawn_blocking(move || run(&mut c))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["source"]["isolation"], "REPEATABLE-READ");
    assert_eq!(v["target"]["isolation"], "READ-COMMITTED");
    let differing: Vec<&str> = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["differs"] == true)
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(differing, ["pmp", "g-single", "gap-lock"]);
    let pmp = &v["anomalies"][5];
    assert_eq!(pmp["id"], "pmp");
    assert_eq!(pmp["source"]["outcome"], "prevented");
    assert_eq!(pmp["target"]["outcome"], "allowed");
    assert!(pmp["evidence"]["target"]
        .as_str()
        .unwrap()
        .contains("3 => 30"));
}
