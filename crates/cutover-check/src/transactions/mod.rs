//! The workload rebuilt session by session: each session's transactions (BEGIN/START
//! TRANSACTION, COMMIT/ROLLBACK, `SET autocommit`, the implicit commit of a DDL, and
//! `autocommit = 0` sessions whose first statement opens one), its prepared statements, and
//! the writes to single keys across sessions. What each statement or transaction will meet
//! on the target is counted into [`Tallies`] by rule; [`Analyzer::finish`] makes the findings.
//!
//! One record at a time, in bounded memory: a session holds its open transaction and its
//! prepared statements, the hot-row tracker only the keys written within the window (and the
//! keys that conflicted), the tallies at most 100 classes per rule.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use cutover_workload::{fingerprint, Command, Record};

use crate::finding::{Example, Finding, WorkloadSummary};
use crate::profile::Profile;
use crate::statement::{analyse, KeyValue, Kind, StatementFacts, TxnMode};
use crate::workload_rules::{time_text, Tallies, WorkloadRule};

mod churn;
mod hot_rows;
mod ran;

use churn::Churn;
use hot_rows::HotRows;
pub use ran::{execute_param, execute_params_text};
use ran::{truncate, Ran};

/// How the workload is read.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Writes to one key by two sessions closer than this are a conflict (`--hot-window`).
    pub hot_window_us: i64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            hot_window_us: 1_000_000,
        }
    }
}

struct Prepared {
    sql: Rc<str>,
    class: Rc<str>,
    facts: Rc<Vec<StatementFacts>>,
}

struct RangeLock {
    table: String,
    class: Rc<str>,
    example: Example,
    reported: bool,
}

struct Txn {
    /// The DDL count when the transaction began: a DDL after it crosses the transaction.
    start_epoch: u64,
    statements: u32,
    range_locks: Vec<RangeLock>,
    /// Optimistic on the target: its locking reads cannot be retried (8002).
    optimistic: bool,
}

struct Session {
    autocommit: bool,
    /// The session's own `SET tidb_txn_mode` (`None`: the cluster's).
    txn_mode: Option<TxnMode>,
    txn: Option<Txn>,
    prepared: HashMap<u32, Prepared>,
    /// Classes this session has prepared (a second prepare of one is churn).
    prepared_classes: HashSet<Rc<str>>,
}

impl Session {
    fn new() -> Session {
        Session {
            autocommit: true,
            txn_mode: None,
            txn: None,
            prepared: HashMap::new(),
            prepared_classes: HashSet::new(),
        }
    }
}

struct Ddl {
    epoch: u64,
    session: u64,
    class: Rc<str>,
    example: Example,
}

/// The analysis of one workload.
pub struct Analyzer<'p> {
    target: &'p Profile,
    redacted: bool,
    sessions: HashMap<u64, Session>,
    tallies: Tallies,
    ddl_epoch: u64,
    ddls: VecDeque<Ddl>,
    churn: HashMap<Rc<str>, Churn>,
    hot: HotRows,
    summary: WorkloadSummary,
    all_sessions: HashSet<u64>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    /// The rules that apply to the target (decided once, not per statement).
    enabled_rules: HashSet<WorkloadRule>,
}

