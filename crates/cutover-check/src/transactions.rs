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

use crate::finding::{Evidence, Example, Finding, WorkloadSummary};
use crate::profile::Profile;
use crate::statement::{analyse, KeyValue, Kind, StatementFacts, TxnMode};
use crate::workload::{execute_param, execute_params_text};
use crate::workload_rules::{finding, object, plural, time_text, Tallies, WorkloadRule};

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

#[derive(Default)]
struct Churn {
    prepares: u64,
    reprepares: u64,
    closes: u64,
    executes: u64,
    sessions: HashSet<u64>,
    examples: Vec<Example>,
}

struct HotKey {
    table: String,
    key: String,
    class: Rc<str>,
    conflicts: u64,
    sessions: HashSet<u64>,
    examples: Vec<Example>,
}

/// The keys written recently, to find two sessions writing one key within the window.
struct HotRows {
    window: i64,
    /// key → (session, time) of its last write.
    last: HashMap<String, (u64, i64)>,
    hot: HashMap<String, HotKey>,
}

/// Recent keys kept before the ones older than the window are dropped.
const RECENT_KEYS: usize = 200_000;
/// Hot keys kept; beyond it only keys already known count.
const HOT_KEYS: usize = 10_000;
/// A class prepared again in one session this often, at this many prepares per execute,
/// is churn.
const CHURN_MIN_REPREPARES: u64 = 5;
const CHURN_MIN_RATIO: f64 = 0.5;

impl HotRows {
    fn write(
        &mut self,
        table: &str,
        key: String,
        class: &Rc<str>,
        session: u64,
        ex: impl FnOnce() -> Example,
        ts: i64,
    ) {
        if let Some(&(s, t)) = self.last.get(&key) {
            if s != session && (ts - t).abs() < self.window {
                let room = self.hot.len() < HOT_KEYS;
                if let Some(h) = match self.hot.get_mut(&key) {
                    Some(h) => Some(h),
                    None if room => Some(self.hot.entry(key.clone()).or_insert(HotKey {
                        table: table.to_string(),
                        key: key.clone(),
                        class: class.clone(),
                        conflicts: 0,
                        sessions: HashSet::new(),
                        examples: Vec::new(),
                    })),
                    None => None,
                } {
                    h.conflicts += 1;
                    h.sessions.insert(s);
                    h.sessions.insert(session);
                    if h.examples.len() < 3 {
                        h.examples.push(ex());
                    }
                }
            }
        }
        if self.last.len() >= RECENT_KEYS && !self.last.contains_key(&key) {
            let w = self.window;
            self.last.retain(|_, (_, t)| (ts - *t).abs() < w);
        }
        self.last.insert(key, (session, ts));
    }
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

/// One statement as it ran.
struct Ran<'a> {
    session: u64,
    ts_us: i64,
    sql: &'a str,
    /// The execute's command, for its parameters.
    execute: Option<&'a Command>,
    class: OnceCell<Rc<str>>,
}

