//! `cutover drill`: runbooks run for real (shell steps, `check` steps running this binary
//! against the sandbox), announcements received by a local HTTP server, a drill killed with
//! SIGKILL and resumed, approvals, manual acks, dry runs, rollbacks, reports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::*;

/// A runbook file in `dir`.
fn runbook(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("runbook.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn drill(args: &[&str]) -> Command {
    let mut c = cutover();
    c.arg("drill").args(args);
    c
}

fn drill_run(rb: &Path, journal: &Path, extra: &[&str]) -> Command {
    let mut c = drill(&["run"]);
    c.arg(rb).arg("--journal").arg(journal).args(extra);
    c
}

async fn run_async(mut cmd: Command) -> Run {
    tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cutover drill")
}

/// The journal's events.
fn events(journal: &Path) -> Vec<Value> {
    std::fs::read_to_string(journal.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_kind<'a>(ev: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event"] == kind).collect()
}

fn status_json(journal: &Path) -> Value {
    let r = run(drill(&["status", "--format", "json", "--journal"]).arg(journal));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}

async fn wait_status(journal: &Path, what: &str, cond: impl Fn(&Value) -> bool) {
    let j = journal.to_path_buf();
    wait_for(what, Duration::from_secs(60), || {
        let j = j.clone();
        let ok = j.join("journal.jsonl").exists() && {
            let r = run(drill(&["status", "--format", "json", "--journal"]).arg(&j));
            r.code == 0 && cond(&r.json())
        };
        async move { ok }
    })
    .await;
}

fn ack(journal: &Path, step: &str, by: &str, extra: &[&str]) -> Run {
    run(drill(&["ack", step, "--by", by])
        .arg("--journal")
        .arg(journal)
        .args(extra))
}

/// A Slack-like webhook: records each POSTed `text`; answers 500 to the first `fail_first`
/// requests (or to all when `fail_first` is `usize::MAX`), 200 after.
struct Hook {
    url: String,
    texts: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<usize>>,
}

async fn hook(fail_first: usize) -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T000/B000/secret",
        listener.local_addr().unwrap()
    );
    let texts = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(0usize));
    let (t, n) = (texts.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (t, n) = (t.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                let body = loop {
                    let Ok(k) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break String::from_utf8_lossy(&buf[end + 4..end + 4 + len])
                                .to_string();
                        }
                    }
                };
                let nth = {
                    let mut g = n.lock().unwrap();
                    *g += 1;
                    *g
                };
                let status = if nth <= fail_first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                if nth > fail_first {
                    let v: Value = serde_json::from_str(&body).expect("a JSON body");
                    t.lock()
                        .unwrap()
                        .push(v["text"].as_str().expect("text").to_string());
                }
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Hook {
        url,
        texts,
        requests,
    }
}

const PEOPLE: &str = "dri = \"alice\"\nreviewer = \"bob\"\nexpect = \"5s\"";

#[tokio::test(flavor = "multi_thread")]
async fn announced_to_a_webhook_failed_gate_rolls_back_in_reverse_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let h = hook(0).await;
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "hooked"
announce = ["stdout", "webhook:${{HOOK}}"]

[[step]]
id = "one"
title = "First"
{PEOPLE}
run = "echo one >> {d}/log"
rollback = "sleep 0.3; echo undo-one >> {d}/log"

[[step]]
id = "two"
title = "Second"
{PEOPLE}
run = "echo two >> {d}/log"
rollback = "echo undo-two >> {d}/log"

[[step]]
id = "three"
title = "No rollback"
{PEOPLE}
run = "true"

[[step]]
id = "gate"
title = "The gate"
dri = "carol"
reviewer = "dave"
expect = "5s"
run = "echo checking; exit 7"
gate = true
rollback = "echo undo-gate >> {d}/log"

