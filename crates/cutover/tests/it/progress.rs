//! Progress of long commands with stderr going to a file (as under `nohup`, in CI or a
//! runbook): a line every `--progress-interval` with the command's figures, the last one a
//! summary; none with `--quiet`; and verify's confirmed mismatches on the output the moment
//! they are confirmed. The sizes are small; `--rate` and the recorded timeline make the runs
//! last several intervals on any machine.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_sandbox::{Sandbox, Settings};
use cutover_workload::{Command, Header, Record, Writer};

use crate::harness::*;

const DEADLINE: Duration = Duration::from_secs(120);

/// Whether a line opens with the time it was written (`2026-01-31T10:00:00Z `).
fn timed(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21 && b[10] == b'T' && b[19] == b'Z' && b[20] == b' '
}

/// A progress line: `2026-01-31T10:00:00Z COMMAND: figures`.
fn is_progress(line: &str, command: &str) -> bool {
    timed(line) && line[21..].starts_with(&format!("{command}: "))
}

/// The progress lines of `command` in `stderr`: those written while it ran, and the final one.
fn progress(stderr: &str, command: &str) -> (Vec<String>, Option<String>) {
    let all: Vec<String> = stderr
        .lines()
        .filter(|l| is_progress(l, command))
        .map(str::to_string)
        .collect();
    let (finished, during): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|l| l.contains(&format!("{command}: finished: ")));
    assert!(finished.len() <= 1, "{finished:?}");
    (during, finished.into_iter().next())
}

/// Lines written at least an interval apart: their whole-second times increase.
fn assert_spaced(lines: &[String]) {
    let times: Vec<&str> = lines.iter().map(|l| &l[..20]).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "lines closer than the interval: {lines:#?}"
    );
}

/// An `ETA` with a time, not `ETA ?`.
fn has_eta(line: &str) -> bool {
    line.split("ETA ")
        .nth(1)
        .and_then(|s| s.chars().next())
        .is_some_and(|c| c.is_ascii_digit())
}

#[tokio::test]
async fn a_long_diff_writes_a_progress_line_every_interval_and_quiet_writes_none() {
    fresh_db("prog_diff").await;
    both(
        "USE prog_diff; CREATE TABLE a (id INT PRIMARY KEY, v INT); \
         CREATE TABLE b (id INT PRIMARY KEY, v INT); \
         INSERT INTO a SELECT seq, seq FROM seq_1_to_60000; \
         INSERT INTO b SELECT seq, seq FROM seq_1_to_40000; ANALYZE TABLE a, b",
    )
    .await;
    exec(Side::Target, "UPDATE prog_diff.b SET v = 0 WHERE id = 7").await;

    // 20,000 rows a second: 100,000 rows take four seconds or more, whatever the machine.
    let started = Instant::now();
    let r = run(&mut diff_command(
        "prog_diff.*",
        &["--rate", "20000", "--progress-interval", "1s"],
    ));
    let took = started.elapsed();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let (during, finished) = progress(&r.stderr, "diff");
    assert!(during.len() >= 2, "{}", r.stderr);
    assert!(
        during.len() as u64 <= took.as_secs() + 1,
        "more than a line per interval: {during:#?}"
    );
    assert_spaced(&during);
    for l in &during {
        assert!(l.contains(" tables, ") && l.contains(" rows/s"), "{l}");
        // The rows of both tables, estimated before the first is finished.
        assert!(l.contains("/~"), "{l}");
    }
    assert!(during.iter().any(|l| has_eta(l)), "{during:#?}");
    assert!(
        during.iter().any(|l| l.contains("; prog_diff.a ")),
        "the current table: {during:#?}"
    );
    let finished = finished.unwrap_or_else(|| panic!("no final line:\n{}", r.stderr));
    assert!(
        finished.contains("diff: finished: 2/2 tables, 100,000 rows, ")
            && finished.contains(" rows/s, 1 table differs, "),
        "{finished}"
    );

    let r = run(&mut diff_command(
        "prog_diff.*",
        &["--rate", "50000", "--progress-interval", "500ms", "--quiet"],
    ));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let (during, finished) = progress(&r.stderr, "diff");
    assert!(during.is_empty() && finished.is_none(), "{}", r.stderr);
    assert!(!r.stderr.contains("ETA"), "{}", r.stderr);
}

#[test]
fn a_bad_progress_interval_is_one_clear_error() {
    let r = run(cutover().args(["--progress-interval", "soon", "workload", "stats", "x"]));
    r.assert_clean_error("--progress-interval");
    let r = run(cutover().args(["workload", "stats", "x", "--progress-interval", "0s"]));
    r.assert_clean_error("--progress-interval");
}

