//! Runs one test of the suite on one side, step by step.
//!
//! Each step is sent on its connection from a task of its own, and the runner waits for it
//! to answer or to be seen waiting for a lock. Seen waiting: the step is *blocked*; it stays
//! in flight and the next steps of the test go on (that is how Hermitage's sequences read:
//! "T2 BLOCKS; T1 commits, this unblocks T2"). A later step of a blocked connection is held
//! back, in order, and sent when the blocked one answers. After every step the runner looks
//! again at the blocked ones, in connection order. Nothing is raced: whether a step is blocked
//! is read from the server (`information_schema.INNODB_TRX`, TiDB's `TIDB_TRX`), not guessed
//! from how long it took, so a run repeats exactly. Without the privilege to read those
//! views (PROCESS), a step that has not answered within [`DEADLINE`] counts as blocked, and
//! the report says so.
//!
//! Every test connection sets a short `innodb_lock_wait_timeout` ([`LOCK_WAIT_SECS`]), so a
//! step blocked for good ends with error 1205 instead of hanging; a connection that does not
//! answer at all within [`BACKSTOP`] is given up (the test is "could not run").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cutover_core::{Db, DbError, Flavor};
use mysql_async::prelude::*;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::anomaly::{Answer, StepRecord, Test, Trace};
use crate::ProbeError;

/// `innodb_lock_wait_timeout` of test sessions: long enough for every sequence (a blocked
/// step is released by a later step within milliseconds), short enough that a step blocked
/// for good does not hold the probe up.
pub const LOCK_WAIT_SECS: u64 = 5;
/// With no view of lock waits, a step that has not answered by then counts as blocked.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// A step that neither answers nor waits for a lock by then has lost its server.
pub const BACKSTOP: Duration = Duration::from_secs(LOCK_WAIT_SECS * 4);
/// How often an unanswered step is looked at.
const POLL: Duration = Duration::from_millis(10);
/// A step seen waiting for a lock right after another transaction ended may be about to be
/// granted it (TiDB wakes waiters asynchronously): it counts as still blocked only when
/// seen waiting this long.
const STILL_BLOCKED: Duration = Duration::from_millis(60);

/// How a side tells that a step waits for a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detection {
    /// The server's transaction views show the step's session waiting for a lock.
    LockWaitView,
    /// The step has not answered within [`DEADLINE`] (no privilege to read the views).
    Deadline,
}

/// What a side's test connections need: where to connect, what to set, how to look.
pub struct Side {
    /// The read-only pool: lock-wait views, and the address of standalone connections.
    pub db: Db,
    /// Statements every test connection runs first (character set, lock wait timeout,
    /// isolation level, and any session settings asked for).
    pub session: Vec<String>,
    pub detection: Detection,
    pub cancel: CancellationToken,
}

type Running = JoinHandle<(mysql_async::Conn, Answer)>;

struct TestConn {
    /// `None` while a step runs on it, or after it was lost.
    conn: Option<mysql_async::Conn>,
    /// `CONNECTION_ID()`, as the lock-wait views know it (64-bit on TiDB).
    id: u64,
    running: Option<(usize, Running)>,
    held: VecDeque<usize>,
    lost: Option<String>,
}

enum Waited {
    /// The step answered; the connection comes back unless it was lost.
    Answered(Option<mysql_async::Conn>, Answer),
    Blocked,
}

impl Side {
    /// Whether the lock-wait view can be read with these credentials.
    pub async fn detect(db: &Db) -> Detection {
        let sql = match db.flavor() {
            Flavor::TiDb => tidb_lock_wait_sql(0),
            Flavor::MariaDb | Flavor::MySql => "SHOW ENGINE INNODB STATUS".to_string(),
        };
        match db.query::<mysql_async::Row>(&sql).await {
            Ok(_) => Detection::LockWaitView,
            Err(_) => Detection::Deadline,
        }
    }

    /// Whether session `id` waits for a lock now. InnoDB: `SHOW ENGINE INNODB STATUS`,
    /// made fresh for every call. `information_schema.INNODB_TRX` is no use here: InnoDB
    /// refreshes it only when it has not been read for 100 ms, so a poller reading it more
    /// often (or two probes at once) sees the same old rows for ever.
    async fn waits_for_lock(&self, id: u64) -> Result<bool, ProbeError> {
        match self.db.flavor() {
            Flavor::TiDb => {
                let n: Vec<u64> = self
                    .db
                    .query(&tidb_lock_wait_sql(id))
                    .await
                    .map_err(|e| self.db_err(e))?;
                Ok(n.first().copied().unwrap_or(0) > 0)
            }
            Flavor::MariaDb | Flavor::MySql => {
                let rows: Vec<(String, String, String)> = self
                    .db
                    .query("SHOW ENGINE INNODB STATUS")
                    .await
                    .map_err(|e| self.db_err(e))?;
                Ok(rows
                    .iter()
                    .any(|(_, _, status)| innodb_status_waits(status, id)))
            }
        }
    }

