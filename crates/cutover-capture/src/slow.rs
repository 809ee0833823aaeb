//! The slow query log (with `long_query_time = 0` it holds every statement).
//!
//! An entry is a block of `# ` header lines, then optional `use db;` and `SET timestamp=N;`
//! lines, then the statement (possibly many lines, ending with `;`):
//! ```text
//! # Time: 2024-01-31T10:00:00.123456Z              (MySQL; MariaDB: `# Time: 240131 10:00:00`, only when it changed)
//! # User@Host: app[app] @ web1 [10.0.0.5]  Id:    12
//! # Thread_id: 12  Schema: shop  QC_hit: No         (MariaDB)
//! # Query_time: 0.000123  Lock_time: 0.000010 Rows_sent: 1  Rows_examined: 1
//! # Rows_affected: 0  Bytes_sent: 67                (MariaDB)
//! use shop;
//! SET timestamp=1706695200;
//! SELECT c FROM t WHERE id = 1;
//! ```
//! `# User@Host:` (or `# Time:`) starts an entry. The slow log writes a statement when it
//! ends, so the start time is `SET timestamp` (whole seconds) or, when `# Time:` has
//! microseconds, that time less `Query_time`. Sessions come from `Id:` or `Thread_id:`.
//! `# administrator command: Quit;` ends a session. The figures the log holds become the
//! record's response summary: `Rows_sent`, `Rows_affected`, `Query_time`, and an error
//! code from `Errno`/`Last_errno` when not 0.

use std::collections::HashMap;
use std::io::BufRead;

use cutover_workload::{Command, ErrorInfo, Record, Response};

use crate::{is_banner_tail, session_id, LineError, LineProblem, LogInput, LogParser};

#[derive(Default)]
struct Entry {
    line: u64,
    user: Option<String>,
    session: Option<u64>,
    schema: Option<String>,
    use_db: Option<String>,
    set_ts: Option<i64>,
    fields: HashMap<String, String>,
    sql: Vec<String>,
    /// A header line of this entry could not be read: the entry is dropped.
    broken: bool,
}

/// Reads a slow log: an iterator of records, with the lines it could not read as errors.
pub struct SlowLog<R> {
    input: LogInput<R>,
    pending: Option<Entry>,
    /// The last `# Time:` (µs, and whether it had a fraction).
    time: Option<(i64, bool)>,
    /// The database of each open session (the slow log says `use db;` only when it changed).
    dbs: HashMap<u64, Option<String>>,
}

impl<R: BufRead> SlowLog<R> {
    pub fn new(input: R) -> SlowLog<R> {
        SlowLog {
            input: LogInput::new(input),
            pending: None,
            time: None,
            dbs: HashMap::new(),
        }
    }

    fn err(&mut self, line: u64, message: LineProblem) {
        self.input.out.push_back(Err(LineError { line, message }));
    }

    /// `# administrator command: Quit;` and friends, written in place of a statement.
    fn admin(&mut self, number: u64, cmd: &str) {
        let Some(mut e) = self.pending.take() else {
            self.err(number, LineProblem::AdminCommandOutsideEntry);
            return;
        };
        if e.broken {
            return;
        }
        if cmd == "Quit" {
            e.sql.clear();
            let (session, ts) = self.place(&e);
            let db = self.dbs.remove(&session).flatten();
            self.input.out.push_back(Ok(Record {
                session,
                ts_us: ts,
                db,
                user: e.user,
                command: Command::Quit,
                response: None,
            }));
        }
    }

    /// The entry's session and start time.
    fn place(&self, e: &Entry) -> (u64, i64) {
        let session = session_id(self.input.epoch, e.session.unwrap_or(0));
        let latency_us = e
            .fields
            .get("Query_time")
            .and_then(|q| q.parse::<f64>().ok())
            .map(|q| (q * 1e6) as i64)
            .unwrap_or(0);
        let ts = match (self.time, e.set_ts) {
            (Some((t, true)), _) => t - latency_us,
            (_, Some(t)) => t,
            (Some((t, false)), None) => t,
            (None, None) => 0,
        };
        (session, ts)
    }
}

impl<R: BufRead> LogParser<R> for SlowLog<R> {
    fn input(&mut self) -> &mut LogInput<R> {
        &mut self.input
    }

    fn forget_sessions(&mut self) {
        self.dbs.clear();
    }