#[tokio::test]
async fn a_replay_writes_its_figures_every_interval() {
    fresh_db("prog_replay").await;
    both(
        "USE prog_replay; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
         INSERT INTO t SELECT seq, seq FROM seq_1_to_100",
    )
    .await;
    exec(Side::Target, "UPDATE prog_replay.t SET v = -1 WHERE id = 7").await;
    // Three sessions, a statement each every 100 ms over 4 s of recorded time; two of the
    // 120 statements read the row that differs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.cwl");
    let mut w = Writer::create(&path, &Header::new("general-log", None)).unwrap();
    let t0 = 1_700_000_000_000_000i64;
    let rec = |session: u64, ts_us: i64, command: Command| Record {
        session,
        ts_us,
        db: Some("prog_replay".into()),
        user: None,
        command,
        response: None,
    };
    for s in 1..=3u64 {
        w.write(&rec(s, t0, Command::Connect)).unwrap();
    }
    for i in 0..40i64 {
        for s in 1..=3i64 {
            let id = (i * 3 + s) % 100 + 1;
            let sql = format!("SELECT v FROM t WHERE id = {id}");
            w.write(&rec(
                s as u64,
                t0 + i * 100_000 + s * 1000,
                Command::Query { sql },
            ))
            .unwrap();
        }
    }
    // No quit: the sessions end with the workload (the replay ends them itself).
    w.finish().unwrap();

    let r = run(cutover()
        .arg("replay")
        .arg(&path)
        .args([
            "--target",
            &dsn(Side::Target),
            "--baseline",
            &dsn(Side::Source),
        ])
        .args(["--read-only", "--speed", "1", "--format", "json"])
        .args(["--progress-interval", "1s"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["statements"], 120, "{v:#}");
    assert_eq!(v["statements_with_diffs"], 2, "{v:#}");
    // The ends the replay adds are not statements running 4 s late.
    assert!(
        v["lag"]["max_ms"].as_f64().unwrap_or(f64::MAX) < 2000.0,
        "{v:#}"
    );
    let (during, finished) = progress(&r.stderr, "replay");
    assert!(during.len() >= 2, "{}", r.stderr);
    assert_spaced(&during);
    for l in &during {
        for figure in [
            " statements",
            " open, ",
            "s behind the recording, ",
            " differ, ",
            " not compared",
        ] {
            assert!(l.contains(figure), "`{figure}` in {l}");
        }
    }
    // The total is counted by the pass that checks the whole file before anything is sent; the ETA follows the recorded timeline.
    assert!(
        during
            .iter()
            .any(|l| l.contains("/120 statements") && has_eta(l)),
        "{during:#?}"
    );
    let finished = finished.unwrap_or_else(|| panic!("no final line:\n{}", r.stderr));
    assert!(
        finished.contains("replay: finished: 120 statements, ")
            && finished.contains(", 2 differ, 0 not compared"),
        "{finished}"
    );
}

#[tokio::test]
async fn check_sample_counts_down_to_the_second_reading() {
    fresh_db("prog_check").await;
    exec(
        Side::Source,
        "CREATE TABLE prog_check.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT); \
         INSERT INTO prog_check.t (v) VALUES (1), (2)",
    )
    .await;
    let r = run(cutover()
        .args(["check", "--source", &dsn(Side::Source)])
        .args(["--databases", "prog_check", "--sample", "3s"])
        .args(["--progress-interval", "1s"]));
    assert!(r.code == 0 || r.code == 1, "{}\n{}", r.stdout, r.stderr);
    let (during, finished) = progress(&r.stderr, "check");
    assert!(during.len() >= 2, "{}", r.stderr);
    assert_spaced(&during);
    assert!(
        during.iter().all(|l| l.contains("ID counters")),
        "{during:#?}"
    );
    assert!(
        during
            .iter()
            .filter(|l| l.contains("sampling ID counters: second reading in "))
            .count()
            >= 2,
        "{during:#?}"
    );
    let finished = finished.unwrap_or_else(|| panic!("no final line:\n{}", r.stderr));
    assert!(
        finished.contains("ID counters sampled 3s apart"),
        "{finished}"
    );
}

/// Lines of a child's output, each with the moment it arrived.
type Arrived = Arc<Mutex<Vec<(Instant, String)>>>;

fn collect(stream: impl std::io::Read + Send + 'static) -> (Arrived, std::thread::JoinHandle<()>) {
    let lines: Arrived = Arc::default();
    let l = lines.clone();
    let t = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap().push((Instant::now(), line));
        }
    });
    (lines, t)
}

fn find(lines: &Arrived, pred: impl Fn(&str) -> bool) -> Option<(Instant, String)> {
    lines.lock().unwrap().iter().find(|(_, l)| pred(l)).cloned()
}