impl<'p> Analyzer<'p> {
    pub fn new(target: &'p Profile, redacted: bool, opts: &WorkloadOptions) -> Analyzer<'p> {
        Analyzer {
            target,
            redacted,
            sessions: HashMap::new(),
            tallies: Tallies::default(),
            ddl_epoch: 0,
            ddls: VecDeque::new(),
            churn: HashMap::new(),
            hot: HotRows::new(opts.hot_window_us.max(1)),
            summary: WorkloadSummary {
                redacted,
                ..WorkloadSummary::default()
            },
            all_sessions: HashSet::new(),
            first_ts: None,
            last_ts: None,
            enabled_rules: WorkloadRule::ALL
                .into_iter()
                .filter(|r| r.text(target).is_some())
                .collect(),
        }
    }

    pub fn record(&mut self, r: &Record) {
        self.summary.records += 1;
        self.first_ts = Some(self.first_ts.map_or(r.ts_us, |t| t.min(r.ts_us)));
        self.last_ts = Some(self.last_ts.map_or(r.ts_us, |t| t.max(r.ts_us)));
        self.all_sessions.insert(r.session);
        let sid = r.session;
        match &r.command {
            Command::Query { sql } => {
                let facts = analyse(sql);
                let ran = Ran {
                    session: sid,
                    ts_us: r.ts_us,
                    sql,
                    execute: None,
                    class: OnceCell::new(),
                };
                for f in &facts {
                    self.statement(&ran, f);
                }
            }
            Command::Prepare { stmt, sql } => {
                let class: Rc<str> = Rc::from(fingerprint(sql));
                let p = Prepared {
                    sql: Rc::from(sql.as_str()),
                    class: class.clone(),
                    facts: Rc::new(analyse(sql)),
                };
                let s = self.sessions.entry(sid).or_insert_with(Session::new);
                let again = !s.prepared_classes.insert(class.clone());
                s.prepared.insert(*stmt, p);
                let c = self.churn.entry(class).or_default();
                c.prepares += 1;
                c.reprepares += u64::from(again);
                c.sessions.insert(sid);
                if c.examples.len() < 3 {
                    c.examples.push(Example {
                        session: sid,
                        ts_us: r.ts_us,
                        time: time_text(r.ts_us),
                        sql: truncate(sql, 400),
                    });
                }
            }
            Command::Execute { stmt, .. } => {
                let found = self
                    .sessions
                    .get(&sid)
                    .and_then(|s| s.prepared.get(stmt))
                    .map(|p| (p.sql.clone(), p.class.clone(), p.facts.clone()));
                match found {
                    None => self.summary.unknown_executes += 1,
                    Some((sql, class, facts)) => {
                        if let Some(c) = self.churn.get_mut(&class) {
                            c.executes += 1;
                        }
                        let ran = Ran {
                            session: sid,
                            ts_us: r.ts_us,
                            sql: &sql,
                            execute: Some(&r.command),
                            class: OnceCell::from(class),
                        };
                        for f in facts.iter() {
                            self.statement(&ran, f);
                        }
                    }
                }
            }
            Command::Close { stmt } => {
                if let Some(p) = self
                    .sessions
                    .get_mut(&sid)
                    .and_then(|s| s.prepared.remove(stmt))
                {
                    if let Some(c) = self.churn.get_mut(&p.class) {
                        c.closes += 1;
                    }
                }
            }
            // A reset or a change of user rolls the open transaction back and forgets the
            // prepared statements; a closed session's open transaction is rolled back.
            Command::Reset | Command::ChangeUser => {
                self.sessions.insert(sid, Session::new());
            }
            Command::Quit => {
                self.sessions.remove(&sid);
            }
            _ => {}
        }
    }

    fn enabled(&self, rule: WorkloadRule) -> bool {
        self.enabled_rules.contains(&rule)
    }

    fn hit(&mut self, rule: WorkloadRule, ran: &Ran, detail: Option<String>) {
        if !self.enabled(rule) {
            return;
        }
        let class = ran.class();
        self.tallies
            .hit(rule, &class, ran.session, || ran.example(), || detail);
    }

    fn statement(&mut self, ran: &Ran, f: &StatementFacts) {
        self.summary.statements += 1;
        let sid = ran.session;
        // What the text alone shows.
        let text_rules = [
            (f.share_lock, WorkloadRule::LockInShareMode),
            (f.calc_found_rows, WorkloadRule::SqlCalcFoundRows),
            (f.set_txn_read_only, WorkloadRule::ReadOnlyTransaction),
            (
                matches!(f.kind, Some(Kind::Begin { read_only: true })),
                WorkloadRule::ReadOnlyTransaction,
            ),
            (f.call, WorkloadRule::Call),
            (f.xa, WorkloadRule::Xa),
            (f.skip_locked, WorkloadRule::SkipLocked),
            (f.spatial, WorkloadRule::Spatial),
            (f.fulltext, WorkloadRule::Fulltext),
        ];
        for (on, rule) in text_rules {
            if on {
                self.hit(rule, ran, None);
            }
        }
        if let Some(v) = &f.read_only_variable {
            self.hit(
                WorkloadRule::ReadOnlyVariable,
                ran,
                Some(format!("sets {v}")),
            );
        }
        if let Some(local) = f.load_data {
            self.hit(
                WorkloadRule::LoadData,
                ran,
                Some(if local { "LOCAL" } else { "server file" }.to_string()),
            );
        }
        if let Some(timeout) = f.get_lock {
            let d = timeout
                .filter(|t| !(1.0..=3600.0).contains(t))
                .map(|t| format!("timeout {t} s is outside 1–3600 s and is clamped on TiDB"));
            self.hit(WorkloadRule::GetLock, ran, d);
        }

        let kind = f.kind.unwrap_or(Kind::Other);
        match kind {
            Kind::Begin { .. } => {
                self.end_txn(sid, true);
                self.begin(sid, f.txn_mode);
                return;
            }
            Kind::Commit => {
                self.end_txn(sid, true);
                return;
            }
            Kind::Rollback => {
                self.end_txn(sid, false);
                return;
            }
            Kind::SetAutocommit(v) => {
                if v == Some(true) {
                    self.end_txn(sid, true);
                }
                if let Some(v) = v {
                    self.sessions
                        .entry(sid)
                        .or_insert_with(Session::new)
                        .autocommit = v;
                }
                return;
            }
            Kind::Ddl => {
                // A DDL commits the session's own transaction first, on every flavor.
                self.end_txn(sid, true);
                self.ddl_epoch += 1;
                self.ddls.push_back(Ddl {
                    epoch: self.ddl_epoch,
                    session: sid,
                    class: ran.class(),
                    example: ran.example(),
                });
                if self.ddls.len() > 16 {
                    self.ddls.pop_front();
                }
                return;
            }
            _ => {}
        }
        // Any other statement: it runs in the open transaction, opens one (autocommit off),
        // or commits alone.
        let s = self.sessions.entry(sid).or_insert_with(Session::new);
        if let Some(m) = f.txn_mode {
            s.txn_mode = Some(m);
        }
        if s.txn.is_none() && !s.autocommit {
            self.begin(sid, None);
        }
        let in_txn = self.sessions.get(&sid).is_some_and(|s| s.txn.is_some());
        if kind == Kind::Select && f.for_update && !in_txn {
            self.hit(WorkloadRule::AutocommitForUpdate, ran, None);
        }
        let optimistic = self
            .sessions
            .get(&sid)
            .and_then(|s| s.txn.as_ref())
            .is_some_and(|t| t.optimistic);
        if kind == Kind::Select && f.for_update && optimistic {
            self.hit(WorkloadRule::OptimisticForUpdate, ran, None);
        }
        if in_txn {
            let lock_rule = self.enabled(WorkloadRule::RangeLockInsert);
            let mut hits = Vec::new();
            if let Some(txn) = self.sessions.get_mut(&sid).and_then(|s| s.txn.as_mut()) {
                txn.statements += 1;
                if lock_rule {
                    if kind == Kind::Select && f.for_update && f.range && txn.range_locks.len() < 8
                    {
                        if let Some(t) = &f.table {
                            txn.range_locks.push(RangeLock {
                                table: t.clone(),
                                class: ran.class(),
                                example: ran.example(),
                                reported: false,
                            });
                        }
                    }
                    if kind == Kind::Insert {
                        if let Some(t) = &f.table {
                            for l in txn
                                .range_locks
                                .iter_mut()
                                .filter(|l| &l.table == t && !l.reported)
                            {
                                l.reported = true;
                                hits.push((l.class.clone(), l.example.clone()));
                            }
                        }
                    }
                }
            }
            for (class, example) in hits {
                let detail = format!("then `{}`", ran.class());
                self.tallies.hit(
                    WorkloadRule::RangeLockInsert,
                    &class,
                    sid,
                    || example,
                    || Some(detail),
                );
            }
        }
        // A write to one key, for the hot-row tracker (values are needed: not when redacted).
        if matches!(kind, Kind::Update | Kind::Delete)
            && !self.redacted
            && self.enabled(WorkloadRule::HotRows)
        {
            if let (Some(table), Some(key)) = (&f.table, &f.key) {
                let value = match &key.value {
                    KeyValue::Literal(v) => Some(v.clone()),
                    // A `?` of a query (not an execute) is a value the capture redacted.
                    KeyValue::Param(i) => ran.execute.and_then(|c| execute_param(c, *i)),
                };
                if let Some(v) = value {
                    let k = format!("{table}.{}={v}", key.column);
                    let class = ran.class();
                    self.hot
                        .write(table, k, &class, sid, || ran.example(), ran.ts_us);
                }
            }
        }
    }

    /// Opens a transaction; `mode` is what its `BEGIN` asked for, which takes precedence
    /// over the session's `tidb_txn_mode`, which takes precedence over the target's.
    fn begin(&mut self, sid: u64, mode: Option<TxnMode>) {
        self.summary.transactions += 1;
        let epoch = self.ddl_epoch;
        let cluster_optimistic = self.target.optimistic;
        let s = self.sessions.entry(sid).or_insert_with(Session::new);
        let optimistic = match mode.or(s.txn_mode) {
            Some(TxnMode::Optimistic) => true,
            Some(TxnMode::Pessimistic) => false,
            Some(TxnMode::Default) | None => cluster_optimistic,
        };
        s.txn = Some(Txn {
            start_epoch: epoch,
            statements: 0,
            range_locks: Vec::new(),
            optimistic,
        });
    }

    /// Ends the session's open transaction; a commit of one that a DDL of another session
    /// crossed is what fails with 8028 before the metadata lock.
    fn end_txn(&mut self, sid: u64, commit: bool) {
        let Some(txn) = self.sessions.get_mut(&sid).and_then(|s| s.txn.take()) else {
            return;
        };
        if !commit || txn.statements == 0 || txn.start_epoch >= self.ddl_epoch {
            return;
        }
        let ddl = self
            .ddls
            .iter()
            .rev()
            .find(|d| d.epoch > txn.start_epoch && d.session != sid)
            .map(|d| (d.class.clone(), d.example.clone()));
        if let Some((class, example)) = ddl {
            if self.enabled(WorkloadRule::DdlDuringTransactions) {
                self.tallies.hit(
                    WorkloadRule::DdlDuringTransactions,
                    &class,
                    sid,
                    || example,
                    || Some("counted: transactions open across the DDL that committed after it; examples: the DDL".into()),
                );
            }
        }
    }

    pub fn finish(self, out: &mut Vec<Finding>) -> WorkloadSummary {
        let mut summary = self.summary;
        summary.sessions = self.all_sessions.len() as u64;
        summary.span_seconds = match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / 1e6,
            _ => 0.0,
        };
        self.tallies.findings(self.target, out);

        churn::findings(self.churn, self.target, out);
        self.hot.findings(summary.span_seconds, self.target, out);
        summary
    }
}

#[cfg(test)]
mod tests;
