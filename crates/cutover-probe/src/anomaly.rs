//! The suite: each test is a fixed sequence of steps over two or three connections, and a
//! judge that reads what the steps answered.
//!
//! The isolation tests follow Hermitage (github.com/ept/hermitage, `mysql.md` and `tidb.md`),
//! the public suite that documents what each database's isolation levels prevent, in the step
//! order it documents, on a table `(id INT PRIMARY KEY, value INT)` holding `(1, 10), (2, 20)`.
//! The locking tests are the behaviours applications lean on without naming an isolation
//! level: a range `SELECT ... FOR UPDATE` keeping inserts out (gap locks), an autocommit
//! `SELECT ... FOR UPDATE` waiting for a lock, `LOCK IN SHARE MODE`, `FOR UPDATE NOWAIT`.
//!
//! A judge decides from the answers only, never from timing: "allowed" when the anomaly's
//! result was seen, "prevented" with how (a step blocked until another transaction ended, an
//! error code, or a result consistent with some serial order), "refused" when the server
//! would not run a statement the test relies on. Each judge says in `evidence` what it saw,
//! in Hermitage's notation (`1 => 10`), and never anything that changes from run to run.

use serde::Serialize;

/// One statement of a test, on connection `conn` (0 is T1). `{t}` is the test's table.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub conn: usize,
    pub sql: &'static str,
}

const fn s(conn: usize, sql: &'static str) -> Step {
    Step { conn, sql }
}

/// Isolation anomaly (Hermitage) or locking behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Anomaly,
    Locking,
}

/// One test of the suite.
pub struct Test {
    /// Short id, Hermitage's where it has one (`g0`, `p4`, `g2-item`).
    pub id: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// Connections used (T1, T2, T3).
    pub connections: usize,
    pub steps: &'static [Step],
    pub judge: fn(&Trace) -> Behaviour,
}

/// What a step answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Answer {
    /// `(id, value)` rows of a SELECT, in id order.
    Rows { rows: Vec<(i64, i64)> },
    /// A statement without rows, and the rows it changed.
    Done { affected: u64 },
    /// A server error.
    Error { code: u16, message: String },
    /// Never sent: an earlier statement of its connection was still blocked when the test
    /// ended.
    NotRun,
    /// The connection failed (not a server answer): the test cannot be judged.
    Lost { message: String },
}

/// A step as it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub conn: usize,
    pub sql: String,
    /// It waited for a lock held by another connection of the test before it answered.
    pub blocked: bool,
    /// It was held back because its connection was still blocked on an earlier step, and
    /// sent once that step answered (Hermitage's "T2 BLOCKS ... this unblocks T2").
    pub deferred: bool,
    pub answer: Answer,
}

/// The steps of one test as they ran, in the test's order.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub steps: Vec<StepRecord>,
}

impl Trace {
    fn answer(&self, i: usize) -> Option<&Answer> {
        self.steps.get(i).map(|s| &s.answer)
    }
    /// The rows step `i` read, if it read any.
    pub fn rows(&self, i: usize) -> Option<&[(i64, i64)]> {
        match self.answer(i) {
            Some(Answer::Rows { rows }) => Some(rows),
            _ => None,
        }
    }
    pub fn affected(&self, i: usize) -> Option<u64> {
        match self.answer(i) {
            Some(Answer::Done { affected }) => Some(*affected),
            _ => None,
        }
    }
    pub fn error(&self, i: usize) -> Option<u16> {
        match self.answer(i) {
            Some(Answer::Error { code, .. }) => Some(*code),
            _ => None,
        }
    }
    pub fn ok(&self, i: usize) -> bool {
        matches!(
            self.answer(i),
            Some(Answer::Rows { .. }) | Some(Answer::Done { .. })
        )
    }
    pub fn blocked(&self, i: usize) -> bool {
        self.steps.get(i).is_some_and(|s| s.blocked)
    }
    /// The first server error among `steps`, with its step.
    fn first_error(&self, steps: impl IntoIterator<Item = usize>) -> Option<(usize, u16)> {
        steps
            .into_iter()
            .find_map(|i| self.error(i).map(|c| (i, c)))
    }
    fn any_blocked(&self, steps: impl IntoIterator<Item = usize>) -> Option<usize> {
        steps.into_iter().find(|&i| self.blocked(i))
    }
    /// A lost connection anywhere makes the test unjudgeable.
    fn lost(&self) -> Option<&str> {
        self.steps.iter().find_map(|s| match &s.answer {
            Answer::Lost { message } => Some(message.as_str()),
            _ => None,
        })
    }
    fn who(&self, i: usize) -> String {
        format!("T{}", self.steps.get(i).map_or(0, |s| s.conn) + 1)
    }
    fn sql(&self, i: usize) -> &str {
        self.steps.get(i).map_or("", |s| s.sql.as_str())
    }
}

