//! Reports over journals written with fixed times, so their text can be snapshot-tested:
//! four drills of one runbook, as a team would rehearse a cutover.

use std::path::Path;

use cutover_drill::journal::{Event, FinalStatus, Record, StepInfo, StepStatus, Waiting};
use cutover_drill::report::{build, run_report};
use cutover_drill::state::Run;

const T0: u64 = 1_790_000_000_000;

fn info(id: &str, dri: &str, reviewer: &str, expected_s: f64, gate: bool) -> StepInfo {
    StepInfo {
        id: id.into(),
        title: format!("{id} title"),
        dri: dri.into(),
        reviewer: reviewer.into(),
        expected_s,
        kind: "shell".into(),
        gate,
        approvers: if id == "switch" {
            vec!["erin".into(), "frank".into()]
        } else {
            vec![]
        },
        min_approvals: usize::from(id == "switch"),
        has_rollback: true,
        side_effects: true,
    }
}

fn steps() -> Vec<StepInfo> {
    vec![
        info("freeze", "alice", "bob", 300.0, false),
        info("copy-tail", "carol", "dave", 600.0, false),
        info("verify", "carol", "bob", 120.0, true),
        info("switch", "alice", "dave", 60.0, false),
        info("unfreeze", "alice", "bob", 60.0, false),
    ]
}

/// A drill's journal: `times` are each step's seconds (`None`: the step failed after 10 s and
/// stopped the drill).
fn drill(n: u64, times: &[Option<f64>]) -> Vec<Record> {
    let start = T0 + n * 86_400_000;
    let mut ms = start;
    let mut recs = Vec::new();
    let mut push = |ms: u64, event: Event| {
        recs.push(Record {
            at: cutover_drill::journal::rfc3339(ms),
            ms,
            event,
        })
    };
    push(
        ms,
        Event::RunStarted {
            run_id: format!("drill-{n}"),
            runbook: "orders cutover".into(),
            path: "orders.toml".into(),
            hash: "ab".repeat(32),
            dry_run: false,
            os_user: "coordinator (uid 1000)".into(),
            pid: 100 + n as u32,
            window: Some(("freeze".into(), "unfreeze".into())),
            steps: steps(),
        },
    );
    let mut done = Vec::new();
    for (s, t) in steps().iter().zip(times) {
        push(ms, Event::StepStarted { step: s.id.clone() });
        if s.id == "switch" {
            push(
                ms,
                Event::StepWaiting {
                    step: s.id.clone(),
                    waiting_for: Waiting::Approval,
                    who: s.approvers.clone(),
                    min: 1,
                    timeout_s: 1800.0,
                },
            );
            push(
                ms + 20_000,
                Event::Approval {
                    step: s.id.clone(),
                    by: "erin".into(),
                    approve: true,
                    os_user: "erin (uid 1001)".into(),
                },
            );
        }
        match t {
            Some(t) => {
                if *t > s.expected_s {
                    push(
                        ms + (s.expected_s * 1000.0) as u64,
                        Event::Overrun {
                            step: s.id.clone(),
                            expected_s: s.expected_s,
                            elapsed_s: s.expected_s,
                        },
                    );
                }
                ms += (*t * 1000.0) as u64;
                push(
                    ms,
                    Event::StepFinished {
                        step: s.id.clone(),
                        status: StepStatus::Ok,
                        elapsed_s: *t,
                        exit_code: None,
                        error: None,
                    },
                );
                done.push(s.id.clone());
            }
            None => {
                ms += 10_000;
                push(
                    ms,
                    Event::StepFinished {
                        step: s.id.clone(),
                        status: StepStatus::Failed,
                        elapsed_s: 10.0,
                        exit_code: Some(1),
                        error: Some("exit 1".into()),
                    },
                );
                done.reverse();
                push(
                    ms,
                    Event::RollbackStarted {
                        cause: format!("gate {} failed", s.id),
                        steps: done.clone(),
                    },
                );
                for d in &done {
                    push(ms, Event::RollbackStepStarted { step: d.clone() });
                    ms += 45_000;
                    push(
                        ms,
                        Event::RollbackStepFinished {
                            step: d.clone(),
                            ok: true,
                            elapsed_s: 45.0,
                            error: None,
                        },
                    );
                }
                push(
                    ms,
                    Event::RunFinished {
                        status: FinalStatus::RolledBack,
                    },
                );
                return recs;
            }
        }
    }
    push(
        ms,
        Event::RunFinished {
            status: FinalStatus::Completed,
        },
    );
    recs
}