impl Ran<'_> {
    fn class(&self) -> Rc<str> {
        self.class
            .get_or_init(|| Rc::from(fingerprint(self.sql)))
            .clone()
    }
    fn example(&self) -> Example {
        let mut sql = truncate(self.sql, 400);
        if let Some(c) = self.execute {
            sql.push_str(" -- params: ");
            sql.push_str(&truncate(&execute_params_text(c), 200));
        }
        Example {
            session: self.session,
            ts_us: self.ts_us,
            time: time_text(self.ts_us),
            sql,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
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
            hot: HotRows {
                window: opts.hot_window_us.max(1),
                last: HashMap::new(),
                hot: HashMap::new(),
            },
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

        if let Some(text) = WorkloadRule::PreparedChurn.text(self.target) {
            let mut churn: Vec<_> = self
                .churn
                .into_iter()
                .filter(|(_, c)| {
                    c.reprepares >= CHURN_MIN_REPREPARES
                        && c.executes > 0
                        && c.prepares as f64 / c.executes as f64 >= CHURN_MIN_RATIO
                })
                .collect();
            churn.sort_by(|a, b| b.1.prepares.cmp(&a.1.prepares).then(a.0.cmp(&b.0)));
            for (class, c) in churn.into_iter().take(20) {
                let ratio = c.prepares as f64 / c.executes as f64;
                let message = format!(
                    "{} prepares and {} closes for {} executes ({ratio:.2} prepares per execute) in {} session{}: {}",
                    c.prepares,
                    c.closes,
                    c.executes,
                    c.sessions.len(),
                    plural(c.sessions.len() as u64),
                    text.meaning
                );
                out.push(finding(
                    WorkloadRule::PreparedChurn,
                    text.clone(),
                    Some(object(&class)),
                    message,
                    Evidence {
                        class: class.to_string(),
                        statements: c.executes,
                        sessions: c.sessions.len() as u64,
                        examples: c.examples,
                    },
                ));
            }
        }

        if let Some(text) = WorkloadRule::HotRows.text(self.target) {
            let minutes = (summary.span_seconds.max(self.hot.window as f64 / 1e6)) / 60.0;
            let mut by_table: HashMap<String, Vec<HotKey>> = HashMap::new();
            for (_, h) in self.hot.hot {
                by_table.entry(h.table.clone()).or_default().push(h);
            }
            let mut tables: Vec<(String, Vec<HotKey>, u64)> = by_table
                .into_iter()
                .map(|(t, mut keys)| {
                    keys.sort_by(|a, b| b.conflicts.cmp(&a.conflicts).then(a.key.cmp(&b.key)));
                    let total = keys.iter().map(|k| k.conflicts).sum();
                    (t, keys, total)
                })
                .collect();
            tables.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            for (table, keys, total) in tables {
                let sessions: HashSet<u64> = keys
                    .iter()
                    .flat_map(|k| k.sessions.iter().copied())
                    .collect();
                let top: Vec<String> = keys
                    .iter()
                    .take(5)
                    .map(|k| {
                        format!(
                            "{} ({} conflicts, {:.1} a minute)",
                            k.key.split_once('.').map_or(k.key.as_str(), |(_, r)| r),
                            k.conflicts,
                            k.conflicts as f64 / minutes
                        )
                    })
                    .collect();
                let message = format!(
                    "{total} conflicting write{} ({:.1} a minute) to {} key{} of {table} by {} sessions, within {} ms of another session's write; hottest: {}: {}",
                    plural(total),
                    total as f64 / minutes,
                    keys.len(),
                    plural(keys.len() as u64),
                    sessions.len(),
                    self.hot.window / 1000,
                    top.join(", "),
                    text.meaning
                );
                let first = &keys[0];
                out.push(finding(
                    WorkloadRule::HotRows,
                    text.clone(),
                    Some(table.clone()),
                    message,
                    Evidence {
                        class: first.class.to_string(),
                        statements: total,
                        sessions: sessions.len() as u64,
                        examples: first.examples.clone(),
                    },
                ));
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::TargetFlavor;
    use crate::Severity;

    struct W {
        records: Vec<Record>,
        ts: i64,
    }

    impl W {
        fn new() -> W {
            W {
                records: Vec::new(),
                ts: 1_700_000_000_000_000,
            }
        }
        fn push(&mut self, session: u64, command: Command) -> &mut W {
            self.ts += 1_000;
            self.records.push(Record {
                session,
                ts_us: self.ts,
                db: Some("shop".into()),
                user: None,
                command,
                response: None,
            });
            self
        }
        fn q(&mut self, session: u64, sql: &str) -> &mut W {
            self.push(session, Command::Query { sql: sql.into() })
        }
        fn run(&self, target: &Profile) -> (Vec<Finding>, WorkloadSummary) {
            let mut a = Analyzer::new(target, false, &WorkloadOptions::default());
            for r in &self.records {
                a.record(r);
            }
            let mut out = Vec::new();
            let s = a.finish(&mut out);
            (out, s)
        }
    }

    fn tidb() -> Profile {
        Profile::assumed(TargetFlavor::TiDb)
    }

    fn rules(f: &[Finding]) -> Vec<&str> {
        let mut r: Vec<&str> = f.iter().map(|f| f.rule).collect();
        r.sort();
        r
    }

    #[test]
    fn a_range_lock_then_an_insert_in_one_transaction() {
        let mut w = W::new();
        w.q(1, "BEGIN")
            .q(
                1,
                "SELECT * FROM slots WHERE day BETWEEN 1 AND 7 FOR UPDATE",
            )
            .q(1, "INSERT INTO slots (day) VALUES (3)")
            .q(1, "COMMIT")
            // Not in a transaction: the insert is another statement's business.
            .q(2, "SELECT * FROM slots WHERE day > 3 FOR UPDATE")
            .q(2, "INSERT INTO slots (day) VALUES (4)")
            // A key lock then an insert: no gap involved.
            .q(3, "BEGIN")
            .q(3, "SELECT * FROM slots WHERE id = 5 FOR UPDATE")
            .q(3, "INSERT INTO slots (day) VALUES (5)")
            .q(3, "COMMIT");
        let (f, s) = w.run(&tidb());
        assert_eq!(
            rules(&f),
            vec![
                "workload.autocommit_for_update",
                "workload.range_lock_insert"
            ]
        );
        let r = f
            .iter()
            .find(|f| f.rule == "workload.range_lock_insert")
            .unwrap();
        assert_eq!(r.severity, Severity::Error);
        let e = r.evidence.as_ref().unwrap();
        assert_eq!((e.statements, e.sessions), (1, 1));
        assert_eq!(e.examples[0].session, 1);
        assert!(e.examples[0].sql.contains("BETWEEN"), "{e:?}");
        assert_eq!(
            e.class,
            "select * from slots where day between ? and ? for update"
        );
        assert_eq!(s.transactions, 2);
        // On MariaDB the gap lock holds: nothing to say.
        let (f, _) = w.run(&Profile::assumed(TargetFlavor::MariaDb));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn autocommit_off_opens_a_transaction_and_ddl_commits_it() {
        let mut w = W::new();
        w.q(1, "SET autocommit = 0")
            .q(1, "SELECT * FROM t WHERE a < 3 FOR UPDATE")
            .q(1, "INSERT INTO t VALUES (1)")
            .q(1, "COMMIT")
            // After the implicit commit of a DDL, the insert is in a new transaction.
            .q(1, "SELECT * FROM t WHERE a < 3 FOR UPDATE")
            .q(1, "ALTER TABLE t ADD COLUMN b INT")
            .q(1, "INSERT INTO t VALUES (2)");
        let (f, _) = w.run(&tidb());
        assert_eq!(rules(&f), vec!["workload.range_lock_insert"]);
        assert_eq!(f[0].evidence.as_ref().unwrap().statements, 1);
    }

    #[test]
    fn a_locking_read_in_an_optimistic_transaction_cannot_be_retried() {
        let mut w = W::new();
        // Optimistic by its BEGIN, and by the session's mode.
        w.q(1, "BEGIN OPTIMISTIC")
            .q(1, "SELECT bal FROM acct WHERE id = 1 FOR UPDATE")
            .q(1, "UPDATE acct SET bal = bal - 1 WHERE id = 1")
            .q(1, "COMMIT")
            .q(2, "SET SESSION tidb_txn_mode = 'optimistic'")
            .q(2, "BEGIN")
            .q(2, "SELECT bal FROM acct WHERE id = 2 FOR UPDATE")
            .q(2, "COMMIT")
            // BEGIN PESSIMISTIC wins over the session's mode; plain reads take no lock.
            .q(2, "BEGIN PESSIMISTIC")
            .q(2, "SELECT bal FROM acct WHERE id = 3 FOR UPDATE")
            .q(2, "COMMIT")
            .q(2, "BEGIN")
            .q(2, "SELECT bal FROM acct WHERE id = 4")
            .q(2, "COMMIT")
            // The session back on the cluster's mode (pessimistic by default).
            .q(2, "SET tidb_txn_mode = ''")
            .q(2, "BEGIN")
            .q(2, "SELECT bal FROM acct WHERE id = 5 FOR UPDATE")
            .q(2, "COMMIT")
            .q(3, "BEGIN")
            .q(3, "SELECT bal FROM acct WHERE id = 6 FOR UPDATE")
            .q(3, "COMMIT");
        let (f, _) = w.run(&tidb());
        assert_eq!(rules(&f), vec!["workload.optimistic_for_update"]);
        let e = f[0].evidence.as_ref().unwrap();
        assert_eq!((e.statements, e.sessions), (2, 2));
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("8002"), "{}", f[0].message);
        // A cluster whose tidb_txn_mode is optimistic: every plain BEGIN is optimistic
        // (sessions 2's reset one and 3's), but not BEGIN PESSIMISTIC.
        let mut optimistic = tidb();
        optimistic.optimistic = true;
        let (f, _) = w.run(&optimistic);
        let e = f[0].evidence.as_ref().unwrap();
        assert_eq!((e.statements, e.sessions), (4, 3));
        // MariaDB and MySQL have no optimistic transactions.
        let (f, _) = w.run(&Profile::assumed(TargetFlavor::MySql));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn a_ddl_across_other_sessions_transactions() {
        let mut w = W::new();
        w.q(1, "BEGIN")
            .q(1, "UPDATE t SET v = 1 WHERE id = 1")
            .q(2, "BEGIN")
            .q(2, "UPDATE t SET v = 2 WHERE id = 2")
            .q(3, "CREATE TABLE other (a INT)")
            .q(1, "COMMIT")
            .q(2, "ROLLBACK")
            .q(4, "BEGIN")
            .q(4, "UPDATE t SET v = 3 WHERE id = 3")
            .q(4, "COMMIT");
        let mut old = tidb();
        old.version = Some((6, 1, 0));
        let (f, _) = w.run(&old);
        assert_eq!(rules(&f), vec!["workload.ddl_during_transactions"]);
        let e = f[0].evidence.as_ref().unwrap();
        // Session 1 committed across the DDL; 2 rolled back; 4 began after it.
        assert_eq!((e.statements, e.sessions), (1, 1));
        assert_eq!(e.class, "create table other (a int)");
        assert_eq!(f[0].severity, Severity::Error);
        let (f, _) = w.run(&tidb());
        assert_eq!(f[0].severity, Severity::Info);
    }

    #[test]
    fn statements_tidb_refuses_or_runs_differently() {
        let mut w = W::new();
        for s in [
            "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE",
            "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10",
            "START TRANSACTION READ ONLY",
            "COMMIT",
            "SET SESSION TRANSACTION READ ONLY",
            "SET SESSION sql_auto_is_null = 1",
            "CALL refresh_totals(1)",
            "XA START 'x1'",
            "SELECT * FROM jobs WHERE done = 0 LIMIT 1 FOR UPDATE SKIP LOCKED",
            "SELECT ST_Distance(POINT(0, 0), POINT(1, 1))",
            "SELECT * FROM docs WHERE MATCH (body) AGAINST ('tidb')",
            "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t",
            "SELECT GET_LOCK('job', 0)",
        ] {
            w.q(7, s);
        }
        let (f, _) = w.run(&tidb());
        let got = rules(&f);
        for r in [
            "workload.lock_in_share_mode",
            "workload.sql_calc_found_rows",
            "workload.read_only_transaction",
            "workload.read_only_variable",
            "workload.call",
            "workload.xa",
            "workload.skip_locked",
            "workload.spatial",
            "workload.fulltext",
            "workload.load_data",
            "workload.get_lock",
        ] {
            assert!(got.contains(&r), "{r} missing from {got:?}");
        }
        let ro = f
            .iter()
            .filter(|f| f.rule == "workload.read_only_transaction")
            .count();
        assert_eq!(ro, 2, "two classes: START … READ ONLY and SET TRANSACTION");
        let gl = f.iter().find(|f| f.rule == "workload.get_lock").unwrap();
        assert!(gl.message.contains("timeout 0 s"), "{}", gl.message);
        for x in &f {
            assert!(x.fix.is_some() && x.evidence.is_some(), "{x:?}");
        }
        // A MySQL 8.0 target has all of it but SQL_CALC_FOUND_ROWS's deprecation.
        let (f, _) = w.run(&Profile::assumed(TargetFlavor::MySql));
        assert_eq!(rules(&f), vec!["workload.sql_calc_found_rows"]);
        assert_eq!(f[0].severity, Severity::Info);
    }

    #[test]
    fn prepare_close_per_execute_is_churn_and_a_cached_statement_is_not() {
        let mut w = W::new();
        for i in 0..10u32 {
            w.push(
                1,
                Command::Prepare {
                    stmt: i + 1,
                    sql: "SELECT v FROM t WHERE id = ?".into(),
                },
            )
            .push(
                1,
                Command::Execute {
                    stmt: i + 1,
                    params: vec![cutover_workload::Param::from_plain(&serde_json::json!(i))],
                },
            )
            .push(1, Command::Close { stmt: i + 1 });
        }
        w.push(
            2,
            Command::Prepare {
                stmt: 1,
                sql: "SELECT w FROM t WHERE id = ?".into(),
            },
        );
        for i in 0..50 {
            w.push(
                2,
                Command::Execute {
                    stmt: 1,
                    params: vec![cutover_workload::Param::from_plain(&serde_json::json!(i))],
                },
            );
        }
        // An execute whose prepare came before the recording.
        w.push(
            3,
            Command::Execute {
                stmt: 9,
                params: vec![],
            },
        );
        let (f, s) = w.run(&tidb());
        assert_eq!(rules(&f), vec!["workload.prepared_churn"]);
        assert!(
            f[0].message
                .starts_with("10 prepares and 10 closes for 10 executes"),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].object.as_deref(), Some("select v from t where id = ?"));
        assert_eq!(s.unknown_executes, 1);
        assert_eq!(s.statements, 60);
    }

    #[test]
    fn hot_rows_are_keys_two_sessions_write_within_the_window() {
        let mut w = W::new();
        w.push(
            1,
            Command::Prepare {
                stmt: 1,
                sql: "UPDATE stock SET n = n - 1 WHERE sku = ?".into(),
            },
        );
        w.push(
            2,
            Command::Prepare {
                stmt: 1,
                sql: "UPDATE stock SET n = n - 1 WHERE sku = ?".into(),
            },
        );
        for _ in 0..4 {
            w.push(
                1,
                Command::Execute {
                    stmt: 1,
                    params: vec![cutover_workload::Param::from_plain(&serde_json::json!(
                        "A-1"
                    ))],
                },
            );
            w.push(
                2,
                Command::Execute {
                    stmt: 1,
                    params: vec![cutover_workload::Param::from_plain(&serde_json::json!(
                        "A-1"
                    ))],
                },
            );
        }
        // Text keys too; one session alone is no conflict; another key is no conflict.
        w.q(3, "UPDATE stock SET n = 0 WHERE sku = 'B-2'")
            .q(3, "UPDATE stock SET n = 0 WHERE sku = 'B-2'")
            .q(4, "DELETE FROM stock WHERE sku = 'C-3'")
            .q(5, "UPDATE stock SET n = 0 WHERE sku = 'B-2'");
        // Far apart in time: no conflict.
        w.ts += 5_000_000;
        w.q(6, "UPDATE stock SET n = 0 WHERE sku = 'C-3'");
        let (f, _) = w.run(&tidb());
        assert_eq!(rules(&f), vec!["workload.hot_rows"]);
        let e = f[0].evidence.as_ref().unwrap();
        // 7 alternations; B-2: 1.
        assert_eq!(e.statements, 8);
        assert_eq!(e.sessions, 4);
        assert_eq!(f[0].object.as_deref(), Some("stock"));
        assert!(
            f[0].message.contains("sku=A-1 (7 conflicts"),
            "{}",
            f[0].message
        );
        // Redacted: no values, no hot rows.
        let target = tidb();
        let mut a = Analyzer::new(&target, true, &WorkloadOptions::default());
        for r in &w.records {
            a.record(r);
        }
        let mut out = Vec::new();
        a.finish(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_redacted_workload_yields_every_rule_that_needs_no_value() {
        let statements = [
            "BEGIN",
            "SELECT * FROM slots WHERE day BETWEEN 1 AND 7 FOR UPDATE",
            "INSERT INTO slots (day) VALUES (3)",
            "COMMIT",
            "SELECT * FROM t WHERE id = 1 FOR UPDATE",
            "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE",
            "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10",
            "START TRANSACTION READ ONLY",
            "COMMIT",
            "SET SESSION sql_auto_is_null = 1",
            "CALL p(1)",
            "XA START 'x'",
            "SELECT * FROM jobs LIMIT 1 FOR UPDATE SKIP LOCKED",
            "SELECT ST_X(POINT(1, 2))",
            "SELECT * FROM d WHERE MATCH (b) AGAINST ('x')",
            "LOAD DATA LOCAL INFILE 'x' INTO TABLE t",
            "SELECT GET_LOCK('a', 10)",
        ];
        let mut plain = W::new();
        let mut redacted = W::new();
        for s in statements {
            plain.q(1, s);
            redacted.q(1, &cutover_workload::fingerprint::redact(s));
        }
        let (a, _) = plain.run(&tidb());
        let (b, _) = redacted.run(&tidb());
        assert_eq!(rules(&a), rules(&b));
        assert_eq!(rules(&a).len(), 14, "{:?}", rules(&a));
    }

    #[test]
    fn an_ordinary_workload_has_no_finding() {
        let mut w = W::new();
        for s in 1..=3u64 {
            w.q(s, "SET NAMES utf8mb4")
                .q(s, "BEGIN")
                .q(s, &format!("SELECT * FROM acct WHERE id = {s} FOR UPDATE"))
                .q(s, &format!("UPDATE acct SET bal = bal - 1 WHERE id = {s}"))
                .q(s, "INSERT INTO ledger (acct, amount) VALUES (1, -1)")
                .q(s, "COMMIT")
                .q(s, "SELECT COUNT(*) FROM ledger WHERE acct > 0")
                .q(s, "SET SESSION TRANSACTION READ WRITE")
                .q(s, "SET GLOBAL read_only = OFF")
                .push(s, Command::Quit);
        }
        let (f, s) = w.run(&tidb());
        assert!(f.is_empty(), "{f:#?}");
        assert_eq!(s.sessions, 3);
        assert_eq!(s.transactions, 3);
    }
}
