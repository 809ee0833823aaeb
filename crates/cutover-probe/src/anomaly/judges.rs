//! The judges: what each test's answers mean, from the answers alone.

use super::{show, Behaviour, How, Trace};

fn value_of(rows: &[(i64, i64)], id: i64) -> Option<i64> {
    rows.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
}

/// Server errors that mean "this statement is not supported here", not "prevented".
const UNSUPPORTED: &[u16] = &[
    1064, // ER_PARSE_ERROR
    1235, // ER_NOT_SUPPORTED_YET (TiDB: noop functions such as LOCK IN SHARE MODE)
    1149, // ER_SYNTAX_ERROR
];

/// Prevented by an error: the first server error among `steps`, if any.
fn failed(t: &Trace, steps: std::ops::Range<usize>) -> Option<Behaviour> {
    let (i, code) = t.first_error(steps)?;
    Some(Behaviour::Prevented {
        how: How::Error { code },
        evidence: format!("{} `{}` failed with error {code}", t.who(i), t.sql(i)),
    })
}

/// The common tail of a judge once it found no anomaly: an error on one of `steps` →
/// prevented by that error; one of `blockers` blocked → prevented by blocking; else the
/// result was consistent.
fn prevented(
    t: &Trace,
    steps: std::ops::Range<usize>,
    blockers: &[usize],
    consistent: String,
) -> Behaviour {
    if let Some(b) = failed(t, steps) {
        return b;
    }
    if let Some(i) = t.any_blocked(blockers.iter().copied()) {
        return Behaviour::Prevented {
            how: How::Blocked,
            evidence: format!(
                "{} `{}` waited until the other transaction ended; {consistent}",
                t.who(i),
                t.sql(i)
            ),
        };
    }
    Behaviour::Prevented {
        how: How::Consistent,
        evidence: consistent,
    }
}

pub(super) fn judge_g0(t: &Trace) -> Behaviour {
    // Serial outcomes: T2's writes last (1 => 12, 2 => 22), or T2 aborted (T1's 11, 21).
    // A mix means the two transactions' writes interleaved.
    let Some(fin) = t.rows(8) else {
        return unknown(t, 8);
    };
    let serial = [vec![(1, 12), (2, 22)], vec![(1, 11), (2, 21)]];
    if !serial.iter().any(|s| s.as_slice() == fin) {
        return Behaviour::Allowed {
            evidence: format!(
                "final rows {}: the two transactions' writes interleaved",
                show(fin)
            ),
        };
    }
    prevented(t, 2..8, &[3], format!("final rows {}", show(fin)))
}

pub(super) fn judge_g1a(t: &Trace) -> Behaviour {
    dirty_read(t, [3, 5], 2..7, "was written by T1, which rolled back")
}

pub(super) fn judge_g1b(t: &Trace) -> Behaviour {
    dirty_read(
        t,
        [3, 6],
        2..8,
        "was T1's intermediate value, later overwritten",
    )
}

/// G1a and G1b: T2 reads at steps `reads` while T1 writes 1 => 101 that no committed state
/// holds (`why` says what became of it); seeing it is the anomaly.
fn dirty_read(t: &Trace, reads: [usize; 2], steps: std::ops::Range<usize>, why: &str) -> Behaviour {
    for i in reads {
        if let Some(r) = t.rows(i) {
            if value_of(r, 1) == Some(101) {
                return Behaviour::Allowed {
                    evidence: format!("T2 read {}: 1 => 101 {why}", show(r)),
                };
            }
        }
    }
    let seen = reads
        .iter()
        .filter_map(|&i| t.rows(i).map(show))
        .collect::<Vec<_>>()
        .join("; then ");
    prevented(t, steps, &[3], format!("T2 read {seen}"))
}

pub(super) fn judge_g1c(t: &Trace) -> Behaviour {
    let t1 = t.rows(4).and_then(|r| value_of(r, 2));
    let t2 = t.rows(5).and_then(|r| value_of(r, 1));
    if t1 == Some(22) || t2 == Some(11) {
        return Behaviour::Allowed {
            evidence: format!(
                "T1 read {} and T2 read {}: each saw the other's uncommitted write",
                read(t, 4),
                read(t, 5)
            ),
        };
    }
    prevented(
        t,
        2..8,
        &[4, 5],
        format!("T1 read {}, T2 read {}", read(t, 4), read(t, 5)),
    )
}