fn four() -> Vec<Vec<Record>> {
    vec![
        drill(1, &[Some(420.0), Some(900.0), None]),
        drill(
            2,
            &[
                Some(360.0),
                Some(700.0),
                Some(150.0),
                Some(50.0),
                Some(70.0),
            ],
        ),
        drill(
            3,
            &[
                Some(300.0),
                Some(650.0),
                Some(110.0),
                Some(45.0),
                Some(55.0),
            ],
        ),
        drill(
            4,
            &[
                Some(280.0),
                Some(610.0),
                Some(100.0),
                Some(80.0),
                Some(50.0),
            ],
        ),
    ]
}

fn report_of(journals: &[Vec<Record>]) -> cutover_drill::report::Report {
    build(
        journals
            .iter()
            .map(|r| run_report(&Run::from_records(r).expect("a run"), r))
            .collect(),
    )
}

#[test]
fn four_drills_side_by_side() {
    let report = report_of(&four());
    let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 4);
    assert_eq!(json["runs"][0]["status"], "rolled_back");
    assert_eq!(json["runs"][3]["status"], "completed");
    assert_eq!(json["runs"][0]["steps"][2]["status"], "failed");
    assert_eq!(json["runs"][0]["steps"][3]["status"], "not_run");
    assert_eq!(json["comparison"]["slower"], serde_json::json!(["switch"]));
    assert_eq!(
        json["comparison"]["clean_runs"],
        serde_json::json!([2, 3, 4])
    );
    // Window: from the start of `freeze` to the end of `unfreeze`.
    assert_eq!(json["runs"][3]["window"]["actual_s"], 1120.0);
    insta::assert_snapshot!("four_drills.json", report.json());
    let doc = report.document();
    insta::assert_snapshot!("four_drills.md", doc.markdown());
    let html = doc.html();
    assert!(
        html.contains("<svg class=\"chart\""),
        "the HTML has a chart"
    );
    assert_eq!(
        html.matches("<rect ").count(),
        4 + 3 + 3 * 5,
        "a legend entry per drill, a bar per step and drill that ran"
    );
    insta::assert_snapshot!("four_drills.txt", report.text());
}

#[test]
fn one_drill() {
    let report = report_of(&four()[..1]);
    assert!(report.comparison.is_none());
    let text = report.text();
    assert!(
        text.contains("rollback of copy-tail: done in 45s"),
        "{text}"
    );
    insta::assert_snapshot!("drill_1.md", report.document().markdown());
    insta::assert_snapshot!("drill_1.txt", text);
}

#[test]
fn a_directory_without_a_drill_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = cutover_drill::report::load(&[dir.path()]).unwrap_err();
    assert!(e.to_string().contains("holds no drill"), "{e}");
    let _ = Path::new("");
}

#[test]
fn the_example_runbook_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sandbox-cutover.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |n: &str| match n {
        "SOURCE" => Some("mysql://root@127.0.0.1:1".to_string()),
        "TARGET" => Some("mysql://root@127.0.0.1:2".to_string()),
        "SOURCE_SQL" => Some("mariadb -P1".to_string()),
        _ => None,
    };
    let rb = cutover_drill::runbook::parse(&path, &text, &env).unwrap();
    let gates: Vec<&str> = rb
        .steps
        .iter()
        .filter(|s| s.gate)
        .map(|s| match &s.action {
            cutover_drill::runbook::Action::Check(args) => args[0].as_str(),
            _ => "not a check",
        })
        .collect();
    assert_eq!(gates, ["check", "verify", "diff"]);
    assert_eq!(rb.window, Some(("freeze-writes".into(), "unfreeze".into())));
    // Without its variables it says which one is missing, and where.
    let e = cutover_drill::runbook::parse(&path, &text, &|_| None).unwrap_err();
    assert!(e.message.contains("${SOURCE}"), "{e}");
    assert!(e.line.is_some());
}