/// How a test came out on one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Behaviour {
    Prevented {
        how: How,
        evidence: String,
    },
    Allowed {
        evidence: String,
    },
    /// The server would not run a statement the test relies on (a syntax it does not
    /// support, or refuses without a setting).
    Refused {
        code: u16,
        evidence: String,
    },
    /// The test could not be judged (a connection failed); never counted as the same.
    Unknown {
        evidence: String,
    },
}

/// How an anomaly was prevented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum How {
    /// A step waited for another transaction to end.
    Blocked,
    /// A step failed with this error code.
    Error { code: u16 },
    /// Every read was consistent with some serial order.
    Consistent,
}

impl Behaviour {
    pub fn evidence(&self) -> &str {
        match self {
            Behaviour::Prevented { evidence, .. }
            | Behaviour::Allowed { evidence }
            | Behaviour::Refused { evidence, .. }
            | Behaviour::Unknown { evidence } => evidence,
        }
    }
    /// `prevented (blocked)`, `allowed`, `refused (error 1235)`: the short form of tables.
    pub fn label(&self) -> String {
        match self {
            Behaviour::Prevented { how, .. } => format!("prevented ({})", how.label()),
            Behaviour::Allowed { .. } => "allowed".to_string(),
            Behaviour::Refused { code, .. } => format!("refused (error {code})"),
            Behaviour::Unknown { .. } => "could not run".to_string(),
        }
    }
    /// Two sides behave alike when they have the same outcome and, when prevented, the same
    /// way: an application sees a wait, an error code or nothing, and handles each
    /// differently. Evidence (the rows seen) is not compared.
    pub fn same_as(&self, other: &Behaviour) -> bool {
        match (self, other) {
            (Behaviour::Prevented { how: a, .. }, Behaviour::Prevented { how: b, .. }) => a == b,
            (Behaviour::Allowed { .. }, Behaviour::Allowed { .. }) => true,
            (Behaviour::Refused { code: a, .. }, Behaviour::Refused { code: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl How {
    pub fn label(&self) -> String {
        match self {
            How::Blocked => "blocked".to_string(),
            How::Error { code } => format!("error {code}"),
            How::Consistent => "consistent result".to_string(),
        }
    }
}

/// Rows in Hermitage's notation: `1 => 10, 2 => 20`, or `no rows`.
pub fn show(rows: &[(i64, i64)]) -> String {
    if rows.is_empty() {
        return "no rows".to_string();
    }
    rows.iter()
        .map(|(id, v)| format!("{id} => {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_of(rows: &[(i64, i64)], id: i64) -> Option<i64> {
    rows.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
}

/// Server errors that mean "this statement is not supported here", not "prevented".
const UNSUPPORTED: &[u16] = &[
    1064, // ER_PARSE_ERROR
    1235, // ER_NOT_SUPPORTED_YET (TiDB: noop functions such as LOCK IN SHARE MODE)
    1149, // ER_SYNTAX_ERROR
];

/// The common tail of a judge once it found no anomaly: an error on one of `steps` →
/// prevented by that error; one of `blockers` blocked → prevented by blocking; else the
/// result was consistent.
fn prevented(
    t: &Trace,
    steps: std::ops::Range<usize>,
    blockers: &[usize],
    consistent: String,
) -> Behaviour {
    if let Some((i, code)) = t.first_error(steps) {
        return Behaviour::Prevented {
            how: How::Error { code },
            evidence: format!("{} `{}` failed with error {code}", t.who(i), t.sql(i)),
        };
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

/// Wraps a judge: a lost connection is never judged.
pub fn judge(test: &Test, trace: &Trace) -> Behaviour {
    if let Some(m) = trace.lost() {
        return Behaviour::Unknown {
            evidence: format!("a connection failed: {m}"),
        };
    }
    (test.judge)(trace)
}

const SEL: &str = "SELECT id, value FROM {t} ORDER BY id";

/// The whole suite, in report order.
pub fn suite() -> &'static [Test] {
    SUITE
}

/// A test by id.
pub fn find(id: &str) -> Option<&'static Test> {
    SUITE.iter().find(|t| t.id == id)
}

static SUITE: &[Test] = &[
    Test {
        id: "g0",
        name: "Write cycles (G0, dirty write)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(1, "UPDATE {t} SET value = 12 WHERE id = 1"),
            s(0, "UPDATE {t} SET value = 21 WHERE id = 2"),
            s(0, "COMMIT"),
            s(1, "UPDATE {t} SET value = 22 WHERE id = 2"),
            s(1, "COMMIT"),
            s(0, SEL),
        ],
        judge: judge_g0,
    },
    Test {
        id: "g1a",
        name: "Aborted reads (G1a)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "UPDATE {t} SET value = 101 WHERE id = 1"),
            s(1, SEL),
            s(0, "ROLLBACK"),
            s(1, SEL),
            s(1, "COMMIT"),
        ],
        judge: judge_g1a,
    },
    Test {
        id: "g1b",
        name: "Intermediate reads (G1b)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "UPDATE {t} SET value = 101 WHERE id = 1"),
            s(1, SEL),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(0, "COMMIT"),
            s(1, SEL),
            s(1, "COMMIT"),
        ],
        judge: judge_g1b,
    },
    Test {
        id: "g1c",
        name: "Circular information flow (G1c)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(1, "UPDATE {t} SET value = 22 WHERE id = 2"),
            s(0, "SELECT id, value FROM {t} WHERE id = 2"),
            s(1, "SELECT id, value FROM {t} WHERE id = 1"),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_g1c,
    },
    Test {
        id: "otv",
        name: "Observed transaction vanishes (OTV)",
        kind: Kind::Anomaly,
        connections: 3,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(2, "BEGIN"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(0, "UPDATE {t} SET value = 19 WHERE id = 2"),
            s(1, "UPDATE {t} SET value = 12 WHERE id = 1"),
            s(0, "COMMIT"),
            s(2, SEL),
            s(1, "UPDATE {t} SET value = 18 WHERE id = 2"),
            s(2, SEL),
            s(1, "COMMIT"),
            s(2, SEL),
            s(2, "COMMIT"),
        ],
        judge: judge_otv,
    },
    Test {
        id: "pmp",
        name: "Predicate-many-preceders (PMP), read predicate",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "SELECT id, value FROM {t} WHERE value = 30"),
            s(1, "INSERT INTO {t} (id, value) VALUES (3, 30)"),
            s(1, "COMMIT"),
            s(0, "SELECT id, value FROM {t} WHERE value % 3 = 0"),
            s(0, "COMMIT"),
        ],
        judge: judge_pmp,
    },
    Test {
        id: "pmp-write",
        name: "Predicate-many-preceders (PMP), write predicate",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "UPDATE {t} SET value = value + 10"),
            s(1, SEL),
            s(1, "DELETE FROM {t} WHERE value = 20"),
            s(0, "COMMIT"),
            s(1, SEL),
            s(1, "COMMIT"),
        ],
        judge: judge_pmp_write,
    },
    Test {
        id: "p4",
        name: "Lost update (P4)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "SELECT id, value FROM {t} WHERE id = 1"),
            s(1, "SELECT id, value FROM {t} WHERE id = 1"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(1, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_p4,
    },
    Test {
        id: "g-single",
        name: "Read skew (G-single), read-only transaction",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "SELECT id, value FROM {t} WHERE id = 1"),
            s(1, "SELECT id, value FROM {t} WHERE id = 1"),
            s(1, "SELECT id, value FROM {t} WHERE id = 2"),
            s(1, "UPDATE {t} SET value = 12 WHERE id = 1"),
            s(1, "UPDATE {t} SET value = 18 WHERE id = 2"),
            s(1, "COMMIT"),
            s(0, "SELECT id, value FROM {t} WHERE id = 2"),
            s(0, "COMMIT"),
        ],
        judge: judge_g_single,
    },
    Test {
        id: "g-single-write",
        name: "Read skew (G-single), write predicate",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "SELECT id, value FROM {t} WHERE id = 1"),
            s(1, SEL),
            s(1, "UPDATE {t} SET value = 12 WHERE id = 1"),
            s(1, "UPDATE {t} SET value = 18 WHERE id = 2"),
            s(1, "COMMIT"),
            s(0, "DELETE FROM {t} WHERE value = 20"),
            s(0, "SELECT id, value FROM {t} WHERE id = 2"),
            s(0, "COMMIT"),
        ],
        judge: judge_g_single_write,
    },
    Test {
        id: "g2-item",
        name: "Write skew (G2-item)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "SELECT id, value FROM {t} WHERE id IN (1, 2)"),
            s(1, "SELECT id, value FROM {t} WHERE id IN (1, 2)"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(1, "UPDATE {t} SET value = 21 WHERE id = 2"),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_g2_item,
    },
    Test {
        id: "g2",
        name: "Anti-dependency cycles (G2)",
        kind: Kind::Anomaly,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(0, "SELECT id, value FROM {t} WHERE value % 3 = 0"),
            s(1, "SELECT id, value FROM {t} WHERE value % 3 = 0"),
            s(0, "INSERT INTO {t} (id, value) VALUES (3, 30)"),
            s(1, "INSERT INTO {t} (id, value) VALUES (4, 42)"),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_g2,
    },
    Test {
        id: "gap-lock",
        name: "Range SELECT ... FOR UPDATE vs a concurrent INSERT into the range",
        kind: Kind::Locking,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(1, "BEGIN"),
            s(
                0,
                "SELECT id, value FROM {t} WHERE id BETWEEN 1 AND 10 ORDER BY id FOR UPDATE",
            ),
            s(1, "INSERT INTO {t} (id, value) VALUES (5, 50)"),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_gap_lock,
    },
    Test {
        id: "autocommit-for-update",
        name: "Autocommit SELECT ... FOR UPDATE waits for a row lock",
        kind: Kind::Locking,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(1, "SELECT id, value FROM {t} WHERE id = 1 FOR UPDATE"),
            s(0, "COMMIT"),
        ],
        judge: judge_autocommit_for_update,
    },
    Test {
        id: "share-mode",
        name: "SELECT ... LOCK IN SHARE MODE keeps writers out",
        kind: Kind::Locking,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(
                0,
                "SELECT id, value FROM {t} WHERE id = 1 LOCK IN SHARE MODE",
            ),
            s(1, "BEGIN"),
            s(1, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_share_mode,
    },
    Test {
        id: "nowait",
        name: "SELECT ... FOR UPDATE NOWAIT on a locked row",
        kind: Kind::Locking,
        connections: 2,
        steps: &[
            s(0, "BEGIN"),
            s(0, "UPDATE {t} SET value = 11 WHERE id = 1"),
            s(1, "BEGIN"),
            s(
                1,
                "SELECT id, value FROM {t} WHERE id = 1 FOR UPDATE NOWAIT",
            ),
            s(0, "COMMIT"),
            s(1, "COMMIT"),
        ],
        judge: judge_nowait,
    },
];

