//! What an operator can cause or meet, ending cleanly: a closed stdout, filters that select
//! nothing, outputs that cannot be written, half-written files, configuration files.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// A stdout whose reader is already gone (`| true`): every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors; each is owned exactly once below.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2");
    unsafe {
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Runs `cmd` with its stdout closed; the exit code and stderr.
fn with_closed_stdout(mut cmd: Command) -> (i32, String) {
    let out = cmd
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("running cutover");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_no_panic(what: &str, (code, stderr): (i32, String), expected: i32) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
    assert_ne!(code, 101, "{what}: {stderr}");
    assert_eq!(code, expected, "{what}: {stderr}");
}

fn c(args: &[&str]) -> Command {
    let mut c = cutover();
    c.args(args);
    c
}

const GENERAL_LOG: &str =
    "mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 33999  Unix socket: /tmp/mdb/s.sock
Time\t\t    Id Command\tArgument
261127 12:12:19\t     3 Connect\troot@localhost on  using Socket
\t\t     3 Query\tselect 1
\t\t     3 Query\tselect 2
\t\t     3 Quit\t
";

/// A small workload file made by `capture` from a general log.
fn workload(dir: &Path) -> std::path::PathBuf {
    let log = dir.join("general.log");
    std::fs::write(&log, GENERAL_LOG).unwrap();
    let w = dir.join("w.jsonl.gz");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--out")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_is_the_readers_choice_never_a_panic() {
    fresh_db("pipes").await;
    both("CREATE TABLE pipes.t (id INT PRIMARY KEY, v INT); INSERT INTO pipes.t VALUES (1, 1)")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sb = sandbox().dir.display().to_string();
    let w = workload(d);
    let w = w.to_str().unwrap();
    let log = d.join("general.log");
    let log = log.to_str().unwrap();

    assert_no_panic("--help", with_closed_stdout(c(&["--help"])), 0);
    assert_no_panic("diff --help", with_closed_stdout(c(&["diff", "--help"])), 0);
    assert_no_panic("--version", with_closed_stdout(c(&["--version"])), 0);
    for f in ["human", "json"] {
        assert_no_panic(
            "diff",
            with_closed_stdout(c(&[
                "diff",
                "--source",
                &dsn(Side::Source),
                "--target",
                &dsn(Side::Target),
                "--tables",
                "pipes.t",
                "--format",
                f,
            ])),
            0,
        );
        assert_no_panic(
            "sandbox status",
            with_closed_stdout(c(&["sandbox", "status", "--dir", &sb, "--format", f])),
            0,
        );
        assert_no_panic(
            "check",
            with_closed_stdout(c(&[
                "check",
                "--source",
                &dsn(Side::Source),
                "--target",
                &dsn(Side::Target),
                "--databases",
                "pipes",
                "--format",
                f,
            ])),
            0,
        );
        assert_no_panic(
            "workload stats",
            with_closed_stdout(c(&["workload", "stats", w, "--format", f])),
            0,
        );
    }
    assert_no_panic(
        "workload head",
        with_closed_stdout(c(&["workload", "head", w])),
        0,
    );
    let w2 = d.join("w2.jsonl.gz");
    assert_no_panic(
        "capture",
        with_closed_stdout(c(&[
            "capture",
            "--from",
            "general-log",
            "--input",
            log,
            "--out",
            w2.to_str().unwrap(),
        ])),
        0,
    );

    // A drill: its announcements, `ack` while it waits, `status` and `report`.
    let rb = d.join("rb.toml");
    std::fs::write(
        &rb,
        r#"
[runbook]
name = "pipes"
announce = ["stdout"]

[[step]]
id = "hand"
title = "By hand"
dri = "alice"
reviewer = "bob"
expect = "30s"
manual = true
"#,
    )
    .unwrap();
    let j = d.join("j");
    let js = j.to_str().unwrap().to_string();
    let mut drill = c(&["drill", "run", rb.to_str().unwrap(), "--journal", &js]);
    let child = drill
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let jj = j.clone();
    wait_for("the manual step to wait", Duration::from_secs(60), || {
        let r = run(cutover()
            .args(["drill", "status", "--format", "json", "--journal"])
            .arg(&jj));
        let ok = r.code == 0 && r.json()["current"]["waiting_for"] == "ack";
        async move { ok }
    })
    .await;
    for f in ["human", "json"] {
        assert_no_panic(
            "drill status",
            with_closed_stdout(c(&["drill", "status", "--journal", &js, "--format", f])),
            0,
        );
    }
    assert_no_panic(
        "drill ack",
        with_closed_stdout(c(&[
            "drill",
            "ack",
            "hand",
            "--by",
            "alice",
            "--journal",
            &js,
        ])),
        0,
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_no_panic(
        "drill run",
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        0,
    );
    assert_no_panic(
        "drill report",
        with_closed_stdout(c(&["drill", "report", &js])),
        0,
    );
}

/// Sends SIGCONT to a stopped server when dropped, so a failing test never leaves it stopped.
struct Stopped(i32);
impl Stopped {
    fn stop(pid: u32) -> Stopped {
        // SAFETY: signals a server this test started.
        unsafe {
            libc::kill(pid as i32, libc::SIGSTOP);
        }
        Stopped(pid as i32)
    }
}
impl Drop for Stopped {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_ends_diff_within_seconds_while_a_server_is_stopped() {
    use mysql_async::prelude::Queryable;
    // A sandbox of its own: stopping a server must not disturb other tests.
    let sb = tokio::task::spawn_blocking(|| {
        cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default())
            .expect("sandbox")
    })
    .await
    .unwrap();
    let setup = "CREATE DATABASE hang; CREATE TABLE hang.t (id INT PRIMARY KEY, v INT); \
                 INSERT INTO hang.t SELECT seq, seq FROM test.seq_1_to_1000";
    sb.source.sql(setup).unwrap();
    sb.target.sql(setup).unwrap();
    let opts = |port: u16| {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some("root"))
            .prefer_socket(false)
    };
    // The diff's reads of the target wait on this lock; then the target stops altogether.
    let mut holder = mysql_async::Conn::new(opts(sb.target.port)).await.unwrap();
    holder.query_drop("LOCK TABLES hang.t WRITE").await.unwrap();
    let child = cutover()
        .args([
            "diff",
            "--source",
            &sb.source.dsn(None),
            "--target",
            &sb.target.dsn(None),
        ])
        .args(["--tables", "hang.t", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let port = sb.target.port;
    wait_for(
        "the diff to wait on the target",
        Duration::from_secs(60),
        || async move {
            let mut c = mysql_async::Conn::new(opts(port)).await.unwrap();
            let n: Option<u64> = c
                .query_first(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE '%`hang`%' AND INFO NOT LIKE '%PROCESSLIST%'",
                )
                .await
                .unwrap();
            let _ = c.disconnect().await;
            n.unwrap_or(0) > 0
        },
    )
    .await;
    let stopped = Stopped::stop(sb.target.pid);
    let t0 = std::time::Instant::now();
    // SAFETY: signals the cutover this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let took = t0.elapsed();
    drop(stopped);
    drop(holder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(took < Duration::from_secs(6), "took {took:?}: {stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(v["interrupted"], true);
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_filter_that_selects_nothing_is_an_error_in_diff_and_check() {
    fresh_db("nofilter").await;
    both("CREATE TABLE nofilter.t (id INT PRIMARY KEY)").await;
    let (s, t) = (dsn(Side::Source), dsn(Side::Target));
    let ends = ["--source", s.as_str(), "--target", t.as_str()];
    let mut check = c(&["check"]);
    check.args(ends).args(["--tables", "nofilter.typo"]);
    run(&mut check).assert_clean_error("no table of the selection");
    let mut check = c(&["check"]);
    check.args(ends).args(["--databases", "nofilter_typo"]);
    run(&mut check).assert_clean_error("does not exist");
    let mut diff = c(&["diff"]);
    diff.args(ends).args(["--tables", "nofilter.typo*"]);
    run(&mut diff).assert_clean_error("no tables match");
}

/// CPU time (user + system, clock ticks) a process has used, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Collects a child's stderr lines as they come.
fn collect(stderr: std::process::ChildStderr) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::BufRead as _;
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let t = text.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut t = t.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_out_of_descriptors_pauses_logs_and_recovers() {
    use std::os::unix::process::CommandExt as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // An upstream that holds every connection until its client goes (no server timeouts to
    // muddle the test), as a server does.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_port = upstream.local_addr().unwrap().port();
    let upstreams = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = upstreams.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("w.jsonl.gz");
    let listen = crate::verify_checkpoint::free_port();
    let mut cmd = cutover();
    cmd.args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--upstream", &format!("127.0.0.1:{up_port}")])
        .args(["--record", record.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's descriptor limit.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let has = |s: &str| stderr.lock().unwrap().contains(s);
    wait_for("the proxy to listen", Duration::from_secs(60), || {
        let ok = has("listening on");
        async move { ok }
    })
    .await;
    // Idle clients, each holding two of the proxy's descriptors, until it has none left.
    let mut clients = Vec::new();
    for _ in 0..60 {
        clients.push(std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap());
    }
    wait_for("accept to fail", Duration::from_secs(60), || {
        let ok = has("cannot accept clients");
        async move { ok }
    })
    .await;
    // Starved, it pauses between tries instead of spinning: under 5 % of a core.
    let before = cpu_ticks(child.id());
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let used = cpu_ticks(child.id()) - before;
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let share = used as f64 / hz / window.as_secs_f64();
    assert!(
        share < 0.05,
        "the starved proxy used {:.0} % of a core",
        share * 100.0
    );
    // Descriptors free again: it accepts again, new clients included.
    drop(clients);
    wait_for("accepting again", Duration::from_secs(60), || {
        let ok = has("accepting clients again");
        async move { ok }
    })
    .await;
    let before = upstreams.load(Ordering::SeqCst);
    let _late = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    wait_for("a new client relayed", Duration::from_secs(60), || {
        let ok = upstreams.load(Ordering::SeqCst) > before;
        async move { ok }
    })
    .await;
    let out = sigterm_and_wait(child).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr.lock().unwrap());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["accept_errors"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn workload_outputs_appear_only_complete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A workload big enough that a truncated copy still yields records before its error.
    let mut log = String::from(
        "mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:\nTcp port: 1  Unix socket: /tmp/s.sock\nTime\t\t    Id Command\tArgument\n261127 12:12:19\t     3 Connect\troot@localhost on  using Socket\n",
    );
    for i in 0..20_000 {
        log.push_str(&format!(
            "\t\t     3 Query\tselect {i}, 'some text that does not compress to nothing {}'\n",
            i * 7919 % 10007
        ));
    }
    std::fs::write(d.join("general.log"), log).unwrap();
    let w = d.join("w.jsonl.gz");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(d.join("general.log"))
        .arg("--out")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!d.join("w.jsonl.gz.partial").exists());
    let bytes = std::fs::read(&w).unwrap();
    let cut = d.join("cut.jsonl.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // An older output of the same name is neither replaced nor removed by a failed filter.
    let out = d.join("out.jsonl.gz");
    std::fs::write(&out, "older").unwrap();
    let r = run(cutover()
        .args(["workload", "filter"])
        .arg(&cut)
        .arg("--out")
        .arg(&out));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "older");
    assert!(
        !d.join("out.jsonl.gz.partial").exists(),
        "no partial file left"
    );
    let fresh = d.join("fresh.jsonl.gz");
    let r = run(cutover()
        .args(["workload", "filter"])
        .arg(&cut)
        .arg("--out")
        .arg(&fresh));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!fresh.exists(), "a failed filter leaves no output");
    // A complete filter gives a complete file under the name asked for.
    let r = run(cutover()
        .args(["workload", "filter"])
        .arg(&w)
        .arg("--out")
        .arg(&fresh));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(cutover()
        .args(["workload", "stats", "--format", "json"])
        .arg(&fresh));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_outputs_and_apply_are_checked_before_any_work() {
    fresh_db("early").await;
    both("CREATE TABLE early.t (id INT PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").join("fix.sql");
    run(&mut diff_command(
        "early.t",
        &["--fix-sql", missing.to_str().unwrap()],
    ))
    .assert_clean_error("--fix-sql");
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out_in_file = file.join("reports");
    let r = run(&mut diff_command(
        "early.t",
        &["--out", out_in_file.to_str().unwrap()],
    ));
    r.assert_clean_error("--out");
    assert!(r.stdout.is_empty(), "nothing compared: {}", r.stdout);
    // Without a terminal and without --yes, --apply is refused before comparing anything.
    let r = run(&mut diff_command("early.t", &["--apply"]));
    r.assert_clean_error("not a terminal");
    assert!(r.stdout.is_empty(), "nothing compared: {}", r.stdout);
}

#[test]
fn every_command_reads_its_config_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = workload(d);
    let w = w.to_str().unwrap().to_string();
    let log = d.join("general.log").to_str().unwrap().to_string();
    let out = d.join("o.jsonl.gz").to_str().unwrap().to_string();
    let j = d.join("j").to_str().unwrap().to_string();
    let sbdir = d.join("sb").to_str().unwrap().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "capture",
            "--from",
            "general-log",
            "--input",
            &log,
            "--out",
            &out,
        ],
        vec!["workload", "stats", &w],
        vec![
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--record",
            &out,
        ],
        vec!["drill", "status", "--journal", &j],
        vec!["sandbox", "status", "--dir", &sbdir],
    ];
    let missing = d.join("missing.toml");
    let broken = d.join("broken.toml");
    std::fs::write(&broken, "[source\ndsn = ").unwrap();
    let unknown = d.join("unknown.toml");
    std::fs::write(&unknown, "[diff]\nthreadz = 4\n").unwrap();
    let fine = d.join("fine.toml");
    std::fs::write(&fine, "[source]\ndsn = \"mysql://root@127.0.0.1:1\"\n").unwrap();
    for args in &commands {
        for (cfg, expected) in [
            (&missing, "missing.toml"),
            (&broken, "broken.toml"),
            (&unknown, "threadz"),
        ] {
            let r = run(cutover().arg("--config").arg(cfg).args(args));
            assert_eq!(r.code, 2, "{args:?} {cfg:?}: {}", r.stderr);
            assert!(
                r.stderr.starts_with("cutover: error: "),
                "{args:?}: {}",
                r.stderr
            );
            assert!(r.stderr.contains(expected), "{args:?}: {}", r.stderr);
        }
    }
    // A good config whose sections a command does not use changes nothing for it.
    let r = run(cutover()
        .arg("--config")
        .arg(&fine)
        .args(["workload", "stats", &w]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // ./cutover.toml is read when present.
    std::fs::copy(&broken, d.join("cutover.toml")).unwrap();
    let r = run(cutover().current_dir(d).args(["workload", "stats", &w]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cutover.toml"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redacted_diff_keeps_row_values_out_of_its_checkpoint() {
    fresh_db("redcp").await;
    both(
        "CREATE TABLE redcp.t (id INT PRIMARY KEY, v VARCHAR(40)); \
         INSERT INTO redcp.t SELECT seq, CONCAT('row', seq) FROM test.seq_1_to_2000",
    )
    .await;
    exec(
        Side::Target,
        "UPDATE redcp.t SET v = 'MarkerValue4711' WHERE id = 1234; DELETE FROM redcp.t WHERE id = 77",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let cps = cp.to_str().unwrap();
    let args = ["--checkpoint", cps, "--redact-values"];
    let first = diff_json("redcp.t", &args);
    assert_eq!(first.code, 1, "{}", first.stderr);
    let journal = std::fs::read_to_string(cp.join("journal.jsonl")).unwrap();
    assert!(!journal.is_empty());
    for value in ["MarkerValue4711", "row1234", "row77"] {
        assert!(
            !journal.contains(value),
            "{value} in the checkpoint: {journal}"
        );
    }
    assert!(!first.stdout.contains("MarkerValue4711"));
    // The resumed run (everything already done) gives the same verdict and counts.
    let again = diff_json("redcp.t", &args);
    assert_eq!(again.code, 1, "{}", again.stderr);
    let (a, b) = (first.json(), again.json());
    assert_eq!(a["tables"][0]["missing_in_target"], 1, "{a}");
    assert_eq!(a["tables"][0]["mismatched"], 1, "{a}");
    for k in [
        "missing_in_target",
        "mismatched",
        "rows_compared",
        "extra_in_target",
    ] {
        assert_eq!(a["tables"][0][k], b["tables"][0][k], "{k}");
    }
    // A resume without --redact-values is another comparison: refused.
    let r = diff_json("redcp.t", &["--checkpoint", cps]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn smaller_operator_errors_are_said_once_and_early() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing");
    let m = missing.to_str().unwrap();
    let out = d.join("o.jsonl.gz");
    let o = out.to_str().unwrap();
    // A cause is said once, not repeated by each error that wraps it.
    for args in [
        vec!["workload", "stats", m],
        vec!["workload", "filter", m, "--out", o],
        vec!["capture", "--from", "general-log", "--input", m, "--out", o],
        vec![
            "capture", "--from", "pcap", "--input", m, "--out", o, "--port", "3306",
        ],
        vec!["drill", "run", m, "--journal", o],
        vec!["--config", m, "workload", "stats", m],
    ] {
        let r = run(cutover().args(&args));
        r.assert_clean_error("missing");
        assert_eq!(
            r.stderr.matches("(os error 2)").count(),
            1,
            "{args:?}: {}",
            r.stderr
        );
    }
    // `demo --rows` below what the demo needs is refused, not silently raised.
    let r = run(cutover().args(["demo", "--rows", "10"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--rows"), "{}", r.stderr);
    // An unwritable `demo --out` is found before any sandbox starts.
    let file = d.join("file");
    std::fs::write(&file, "").unwrap();
    let t0 = std::time::Instant::now();
    let r = run(cutover().args(["demo", "--out"]).arg(file.join("reports")));
    r.assert_clean_error("--out");
    assert!(!r.stdout.contains("sandbox"), "{}", r.stdout);
    assert!(t0.elapsed() < Duration::from_secs(30));
}