pub(super) fn judge_otv(t: &Trace) -> Behaviour {
    // The committed states, in commit order: before, T1's, T2's. Each read of T3 must be one
    // of them, and never go back to an earlier one.
    let states = [
        vec![(1, 10), (2, 20)],
        vec![(1, 11), (2, 19)],
        vec![(1, 12), (2, 18)],
    ];
    let mut last = 0;
    let mut seen = Vec::new();
    for i in [7, 9, 11] {
        let Some(r) = t.rows(i) else { continue };
        seen.push(show(r));
        match states.iter().position(|s| s.as_slice() == r) {
            Some(k) if k >= last => last = k,
            _ => {
                return Behaviour::Allowed {
                    evidence: format!(
                        "T3 read {}: not a state any commit left, or an earlier one after a later",
                        seen.join("; then ")
                    ),
                }
            }
        }
    }
    prevented(
        t,
        3..13,
        &[7, 9, 11],
        format!("T3 read {}", seen.join("; then ")),
    )
}

pub(super) fn judge_pmp(t: &Trace) -> Behaviour {
    if let Some(r) = t.rows(5) {
        if value_of(r, 3).is_some() {
            return Behaviour::Allowed {
                evidence: format!(
                    "T1's second predicate read returned {}: T2's insert appeared inside T1's transaction",
                    show(r)
                ),
            };
        }
    }
    prevented(
        t,
        2..7,
        &[3],
        format!("T1's second predicate read returned {}", read(t, 5)),
    )
}

pub(super) fn judge_pmp_write(t: &Trace) -> Behaviour {
    if let Some(b) = failed(t, 2..8) {
        return b;
    }
    let (Some(read), Some(fin)) = (t.rows(3), t.rows(6)) else {
        return unknown(t, 6);
    };
    // Serial orders: T2 first (reads 10, 20; deletes id 2; sees 1 => 10), or T1 first (reads
    // 20, 30; deletes id 1; sees 2 => 30).
    let t2_first = read == [(1, 10), (2, 20)] && fin == [(1, 10)];
    let t1_first = read == [(1, 20), (2, 30)] && fin == [(2, 30)];
    if !(t2_first || t1_first) {
        return Behaviour::Allowed {
            evidence: format!(
                "T2 read {}, deleted WHERE value = 20 ({} row(s)), then read {}: its delete acted on T1's update, its reads did not",
                show(read),
                t.affected(4).unwrap_or(0),
                show(fin)
            ),
        };
    }
    prevented(
        t,
        2..8,
        &[3, 4],
        format!("T2 read {}, then {}", show(read), show(fin)),
    )
}

pub(super) fn judge_p4(t: &Trace) -> Behaviour {
    if let Some(b) = failed(t, 4..8) {
        return b;
    }
    let r1 = t.rows(2).and_then(|r| value_of(r, 1));
    let r2 = t.rows(3).and_then(|r| value_of(r, 1));
    if r1 == Some(10) && r2 == Some(10) && t.ok(6) && t.ok(7) {
        return Behaviour::Allowed {
            evidence: format!(
                "T1 and T2 both read 1 => 10 and set it to 11; both committed{}: one update is lost",
                if t.blocked(5) {
                    " (T2's update waited for T1's commit, then overwrote it)"
                } else {
                    ""
                }
            ),
        };
    }
    prevented(
        t,
        4..8,
        &[4, 5],
        format!(
            "T1 read {}, T2 read {}",
            t.rows(2).map(show).unwrap_or_default(),
            t.rows(3).map(show).unwrap_or_default()
        ),
    )
}

pub(super) fn judge_g_single(t: &Trace) -> Behaviour {
    let a = t.rows(2).and_then(|r| value_of(r, 1));
    let b = t.rows(8).and_then(|r| value_of(r, 2));
    if a == Some(10) && b == Some(18) {
        return Behaviour::Allowed {
            evidence:
                "T1 read 1 => 10 before T2's commit and 2 => 18 after it: a total of 28, not 30"
                    .into(),
        };
    }
    prevented(
        t,
        2..10,
        &[5, 6, 8],
        format!(
            "T1 read {} and {}",
            t.rows(2).map(show).unwrap_or_default(),
            t.rows(8).map(show).unwrap_or_default()
        ),
    )
}