[[step]]
id = "never"
title = "Never runs"
{PEOPLE}
run = "echo never >> {d}/log"
"#
        ),
    );
    let journal = dir.path().join("j");
    let mut cmd = drill_run(&rb, &journal, &[]);
    cmd.env("HOOK", &h.url);
    let r = run_async(cmd).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // Rollbacks of the completed steps, in reverse order; the failed gate's own and the
    // never-run step's are not run.
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "one\ntwo\nundo-two\nundo-one\n");
    let ev = events(&journal);
    let rolled: Vec<&str> = of_kind(&ev, "rollback_step_finished")
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(rolled, ["two", "one"]);
    let one = of_kind(&ev, "rollback_step_finished")[1];
    assert!(
        one["elapsed_s"].as_f64().unwrap() >= 0.3,
        "rollbacks are timed: {one}"
    );
    assert_eq!(of_kind(&ev, "run_finished")[0]["status"], "rolled_back");
    // The gate's output is in the journal.
    assert!(of_kind(&ev, "output")
        .iter()
        .any(|e| e["step"] == "gate" && e["line"] == "checking"));

    // Every start and finish, the failure and the rollbacks reached the webhook, with DRI,
    // reviewer and elapsed vs expected.
    let texts = h.texts.lock().unwrap().clone();
    let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
    for s in ["one", "two", "three"] {
        assert!(
            has(&format!(
                "▶ step {}/5 {s}:",
                ["one", "two", "three"]
                    .iter()
                    .position(|x| *x == s)
                    .unwrap()
                    + 1
            )),
            "start of {s}: {texts:#?}"
        );
        assert!(
            texts.iter().any(|t| t.contains(&format!(" {s} done in "))
                && t.contains("(expected 5s)")
                && t.contains("DRI alice, reviewer bob")),
            "finish of {s}: {texts:#?}"
        );
    }
    assert!(
        has("✖ step 4/5 gate FAILED after") && has("exit 7") && has("DRI carol, reviewer dave"),
        "{texts:#?}"
    );
    assert!(
        has("rolling back 2 steps in reverse order (two → one"),
        "{texts:#?}"
    );
    assert!(
        has("↩ rolled back two in") && has("↩ rolled back one in"),
        "{texts:#?}"
    );
    assert!(!has("never:"), "{texts:#?}");
    // Stdout carries the same announcements.
    assert!(r.stdout.contains("✖ step 4/5 gate FAILED"), "{}", r.stdout);
    // The webhook's secret path never shows.
    assert!(!r.stderr.contains("secret") && !r.stdout.contains("secret"));

    // The report of this drill.
    let rep = run(drill(&["report", "--format", "json", "--journal"]).arg(&journal));
    assert_eq!(rep.code, 0, "{}", rep.stderr);
    let v = rep.json();
    assert_eq!(v["runs"][0]["status"], "rolled_back");
    let st = pairs(&v["runs"][0]["steps"], "id", "status");
    assert_eq!(st[3], ("gate".into(), "failed".into()));
    assert_eq!(st[4], ("never".into(), "not_run".into()));
    assert_eq!(v["runs"][0]["steps"][0]["dri"], "alice");
    assert_eq!(v["runs"][0]["steps"][0]["expected_ms"], 5000);
    assert!(v["runs"][0]["steps"][0]["actual_ms"].is_number());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_is_retried_and_never_fails_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = hook(2).await;
    let dead = hook(usize::MAX).await;
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "flaky"
announce = ["webhook:${{FLAKY}}", "webhook:${{DEAD}}"]