fn judge_g0(t: &Trace) -> Behaviour {
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

fn judge_g1a(t: &Trace) -> Behaviour {
    for i in [3, 5] {
        if let Some(r) = t.rows(i) {
            if value_of(r, 1) == Some(101) {
                return Behaviour::Allowed {
                    evidence: format!(
                        "T2 read {}: 1 => 101 was written by T1, which rolled back",
                        show(r)
                    ),
                };
            }
        }
    }
    let seen = [3, 5]
        .iter()
        .filter_map(|&i| t.rows(i).map(show))
        .collect::<Vec<_>>()
        .join("; then ");
    prevented(t, 2..7, &[3], format!("T2 read {seen}"))
}

fn judge_g1b(t: &Trace) -> Behaviour {
    for i in [3, 6] {
        if let Some(r) = t.rows(i) {
            if value_of(r, 1) == Some(101) {
                return Behaviour::Allowed {
                    evidence: format!(
                        "T2 read {}: 1 => 101 was T1's intermediate value, later overwritten",
                        show(r)
                    ),
                };
            }
        }
    }
    let seen = [3, 6]
        .iter()
        .filter_map(|&i| t.rows(i).map(show))
        .collect::<Vec<_>>()
        .join("; then ");
    prevented(t, 2..8, &[3], format!("T2 read {seen}"))
}

fn judge_g1c(t: &Trace) -> Behaviour {
    let t1 = t.rows(4).and_then(|r| value_of(r, 2));
    let t2 = t.rows(5).and_then(|r| value_of(r, 1));
    if t1 == Some(22) || t2 == Some(11) {
        return Behaviour::Allowed {
            evidence: format!(
                "T1 read {} and T2 read {}: each saw the other's uncommitted write",
                t.rows(4).map(show).unwrap_or_else(|| "nothing".into()),
                t.rows(5).map(show).unwrap_or_else(|| "nothing".into())
            ),
        };
    }
    prevented(
        t,
        2..8,
        &[4, 5],
        format!(
            "T1 read {}, T2 read {}",
            t.rows(4).map(show).unwrap_or_else(|| "nothing".into()),
            t.rows(5).map(show).unwrap_or_else(|| "nothing".into())
        ),
    )
}

fn judge_otv(t: &Trace) -> Behaviour {
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

fn judge_pmp(t: &Trace) -> Behaviour {
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
        format!(
            "T1's second predicate read returned {}",
            t.rows(5).map(show).unwrap_or_else(|| "nothing".into())
        ),
    )
}

fn judge_pmp_write(t: &Trace) -> Behaviour {
    if let Some((i, code)) = t.first_error(2..8) {
        return Behaviour::Prevented {
            how: How::Error { code },
            evidence: format!("{} `{}` failed with error {code}", t.who(i), t.sql(i)),
        };
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

fn judge_p4(t: &Trace) -> Behaviour {
    if let Some((i, code)) = t.first_error(4..8) {
        return Behaviour::Prevented {
            how: How::Error { code },
            evidence: format!("{} `{}` failed with error {code}", t.who(i), t.sql(i)),
        };
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

fn judge_g_single(t: &Trace) -> Behaviour {
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

fn judge_g_single_write(t: &Trace) -> Behaviour {
    if let Some((i, code)) = t.first_error(2..10) {
        return Behaviour::Prevented {
            how: How::Error { code },
            evidence: format!("{} `{}` failed with error {code}", t.who(i), t.sql(i)),
        };
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

fn judge_g2_item(t: &Trace) -> Behaviour {
    if (2..8).all(|i| t.ok(i)) {
        return Behaviour::Allowed {
            evidence: "T1 and T2 both read 1 => 10, 2 => 20 and each updated the row the other did not: both committed".into(),
        };
    }
    prevented(t, 2..8, &[4, 5], "one transaction did not commit".into())
}

fn judge_g2(t: &Trace) -> Behaviour {
    if (2..8).all(|i| t.ok(i)) {
        return Behaviour::Allowed {
            evidence: "T1 and T2 both read no row with value % 3 = 0 and each inserted one: both committed".into(),
        };
    }
    prevented(t, 2..8, &[4, 5], "one transaction did not commit".into())
}

fn judge_gap_lock(t: &Trace) -> Behaviour {
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

fn judge_autocommit_for_update(t: &Trace) -> Behaviour {
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
    prevented(
        t,
        1..4,
        &[2],
        format!(
            "it then returned {}",
            t.rows(2).map(show).unwrap_or_else(|| "nothing".into())
        ),
    )
}

fn judge_share_mode(t: &Trace) -> Behaviour {
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

fn judge_nowait(t: &Trace) -> Behaviour {
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

#[cfg(test)]
mod tests {
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
}