    fn db_err(&self, e: DbError) -> ProbeError {
        if e.is_interrupted() {
            ProbeError::Interrupted
        } else {
            ProbeError::Db(e)
        }
    }

    /// A test connection, set up.
    pub async fn connect(&self) -> Result<(mysql_async::Conn, u64), ProbeError> {
        let mut c = self.db.standalone().await.map_err(|e| self.db_err(e))?;
        for sql in &self.session {
            c.query_drop(sql).await.map_err(|e| ProbeError::Session {
                role: self.db.role(),
                statement: sql.clone(),
                message: server_message(&e),
            })?;
        }
        let id: Option<u64> = c
            .query_first("SELECT CONNECTION_ID()")
            .await
            .map_err(|e| self.db_err(self.db.map_err(e)))?;
        Ok((c, id.unwrap_or(0)))
    }

    /// Runs `test` on the table `table` of the scratch database (already holding its rows),
    /// and returns its steps
    /// as they ran.
    pub async fn run(&self, test: &Test, table: &str) -> Result<Trace, ProbeError> {
        let mut conns = Vec::with_capacity(test.connections);
        for _ in 0..test.connections {
            let (c, id) = self.connect().await?;
            conns.push(TestConn {
                conn: Some(c),
                id,
                running: None,
                held: VecDeque::new(),
                lost: None,
            });
        }
        let mut records: Vec<Option<StepRecord>> = vec![None; test.steps.len()];
        let result = self.drive(test, table, &mut conns, &mut records).await;
        if result.is_err() {
            // Interrupted or failed: no statement of this test may go on holding locks in
            // the scratch database, which is dropped next.
            self.kill(&mut conns).await;
            result?;
        }
        for c in &mut conns {
            if let Some(mut conn) = c.conn.take() {
                let _ = conn.query_drop("ROLLBACK").await;
                let _ = conn.disconnect().await;
            }
        }
        let steps = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| StepRecord {
                    conn: test.steps[i].conn,
                    sql: sql_of(test, i, table),
                    blocked: false,
                    deferred: false,
                    answer: Answer::NotRun,
                })
            })
            .collect();
        Ok(Trace { steps })
    }

    async fn drive(
        &self,
        test: &Test,
        table: &str,
        conns: &mut [TestConn],
        records: &mut [Option<StepRecord>],
    ) -> Result<(), ProbeError> {
        for (i, step) in test.steps.iter().enumerate() {
            if self.cancel.is_cancelled() {
                return Err(ProbeError::Interrupted);
            }
            let c = &mut conns[step.conn];
            if c.running.is_some() || !c.held.is_empty() {
                c.held.push_back(i);
            } else {
                self.send(test, table, conns, records, step.conn, i, false)
                    .await?;
            }
            self.settle(test, table, conns, records, false).await?;
        }
        // The end: what is still blocked waits for its answer (every sequence ends the
        // transactions that could hold it; the lock wait timeout ends the rest).
        self.settle(test, table, conns, records, true).await
    }

    /// Sends step `i` on connection `c` and waits for its answer, or until it is seen
    /// blocked (then it stays running).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        test: &Test,
        table: &str,
        conns: &mut [TestConn],
        records: &mut [Option<StepRecord>],
        c: usize,
        i: usize,
        deferred: bool,
    ) -> Result<(), ProbeError> {
        let sql = sql_of(test, i, table);
        let tc = &mut conns[c];
        let mut record = StepRecord {
            conn: c,
            sql: sql.clone(),
            blocked: false,
            deferred,
            answer: Answer::NotRun,
        };
        let Some(mut conn) = tc.conn.take() else {
            record.answer = Answer::Lost {
                message: tc
                    .lost
                    .clone()
                    .unwrap_or_else(|| "the connection is gone".into()),
            };
            records[i] = Some(record);
            return Ok(());
        };
        let handle: Running = tokio::spawn(async move {
            let answer = execute(&mut conn, &sql).await;
            (conn, answer)
        });
        records[i] = Some(record);
        tc.running = Some((i, handle));
        match self.wait(tc, false).await? {
            Waited::Answered(conn, answer) => self.finish(tc, records, i, conn, answer),
            Waited::Blocked => {
                if let Some(r) = records[i].as_mut() {
                    r.blocked = true;
                }
            }
        }
        Ok(())
    }

    fn finish(
        &self,
        tc: &mut TestConn,
        records: &mut [Option<StepRecord>],
        i: usize,
        conn: Option<mysql_async::Conn>,
        answer: Answer,
    ) {
        tc.running = None;
        match conn {
            Some(c) if !matches!(answer, Answer::Lost { .. }) => tc.conn = Some(c),
            _ => {
                tc.lost = Some(match &answer {
                    Answer::Lost { message } => message.clone(),
                    _ => "the connection is gone".into(),
                })
            }
        }
        if let Some(r) = records[i].as_mut() {
            r.answer = answer;
        }
    }

    /// Looks at every blocked step, in connection order: one that answered frees its
    /// connection, whose held-back steps are then sent in order. Repeats while anything
    /// moved. `to_the_end`: wait for every blocked step to answer.
    async fn settle(
        &self,
        test: &Test,
        table: &str,
        conns: &mut [TestConn],
        records: &mut [Option<StepRecord>],
        to_the_end: bool,
    ) -> Result<(), ProbeError> {
        loop {
            let mut moved = false;
            for c in 0..conns.len() {
                if conns[c].running.is_none() {
                    continue;
                }
                let waited = if to_the_end {
                    self.wait_answer(&mut conns[c]).await?
                } else {
                    self.wait(&mut conns[c], true).await?
                };
                let Waited::Answered(conn, answer) = waited else {
                    continue;
                };
                let i = conns[c].running.as_ref().map_or(0, |(i, _)| *i);
                self.finish(&mut conns[c], records, i, conn, answer);
                moved = true;
                while conns[c].running.is_none() {
                    let Some(next) = conns[c].held.pop_front() else {
                        break;
                    };
                    self.send(test, table, conns, records, c, next, true)
                        .await?;
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// Waits for the running step of `tc` to answer or to be seen waiting for a lock.
    /// `again`: the step was blocked before, so it must be seen waiting for
    /// [`STILL_BLOCKED`] to count as still blocked.
    async fn wait(&self, tc: &mut TestConn, again: bool) -> Result<Waited, ProbeError> {
        let started = Instant::now();
        let mut waiting_since: Option<Instant> = None;
        loop {
            let Some((_, handle)) = tc.running.as_mut() else {
                return Ok(Waited::Blocked);
            };
            tokio::select! {
                r = handle => return Ok(joined(r)),
                _ = tokio::time::sleep(POLL) => {}
                _ = self.cancel.cancelled() => return Err(ProbeError::Interrupted),
            }
            match self.detection {
                Detection::LockWaitView => {
                    if self.waits_for_lock(tc.id).await? {
                        let since = *waiting_since.get_or_insert_with(Instant::now);
                        if !again || since.elapsed() >= STILL_BLOCKED {
                            return Ok(Waited::Blocked);
                        }
                    } else {
                        waiting_since = None;
                    }
                }
                Detection::Deadline => {
                    if started.elapsed() >= DEADLINE {
                        return Ok(Waited::Blocked);
                    }
                }
            }
            if started.elapsed() >= BACKSTOP {
                return Ok(self.give_up(tc).await);
            }
        }
    }

    /// Waits for the running step of `tc` to answer, however long its lock wait lasts
    /// (bounded by the session's lock wait timeout, and then by [`BACKSTOP`]).
    async fn wait_answer(&self, tc: &mut TestConn) -> Result<Waited, ProbeError> {
        let Some((_, handle)) = tc.running.as_mut() else {
            return Ok(Waited::Blocked);
        };
        tokio::select! {
            r = handle => Ok(joined(r)),
            _ = tokio::time::sleep(BACKSTOP) => Ok(self.give_up(tc).await),
            _ = self.cancel.cancelled() => Err(ProbeError::Interrupted),
        }
    }

    async fn give_up(&self, tc: &mut TestConn) -> Waited {
        if let Some((_, h)) = tc.running.as_mut() {
            h.abort();
        }
        self.kill_ids(&[tc.id]).await;
        Waited::Answered(
            None,
            Answer::Lost {
                message: format!("no answer within {} s", BACKSTOP.as_secs()),
            },
        )
    }

    async fn kill(&self, conns: &mut [TestConn]) {
        for c in conns.iter_mut() {
            if let Some((_, h)) = c.running.take() {
                h.abort();
            }
        }
        let ids: Vec<u64> = conns.iter().map(|c| c.id).collect();
        self.kill_ids(&ids).await;
        for c in conns.iter_mut() {
            c.conn = None;
        }
    }

    /// Ends the test's sessions on the server (their transactions roll back, their locks go)
    /// from a connection of its own.
    pub async fn kill_ids(&self, ids: &[u64]) {
        if let Ok(mut admin) = self.db.standalone().await {
            for id in ids.iter().filter(|&&id| id != 0) {
                let _ = admin.query_drop(format!("KILL CONNECTION {id}")).await;
            }
            let _ = admin.disconnect().await;
        }
    }
}

fn joined(r: Result<(mysql_async::Conn, Answer), tokio::task::JoinError>) -> Waited {
    match r {
        Ok((conn, answer)) => Waited::Answered(Some(conn), answer),
        // Aborted (given up) or panicked: there is no connection to give back.
        Err(_) => Waited::Answered(
            None,
            Answer::Lost {
                message: "the step's task ended without an answer".into(),
            },
        ),
    }
}

/// Runs one statement: rows `(id, value)` for a SELECT, else the rows it changed.
async fn execute(conn: &mut mysql_async::Conn, sql: &str) -> Answer {
    let reads = sql.trim_start().to_ascii_uppercase().starts_with("SELECT");
    let r = if reads {
        conn.query::<(i64, i64), _>(sql).await.map(|mut rows| {
            rows.sort_unstable();
            Answer::Rows { rows }
        })
    } else {
        conn.query_drop(sql).await.map(|_| Answer::Done {
            affected: conn.affected_rows(),
        })
    };
    match r {
        Ok(a) => a,
        Err(mysql_async::Error::Server(e)) => Answer::Error {
            code: e.code,
            message: e.message,
        },
        Err(e) => Answer::Lost {
            message: e.to_string(),
        },
    }
}

fn sql_of(test: &Test, i: usize, table: &str) -> String {
    test.steps[i].sql.replace("{t}", table)
}

/// TiDB's view of transactions is read live from every TiDB server.
fn tidb_lock_wait_sql(id: u64) -> String {
    format!(
        "SELECT COUNT(*) FROM information_schema.TIDB_TRX WHERE SESSION_ID = {id} AND STATE = 'LockWaiting'"
    )
}

/// Whether the TRANSACTIONS section of `SHOW ENGINE INNODB STATUS` shows the transaction
/// of session `id` in `LOCK WAIT`. Each transaction is a block that begins with
/// `---TRANSACTION`; a waiting one has a line beginning with `LOCK WAIT` and names its
/// session as `MySQL thread id N,` (`MariaDB thread id N,` on MariaDB).
pub fn innodb_status_waits(status: &str, id: u64) -> bool {
    let mut waiting = false;
    let mut thread: Option<u64> = None;
    for line in status.lines() {
        let ends_block = line.starts_with("---TRANSACTION")
            || (line.len() >= 4 && line.bytes().all(|b| b == b'-'));
        if ends_block {
            if waiting && thread == Some(id) {
                return true;
            }
            waiting = false;
            thread = None;
            continue;
        }
        if line.starts_with("LOCK WAIT") {
            waiting = true;
        }
        if thread.is_none() {
            if let Some(at) = line.find(" thread id ") {
                let rest = &line[at + " thread id ".len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                thread = digits.parse().ok();
            }
        }
    }
    waiting && thread == Some(id)
}

/// A server error's text, without anything of the connection (no DSN).
pub fn server_message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("error {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATUS: &str = "\
------------
TRANSACTIONS
------------
Trx id counter 1234
LIST OF TRANSACTIONS FOR EACH SESSION:
---TRANSACTION 1233, ACTIVE 3 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 2 lock struct(s), heap size 1128, 1 row lock(s)
MariaDB thread id 12, OS thread handle 1407, query id 55 localhost root Updating
UPDATE t SET value = 12 WHERE id = 1
------- TRX HAS BEEN WAITING 3 SEC FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 5 page no 3 n bits 72 index PRIMARY
------------------
---TRANSACTION 1232, ACTIVE 5 sec
2 lock struct(s), heap size 1128, 1 row lock(s), undo log entries 1
MariaDB thread id 11, OS thread handle 1408, query id 54 localhost root
--------
FILE I/O
--------
MySQL thread id 13, nothing
";

    #[test]
    fn innodb_status_names_the_waiting_session_only() {
        assert!(innodb_status_waits(STATUS, 12));
        assert!(!innodb_status_waits(STATUS, 11));
        assert!(!innodb_status_waits(STATUS, 1));
        assert!(!innodb_status_waits(STATUS, 13));
        assert!(!innodb_status_waits("", 12));
    }

    proptest! {
        #[test]
        fn innodb_status_parser_never_panics(s in "(?s).{0,400}", id in 0u64..100) {
            let _ = innodb_status_waits(&s, id);
        }
    }
}