    fn line(&mut self, number: u64, line: &str) {
        let in_statement = self.pending.as_ref().is_some_and(|p| !p.sql.is_empty());
        if let Some(t) = line.strip_prefix("# Time:") {
            self.flush();
            let t = t.trim();
            match crate::parse_iso(t).or_else(|| crate::parse_yymmdd(t).map(|x| (x, false))) {
                Some(x) => self.time = Some(x),
                None => self.err(number, LineProblem::UnreadableTime(t.to_string())),
            }
            return;
        }
        if let Some(rest) = line.strip_prefix("# User@Host:") {
            self.flush();
            let mut e = Entry {
                line: number,
                ..Entry::default()
            };
            // `app[app] @ web1 [10.0.0.5]  Id:    12`
            let user = rest.trim_start().split('[').next().unwrap_or("").trim();
            if !user.is_empty() {
                e.user = Some(user.to_string());
            }
            if let Some((_, id)) = rest.split_once("Id:") {
                match id.split_whitespace().next().map(str::parse::<u64>) {
                    Some(Ok(id)) => e.session = Some(id),
                    _ => {
                        self.err(number, LineProblem::UnreadableUserHostId);
                        e.broken = true;
                    }
                }
            }
            self.pending = Some(e);
            return;
        }
        if !in_statement {
            if let Some(rest) = line.strip_prefix("# ") {
                if let Some(cmd) = rest.strip_prefix("administrator command:") {
                    self.admin(number, cmd.trim().trim_end_matches(';').trim());
                    return;
                }
                let Some(e) = self.pending.as_mut() else {
                    // A comment before the first entry (headers of other tools): nothing to read.
                    return;
                };
                if let Err(m) = read_fields(rest, e) {
                    e.broken = true;
                    self.err(number, m);
                }
                return;
            }
            if let Some(e) = self.pending.as_mut() {
                let t = line.trim();
                if let Some(db) = crate::general::use_statement(t) {
                    if t.ends_with(';') && e.use_db.is_none() {
                        e.use_db = Some(db);
                        return;
                    }
                }
                if let Some(v) = strip_prefix_ci(t, "SET timestamp=") {
                    if let Ok(secs) = v.trim_end_matches(';').trim().parse::<f64>() {
                        if secs.is_finite() && secs.abs() < 1e12 {
                            e.set_ts = Some((secs * 1e6) as i64);
                            return;
                        }
                    }
                }
            }
        }
        if is_banner_tail(line) && self.pending.is_none() {
            return;
        }
        match self.pending.as_mut() {
            Some(e) => e.sql.push(line.to_string()),
            None => {
                if !line.trim().is_empty() {
                    self.err(number, LineProblem::StatementOutsideEntry);
                }
            }
        }
    }

