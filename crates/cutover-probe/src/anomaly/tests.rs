use super::*;

fn trace(test: &Test, answers: Vec<(Answer, bool)>) -> Trace {
    Trace {
        steps: test
            .steps
            .iter()
            .zip(answers)
            .map(|(s, (answer, blocked))| StepRecord {
                conn: s.conn,
                sql: s.sql.to_string(),
                blocked,
                deferred: false,
                answer,
            })
            .collect(),
    }
}
fn done() -> (Answer, bool) {
    (Answer::Done { affected: 1 }, false)
}
fn rows(r: &[(i64, i64)]) -> (Answer, bool) {
    (Answer::Rows { rows: r.to_vec() }, false)
}

#[test]
fn ids_are_unique_and_steps_use_declared_connections() {
    let mut ids: Vec<_> = suite().iter().map(|t| t.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), suite().len());
    for t in suite() {
        assert!(t.steps.iter().all(|s| s.conn < t.connections), "{}", t.id);
        assert!(t.steps.iter().all(|s| !s.sql.contains(';')), "{}", t.id);
    }
}

#[test]
fn g_single_read_skew_is_allowed_when_t1_sees_both_sides_of_t2() {
    let t = find("g-single").unwrap();
    let mut a = vec![
        done(),
        done(),
        rows(&[(1, 10)]),
        rows(&[(1, 10)]),
        rows(&[(2, 20)]),
    ];
    a.extend([done(), done(), done(), rows(&[(2, 18)]), done()]);
    assert!(matches!(
        judge(t, &trace(t, a.clone())),
        Behaviour::Allowed { .. }
    ));
    a[8] = rows(&[(2, 20)]);
    assert_eq!(
        judge(t, &trace(t, a)).label(),
        "prevented (consistent result)"
    );
}

#[test]
fn p4_error_is_prevention_by_that_code() {
    let t = find("p4").unwrap();
    let a = vec![
        done(),
        done(),
        rows(&[(1, 10)]),
        rows(&[(1, 10)]),
        done(),
        (
            Answer::Error {
                code: 1020,
                message: "Record has changed since last read".into(),
            },
            true,
        ),
        done(),
        done(),
    ];
    let b = judge(t, &trace(t, a));
    assert_eq!(b.label(), "prevented (error 1020)");
}

#[test]
fn same_compares_outcome_and_mechanism_not_evidence() {
    let a = Behaviour::Prevented {
        how: How::Blocked,
        evidence: "x".into(),
    };
    let b = Behaviour::Prevented {
        how: How::Blocked,
        evidence: "y".into(),
    };
    let c = Behaviour::Prevented {
        how: How::Error { code: 1213 },
        evidence: "x".into(),
    };
    assert!(a.same_as(&b));
    assert!(!a.same_as(&c));
    let u = Behaviour::Unknown {
        evidence: "".into(),
    };
    assert!(!u.same_as(&u.clone()));
}

#[test]
fn a_lost_connection_is_never_judged() {
    let t = find("g0").unwrap();
    let mut a: Vec<_> = (0..9).map(|_| done()).collect();
    a[3] = (
        Answer::Lost {
            message: "broken pipe".into(),
        },
        false,
    );
    assert!(matches!(judge(t, &trace(t, a)), Behaviour::Unknown { .. }));
}
