//! The connection layer through the binary: DSN forms, password sources, redaction, TLS
//! options, unix sockets, and bad input.

use std::io::Write;

use cutover_sandbox::APP_PASSWORD;

use crate::harness::*;

async fn one_table(db: &str) {
    fresh_db(db).await;
    both(&format!(
        "USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)"
    ))
    .await;
}

fn diff(source: &str, target: &str, tables: &str) -> std::process::Command {
    let mut c = cutover();
    c.args([
        "diff", "--source", source, "--target", target, "--tables", tables,
    ]);
    c.args(["--format", "json"]);
    c
}

fn app_dsn(side: Side, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("mysql://app:{p}@127.0.0.1:{}", port(side)),
        None => format!("mysql://app@127.0.0.1:{}", port(side)),
    }
}

#[tokio::test]
async fn password_from_dsn_file_and_environment_never_shown() {
    one_table("pw").await;
    // Inline in the DSN.
    let r = run(&mut diff(
        &app_dsn(Side::Source, Some(APP_PASSWORD)),
        &app_dsn(Side::Target, Some(APP_PASSWORD)),
        "pw.t",
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains(APP_PASSWORD) && !r.stderr.contains(APP_PASSWORD));
    assert_eq!(
        r.json()["target"],
        format!("mysql://app:***@127.0.0.1:{}", port(Side::Target))
    );

    // From files.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    writeln!(std::fs::File::create(&f).unwrap(), "{APP_PASSWORD}").unwrap();
    let r = run(diff(
        &app_dsn(Side::Source, None),
        &app_dsn(Side::Target, None),
        "pw.t",
    )
    .arg("--source-password-file")
    .arg(&f)
    .arg("--target-password-file")
    .arg(&f));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains(APP_PASSWORD) && !r.stderr.contains(APP_PASSWORD));

    // From the environment.
    let r = run(diff(
        &app_dsn(Side::Source, None),
        &app_dsn(Side::Target, None),
        "pw.t",
    )
    .env("CUTOVER_SOURCE_PASSWORD", APP_PASSWORD)
    .env("CUTOVER_TARGET_PASSWORD", APP_PASSWORD));
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A wrong password: one clear line, exit 2, and the password is not repeated.
    let r = run(&mut diff(
        &app_dsn(Side::Source, Some("Wr0ngSecret")),
        &dsn(Side::Target),
        "pw.t",
    ));
    r.assert_clean_error("access denied");
    assert!(!r.stderr.contains("Wr0ngSecret"));
    assert!(r.stderr.contains("app:***@"), "{}", r.stderr);

    // A password file that does not exist.
    let r = run(
        diff(&app_dsn(Side::Source, None), &dsn(Side::Target), "pw.t")
            .arg("--source-password-file")
            .arg(dir.path().join("nope")),
    );
    r.assert_clean_error("cannot read password file");
}