pub(super) fn judge_g_single_write(t: &Trace) -> Behaviour {
    if let Some(b) = failed(t, 2..10) {
        return b;
    }
    let first = t.rows(2).and_then(|r| value_of(r, 1));
    let deleted = t.affected(7);
    if first == Some(10) && deleted == Some(0) {
        return Behaviour::Allowed {
            evidence: format!(
                "T1 read 1 => 10 (before T2), but its DELETE WHERE value = 20 saw T2's update and deleted nothing; then it read {}",
                t.rows(8).map(show).unwrap_or_default()
            ),
        };
    }
    prevented(
        t,
        2..10,
        &[4, 5, 7],
        format!(
            "T1 read {}, deleted {} row(s)",
            t.rows(2).map(show).unwrap_or_default(),
            deleted.unwrap_or(0)
        ),
    )
}

pub(super) fn judge_g2_item(t: &Trace) -> Behaviour {
    both_committed(t, "T1 and T2 both read 1 => 10, 2 => 20 and each updated the row the other did not: both committed")
}

pub(super) fn judge_g2(t: &Trace) -> Behaviour {
    both_committed(
        t,
        "T1 and T2 both read no row with value % 3 = 0 and each inserted one: both committed",
    )
}

/// G2-item and G2: each transaction wrote what the other's read ruled out; both committing
/// (`evidence` says what they read and wrote) is the anomaly.
fn both_committed(t: &Trace, evidence: &str) -> Behaviour {
    if (2..8).all(|i| t.ok(i)) {
        return Behaviour::Allowed {
            evidence: evidence.into(),
        };
    }
    prevented(t, 2..8, &[4, 5], "one transaction did not commit".into())
}

pub(super) fn judge_gap_lock(t: &Trace) -> Behaviour {
    if let Some(code) = t.error(2).filter(|c| UNSUPPORTED.contains(c)) {
        return refused(t, 2, code);
    }
    if t.ok(3) && !t.blocked(3) {
        return Behaviour::Allowed {
            evidence: "T2 inserted id 5 into the range id BETWEEN 1 AND 10 that T1 had locked FOR UPDATE, without waiting".into(),
        };
    }
    prevented(t, 2..6, &[3], "the insert ran after T1 committed".into())
}

pub(super) fn judge_autocommit_for_update(t: &Trace) -> Behaviour {
    if let Some(code) = t.error(2).filter(|c| UNSUPPORTED.contains(c)) {
        return refused(t, 2, code);
    }
    if t.ok(2) && !t.blocked(2) {
        return Behaviour::Allowed {
            evidence: format!(
                "the autocommit SELECT ... FOR UPDATE returned {} at once, without waiting for T1's lock",
                t.rows(2).map(show).unwrap_or_default()
            ),
        };
    }
    prevented(t, 1..4, &[2], format!("it then returned {}", read(t, 2)))
}

pub(super) fn judge_share_mode(t: &Trace) -> Behaviour {
    if let Some(code) = t.error(1) {
        return refused(t, 1, code);
    }
    if t.ok(3) && !t.blocked(3) {
        return Behaviour::Allowed {
            evidence: "T2 updated the row T1 had read LOCK IN SHARE MODE, without waiting".into(),
        };
    }
    prevented(t, 1..6, &[3], "T2's update ran after T1 committed".into())
}

pub(super) fn judge_nowait(t: &Trace) -> Behaviour {
    if let Some(code) = t.error(3).filter(|c| UNSUPPORTED.contains(c)) {
        return refused(t, 3, code);
    }
    if t.ok(3) && !t.blocked(3) {
        return Behaviour::Allowed {
            evidence: format!(
                "FOR UPDATE NOWAIT returned {} at once although T1 held the row's lock",
                t.rows(3).map(show).unwrap_or_default()
            ),
        };
    }
    prevented(t, 3..6, &[3], "NOWAIT waited for T1's lock".into())
}

/// What step `i` read, in Hermitage's notation, or `nothing`.
fn read(t: &Trace, i: usize) -> String {
    t.rows(i).map(show).unwrap_or_else(|| "nothing".into())
}

fn refused(t: &Trace, i: usize, code: u16) -> Behaviour {
    Behaviour::Refused {
        code,
        evidence: format!("{} `{}` was refused with error {code}", t.who(i), t.sql(i)),
    }
}

fn unknown(t: &Trace, i: usize) -> Behaviour {
    Behaviour::Unknown {
        evidence: match t.steps.get(i) {
            Some(s) => format!(
                "{} `{}` answered {:?}, not the rows the test reads",
                t.who(i),
                s.sql,
                s.answer
            ),
            None => "the test ended early".into(),
        },
    }
}
