//! One output contract: every command that prints JSON prints one document with the same
//! common fields (`version`, `command`, `started_at`, `finished_at`, `verdict`, `exit_code`,
//! `argv` without secrets) and the same shapes (a table is `{source, target}`, a difference
//! has a `kind`, durations are `*_ms`), checked against `docs/output.schema.json`; and every
//! one of them piped into `head -c 1` ends with its own exit code, never a panic. Report files
//! of `--out` are that document (0600 when row values are inside), and the Markdown and HTML
//! open with the run's provenance.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const SCHEMA: &str = include_str!("../../../../docs/output.schema.json");

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema is a JSON Schema")
    })
}

/// Asserts `v` is a document the schema accepts, of `command`, ending with `code`.
fn assert_document(v: &Value, command: &str, code: i32) {
    let errors: Vec<String> = validator()
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{command}: {errors:#?}\n{v:#}");
    assert_eq!(v["command"], command, "{v:#}");
    assert_eq!(v["exit_code"], code, "{v:#}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

/// Runs a command with `--format json` (already among its arguments): exit `code`, and on
/// stdout one document of `command` the schema accepts. Then the same command again with its
/// stdout into `head -c 1`: the same exit code, no panic.
fn json_run(make: impl Fn() -> Command, command: &str, code: i32) -> Value {
    let r = run(&mut make());
    assert_eq!(r.code, code, "{command}\n{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let v = r.json();
    assert_document(&v, command, code);
    into_head(make(), command, code);
    v
}

/// The command's stdout into `head -c 1`, which reads one byte and goes away.
fn into_head(mut cmd: Command, command: &str, code: i32) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cutover");
    let stdout = child.stdout.take().expect("stdout");
    let head = Command::new("head")
        .args(["-c", "1"])
        .stdin(Stdio::from(stdout))
        .stdout(Stdio::piped())
        .spawn()
        .expect("head")
        .wait_with_output()
        .expect("head's output");
    let out = child.wait_with_output().expect("cutover's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{command} | head -c 1: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    assert_eq!(head.stdout, b"{", "{command}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn comparisons_speak_one_envelope_without_secrets() {
    fresh_db("outj").await;
    both(
        "CREATE TABLE outj.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO outj.t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .await;
    exec(Side::Target, "UPDATE outj.t SET v = 'x' WHERE id = 2").await;
    let sb = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diff");
    let secret = cutover_sandbox::APP_PASSWORD;
    // The source logs in with a password inline: it is in no output.
    let diff = || {
        let mut c = cutover();
        c.args(["diff", "--source", &sb.source.app_dsn(None)])
            .args(["--target", &dsn(Side::Target)])
            .args(["--tables", "outj.*", "--format", "json", "--out"])
            .arg(&out);
        c
    };
    let r = run(&mut diff());
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    let v = json_run(diff, "diff", 1);
    assert_eq!(v["verdict"], "differences");
    assert_eq!(v["tables"][0]["source"], "outj.t");
    assert_eq!(v["tables"][0]["diffs"][0]["kind"], "mismatched");
    let argv: Vec<&str> = v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(argv[1], "diff");
    assert!(
        argv.iter().any(|a| a.starts_with("mysql://app:***@")),
        "{argv:?}"
    );
    // The files of --out: the same document, row values for the owner only, provenance first.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_document(&json, "diff", 1);
    for name in ["report.json", "report.md", "report.html"] {
        let p = out.join(name);
        assert_eq!(mode(&p), 0o600, "{name}");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains(secret), "{name}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let first = |word: &str| md.find(word).unwrap_or(usize::MAX);
    assert!(
        first("Verdict") < first("When") && first("When") < first("outj.t"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("differences") && html.contains(json["started_at"].as_str().unwrap()));

    // The same equal table: `same`, exit 0; the human form opens with the provenance.
    exec(Side::Target, "UPDATE outj.t SET v = 'b' WHERE id = 2").await;
    json_run(|| diff_command("outj.*", &[]), "diff", 0);
    let r = run(cutover()
        .args(["diff", "--source", &dsn(Side::Source)])
        .args(["--target", &dsn(Side::Target), "--tables", "outj.*"]));
    assert!(r.stdout.starts_with("cutover diff "), "{}", r.stdout);

    // check, on the source only.
    let check = || {
        let mut c = cutover();
        c.args(["check", "--source", &dsn(Side::Source)])
            .args(["--tables", "outj.*", "--exclude", "outj.none"])
            .args(["--format", "json"]);
        c
    };
    let code = run(&mut check()).code;
    assert!(code == 0 || code == 1, "check exit {code}");
    let v = json_run(check, "check", code);
    assert!(v["findings"].is_array());

    // verify, for a second.
    let verify = || {
        let mut c = cutover();
        c.args(["verify", "--source", &dsn(Side::Source)])
            .args(["--target", &dsn(Side::Target)])
            .args(["--tables", "outj.*", "--exclude", "outj.none"])
            .args(["--for", "1s", "--format", "json"]);
        c
    };
    let v = json_run(verify, "verify", 0);
    assert_eq!(v["verdict"], "same");
    assert!(v["lag"]["p50_ms"].is_number(), "{v:#}");

    // probe, one test.
    let probe = || {
        let mut c = cutover();
        c.args(["probe", "isolation", "--source", &dsn(Side::Source)])
            .args(["--target", &dsn(Side::Target)])
            .args(["--scratch-db", "cutover_probe_output", "--tests", "g0"])
            .args(["--format", "json"]);
        c
    };
    json_run(probe, "probe isolation", 0);
}

const GENERAL_LOG: &str = "\
2024-01-31T10:00:00.000000Z\t    5 Connect\troot@localhost on outj using TCP/IP
2024-01-31T10:00:00.100000Z\t    5 Query\tSELECT v FROM t WHERE id = 1
2024-01-31T10:00:00.200000Z\t    5 Query\tSELECT COUNT(*) FROM t
2024-01-31T10:00:00.300000Z\t    5 Quit\t
";

#[tokio::test(flavor = "multi_thread")]
async fn workloads_and_replay_speak_one_envelope() {
    fresh_db("outw").await;
    both("CREATE TABLE outw.t (id INT PRIMARY KEY, v INT); INSERT INTO outw.t VALUES (1, 1)").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("general.log");
    std::fs::write(&log, GENERAL_LOG.replace("outj", "outw")).unwrap();
    let w = dir.path().join("w.cwl");
    let capture = || {
        let mut c = cutover();
        c.args(["capture", "--from", "general-log", "--input"])
            .arg(&log)
            .arg("--output")
            .arg(&w)
            .args(["--format", "json"]);
        c
    };
    let v = json_run(capture, "capture", 0);
    assert_eq!(v["statements"], 2);
    assert!(v["span_ms"].is_number(), "{v:#}");
    json_run(
        || {
            let mut c = cutover();
            c.args(["workload", "stats", "--format", "json"]).arg(&w);
            c
        },
        "workload stats",
        0,
    );
    let v = json_run(
        || {
            let mut c = cutover();
            c.args(["workload", "head", "-n", "2", "--format", "json"])
                .arg(&w);
            c
        },
        "workload head",
        0,
    );
    assert_eq!(v["records"].as_array().map(Vec::len), Some(2));
    let cut = dir.path().join("cut.cwl");
    let v = json_run(
        || {
            let mut c = cutover();
            c.args(["workload", "filter", "--format", "json", "--output"])
                .arg(&cut)
                .arg(&w);
            c
        },
        "workload filter",
        0,
    );
    assert_eq!(v["kept"], v["read"]);
    let out = dir.path().join("replay");
    let replay = || {
        let mut c = cutover();
        c.arg("replay")
            .arg(&w)
            .args(["--target", &dsn(Side::Target)])
            .args(["--baseline", &dsn(Side::Source)])
            .args(["--read-only", "--speed", "max", "--query-timeout", "30s"])
            .args(["--format", "json", "--out"])
            .arg(&out);
        c
    };
    let v = json_run(replay, "replay", 0);
    assert_eq!(v["compared"], 2, "{v:#}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("replay.json")).unwrap()).unwrap();
    assert_document(&json, "replay", 0);
    for name in ["replay.json", "replay.md", "replay.html"] {
        assert_eq!(mode(&out.join(name)), 0o600, "{name}");
    }

    // The older spellings still work, each with one line saying the new one.
    let old = dir.path().join("old.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--out")
        .arg(&old));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        "cutover: warning: --out is deprecated; use --output"
    );
    assert!(old.exists());
    let r = run(&mut diff_command("outw.*", &["--skip", "outw.none"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cutover: warning: --skip is deprecated; use --exclude"),
        "{}",
        r.stderr
    );
}

#[test]
fn replay_that_writes_asks_first_and_without_a_terminal_refuses_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("general.log");
    std::fs::write(&log, GENERAL_LOG).unwrap();
    let w = dir.path().join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Nothing listens on these ports: a replay that tried to connect would fail otherwise.
    let started = Instant::now();
    let r = run(cutover()
        .arg("replay")
        .arg(&w)
        .args(["--target", "mysql://u:pw-target@127.0.0.1:1"])
        .args(["--baseline", "mysql://u:pw-base@127.0.0.1:2"]));
    r.assert_clean_error("not a terminal");
    assert!(r.stderr.contains("the target 127.0.0.1:1"), "{}", r.stderr);
    assert!(
        r.stderr.contains("the baseline 127.0.0.1:2"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(!r.stderr.contains("pw-"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    // With --yes it goes on, names the servers, and fails only at connecting.
    let r = run(cutover().arg("replay").arg(&w).args([
        "--target",
        "mysql://u:pw-target@127.0.0.1:1",
        "--yes",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("writes included, on the target 127.0.0.1:1"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("pw-"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn drills_sandboxes_and_proxies_speak_one_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("runbook.toml");
    std::fs::write(
        &rb,
        r#"
[runbook]
name = "output"
announce = ["stdout"]

[[step]]
id = "hello"
title = "Say hello"
dri = "alice"
reviewer = "bob"
expect = "5s"
run = "true"

[[step]]
id = "confirm"
title = "Confirm by hand"
dri = "alice"
reviewer = "bob"
expect = "5s"
manual = true
"#,
    )
    .unwrap();
    let journal = dir.path().join("journal");
    let drill = cutover()
        .args(["drill", "run", "--format", "json"])
        .arg(&rb)
        .arg("--journal")
        .arg(&journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("drill run");
    let status = || {
        let mut c = cutover();
        c.args(["drill", "status", "--format", "json", "--journal"])
            .arg(&journal);
        c
    };
    wait_for("the manual step", Duration::from_secs(60), || {
        let ready = journal.join("journal.jsonl").exists() && {
            let r = run(&mut status());
            r.code == 0 && r.json()["current"]["waiting_for"] == "ack"
        };
        async move { ready }
    })
    .await;
    let v = json_run(status, "drill status", 0);
    assert!(v["elapsed_ms"].is_number(), "{v:#}");
    let r = run(cutover()
        .args([
            "drill",
            "ack",
            "confirm",
            "--by",
            "alice",
            "--format",
            "json",
            "--journal",
        ])
        .arg(&journal));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_document(&r.json(), "drill ack", 0);
    let out = tokio::task::spawn_blocking(move || drill.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // Announcements went to stderr: stdout is the one document.
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_document(&v, "drill run", 0);
    assert_eq!(v["outcome"], "completed");
    assert!(stderr.contains("Say hello"), "{stderr}");
    let report = || {
        let mut c = cutover();
        c.args(["drill", "report", "--format", "json", "--journal"])
            .arg(&journal);
        c
    };
    let v = json_run(report, "drill report", 0);
    assert!(v["runs"][0]["total_ms"].is_number(), "{v:#}");

    // The test's own sandbox, as `sandbox status` sees it; setup-only flags are refused.
    let sb_dir = sandbox().dir.clone();
    let v = json_run(
        || {
            let mut c = cutover();
            c.args(["sandbox", "status", "--format", "json", "--dir"])
                .arg(&sb_dir);
            c
        },
        "sandbox status",
        0,
    );
    assert!(v["server_version"].is_string(), "{v:#}");
    for action in ["status", "down"] {
        let r = run(cutover()
            .args(["sandbox", action, "--tls", "--dir"])
            .arg(&sb_dir));
        assert_eq!(r.code, 2, "sandbox {action} --tls: {}", r.stderr);
    }

    // A proxy, stopped by SIGTERM once it listens: its summary.
    let record = dir.path().join("p.cwl");
    let log = dir.path().join("proxy.log");
    let proxy = |stdout: Stdio| {
        cutover()
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("127.0.0.1:{}", port(Side::Source)))
            .arg("--output")
            .arg(&record)
            .args(["--format", "json"])
            .stdout(stdout)
            .stderr(std::fs::File::create(&log).expect("proxy log"))
            .spawn()
            .expect("proxy")
    };
    let listening = || async {
        wait_for("the proxy to listen", Duration::from_secs(30), || {
            let up = std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on"));
            async move { up }
        })
        .await
    };
    let child = proxy(Stdio::piped());
    listening().await;
    let out = sigterm_and_wait(child).await;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("proxy JSON");
    assert_document(&v, "proxy", 0);
    let mut head = Command::new("head")
        .args(["-c", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("head");
    let into = head.stdin.take().expect("head's stdin");
    let child = proxy(Stdio::from(into));
    listening().await;
    let out = sigterm_and_wait(child).await;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(head.wait_with_output().unwrap().stdout, b"{");
}

#[test]
fn sandbox_up_and_down_speak_one_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let sb = dir.path().join("sb");
    // Stops the servers if an assertion fails half way.
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = cutover()
                .args(["sandbox", "down", "--dir"])
                .arg(&self.0)
                .output();
        }
    }
    let _down = Down(sb.clone());
    let r = run(cutover()
        .args([
            "sandbox",
            "up",
            "--buffer-pool-mb",
            "16",
            "--format",
            "json",
            "--dir",
        ])
        .arg(&sb));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_document(&r.json(), "sandbox up", 0);
    let r = run(cutover()
        .args(["sandbox", "down", "--format", "json", "--dir"])
        .arg(&sb));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_document(&r.json(), "sandbox down", 0);
}

#[test]
fn the_schema_refuses_a_missing_field_a_password_and_seconds() {
    let good = serde_json::json!({
        "version": "0.1.0", "command": "diff",
        "started_at": "2026-01-02T03:04:05.000Z", "finished_at": "2026-01-02T03:04:06.000Z",
        "verdict": "same", "exit_code": 0,
        "argv": ["cutover", "diff", "--source", "mysql://app:***@h:3306"],
        "tables": [{"source": "a.t", "target": "a.t", "status": "equal", "diffs": [],
                    "elapsed_ms": 3}],
        "summary": {"elapsed_ms": 3},
    });
    assert!(validator().is_valid(&good));
    let mut bad = Vec::new();
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("started_at");
    bad.push(v);
    let mut v = good.clone();
    v["argv"][3] = "mysql://app:s3cret@h:3306".into();
    bad.push(v);
    let mut v = good.clone();
    v["summary"]["elapsed_s"] = 1.5.into();
    bad.push(v);
    let mut v = good.clone();
    v["verdict"] = "differences".into();
    bad.push(v);
    let mut v = good.clone();
    v["tables"][0]["target"] = 7.into();
    bad.push(v);
    for v in bad {
        assert!(!validator().is_valid(&v), "{v:#}");
    }
}
