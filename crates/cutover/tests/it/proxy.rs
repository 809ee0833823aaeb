//! `cutover proxy` between `mysql_async` clients and the sandbox source: relayed unchanged
//! (the clients get their answers), recorded as a workload `cutover workload` reads.

use std::time::{Duration, Instant};

use crate::harness::{cutover, dsn, fresh_db, port, run, Side};
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
        .args(["--output", record.to_str().unwrap(), "--format", "json"])
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

    let records = recorded(&record);
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
    // The parameter with its wire type (mysql_async binds a string as VAR_STRING).
    assert_eq!(
        exec["params"],
        serde_json::json!([{"type": 253, "text": "c"}]),
        "{exec:#}"
    );
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
        .args(["--output", record.to_str().unwrap()]));
    r.assert_clean_error("--upstream");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "not an address",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args(["--output", record.to_str().unwrap()]));
    r.assert_clean_error("cannot listen");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args(["--output", "/nonexistent-dir/w.cwl"]));
    r.assert_clean_error("--output");
}

/// Polls until something listens on `port` (generous deadline).
async fn wait_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the proxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The records of a workload file, through `cutover workload head`.
fn recorded(record: &std::path::Path) -> Vec<serde_json::Value> {
    let r = run(cutover().args([
        "workload",
        "head",
        record.to_str().unwrap(),
        "-n",
        "1000000",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Starts `cutover proxy` in front of the sandbox source with extra flags; returns the child
/// and the port clients use.
fn start_proxy(record: &std::path::Path, extra: &[&str]) -> (std::process::Child, u16) {
    let listen = crate::verify_checkpoint::free_port();
    let child = cutover()
        .args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--upstream", &format!("127.0.0.1:{}", port(Side::Source))])
        .args(["--output", record.to_str().unwrap(), "--format", "json"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, listen)
}

/// A client through the proxy that insists on TLS, trusting `ca`.
fn tls_client(listen: u16, ca: &std::path::Path) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(listen)
        .user(Some("app"))
        .pass(Some("app-secret"))
        .db_name(Some("pxt"))
        .prefer_socket(false)
        .ssl_opts(Some(
            mysql_async::SslOpts::default().with_root_certs(vec![ca.to_path_buf().into()]),
        ))
        .into()
}

/// Connects once the proxy listens (polling, generous deadline).
async fn connect_when_up(
    opts: &mysql_async::Opts,
) -> Result<mysql_async::Conn, mysql_async::Error> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match mysql_async::Conn::new(opts.clone()).await {
            Ok(c) => return Ok(c),
            Err(mysql_async::Error::Io(e)) if Instant::now() < until => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test]
async fn the_proxy_terminates_tls_records_inside_it_and_serves_metrics() {
    fresh_db("pxt").await;
    crate::harness::exec(
        Side::Source,
        "CREATE TABLE pxt.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO pxt.t VALUES (1, 'a')",
    )
    .await;
    let upstream_ca = crate::harness::sandbox()
        .tls_ca
        .clone()
        .expect("the test sandbox serves TLS");
    let dir = tempfile::tempdir().unwrap();
    let own = cutover_sandbox::tls::generate(&dir.path().join("tls"), "proxy test CA").unwrap();
    let record = dir.path().join("w.cwl");
    let metrics = crate::verify_checkpoint::free_port();
    let (child, listen) = start_proxy(
        &record,
        &[
            "--tls-cert",
            own.cert.to_str().unwrap(),
            "--tls-key",
            own.key.to_str().unwrap(),
            "--upstream-ssl-ca",
            upstream_ca.to_str().unwrap(),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
        ],
    );
    // The client trusts only the proxy's CA: it can only be talking TLS with the proxy.
    let mut c = connect_when_up(&tls_client(listen, &own.ca))
        .await
        .expect("a TLS client through the proxy");
    let rows: Vec<(i32, String)> = c.query("SELECT id, v FROM t").await.unwrap();
    assert_eq!(rows, vec![(1, "a".to_string())]);
    // The upstream leg is encrypted too: the server sees a cipher on this session.
    let cipher: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    assert!(
        cipher.as_ref().is_some_and(|(_, v)| !v.is_empty()),
        "{cipher:?}"
    );
    let got: Option<String> = c
        .exec_first("SELECT v FROM t WHERE id = ?", (1,))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("a"));
    c.disconnect().await.unwrap();

    let text = crate::verify_checkpoint::scrape(metrics).unwrap_or_default();
    let metric = |name: &str| crate::verify_checkpoint::metric(&text, name).unwrap_or(-1.0);
    assert_eq!(metric("cutover_proxy_tls_connections_total"), 1.0, "{text}");
    assert_eq!(metric("cutover_proxy_tls_failures_total"), 0.0, "{text}");
    assert!(
        metric("cutover_proxy_commands_total{command=\"query\"}") >= 2.0,
        "{text}"
    );
    assert!(
        text.contains("cutover_proxy_latency_seconds_bucket"),
        "{text}"
    );

    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["tls_connections"], 1, "{summary:#}");
    assert_eq!(summary["undecodable_connections"], 0, "{summary:#}");

    // Decoded inside TLS: the login, the statements and their answers.
    let r = run(cutover().args(["workload", "head", record.to_str().unwrap(), "-n", "100"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(r#""cmd":"connect""#), "{}", r.stdout);
    assert!(r.stdout.contains(r#""user":"app""#), "{}", r.stdout);
    assert!(r.stdout.contains("SELECT id, v FROM t"), "{}", r.stdout);
    assert!(
        r.stdout.contains("SELECT v FROM t WHERE id = ?"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn the_proxy_never_strips_tls() {
    fresh_db("pxs").await;
    let upstream_ca = crate::harness::sandbox()
        .tls_ca
        .clone()
        .expect("the test sandbox serves TLS");
    let dir = tempfile::tempdir().unwrap();
    let own = cutover_sandbox::tls::generate(&dir.path().join("tls"), "proxy test CA").unwrap();

    // The upstream's certificate cannot be checked (wrong CA): the client's connection is
    // closed, never continued in clear.
    let record = dir.path().join("refused.cwl");
    let (child, listen) = start_proxy(
        &record,
        &[
            "--tls-cert",
            own.cert.to_str().unwrap(),
            "--tls-key",
            own.key.to_str().unwrap(),
            "--upstream-ssl-ca",
            own.ca.to_str().unwrap(),
        ],
    );
    let opts =
        mysql_async::OptsBuilder::from_opts(tls_client(listen, &own.ca)).db_name(None::<String>);
    wait_listening(listen).await;
    let r = mysql_async::Conn::new(opts).await;
    assert!(r.is_err(), "a client got through without TLS upstream");
    let output = crate::harness::sigterm_and_wait(child).await;
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(summary["tls_failures"].as_u64() >= Some(1), "{summary:#}");
    assert!(
        summary["last_tls_failure"]
            .as_str()
            .is_some_and(|f| f.contains("upstream")),
        "{summary:#}"
    );
    assert_eq!(summary["tls_connections"], 0, "{summary:#}");

    // Without a certificate the proxy relays the client's TLS unchanged (the client talks
    // TLS with the server itself) and says it could not record that session.
    let record = dir.path().join("relayed.cwl");
    let (child, listen) = start_proxy(&record, &[]);
    let opts = mysql_async::OptsBuilder::from_opts(tls_client(listen, &upstream_ca))
        .db_name(None::<String>);
    let mut c = connect_when_up(&opts.into()).await.expect("TLS relayed");
    let one: Option<i32> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    c.disconnect().await.unwrap();
    let output = crate::harness::sigterm_and_wait(child).await;
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["undecodable_connections"], 1, "{summary:#}");
    assert_eq!(summary["tls_connections"], 0, "{summary:#}");
    let human = String::from_utf8_lossy(&output.stdout);
    assert!(!human.contains("app-secret"), "{human}");
}

#[test]
fn proxy_tls_flags_are_checked_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("w.cwl");
    let missing = dir.path().join("nope.pem");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args(["--output", record.to_str().unwrap()])
        .args(["--tls-cert", missing.to_str().unwrap()])
        .args(["--tls-key", missing.to_str().unwrap()]));
    r.assert_clean_error("--tls-cert");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args(["--output", record.to_str().unwrap()])
        .args(["--tls-cert", garbage.to_str().unwrap()])
        .args(["--tls-key", garbage.to_str().unwrap()]));
    r.assert_clean_error("--tls-cert");
    let r = run(cutover()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:3306",
        ])
        .args([
            "--output",
            record.to_str().unwrap(),
            "--metrics-addr",
            "nowhere",
        ]));
    r.assert_clean_error("--metrics-addr");
}

/// The `mariadb` command-line client through the proxy (it has every client auth plugin).
fn mariadb_client(listen: u16, user: &str, password: &str, sql: &str) -> std::process::Output {
    std::process::Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &listen.to_string(),
        ])
        .args([
            "-u",
            user,
            &format!("-p{password}"),
            "--skip-ssl",
            "-N",
            "-B",
        ])
        .args(["pxa", "-e", sql])
        .output()
        .expect("the mariadb client is installed with mariadb-server")
}

#[tokio::test]
async fn the_proxy_relays_every_auth_plugin_and_records_refusals() {
    fresh_db("pxa").await;
    let mut c = crate::harness::conn(Side::Source).await;
    let have: Option<String> = c
        .query_first(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'",
        )
        .await
        .unwrap();
    if have.is_none() {
        // Several tests may race to install it: "already installed" is as good.
        let _ = c.query_drop("INSTALL SONAME 'auth_ed25519'").await;
    }
    c.query_drop(
        "DROP USER IF EXISTS px_ed, px_nat; \
         CREATE USER px_ed IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret'); \
         CREATE USER px_nat IDENTIFIED VIA mysql_native_password USING PASSWORD('nat-secret'); \
         GRANT SELECT ON pxa.* TO px_ed, px_nat",
    )
    .await
    .unwrap();
    c.disconnect().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("w.cwl");
    let (child, listen) = start_proxy(&record, &[]);
    wait_listening(listen).await;
    // ed25519: the server asks the client to switch plugins; the exchange is relayed.
    let out = mariadb_client(listen, "px_ed", "ed-secret", "SELECT 'via ed25519'");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "via ed25519");
    let out = mariadb_client(
        listen,
        "px_nat",
        "nat-secret",
        "SET time_zone = '+01:00'; SELECT 'via native'",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "via native");
    // A wrong password is the server's refusal, relayed as it is.
    let out = mariadb_client(listen, "px_ed", "wrong", "SELECT 1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1045"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let output = crate::harness::sigterm_and_wait(child).await;
    assert_eq!(output.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Three clients, and the readiness probe.
    assert_eq!(summary["connections"], 4, "{summary:#}");
    assert_eq!(summary["undecodable_connections"], 0, "{summary:#}");
    let records = recorded(&record);
    let connects: Vec<_> = records.iter().filter(|r| r["cmd"] == "connect").collect();
    assert_eq!(connects.len(), 3, "{records:#?}");
    let refused: Vec<_> = connects
        .iter()
        .filter(|r| r["response"]["error"]["code"] == 1045)
        .collect();
    assert_eq!(refused.len(), 1, "{records:#?}");
    assert_eq!(refused[0]["user"], "px_ed");
    for sql in ["SELECT 'via ed25519'", "SELECT 'via native'"] {
        let q = records
            .iter()
            .find(|r| r["sql"] == sql)
            .unwrap_or_else(|| panic!("{sql} not recorded: {records:#?}"));
        assert_eq!(q["response"]["rows"], 1, "{q:#}");
    }
    let text = serde_json::to_string(&records).unwrap_or_default();
    assert!(!text.contains("secret"), "{text}");
    // libmariadb negotiates session tracking: the change the server reported is recorded.
    let set = records
        .iter()
        .find(|r| r["sql"] == "SET time_zone = '+01:00'")
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert!(
        set["response"]["session_state"]
            .as_array()
            .is_some_and(|s| s
                .iter()
                .any(|c| c.as_str().is_some_and(|c| c.contains("time_zone")))),
        "{set:#}"
    );
}

/// Runs sysbench `oltp_read_only` with server-side prepared statements through the proxy.
fn sysbench_through(listen: u16, db: &str, events: u32) {
    let out = std::process::Command::new("sysbench")
        .args(["oltp_read_only", "--db-driver=mysql", "--db-ps-mode=auto"])
        .args(["--mysql-host=127.0.0.1", &format!("--mysql-port={listen}")])
        .args(["--mysql-user=root", &format!("--mysql-db={db}")])
        .args([
            "--tables=1",
            "--table-size=200",
            "--range-size=10",
            "--threads=2",
        ])
        .args([
            &format!("--events={events}"),
            "--time=0",
            "--rand-seed=7",
            "run",
        ])
        .output()
        .expect("sysbench is installed by scripts/test");
    assert!(
        out.status.success(),
        "sysbench: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a recorded execute reads row `id` of sbtest1 (its `c`, which the test changes).
fn reads_row(sql: &str, params: &[serde_json::Value], id: i64) -> bool {
    let n = |i: usize| {
        params.get(i).and_then(|v| {
            v["int"]
                .as_i64()
                .or_else(|| v["text"].as_str().and_then(|s| s.parse().ok()))
        })
    };
    if !sql.contains("SELECT c") && !sql.contains("SELECT DISTINCT c") {
        return false;
    }
    if sql.contains("BETWEEN") {
        matches!((n(0), n(1)), (Some(a), Some(b)) if a <= id && id <= b)
    } else {
        n(0) == Some(id)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sysbench_prepared_statements_through_the_proxy_replay_with_exactly_the_planted_differences(
) {
    let db = "pxsb";
    fresh_db(db).await;
    let prepare = std::process::Command::new("sysbench")
        .args([
            "oltp_read_only",
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
        ])
        .args([
            &format!("--mysql-port={}", port(Side::Source)),
            "--mysql-user=root",
        ])
        .args([
            &format!("--mysql-db={db}"),
            "--tables=1",
            "--table-size=200",
            "prepare",
        ])
        .output()
        .expect("sysbench");
    assert!(prepare.status.success(), "{prepare:?}");
    // The target: an identical copy.
    let copy = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mariadb-dump -h127.0.0.1 -P{} -uroot --single-transaction {db} \
             | mariadb -h127.0.0.1 -P{} -uroot {db}",
            port(Side::Source),
            port(Side::Target)
        ))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{copy:?}");

    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("sb.cwl");
    let (child, listen) = start_proxy(&record, &[]);
    wait_listening(listen).await;
    sysbench_through(listen, db, 30);
    let output = crate::harness::sigterm_and_wait(child).await;
    assert_eq!(output.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["undecodable_connections"], 0, "{summary:#}");
    assert_eq!(summary["dropped"], 0, "{summary:#}");

    // The workload: prepared statements and their executes, with parameters.
    let records = recorded(&record);
    let mut prepared = std::collections::HashMap::new();
    let mut executes = Vec::new();
    for rec in &records {
        match rec["cmd"].as_str() {
            Some("prepare") => {
                prepared.insert(
                    (rec["session"].as_u64(), rec["stmt"].as_u64()),
                    rec["sql"].as_str().unwrap_or_default().to_string(),
                );
            }
            Some("execute") => {
                let sql = prepared
                    .get(&(rec["session"].as_u64(), rec["stmt"].as_u64()))
                    .cloned()
                    .unwrap_or_else(|| panic!("execute of an unknown statement: {rec}"));
                let params = rec["params"].as_array().cloned().unwrap_or_default();
                executes.push((sql, params));
            }
            _ => {}
        }
    }
    // 30 events of BEGIN, 10 point selects, 4 ranges and COMMIT, all prepared.
    assert_eq!(
        executes.len(),
        30 * 16,
        "{:#?}",
        &records[..20.min(records.len())]
    );

    let replay = |target_changed: bool| {
        let mut c = cutover();
        c.args([
            "replay",
            record.to_str().unwrap(),
            "--read-only",
            "--format",
            "json",
        ])
        .args(["--target", &format!("{}/{db}", dsn(Side::Target))])
        .args(["--baseline", &format!("{}/{db}", dsn(Side::Source))]);
        let r = run(&mut c);
        let want = if target_changed { 1 } else { 0 };
        assert_eq!(r.code, want, "{}\n{}", r.stdout, r.stderr);
        r.json()
    };
    let same = replay(false);
    assert_eq!(same["statements_with_diffs"], 0, "{same:#}");
    assert!(
        same["replayed"].as_u64() >= Some(executes.len() as u64),
        "{same:#}"
    );

    // The row the run read most often changes on the target.
    let reads = |id: i64| {
        executes
            .iter()
            .filter(|(sql, p)| reads_row(sql, p, id))
            .count()
    };
    let id = (1..=200).max_by_key(|&id| reads(id)).unwrap_or(1);
    let expected = reads(id) as u64;
    assert!(expected > 0, "the run read no row");
    crate::harness::exec(
        Side::Target,
        &format!("UPDATE {db}.sbtest1 SET c = 'changed on the target' WHERE id = {id}"),
    )
    .await;
    let changed = replay(true);
    assert_eq!(changed["statements_with_diffs"], expected, "{changed:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_differences_are_reported_as_client_compatibility() {
    let db = "pxc";
    fresh_db(db).await;
    // Same data; definitions that differ the way a migration changes them.
    crate::harness::exec(
        Side::Source,
        "CREATE TABLE pxc.t (id INT PRIMARY KEY, price DECIMAL(10,2), \
         name VARCHAR(20) COLLATE utf8mb4_general_ci, n INT UNSIGNED, v DOUBLE, code VARCHAR(10)); \
         INSERT INTO pxc.t VALUES (1, 1.50, 'a', 7, 2.5, '12'), (2, 3.25, 'b', 8, 1.5, '13')",
    )
    .await;
    crate::harness::exec(
        Side::Target,
        "CREATE TABLE pxc.t (id INT PRIMARY KEY, price DECIMAL(10,4), \
         name VARBINARY(20), n INT, v DECIMAL(10,2), code INT); \
         INSERT INTO pxc.t VALUES (1, 1.50, 'a', 7, 2.5, 12), (2, 3.25, 'b', 8, 1.5, 13)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("c.cwl");
    let (child, listen) = start_proxy(&record, &[]);
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(listen)
        .user(Some("root"))
        .db_name(Some(db))
        .prefer_socket(false)
        .into();
    let mut c = connect_when_up(&opts).await.expect("through the proxy");
    c.query_drop("SELECT id FROM t ORDER BY id").await.unwrap(); // the same on both
    c.query_drop("SELECT name FROM t ORDER BY id")
        .await
        .unwrap(); // collation
    c.query_drop("SELECT n FROM t ORDER BY id").await.unwrap(); // UNSIGNED
    c.query_drop("SELECT v FROM t ORDER BY id").await.unwrap(); // DOUBLE vs DECIMAL
    c.query_drop("SELECT id FROM t WHERE code = 'x1'")
        .await
        .unwrap(); // a warning on INT only
    let _: Vec<String> = c
        .exec("SELECT price FROM t WHERE id = ?", (1,))
        .await
        .unwrap(); // decimals, in the binary protocol
    c.disconnect().await.unwrap();
    let output = crate::harness::sigterm_and_wait(child).await;
    assert_eq!(output.status.code(), Some(0));
    let replay = |baseline: bool| {
        let mut cmd = cutover();
        cmd.args([
            "replay",
            record.to_str().unwrap(),
            "--read-only",
            "--format",
            "json",
        ])
        .args(["--target", &format!("{}/{db}", dsn(Side::Target))]);
        if baseline {
            cmd.args(["--baseline", &format!("{}/{db}", dsn(Side::Source))]);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        r.json()
    };
    for baseline in [true, false] {
        let report = replay(baseline);
        let compat: std::collections::BTreeMap<String, serde_json::Value> = report
            ["client_compatibility"]
            .as_array()
            .unwrap_or_else(|| panic!("{report:#}"))
            .iter()
            .map(|k| {
                (
                    k["kind"].as_str().unwrap_or_default().to_string(),
                    k.clone(),
                )
            })
            .collect();
        let has = |kind: &str, detail: &str| {
            let examples = compat
                .get(kind)
                .and_then(|k| k["examples"].as_array())
                .unwrap_or_else(|| panic!("baseline {baseline}: no {kind} in {report:#}"));
            assert!(
                examples.iter().any(|e| e["detail"] == detail),
                "baseline {baseline}: {kind}: no `{detail}` in {report:#}"
            );
        };
        let side = if baseline { "baseline" } else { "capture" };
        has(
            "metadata",
            "column `v`: MYSQL_TYPE_DOUBLE vs MYSQL_TYPE_NEWDECIMAL",
        );
        has("decimals", "column `price`: decimals 2 vs 4");
        has("decimals", "column `v`: decimals 31 vs 2");
        has(
            "charset",
            "column `name`: collation 45 (utf8mb4_general_ci) vs 63 (binary)",
        );
        has(
            "column_flags",
            &format!("column `n`: UNSIGNED on the {side} only"),
        );
        has("warnings", "0 warnings vs 1");
        let statements = |k: &str| compat[k]["statements"].as_u64().unwrap_or(0);
        assert_eq!(statements("metadata"), 1, "{report:#}");
        assert_eq!(statements("decimals"), 2, "{report:#}");
        assert_eq!(statements("charset"), 1, "{report:#}");
        assert_eq!(statements("warnings"), 1, "{report:#}");
        for k in compat.values() {
            assert!(k["meaning"].as_str().is_some_and(|m| m.len() > 40), "{k}");
        }
        // The statement whose answers are the same is not among the differences.
        let classes = report["classes"].as_array().unwrap();
        let same = classes
            .iter()
            .find(|c| {
                c["fingerprint"]
                    .as_str()
                    .is_some_and(|f| f == "select id from t order by id")
            })
            .unwrap_or_else(|| panic!("{report:#}"));
        assert_eq!(same["differences"], 0, "{same:#}");
    }
}

#[tokio::test]
async fn redacted_recordings_hold_no_values_and_are_not_replayed() {
    fresh_db("pxr").await;
    crate::harness::exec(
        Side::Source,
        "CREATE TABLE pxr.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO pxr.t VALUES (1, 'x')",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("r.cwl");
    let (child, listen) = start_proxy(&record, &["--redact-values"]);
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(listen)
        .user(Some("root"))
        .db_name(Some("pxr"))
        .prefer_socket(false)
        .into();
    let mut c = connect_when_up(&opts).await.expect("through the proxy");
    let _: Vec<i32> = c
        .query("SELECT id FROM t WHERE v = 'hunter2' OR id = 424242")
        .await
        .unwrap();
    let _: Option<i32> = c
        .exec_first("SELECT id FROM t WHERE v = ?", ("s3cret-param",))
        .await
        .unwrap();
    // The server's message repeats the value: it is dropped too.
    let e = c
        .query_drop("INSERT INTO t VALUES (1, 'dup-value-7')")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Duplicate"), "{e}");
    c.disconnect().await.unwrap();
    let output = crate::harness::sigterm_and_wait(child).await;
    assert_eq!(output.status.code(), Some(0));

    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&record).unwrap()),
        &mut text,
    )
    .unwrap();
    for secret in ["hunter2", "424242", "s3cret-param", "dup-value-7"] {
        assert!(!text.contains(secret), "{secret} recorded:\n{text}");
    }
    assert!(
        text.contains("SELECT id FROM t WHERE v = ? OR id = ?"),
        "{text}"
    );
    assert!(text.contains(r#""redacted":true"#), "{text}");
    assert!(text.contains(r#""code":1062"#), "{text}");
    let r = run(cutover().args(["workload", "stats", record.to_str().unwrap()]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(cutover()
        .args(["replay", record.to_str().unwrap(), "--read-only"])
        .args(["--target", &dsn(Side::Target)]));
    r.assert_clean_error("--redact-values");
}

/// A real client that pipelines its login (`pipelining_client.py`: the handshake response
/// and three queries in one write, before the server's OK, as MariaDB Connector/J may), with
/// and without compression (then the queries are already compressed frames): through the
/// proxy every query is recorded with its own answer and nothing is undecodable.
#[tokio::test]
async fn a_client_that_pipelines_its_login_is_recorded_answer_by_answer() {
    fresh_db("pxp").await;
    for compress in ["0", "1"] {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("p.cwl");
        let (child, listen) = start_proxy(&record, &[]);
        wait_listening(listen).await;
        let out = std::process::Command::new("python3")
            .args(["-c", include_str!("pipelining_client.py")])
            .args(["127.0.0.1", &listen.to_string(), "app", "app-secret", "pxp"])
            .arg(compress)
            .output()
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The client itself got the answers in order.
        assert_eq!(
            stdout, "rows 1 columns 1\nrows 1 columns 2\nerror 1146\n",
            "compress {compress}"
        );
        let output = crate::harness::sigterm_and_wait(child).await;
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["undecodable_connections"], 0, "{summary:#}");
        let records = recorded(&record);
        let got: Vec<String> = records
            .iter()
            .map(|r| {
                let resp = &r["response"];
                format!(
                    "{} {} rows={} columns={} error={}",
                    r["cmd"].as_str().unwrap_or("?"),
                    r["sql"].as_str().unwrap_or(""),
                    resp["rows"],
                    resp["columns"].as_array().map_or(0, |c| c.len()),
                    resp["error"]["code"],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "connect  rows=null columns=0 error=null",
                "query SELECT 1 rows=1 columns=1 error=null",
                "query SELECT 2, 3 rows=1 columns=2 error=null",
                "query SELECT nope FROM nowhere rows=null columns=0 error=1146",
                "quit  rows=null columns=0 error=null",
            ],
            "compress {compress}"
        );
    }
}