#[tokio::test]
async fn unix_socket_and_database_in_the_dsn() {
    one_table("sock").await;
    let sb = sandbox();
    let src = format!(
        "mysql://root@localhost/sock?socket={}",
        sb.source.socket.display()
    );
    let r = run(&mut diff(
        &src,
        &format!("{}/sock", dsn(Side::Target)),
        "sock.t",
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["summary"]["rows_compared"], 1);
}

#[tokio::test]
async fn tls_modes_over_rustls() {
    one_table("tls").await;
    let ca = sandbox()
        .tls_ca
        .clone()
        .expect("the test sandbox serves TLS");
    let with = |q: &str| format!("{}?{q}", dsn(Side::Source));
    let tls_of = |r: &Run| r.json()["connections"]["source"]["tls"].clone();

    // `preferred` (the default) and `required` encrypt; `disabled` does not.
    for q in ["ssl-mode=preferred", "ssl-mode=required"] {
        let r = run(&mut diff(&with(q), &dsn(Side::Target), "tls.t"));
        assert_eq!(r.code, 0, "{q}: {}", r.stderr);
        assert!(
            tls_of(&r).as_str().is_some_and(|c| !c.is_empty()),
            "{q}: {}",
            r.stdout
        );
    }
    let r = run(&mut diff(
        &with("ssl-mode=disabled"),
        &dsn(Side::Target),
        "tls.t",
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tls_of(&r), serde_json::Value::Null);

    // The certificate checks: the sandbox's CA verifies, another CA does not.
    let good = format!("ssl-ca={}", ca.display());
    for mode in ["verify-ca", "verify-identity"] {
        let r = run(&mut diff(
            &with(&format!("ssl-mode={mode}&{good}")),
            &dsn(Side::Target),
            "tls.t",
        ));
        assert_eq!(r.code, 0, "{mode}: {}", r.stderr);
        assert!(tls_of(&r).is_string());
    }
    let other = tempfile::tempdir().unwrap();
    let foreign = cutover_sandbox::tls::generate(other.path(), "some other CA").unwrap();
    let r = run(&mut diff(
        &with(&format!(
            "ssl-mode=verify-ca&ssl-ca={}",
            foreign.ca.display()
        )),
        &dsn(Side::Target),
        "tls.t",
    ));
    r.assert_clean_error("cannot connect to source");

    // verify-ca without a CA file, and a CA file that does not exist.
    let r = run(&mut diff(
        &with("ssl-mode=verify-ca"),
        &dsn(Side::Target),
        "tls.t",
    ));
    r.assert_clean_error("needs ssl-ca");
    let r = run(&mut diff(
        &with("ssl-mode=verify-identity&ssl-ca=/nonexistent/ca.pem"),
        &dsn(Side::Target),
        "tls.t",
    ));
    r.assert_clean_error("ssl-ca file /nonexistent/ca.pem does not exist");
}

#[tokio::test]
async fn bad_input_gets_one_clear_line() {
    // Unreachable host: port 1 (tcpmux), where nothing listens. (A port found free now could
    // be taken by a server that a parallel test starts.)
    let r = run(&mut diff(
        "mysql://root@127.0.0.1:1",
        &dsn(Side::Target),
        "x.t",
    ));
    r.assert_clean_error("cannot connect to source");

    // Not a MySQL DSN.
    let r = run(&mut diff(
        "postgres://u:pw@127.0.0.1/db",
        &dsn(Side::Target),
        "x.t",
    ));
    r.assert_clean_error("unsupported DSN scheme `postgres`");
    let r = run(&mut diff("not a dsn", &dsn(Side::Target), "x.t"));
    r.assert_clean_error("--source");

    // A malformed config file.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cutover.toml");
    std::fs::write(
        &cfg,
        "[source]\ndsn = \"mysql://root@h\"\n[diff]\nthreads = \"lots\"\n",
    )
    .unwrap();
    let r = run(cutover().arg("diff").arg("--config").arg(&cfg));
    r.assert_clean_error("cutover.toml");
    let r = run(cutover().args(["diff", "--config", "/nonexistent/cutover.toml"]));
    r.assert_clean_error("cannot read config");

    // No endpoints at all.
    let r = run(cutover().arg("diff"));
    r.assert_clean_error("no source given");

    // A bad pattern and a bad duration.
    let r = run(&mut diff(&dsn(Side::Source), &dsn(Side::Target), "nodot"));
    r.assert_clean_error("is not db.table");
    let r = run(diff(&dsn(Side::Source), &dsn(Side::Target), "x.t").args(["--chunk-time", "soon"]));
    r.assert_clean_error("--chunk-time");
}

#[tokio::test]
async fn config_file_supplies_endpoints_and_routes() {
    fresh_db("cfg_src").await;
    fresh_db("cfg_dst").await;
    exec(
        Side::Source,
        "USE cfg_src; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1,1),(2,2)",
    )
    .await;
    exec(
        Side::Target,
        "USE cfg_dst; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1,1),(2,3)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cutover.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ndsn = \"{}\"\n[target]\ndsn = \"{}\"\n[filter]\ntables = [\"cfg_src.*\"]\n\
             [[route]]\nsource = \"cfg_src.*\"\ntarget = \"cfg_dst.*\"\n[diff]\nthreads = 2\n",
            dsn(Side::Source),
            dsn(Side::Target)
        ),
    )
    .unwrap();
    let r = run(cutover()
        .arg("--config")
        .arg(&cfg)
        .args(["diff", "--format", "json"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["tables"][0]["source"], "cfg_src.t");
    assert_eq!(v["tables"][0]["target"], "cfg_dst.t");
    assert_eq!(v["tables"][0]["mismatched"], 1);

    // Two source tables routed into one target table: compared together, as one.
    exec(
        Side::Source,
        "USE cfg_src; CREATE TABLE t2 (id INT PRIMARY KEY, v INT)",
    )
    .await;
    let merge = dir.path().join("merge.toml");
    std::fs::write(
        &merge,
        format!(
            "[source]\ndsn = \"{}\"\n[target]\ndsn = \"{}\"\n\
             [[route]]\nsource = \"cfg_src.*\"\ntarget = \"cfg_dst.t\"\n",
            dsn(Side::Source),
            dsn(Side::Target)
        ),
    )
    .unwrap();
    let r = run(cutover().arg("--config").arg(&merge).args([
        "diff",
        "--tables",
        "cfg_src.*",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["tables"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["tables"][0]["source"], "cfg_src.t + cfg_src.t2");
    assert_eq!(
        v["tables"][0]["sources"],
        serde_json::json!(["cfg_src.t", "cfg_src.t2"])
    );
    assert_eq!(v["tables"][0]["mismatched"], 1, "{v:#}");
}