    fn flush(&mut self) {
        let Some(e) = self.pending.take() else {
            return;
        };
        if e.broken {
            return;
        }
        let mut text = e.sql.join("\n");
        let trimmed = text.trim_end().trim_end_matches(';').trim_end().len();
        text.truncate(trimmed);
        if text.trim().is_empty() {
            self.err(e.line, LineProblem::EntryWithoutStatement);
            return;
        }
        let (session, ts) = self.place(&e);
        let known = self.dbs.entry(session).or_insert(None);
        if let Some(d) = e.use_db.clone().or_else(|| e.schema.clone()) {
            *known = Some(d);
        }
        let mut db = known.clone();
        if let Some(d) = crate::general::use_statement(&text) {
            *known = Some(d.clone());
            db = Some(d);
        }
        let num = |k: &str| e.fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let latency_us = e
            .fields
            .get("Query_time")
            .and_then(|q| q.parse::<f64>().ok())
            .filter(|q| q.is_finite() && *q >= 0.0)
            .map(|q| (q * 1e6) as u64);
        let errno = num("Errno").or_else(|| num("Last_errno")).unwrap_or(0);
        let response = Response {
            rows: num("Rows_sent"),
            affected_rows: num("Rows_affected"),
            latency_us,
            error: (errno != 0).then(|| ErrorInfo {
                code: errno.min(u16::MAX as u64) as u16,
                state: None,
                message: None,
            }),
            ..Response::default()
        };
        self.input.out.push_back(Ok(Record {
            session,
            ts_us: ts,
            db,
            user: e.user,
            command: Command::Query { sql: text },
            response: Some(response),
        }));
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Key: value  Key: value` pairs of a header line into the entry.
fn read_fields(rest: &str, e: &mut Entry) -> Result<(), LineProblem> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some(key) = w.strip_suffix(':') {
            // `Schema:` may be empty (MariaDB writes `Schema:   QC_hit: No`).
            let value = words.get(i + 1).filter(|v| !v.ends_with(':')).copied();
            match key {
                "Thread_id" | "Id" => match value.map(str::parse::<u64>) {
                    Some(Ok(id)) => e.session = Some(id),
                    _ => return Err(LineProblem::UnreadableField(key.to_string())),
                },
                "Schema" => e.schema = value.filter(|v| !v.is_empty()).map(str::to_string),
                "Query_time" | "Lock_time"
                    if value.and_then(|v| v.parse::<f64>().ok()).is_none() =>
                {
                    return Err(LineProblem::UnreadableField(key.to_string()));
                }
                "Rows_sent" | "Rows_examined" | "Rows_affected" | "Errno" | "Last_errno"
                    if value.and_then(|v| v.parse::<u64>().ok()).is_none() =>
                {
                    return Err(LineProblem::UnreadableField(key.to_string()));
                }
                _ => {}
            }
            if let Some(v) = value {
                e.fields.insert(key.to_string(), v.to_string());
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    Ok(())
}

impl<R: BufRead> Iterator for SlowLog<R> {
    type Item = Result<Record, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> (Vec<Record>, Vec<LineError>) {
        crate::split_results(SlowLog::new(s.as_bytes()))
    }

    const MARIADB: &str =
        "mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 33999  Unix socket: /tmp/mdb/s.sock
Time\t\t    Id Command\tArgument
# Time: 261127 12:12:19
# User@Host: root[root] @ localhost []
# Thread_id: 3  Schema:   QC_hit: No
# Query_time: 0.000791  Lock_time: 0.000000  Rows_sent: 0  Rows_examined: 0
# Rows_affected: 1  Bytes_sent: 11
SET timestamp=1795781539;
create database d1;
# User@Host: root[root] @ localhost []
# Thread_id: 3  Schema: d1  QC_hit: No
# Query_time: 0.054995  Lock_time: 0.000114  Rows_sent: 0  Rows_examined: 0
# Rows_affected: 0  Bytes_sent: 11
use `d1`;
SET timestamp=1795781539;
create table t(id int primary key auto_increment, v varchar(20));
# Time: 261127 12:12:20
# User@Host: root[root] @ localhost []
# Thread_id: 4  Schema: d1  QC_hit: No
# Query_time: 0.000426  Lock_time: 0.000257  Rows_sent: 1  Rows_examined: 1
# Rows_affected: 0  Bytes_sent: 100
SET timestamp=1795781540;
select * from t
where id = 1;
";

    #[test]
    fn mariadb_entries() {
        let (rs, errs) = parse(MARIADB);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].db, None);
        assert_eq!(rs[0].session, 3);
        assert_eq!(rs[0].ts_us, 1_795_781_539_000_000);
        assert_eq!(rs[1].db.as_deref(), Some("d1"));
        assert_eq!(rs[2].session, 4);
        assert_eq!(rs[2].command.sql(), Some("select * from t\nwhere id = 1"));
        let resp = rs[2].response.as_ref().unwrap();
        assert_eq!(
            (resp.rows, resp.affected_rows, resp.latency_us),
            (Some(1), Some(0), Some(426))
        );
        assert_eq!(rs[0].response.as_ref().unwrap().affected_rows, Some(1));
    }

    #[test]
    fn mysql8_entries_with_quit_and_errno() {
        let log = "/usr/sbin/mysqld, Version: 8.0.36 (MySQL Community Server - GPL). started with:
Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock
Time                 Id Command    Argument
# Time: 2024-01-31T10:00:01.000500Z
# User@Host: app[app] @ web1 [10.0.0.5]  Id:    12
# Query_time: 0.000500  Lock_time: 0.000010 Rows_sent: 0  Rows_examined: 0 Thread_id: 12 Errno: 1146 Killed: 0
use shop;
SET timestamp=1706695201;
SELECT * FROM missing;
# Time: 2024-01-31T10:00:02.000000Z
# User@Host: app[app] @ web1 [10.0.0.5]  Id:    12
# Query_time: 0.000001  Lock_time: 0.000000 Rows_sent: 0  Rows_examined: 0
SET timestamp=1706695202;
# administrator command: Quit;
";
        let (rs, errs) = parse(log);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].ts_us, 1_706_695_201_000_000);
        assert_eq!(rs[0].db.as_deref(), Some("shop"));
        assert_eq!(rs[0].user.as_deref(), Some("app"));
        assert_eq!(
            rs[0]
                .response
                .as_ref()
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .code,
            1146
        );
        assert_eq!(rs[1].command, Command::Quit);
        assert_eq!(rs[1].session, 12);
    }

    #[test]
    fn garbled_entries_are_line_numbered() {
        let log = "select before any entry;
# User@Host: a[a] @ h []  Id: 1
# Query_time: zero  Lock_time: 0 Rows_sent: 0  Rows_examined: 0
select 1;
# Time: yesterday
# User@Host: a[a] @ h []  Id: 1
# Query_time: 0.1  Lock_time: 0 Rows_sent: 0  Rows_examined: 0
select 2;
# User@Host: a[a] @ h []  Id: 1
";
        let (rs, errs) = parse(log);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].command.sql(), Some("select 2"));
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 5, 9], "{errs:?}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "(\\PC|\t|\n){0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_log_like_lines(lines in proptest::collection::vec(
            prop_oneof![
                Just("# Time: 261127 12:12:19".to_string()),
                Just("# User@Host: root[root] @ localhost []  Id: 4".to_string()),
                Just("# Thread_id: 3  Schema: d1  QC_hit: No".to_string()),
                Just("# Query_time: 0.000426  Lock_time: 0.000257  Rows_sent: 1  Rows_examined: 1".to_string()),
                Just("SET timestamp=1795781540;".to_string()),
                Just("use d1;".to_string()),
                Just("# administrator command: Quit;".to_string()),
                "select [0-9a-z ]{0,10};",
                "# [A-Za-z_]{1,10}: [0-9.a-z]{0,5}",
                "\\PC{0,30}",
            ], 0..40)) {
            let text = lines.join("\n");
            let (rs, errs) = parse(&text);
            for e in errs {
                prop_assert!(e.line >= 1 && e.line as usize <= lines.len().max(1));
            }
            for r in rs {
                if let Some(sql) = r.command.sql() { prop_assert!(!sql.trim().is_empty()); }
            }
        }
    }
}
