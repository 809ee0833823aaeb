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

mod cases;
mod judges;

/// One statement of a test, on connection `conn` (0 is T1). `{t}` is the test's table.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub conn: usize,
    pub sql: &'static str,
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

/// Wraps a judge: a lost connection is never judged.
pub fn judge(test: &Test, trace: &Trace) -> Behaviour {
    if let Some(m) = trace.lost() {
        return Behaviour::Unknown {
            evidence: format!("a connection failed: {m}"),
        };
    }
    (test.judge)(trace)
}

/// The whole suite, in report order.
pub fn suite() -> &'static [Test] {
    cases::SUITE
}

/// A test by id.
pub fn find(id: &str) -> Option<&'static Test> {
    cases::SUITE.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests;
