//! `cutover sandbox up|status|down`, and a server without TLS.

use crate::harness::*;

/// Stops the sandbox if a test fails half way.
struct Down(std::path::PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = cutover()
            .args(["sandbox", "down", "--dir"])
            .arg(&self.0)
            .output();
    }
}

#[tokio::test]
async fn sandbox_up_status_down() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("sb");
    let _guard = Down(dir.clone());
    let r = run(cutover()
        .args([
            "sandbox",
            "up",
            "--buffer-pool-mb",
            "64",
            "--format",
            "json",
            "--dir",
        ])
        .arg(&dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    let src = v["source"]["dsn"].as_str().unwrap().to_string();
    let tgt = v["target"]["dsn"].as_str().unwrap().to_string();
    assert_eq!(v["source"]["running"], true);

    // A second `up` in the same directory refuses.
    let r = run(cutover().args(["sandbox", "up", "--dir"]).arg(&dir));
    r.assert_clean_error("already running");

    let r = run(cutover().args(["sandbox", "status", "--dir"]).arg(&dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("server_id=1") && r.stdout.contains("server_id=2"),
        "{}",
        r.stdout
    );

    // The source is a binlog source as verify and replication need it.
    let r = run(cutover().args([
        "diff",
        "--source",
        &src,
        "--target",
        &tgt,
        "--tables",
        "mysql.help_topic",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Without TLS on the server, `preferred` falls back to plain and `required` refuses.
    assert_eq!(
        r.json()["connections"]["source"]["tls"],
        serde_json::Value::Null
    );
    let r = run(cutover().args([
        "diff",
        "--source",
        &format!("{src}?ssl-mode=required"),
        "--target",
        &tgt,
        "--tables",
        "mysql.help_topic",
    ]));
    r.assert_clean_error("cannot connect to source");

    let r = run(cutover().args(["sandbox", "down", "--dir"]).arg(&dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!dir.exists());
    let r = run(cutover().args(["sandbox", "status", "--dir"]).arg(&dir));
    r.assert_clean_error("no sandbox in");
}

#[tokio::test]
async fn the_demo_finds_exactly_what_it_injected() {
    let out = tempfile::tempdir().unwrap();
    let r = run(cutover().arg("demo").arg("--out").arg(out.path()));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("cutover diff found exactly the 12 injected"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("its fix SQL made the target equal again"),
        "{}",
        r.stdout
    );
    // With replication running, verify confirmed exactly the skipped transaction's rows.
    for line in [
        "confirmed: shop.orders mismatched {\"id\":4711}",
        "confirmed: shop.coupons extra_in_target {\"code\":\"SAVE777\"}",
        "confirmed: shop.customers missing_in_target {\"id\":900001}",
        "confirmed exactly the 3 rows of the one transaction the replica skipped",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.stdout);
    }
    // The readiness check ran first and named the worker table that runs out.
    assert!(
        r.stdout.contains("[id.worker_table] shop.WORKER_NODE.ID"),
        "{}",
        r.stdout
    );
    // The reports outlive the sandbox, and say what the first diff found.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["different"], 7, "{report:#}");
    let fix = std::fs::read_to_string(out.path().join("fix.sql")).unwrap();
    assert!(fix.contains("`order_items`"), "{fix}");
    for f in ["report.md", "report.html", "replay.html", "workload.cwl"] {
        assert!(out.path().join(f).metadata().unwrap().len() > 0, "{f}");
    }
    // The example runbook ran as a drill, every gate passed, and its report was written.
    let drill: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("drill/drill.json")).unwrap())
            .unwrap();
    assert_eq!(drill["runs"][0]["status"], "completed", "{drill:#}");
    let steps = crate::harness::pairs(&drill["runs"][0]["steps"], "id", "status");
    assert!(
        steps.len() >= 6 && steps.iter().all(|(_, s)| s == "ok"),
        "{steps:?}"
    );
    assert!(r.stdout.contains("▶ step 4/6 final-diff"), "{}", r.stdout);
    // The captured sessions replayed: exactly the two collation-dependent lookups differ.
    assert!(
        r.stdout.contains("found the 2 statements whose answers"),
        "{}",
        r.stdout
    );
    // The same sessions, recorded through the proxy, checked for TiDB: the range locked then
    // inserted into, the shared lock, and the statement prepared and closed per execute.
    for rule in [
        "workload.range_lock_insert",
        "select count(*) from orders where customer_id between ? and ? for update",
        "workload.lock_in_share_mode",
        "workload.prepared_churn",
        "8 prepares and 8 closes for 8 executes",
    ] {
        assert!(r.stdout.contains(rule), "{rule}\n{}", r.stdout);
    }
}