#[test]
fn capture_shows_bytes_read_and_records_written_as_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.cwl");
    let entries = |from: usize, to: usize| -> String {
        (from..to)
            .map(|i| {
                format!(
                    "2024-01-31T10:{:02}:{:02}.{:06}Z\t   {} Query\tSELECT {i} FROM dual\n",
                    (i / 60_000) % 60,
                    (i / 1000) % 60,
                    i % 1000 * 1000,
                    1 + i % 4
                )
            })
            .collect()
    };
    let mut child = cutover()
        .args([
            "capture",
            "--from",
            "general-log",
            "--input",
            "-",
            "--output",
        ])
        .arg(&out)
        .args(["--progress-interval", "200ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (err, err_t) = collect(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(entries(0, 2000).as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The first half is read and written while the input is still open.
    let end = Instant::now() + DEADLINE;
    while find(&err, |l| {
        is_progress(l, "capture") && l.contains("B/s, ") && !l.contains(" 0 records written")
    })
    .is_none()
    {
        assert!(Instant::now() < end, "{:?}", err.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(entries(2000, 4000).as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    err_t.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "{:?}", err.lock().unwrap());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("capture: 4000 records"), "{stdout}");
    let finished = find(&err, |l| l.contains("capture: finished: "))
        .unwrap_or_else(|| panic!("{:?}", err.lock().unwrap()))
        .1;
    assert!(finished.contains(", 4,000 records written, "), "{finished}");
}

#[tokio::test]
async fn verify_prints_each_confirmed_mismatch_at_once_and_progress_every_interval() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE pv; USE pv; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
             INSERT INTO t SELECT seq, seq FROM seq_1_to_100",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let status = sb.source.sql("SHOW MASTER STATUS").unwrap();
    let start = format!("{}:{}", status[0][0], status[0][1]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = cutover()
        .args(["verify", "--source", &sb.source.dsn(None)])
        .args(["--target", &sb.target.dsn(None)])
        .args(["--tables", "pv.*", "--start", &start, "--grace", "1s"])
        .args(["--progress-interval", "1s", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, out_t) = collect(child.stdout.take().unwrap());
    let (stderr, err_t) = collect(child.stderr.take().unwrap());

    // A change the replica loses: its SQL thread skips it.
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    sb.source
        .sql("UPDATE pv.t SET v = -7 WHERE id = 7")
        .unwrap();
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let caught_up = Instant::now();

    // The moment of confirmation: mismatches.jsonl gets the mismatch as it is confirmed.
    let jsonl = out.join("mismatches.jsonl");
    let end = Instant::now() + DEADLINE;
    let confirmed_at = loop {
        let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
        if text.contains("\"id\":7") {
            break Instant::now();
        }
        assert!(
            Instant::now() < end,
            "not confirmed: {:?}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let want = "confirmed: pv.t mismatched {\"id\":7}";
    let line = loop {
        if let Some(found) = find(&stdout, |l| l.ends_with(want)) {
            break found;
        }
        assert!(
            confirmed_at.elapsed() < Duration::from_secs(5),
            "no line for the mismatch on stdout: {:?}",
            stdout.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let (line_at, text) = line;
    let apart = if line_at > confirmed_at {
        line_at - confirmed_at
    } else {
        confirmed_at - line_at
    };
    assert!(apart <= Duration::from_secs(1), "{apart:?}: {text}");
    // Confirmed once the replica was past the change and grace had passed, not at the end.
    assert!(
        line_at.duration_since(caught_up) <= Duration::from_secs(1 + 5),
        "{:?} after the replica caught up",
        line_at.duration_since(caught_up)
    );
    assert!(timed(&text), "{text}");

    // Progress lines go on at the interval, and count the mismatch.
    let end = Instant::now() + DEADLINE;
    while find(&stderr, |l| {
        is_progress(l, "verify") && l.contains(", 1 confirmed mismatches")
    })
    .is_none()
    {
        assert!(Instant::now() < end, "{:?}", stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = sigterm_and_wait(child).await;
    out_t.join().unwrap();
    err_t.join().unwrap();
    let err: Vec<String> = stderr
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(output.status.code(), Some(1), "{err:#?}");
    let (during, finished) = progress(&err.join("\n"), "verify");
    assert!(during.len() >= 2, "{err:#?}");
    assert_spaced(&during);
    for l in &during {
        for figure in [" events", " row changes, ", " pending, ", " rows checked, "] {
            assert!(l.contains(figure), "`{figure}` in {l}");
        }
    }
    assert!(finished.is_some(), "{err:#?}");
    // The summary lists it too.
    let all: Vec<String> = stdout
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    assert!(
        all.iter().any(|l| l.contains("confirmed mismatches 1")),
        "{all:#?}"
    );
}

/// On a terminal (a pseudo-terminal from script(1)) progress is a bar, redrawn in place, and
/// the overall bar stays as the run's summary line; no timed lines are written.
#[tokio::test]
async fn on_a_terminal_the_diff_bar_stays_as_its_summary_line() {
    fresh_db("prog_tty").await;
    both(
        "USE prog_tty; CREATE TABLE a (id INT PRIMARY KEY, v INT); \
         INSERT INTO a SELECT seq, seq FROM seq_1_to_30000",
    )
    .await;
    let cmd = format!(
        "{} diff --source {} --target {} --tables prog_tty.a --rate 15000",
        env!("CARGO_BIN_EXE_cutover"),
        dsn(Side::Source),
        dsn(Side::Target)
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "200")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("[=========================] 1/1 tables, 30,000 rows, "),
        "{text}"
    );
    assert!(!text.lines().any(timed), "{text}");
}
