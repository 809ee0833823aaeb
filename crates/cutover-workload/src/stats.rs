//! What a workload holds (`cutover workload stats`) and cuts of it (`cutover workload filter`).
//! Both stream: memory grows with the number of sessions and statement classes, never with
//! the number of records.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::{fingerprint, Command, Record};

/// Totals of a workload.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub records: u64,
    pub sessions: u64,
    /// Records by command name.
    pub commands: BTreeMap<String, u64>,
    pub first_ts_us: Option<i64>,
    pub last_ts_us: Option<i64>,
    /// Statements by default database (`""` when none).
    pub databases: BTreeMap<String, u64>,
    /// Records holding a response summary.
    pub with_response: u64,
    /// The most frequent statement classes, most frequent first.
    pub top_classes: Vec<(String, u64)>,
    /// Distinct statement classes.
    pub classes: u64,
    #[serde(skip)]
    seen: HashSet<u64>,
    #[serde(skip)]
    by_class: HashMap<String, u64>,
}

impl Stats {
    pub fn add(&mut self, r: &Record) {
        self.records += 1;
        if self.seen.insert(r.session) {
            self.sessions += 1;
        }
        *self
            .commands
            .entry(r.command.name().to_string())
            .or_default() += 1;
        self.first_ts_us = Some(self.first_ts_us.map_or(r.ts_us, |t| t.min(r.ts_us)));
        self.last_ts_us = Some(self.last_ts_us.map_or(r.ts_us, |t| t.max(r.ts_us)));
        if r.response.is_some() {
            self.with_response += 1;
        }
        if let Some(sql) = r.command.sql() {
            *self
                .databases
                .entry(r.db.clone().unwrap_or_default())
                .or_default() += 1;
            *self.by_class.entry(fingerprint(sql)).or_default() += 1;
        }
    }

    /// Completes the totals, keeping the `top` most frequent classes.
    pub fn finish(mut self, top: usize) -> Stats {
        self.classes = self.by_class.len() as u64;
        let mut v: Vec<(String, u64)> = std::mem::take(&mut self.by_class).into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(top);
        self.top_classes = v;
        self
    }

    /// Seconds between the first and the last record.
    pub fn span_s(&self) -> f64 {
        match (self.first_ts_us, self.last_ts_us) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e6,
            _ => 0.0,
        }
    }
}

/// Which records a cut keeps. Empty lists keep everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Keep records at or after this time (µs since the epoch).
    pub from_us: Option<i64>,
    /// Keep records before this time.
    pub until_us: Option<i64>,
    pub sessions: Vec<u64>,
    /// Statements whose default database is one of these (session commands without a
    /// statement, such as connect and quit, are kept unless they name another database).
    pub databases: Vec<String>,
    /// Statements of these classes (fingerprints, as `stats` prints them).
    pub fingerprints: Vec<String>,
}

impl Filter {
    pub fn keeps(&self, r: &Record) -> bool {
        if self.from_us.is_some_and(|t| r.ts_us < t) || self.until_us.is_some_and(|t| r.ts_us >= t)
        {
            return false;
        }
        if !self.sessions.is_empty() && !self.sessions.contains(&r.session) {
            return false;
        }
        let statement = match &r.command {
            Command::Query { sql } | Command::Prepare { sql, .. } => Some(sql),
            _ => None,
        };
        let Some(sql) = statement else {
            // Session commands stay unless they name another database.
            return self.databases.is_empty()
                || r.db
                    .as_ref()
                    .is_none_or(|d| self.databases.iter().any(|x| x == d));
        };
        if !self.databases.is_empty()
            && !r
                .db
                .as_ref()
                .is_some_and(|d| self.databases.iter().any(|x| x == d))
        {
            return false;
        }
        if !self.fingerprints.is_empty() {
            let f = fingerprint(sql);
            if !self.fingerprints.contains(&f) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(session: u64, ts: i64, db: &str, sql: &str) -> Record {
        Record {
            session,
            ts_us: ts,
            db: Some(db.into()),
            user: None,
            command: Command::Query { sql: sql.into() },
            response: None,
        }
    }

    #[test]
    fn stats_count_sessions_classes_and_span() {
        let mut s = Stats::default();
        for r in [
            q(1, 1_000_000, "a", "select 1"),
            q(1, 2_000_000, "a", "select 2"),
            q(2, 3_500_000, "b", "update t set x = 1"),
        ] {
            s.add(&r);
        }
        let s = s.finish(10);
        assert_eq!((s.records, s.sessions, s.classes), (3, 2, 2));
        assert_eq!(s.top_classes[0], ("select ?".to_string(), 2));
        assert_eq!(s.span_s(), 2.5);
        assert_eq!(s.databases["a"], 2);
    }

    #[test]
    fn filter_by_time_session_db_and_class() {
        let rs = [
            q(1, 10, "a", "select 1"),
            q(1, 20, "b", "select 2"),
            q(2, 30, "a", "delete from t"),
        ];
        let keep = |f: &Filter| rs.iter().filter(|r| f.keeps(r)).count();
        assert_eq!(
            keep(&Filter {
                from_us: Some(15),
                ..Filter::default()
            }),
            2
        );
        assert_eq!(
            keep(&Filter {
                sessions: vec![2],
                ..Filter::default()
            }),
            1
        );
        assert_eq!(
            keep(&Filter {
                databases: vec!["a".into()],
                ..Filter::default()
            }),
            2
        );
        assert_eq!(
            keep(&Filter {
                fingerprints: vec!["select ?".into()],
                ..Filter::default()
            }),
            2
        );
    }
}
