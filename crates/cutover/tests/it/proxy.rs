//! `cutover proxy` between `mysql_async` clients and the sandbox source: relayed unchanged
//! (the clients get their answers), recorded as a workload `cutover workload` reads.

use std::time::{Duration, Instant};

use crate::harness::{cutover, fresh_db, port, run, Side};
use mysql_async::prelude::*;

#[tokio::test]
async fn the_proxy_relays_and_records_every_command_with_its_answer() {
    fresh_db("px").await;
    crate::harness::exec(
        Side::Source,
        "CREATE TABLE px.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(10)); \
         INSERT INTO px.t (v) VALUES ('a'), ('b')",
    )
    .await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("w.cwl");
    let child = cutover()
        .args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--upstream", &format!("127.0.0.1:{}", port(Side::Source))])
        .args(["--record", record.to_str().unwrap(), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(listen)
        .user(Some("app"))
        .pass(Some("app-secret"))
        .db_name(Some("px"))
        .prefer_socket(false)
        .into();
    // The proxy is up once a client gets through.
    let until = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        match mysql_async::Conn::new(opts.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < until, "the proxy did not come up: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let rows: Vec<(i32, String)> = c.query("SELECT id, v FROM t ORDER BY id").await.unwrap();
    assert_eq!(rows, vec![(1, "a".to_string()), (2, "b".to_string())]);
    assert!(c.query_drop("SELECT nope FROM t").await.is_err());
    c.exec_drop("INSERT INTO t (v) VALUES (?)", ("c",))
        .await
        .unwrap();
    let got: Option<String> = c
        .exec_first("SELECT v FROM t WHERE id = ?", (3,))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("c"));
    c.disconnect().await.unwrap();

    // SIGTERM finishes the file (a session still open is closed and recorded as ended).
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["connections"], 1, "{summary:#}");
    assert_eq!(summary["dropped"], 0, "{summary:#}");
    assert_eq!(summary["undecodable_connections"], 0, "{summary:#}");

    let r = run(cutover().args(["workload", "head", record.to_str().unwrap(), "-n", "1000"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let records: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let find = |cmd: &str, sql: Option<&str>| {
        records
            .iter()
            .find(|r| r["cmd"] == cmd && sql.is_none_or(|s| r["sql"] == s))
            .cloned()
            .unwrap_or_else(|| panic!("no {cmd} {sql:?} in {records:#?}"))
    };
    let connect = find("connect", None);
    assert_eq!(connect["user"], "app");
    assert_eq!(connect["db"], "px");
    let select = find("query", Some("SELECT id, v FROM t ORDER BY id"));
    assert_eq!(select["response"]["rows"], 2, "{select:#}");
    assert_eq!(select["response"]["columns"][0]["name"], "id", "{select:#}");
    let bad = find("query", Some("SELECT nope FROM t"));
    assert_eq!(bad["response"]["error"]["code"], 1054, "{bad:#}");
    let prepare = find("prepare", Some("INSERT INTO t (v) VALUES (?)"));
    let stmt = prepare["stmt"].clone();
    let exec = records
        .iter()
        .find(|r| r["cmd"] == "execute" && r["stmt"] == stmt)
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(exec["params"], serde_json::json!(["c"]), "{exec:#}");
    assert_eq!(exec["response"]["affected_rows"], 1, "{exec:#}");
    find("quit", None);
}

#[test]
fn proxy_bad_input_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("w.cwl");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "db-without-port",
        ])
        .args(["--record", record.to_str().unwrap()]));
    r.assert_clean_error("--upstream");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "not an address",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args(["--record", record.to_str().unwrap()]));
    r.assert_clean_error("cannot listen");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args(["--record", "/nonexistent-dir/w.cwl"]));
    r.assert_clean_error("--record");
}