[[step]]
id = "only"
title = "Only step"
{PEOPLE}
run = "true"
"#
        ),
    );
    let journal = dir.path().join("j");
    let mut cmd = drill_run(&rb, &journal, &[]);
    cmd.env("FLAKY", &flaky.url).env("DEAD", &dead.url);
    let r = run_async(cmd).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The flaky hook failed twice, then got every announcement: start of the drill, start and
    // end of the step, end of the drill.
    let texts = flaky.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 4, "{texts:#?}");
    assert!(texts[0].contains("drill started"), "{texts:#?}");
    assert_eq!(*flaky.requests.lock().unwrap(), 6);
    // The dead one: retried, then a warning, in stderr and in the journal; the drill completed.
    assert!(*dead.requests.lock().unwrap() >= 5);
    assert!(
        r.stderr
            .contains("cutover: warning: announcement not delivered to webhook http://127.0.0.1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("HTTP 500"), "{}", r.stderr);
    assert!(!r.stderr.contains("secret"), "{}", r.stderr);
    let ev = events(&journal);
    assert!(!of_kind(&ev, "warning").is_empty());
    assert_eq!(of_kind(&ev, "run_finished")[0]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_with_sigkill_and_resumed_completed_steps_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let text = format!(
        r#"
[runbook]
name = "crash"
announce = ["stdout"]

[[step]]
id = "first"
title = "Counted"
{PEOPLE}
run = "echo first >> {d}/count"

[[step]]
id = "oops"
title = "Fails, and may"
{PEOPLE}
run = "echo oops >> {d}/count; exit 1"
continue_on_error = true

[[step]]
id = "mid"
title = "Done before the crash"
{PEOPLE}
run = "echo mid >> {d}/count"

[[step]]
id = "long"
title = "Long"
dri = "alice"
reviewer = "bob"
expect = "10m"
run = "echo long >> {d}/count; if [ -f {d}/again ]; then exit 0; fi; touch {d}/again; echo $$ > {d}/pid; exec sleep 300"

[[step]]
id = "last"
title = "Counted too"
{PEOPLE}
run = "echo last >> {d}/count"
"#
    );
    let rb = runbook(dir.path(), &text);
    let journal = dir.path().join("j");
    let mut child = spawn(drill_run(&rb, &journal, &[]));
    let pid_file = dir.path().join("pid");
    wait_for("the long step", Duration::from_secs(60), || {
        let ok = pid_file.exists()
            && std::fs::read_to_string(&pid_file)
                .unwrap_or_default()
                .ends_with('\n');
        async move { ok }
    })
    .await;
    wait_status(&journal, "status: running", |v| {
        v["status"] == "running" && v["current"]["id"] == "long"
    })
    .await;
    // SAFETY: signals the drill this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    // The step's own process is not the drill's to kill when the drill dies; the test ends it.
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe {
        libc::kill(sleeper, libc::SIGKILL);
    }
    let st = status_json(&journal);
    assert_eq!(st["status"], "incomplete", "{st}");
    let ev = events(&journal);
    assert!(of_kind(&ev, "run_finished").is_empty());

    // A changed runbook is refused.
    std::fs::write(&rb, format!("{text}\n# edited\n")).unwrap();
    let r = run_async(drill_run(&rb, &journal, &["--resume"])).await;
    r.assert_clean_error("the runbook changed");
    std::fs::write(&rb, &text).unwrap();
    // A second drill in the same directory is refused without --resume.
    let r = run_async(drill_run(&rb, &journal, &[])).await;
    r.assert_clean_error("--resume");

    let resumed = spawn(drill_run(&rb, &journal, &["--resume"]));
    // The long step's command ran before the crash to an end no drill saw: it is not run
    // again; its DRI confirms it.
    wait_status(&journal, "the DRI's confirmation of the long step", |v| {
        v["current"]["id"] == "long" && v["current"]["waiting_for"] == "ack"
    })
    .await;
    assert_eq!(ack(&journal, "long", "alice", &[]).code, 0);
    let r = tokio::task::spawn_blocking(move || resumed.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let r = Run {
        code: r.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
    };
    // Completed, with one step failed (continue_on_error): exit 1.
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("resuming run"), "{}", r.stdout);
    assert!(r.stdout.contains("drill completed in"), "{}", r.stdout);
    assert!(r.stdout.contains("exit status unknown"), "{}", r.stdout);
    let count = std::fs::read_to_string(dir.path().join("count")).unwrap();
    // The resume starts at the first step not completed (the failed one) and runs no
    // completed step again, nor the step whose command had started.
    assert_eq!(
        count, "first\noops\nmid\nlong\noops\nlast\n",
        "completed steps ran once"
    );
    assert!(
        r.stdout
            .contains("step 3/5 mid was done before the resume; not run again"),
        "{}",
        r.stdout
    );
    let rep = run(drill(&["report", "--format", "json", "--journal"]).arg(&journal));
    let v = rep.json();
    assert_eq!(v["runs"][0]["status"], "completed");
    assert_eq!(v["runs"][0]["resumed"], 1);
    assert_eq!(v["runs"][0]["steps"][3]["attempts"], 2);
    assert_eq!(v["runs"][0]["steps"][2]["attempts"], 1);
    assert_eq!(v["runs"][0]["steps"][0]["attempts"], 1);
    // Nothing left to resume.
    run_async(drill_run(&rb, &journal, &["--resume"]))
        .await
        .assert_clean_error("nothing to resume");
}

/// Waits for a child's end and collects its output.
async fn finish(child: Child) -> Run {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A runbook whose step `effect` records its start, waits for `DIR/release`, then appends its
/// side effect; and the drill killed with SIGKILL while that step runs.
async fn crash_during_effect(dir: &Path) -> (PathBuf, PathBuf) {
    let d = dir.display().to_string();
    let rb = runbook(
        dir,
        &format!(
            r#"
[runbook]
name = "once"
announce = ["stdout"]

[[step]]
id = "effect"
title = "Freeze writes"
{PEOPLE}
run = "echo started >> {d}/starts; while [ ! -f {d}/release ]; do sleep 0.05; done; echo effect >> {d}/effects"

[[step]]
id = "after"
title = "After"
{PEOPLE}
run = "echo after >> {d}/after"
"#
        ),
    );
    let journal = dir.join("j");
    let mut child = spawn(drill_run(&rb, &journal, &[]));
    let starts = dir.join("starts");
    wait_for("the step's start", Duration::from_secs(60), || {
        let ok = starts.exists();
        async move { ok }
    })
    .await;
    // SAFETY: signals the drill this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    (rb, journal)
}

/// Ends the step's orphaned process group whatever happens to the test.
struct Release(PathBuf);
impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_running_when_the_drill_was_killed_is_never_started_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _release = Release(dir.path().join("release"));
    let (rb, journal) = crash_during_effect(dir.path()).await;
    let ev = events(&journal);
    let started = of_kind(&ev, "command_started");
    assert_eq!(started.len(), 1, "{ev:?}");
    assert!(started[0]["pid"].as_i64().unwrap() > 1);
    assert!(started[0]["start_time"].as_u64().unwrap() > 0);
    // The drill is gone, its step's command still runs: status does not call it running.
    let st = status_json(&journal);
    assert_eq!(st["status"], "incomplete", "{st}");
    let pid = started[0]["pid"].as_i64().unwrap();
    assert_eq!(
        st["current"]["state"],
        format!("running (orphaned, pid {pid})"),
        "{st}"
    );

    let resumed = spawn(drill_run(&rb, &journal, &["--resume"]));
    wait_for("the resume to start", Duration::from_secs(60), || {
        let ok = !of_kind(&events(&journal), "resumed").is_empty();
        async move { ok }
    })
    .await;
    // The resume waits for the command that still runs; it does not start it again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("starts")).unwrap(),
        "started\n"
    );
    assert!(of_kind(&events(&journal), "orphan_ended").is_empty());
    std::fs::write(dir.path().join("release"), "").unwrap();
    wait_status(&journal, "the DRI's confirmation", |v| {
        v["current"]["id"] == "effect" && v["current"]["waiting_for"] == "ack"
    })
    .await;
    assert_eq!(ack(&journal, "effect", "alice", &[]).code, 0);
    let r = finish(resumed).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("still runs: waiting for it to end"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("effects")).unwrap(),
        "effect\n",
        "the side effect happened exactly once"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("starts")).unwrap(),
        "started\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("after")).unwrap(),
        "after\n"
    );
    let ev = events(&journal);
    assert_eq!(of_kind(&ev, "orphan_ended")[0]["how"], "waited");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_orphans_ends_the_running_step_and_a_rejection_stops_the_drill() {
    let dir = tempfile::tempdir().unwrap();
    let _release = Release(dir.path().join("release"));
    let (rb, journal) = crash_during_effect(dir.path()).await;
    let resumed = spawn(drill_run(&rb, &journal, &["--resume", "--kill-orphans"]));
    wait_status(&journal, "the DRI's confirmation", |v| {
        v["current"]["id"] == "effect" && v["current"]["waiting_for"] == "ack"
    })
    .await;
    assert_eq!(
        of_kind(&events(&journal), "orphan_ended")[0]["how"],
        "killed"
    );
    // Released now, the killed command can no longer act.
    std::fs::write(dir.path().join("release"), "").unwrap();
    assert_eq!(ack(&journal, "effect", "alice", &["--reject"]).code, 0);
    let r = finish(resumed).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(--kill-orphans)"), "{}", r.stdout);
    assert!(
        !dir.path().join("effects").exists(),
        "the killed step never acted"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("starts")).unwrap(),
        "started\n"
    );
    assert!(!dir.path().join("after").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_m_of_n_self_approval_refused_and_manual_ack() {
    let dir = tempfile::tempdir().unwrap();
    let rb = runbook(
        dir.path(),
        r#"
[runbook]
name = "approvals"
announce = ["stdout"]

[[step]]
id = "switch"
title = "Switch traffic"
dri = "alice"
reviewer = "bob"
expect = "30s"
run = "true"
approvals = { by = ["carol", "dave", "erin"], min = 2, timeout = "60s" }

[[step]]
id = "by-hand"
title = "Tell the customers"
dri = "alice"
reviewer = "bob"
expect = "30s"
manual = true
"#,
    );
    let journal = dir.path().join("j");
    let child = spawn(drill_run(&rb, &journal, &[]));
    wait_status(&journal, "waiting for approval", |v| {
        v["current"]["waiting_for"] == "approval"
    })
    .await;
    ack(&journal, "switch", "alice", &["--approve"])
        .assert_clean_error("cannot approve their own step");
    ack(&journal, "switch", "mallory", &["--approve"]).assert_clean_error("not an approver");
    ack(&journal, "switch", "carol", &[]).assert_clean_error("--approve or --reject");
    ack(&journal, "by-hand", "alice", &[]).assert_clean_error("not waiting");
    let r = ack(&journal, "switch", "carol", &["--approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st = status_json(&journal);
    assert_eq!(
        st["current"]["approvals_given"],
        serde_json::json!(["carol"])
    );
    assert_eq!(st["current"]["who"], serde_json::json!(["dave", "erin"]));
    assert_eq!(st["status"], "running");
    assert!(st["expected_end"].is_string());
    // One approval of two is not enough: the step still waits.
    assert_eq!(st["current"]["state"], "waiting");
    assert_eq!(ack(&journal, "switch", "erin", &["--approve"]).code, 0);

    wait_status(&journal, "waiting for the manual ack", |v| {
        v["current"]["id"] == "by-hand"
    })
    .await;
    let human = run(drill(&["status", "--journal"]).arg(&journal));
    assert!(
        human.stdout.contains("waiting for: alice to act"),
        "{}",
        human.stdout
    );
    ack(&journal, "by-hand", "bob", &[]).assert_clean_error("acked by its DRI, alice");
    ack(&journal, "by-hand", "alice", &["--approve"]).assert_clean_error("is manual");
    assert_eq!(ack(&journal, "by-hand", "alice", &[]).code, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("waits for approval: 2 of 3 (carol, dave, erin)"),
        "{stdout}"
    );
    assert!(stdout.contains("approved by carol (1 of 2)"), "{stdout}");
    let ev = events(&journal);
    let approvals = of_kind(&ev, "approval");
    assert_eq!(approvals.len(), 2);
    assert!(
        approvals[0]["os_user"].as_str().unwrap().contains("uid"),
        "the OS user is recorded"
    );
    assert_eq!(of_kind(&ev, "ack")[0]["by"], "alice");
    assert_eq!(
        of_kind(&ev, "approved")[0]["by"],
        serde_json::json!(["carol", "erin"])
    );
    // Acks after the drill ended are refused.
    ack(&journal, "by-hand", "alice", &[]).assert_clean_error("already ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_timeout_is_never_an_approval_and_a_rejection_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "timeouts"
announce = ["stdout"]

[[step]]
id = "prep"
title = "Prepare"
{PEOPLE}
run = "true"
rollback = "touch {d}/undone"

[[step]]
id = "go"
title = "Go"
{PEOPLE}
run = "touch {d}/went"
gate = true
approvals = {{ by = ["carol"], timeout = "1s" }}
"#
        ),
    );
    let journal = dir.path().join("j1");
    let r = run_async(drill_run(&rb, &journal, &[])).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "approval timed out after 1s with 0 of 1 approvals (a timeout is never an approval)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        !dir.path().join("went").exists(),
        "an unapproved step does not run"
    );
    assert!(
        dir.path().join("undone").exists(),
        "the failed gate rolled back"
    );

    // A rejection.
    std::fs::remove_file(dir.path().join("undone")).unwrap();
    let rb2 = runbook(
        dir.path(),
        &std::fs::read_to_string(&rb)
            .unwrap()
            .replace("\"1s\"", "\"60s\""),
    );
    let journal = dir.path().join("j2");
    let child = spawn(drill_run(&rb2, &journal, &[]));
    wait_status(&journal, "waiting for approval", |v| {
        v["current"]["waiting_for"] == "approval"
    })
    .await;
    assert_eq!(ack(&journal, "go", "carol", &["--reject"]).code, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rejected by carol"));
    assert!(!dir.path().join("went").exists());
    assert!(dir.path().join("undone").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_runs_only_steps_without_side_effects_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "rehearsal"
announce = ["stdout"]

[[step]]
id = "write"
title = "Writes"
{PEOPLE}
run = "touch {d}/written"

[[step]]
id = "read"
title = "Reads"
{PEOPLE}
run = "touch {d}/read; test \"$DRILL_DRY_RUN\" = 1"
side_effects = false
"#
        ),
    );
    let journal = dir.path().join("j");
    let r = run_async(drill_run(&rb, &journal, &["--dry-run"])).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!dir.path().join("written").exists());
    assert!(dir.path().join("read").exists());
    for l in r.stdout.lines() {
        assert!(
            l.starts_with("[dry-run] "),
            "every announcement is labelled: {l}"
        );
    }
    assert!(
        r.stdout.contains("step 1/2 write skipped: dry run"),
        "{}",
        r.stdout
    );
    let v = run(drill(&["report", "--format", "json", "--journal"]).arg(&journal)).json();
    assert_eq!(v["runs"][0]["dry_run"], true);
    assert_eq!(
        pairs(&v["runs"][0]["steps"], "id", "status"),
        [
            ("write".into(), "skipped".into()),
            ("read".into(), "ok".into())
        ]
    );
    // A dry run resumes only as a dry run.
    run_async(drill_run(&rb, &journal, &["--resume"]))
        .await
        .assert_clean_error("dry run");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_gate_passes_on_equal_tables_and_rolls_back_on_drift() {
    fresh_db("drill_gate").await;
    both("CREATE TABLE drill_gate.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO drill_gate.t VALUES (1, 'a'), (2, 'b')").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "gated"
announce = ["stdout"]

[vars]
TABLES = "drill_gate.*"

[[step]]
id = "switch"
title = "Switch"
{PEOPLE}
run = "touch {d}/switched"
rollback = "touch {d}/switched-back"

[[step]]
id = "diff"
title = "The tables agree"
dri = "carol"
reviewer = "dave"
expect = "1m"
check = "diff --source ${{SRC}} --target ${{TGT}} --tables ${{TABLES}}"
gate = true
side_effects = false
"#
        ),
    );
    let with_env = |mut c: Command| {
        c.env("SRC", dsn(Side::Source))
            .env("TGT", dsn(Side::Target));
        c
    };
    let j1 = dir.path().join("drill-1");
    let r = run_async(with_env(drill_run(&rb, &j1, &[]))).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!dir.path().join("switched-back").exists());

    exec(
        Side::Target,
        "UPDATE drill_gate.t SET v = 'drift' WHERE id = 2",
    )
    .await;
    let j2 = dir.path().join("drill-2");
    let r = run_async(with_env(drill_run(&rb, &j2, &[]))).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        dir.path().join("switched-back").exists(),
        "the drift failed the gate and rolled back"
    );
    assert!(
        r.stdout.contains("diff FAILED") && r.stdout.contains("exit 1"),
        "{}",
        r.stdout
    );
    // The diff's own output is in the journal.
    let ev = events(&j2);
    assert!(
        of_kind(&ev, "output").iter().any(|e| e["step"] == "diff"),
        "{ev:#?}"
    );

    // Two drills side by side, with --out.
    let out = dir.path().join("report");
    let rep = run(drill(&["report", "--format", "json", "--out"])
        .arg(&out)
        .arg("--journal")
        .arg(&j1)
        .arg("--journal")
        .arg(&j2));
    assert_eq!(rep.code, 0, "{}", rep.stderr);
    let v = rep.json();
    assert_eq!(v["runs"][0]["status"], "completed");
    assert_eq!(v["runs"][1]["status"], "rolled_back");
    assert_eq!(v["comparison"]["failed"][0][0], "diff");
    for f in ["drill.json", "drill.md", "drill.html"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let human = run(drill(&["report", "--journal"])
        .arg(&j1)
        .arg("--journal")
        .arg(&j2));
    assert!(
        human.stdout.contains("2 drills of gated"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_malformed_runbook_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let step = |id: &str| {
        format!(
            "[[step]]\nid = \"{id}\"\ntitle = \"t\"\n{PEOPLE}\nrun = \"touch {d}/ran-{id}\"\n\n"
        )
    };
    let journal = dir.path().join("j");
    let head = "[runbook]\nname = \"bad\"\nannounce = [\"stdout\"]\n\n";
    let cases = [
        (
            format!("{head}{}{}", step("a"), step("a")),
            "runbook.toml:14: step `a`: duplicate step id",
        ),
        (
            format!(
                "{head}{}",
                step("a").replace("run =", "colour = \"red\"\nrun =")
            ),
            "runbook.toml:11",
        ),
        (
            format!("{head}{}", step("a").replace("\"5s\"", "\"5 parsecs\"")),
            "runbook.toml:10: step `a`: expect",
        ),
        (
            format!(
                "{head}{}",
                step("a").replace("run = ", "manual = true\nrun = ")
            ),
            "only one of",
        ),
        // A `check` line is parsed as the cutover command it names, arguments included,
        // before step 1 (with its side effect) runs.
        (
            format!(
                "{head}{}[[step]]\nid = \"b\"\ntitle = \"t\"\n{PEOPLE}\ncheck = \"rmx -rf ./scratch\"\n",
                step("a")
            ),
            "runbook.toml:13: step `b`: check: `rmx -rf ./scratch`: unrecognized subcommand 'rmx'",
        ),
        (
            format!(
                "{head}{}[[step]]\nid = \"b\"\ntitle = \"t\"\n{PEOPLE}\ncheck = \"diff --tabels app.*\"\n",
                step("a")
            ),
            "check: `diff --tabels app.*`: unexpected argument '--tabels'",
        ),
        (
            format!(
                "{head}{}[[step]]\nid = \"b\"\ntitle = \"t\"\n{PEOPLE}\ncheck = \"diff --threads many\"\n",
                step("a")
            ),
            "invalid value 'many'",
        ),
    ];
    for (text, expected) in cases {
        let rb = runbook(dir.path(), &text);
        run(&mut drill_run(&rb, &journal, &[])).assert_clean_error(expected);
    }
    assert!(!dir.path().join("ran-a").exists());
    assert!(!journal.exists(), "nothing was journaled");
    run(&mut drill_run(
        &dir.path().join("missing.toml"),
        &journal,
        &[],
    ))
    .assert_clean_error("cannot read it");
    let rb = runbook(dir.path(), &format!("{head}{}", step("a")));
    run(&mut drill_run(&rb, &journal, &["--from", "zzz"])).assert_clean_error("no step `zzz`");
    run(drill(&["status", "--journal"]).arg(dir.path())).assert_clean_error("no drill");
    run(drill(&["report", "--journal"]).arg(dir.path())).assert_clean_error("holds no drill");
}

/// GET /metrics from the drill's listener.
async fn scrape(addr: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn overruns_are_warned_metrics_are_served_and_sigterm_leaves_a_resumable_run() {
    let dir = tempfile::tempdir().unwrap();
    let rb = runbook(
        dir.path(),
        r#"
[runbook]
name = "watched"
announce = ["stdout"]

[[step]]
id = "slow"
title = "Slower than planned"
dri = "alice"
reviewer = "bob"
expect = "300ms"
timeout = "5m"
run = "sleep 120"
"#,
    );
    let journal = dir.path().join("j");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let child = spawn(drill_run(&rb, &journal, &["--metrics-addr", &addr]));
    let a = addr.clone();
    wait_for(
        "the overrun in the metrics",
        Duration::from_secs(60),
        || {
            let a = a.clone();
            async move {
                scrape(&a).await.is_some_and(|m| {
                    m.contains("cutover_drill_step_overrun{runbook=\"watched\"")
                        && m.lines().any(|l| {
                            l.starts_with("cutover_drill_step_overrun{") && l.ends_with(" 1")
                        })
                        && m.lines().any(|l| {
                            l.starts_with("cutover_drill_current_step{")
                                && l.contains("step=\"slow\"")
                                && l.ends_with(" 1")
                        })
                })
            }
        },
    )
    .await;
    let m = scrape(&addr).await.unwrap();
    assert!(
        m.contains("cutover_drill_step_expected_seconds{runbook=\"watched\""),
        "{m}"
    );
    wait_for(
        "the overrun in the journal",
        Duration::from_secs(30),
        || {
            let n = of_kind(&events(&journal), "overrun").len();
            async move { n == 1 }
        },
    )
    .await;
    // SAFETY: signals the drill this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("⚠ step slow overran its estimate of 300ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("drill interrupted during step slow"),
        "{stdout}"
    );
    let ev = events(&journal);
    assert_eq!(of_kind(&ev, "interrupted").len(), 1);
    assert_eq!(status_json(&journal)["status"], "incomplete");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_continue_on_error_and_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "edges"
announce = ["stdout"]

[[step]]
id = "first"
title = "First"
{PEOPLE}
run = "echo first >> {d}/log"

[[step]]
id = "stuck"
title = "Stuck"
{PEOPLE}
timeout = "1s"
run = "sleep 60 & echo $! > {d}/bg; wait"
continue_on_error = true

[[step]]
id = "flaky"
title = "Fails but may"
{PEOPLE}
run = "exit 4"
continue_on_error = true

[[step]]
id = "after"
title = "After"
{PEOPLE}
run = "echo after >> {d}/log"
"#
        ),
    );
    let journal = dir.path().join("j1");
    let r = run_async(drill_run(&rb, &journal, &[])).await;
    assert_eq!(
        r.code, 1,
        "a completed drill with failed steps exits 1\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains("stuck FAILED after") && r.stdout.contains("timed out after 1s"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("drill completed in") && r.stdout.contains("2 step(s) failed"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "first\nafter\n"
    );
    // The timed-out step's whole process group was stopped, its background child too.
    let bg: i32 = std::fs::read_to_string(dir.path().join("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        "the background child to be gone",
        Duration::from_secs(30),
        || {
            // SAFETY: signal 0 only asks whether the process exists.
            let gone = unsafe { libc::kill(bg, 0) } != 0;
            async move { gone }
        },
    )
    .await;
    let v = run(drill(&["report", "--format", "json", "--journal"]).arg(&journal)).json();
    assert_eq!(v["runs"][0]["status"], "completed");
    assert_eq!(v["runs"][0]["steps"][1]["status"], "failed");

    // --from skips the steps before it (recorded as skipped, never rolled back).
    let journal = dir.path().join("j2");
    let r = run_async(drill_run(&rb, &journal, &["--from", "after"])).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "first\nafter\nafter\n"
    );
    let v = run(drill(&["report", "--format", "json", "--journal"]).arg(&journal)).json();
    let st = pairs(&v["runs"][0]["steps"], "id", "status");
    assert_eq!(st[0], ("first".into(), "skipped".into()));
    assert_eq!(st[3], ("after".into(), "ok".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_killed_during_a_rollback_resumes_it_without_running_any_rollback_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _release = Release(dir.path().join("release"));
    let d = dir.path().display().to_string();
    let rb = runbook(
        dir.path(),
        &format!(
            r#"
[runbook]
name = "undo"
announce = ["stdout"]

[[step]]
id = "a"
title = "A"
{PEOPLE}
run = "true"
rollback = "echo undo-a >> {d}/undo"

[[step]]
id = "b"
title = "B"
{PEOPLE}
run = "true"
rollback = "echo started >> {d}/rstarts; while [ ! -f {d}/release ]; do sleep 0.05; done; echo undo-b >> {d}/undo"

[[step]]
id = "gate"
title = "Gate"
{PEOPLE}
run = "exit 1"
gate = true
"#
        ),
    );
    let journal = dir.path().join("j");
    let mut child = spawn(drill_run(&rb, &journal, &[]));
    let rstarts = dir.path().join("rstarts");
    wait_for(
        "the rollback of b to start",
        Duration::from_secs(60),
        || {
            let ok = rstarts.exists();
            async move { ok }
        },
    )
    .await;
    // SAFETY: signals the drill this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let resumed = spawn(drill_run(&rb, &journal, &["--resume"]));
    wait_for("the resume to start", Duration::from_secs(60), || {
        let ok = !of_kind(&events(&journal), "resumed").is_empty();
        async move { ok }
    })
    .await;
    std::fs::write(dir.path().join("release"), "").unwrap();
    let r = finish(resumed).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("resuming the rollback"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&rstarts).unwrap(), "started\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("undo")).unwrap(),
        "undo-b\nundo-a\n",
        "each rollback ran once, in reverse order"
    );
    let ev = events(&journal);
    assert_eq!(of_kind(&ev, "orphan_ended")[0]["rollback"], true);
    let fin = of_kind(&ev, "run_finished");
    assert_eq!(fin[fin.len() - 1]["status"], "rolled_back");
    let b = of_kind(&ev, "rollback_step_finished");
    assert!(
        b.iter().any(|e| e["step"] == "b" && e["ok"] == false),
        "{b:?}"
    );
}
