//! The general query log.
//!
//! An entry starts with a header line, `TIME\tID COMMAND\tARGUMENT`:
//! - MySQL 5.7/8.0 and Aurora: `2024-01-31T10:00:00.123456Z\t   12 Query\tSELECT 1`;
//! - MariaDB (and MySQL 5.6): `240131 10:00:00\t   12 Query\tSELECT 1`, where the time is
//!   written only when it changed since the previous entry (else the line starts `\t\t`).
//!
//! Every line that is not a header continues the previous entry's argument (a multi-line
//! statement). A line is a header only when its time parses and its command is one the
//! servers write, so a statement line that happens to hold a tab stays part of the statement.
//!
//! Prepared statements: the general log shows `Prepare` with `?` and each `Execute` with the
//! parameters already in the text, but no statement ids; each `Execute` is therefore
//! captured as the query it ran, and `Prepare`/`Close stmt` are not replayed.

use std::collections::HashMap;
use std::io::BufRead;

use cutover_workload::{Command, Record};

use crate::{is_banner_tail, session_id, LineError, LineProblem, LogInput, LogParser};

/// Commands whose entries are not replayed (they change nothing a replay compares).
const IGNORED: [&str; 22] = [
    "Prepare",
    "Close stmt",
    "Reset stmt",
    "Long Data",
    "Field List",
    "Statistics",
    "Ping",
    "Refresh",
    "Shutdown",
    "Processlist",
    "Kill",
    "Debug",
    "Set option",
    "Fetch",
    "Binlog Dump",
    "Binlog Dump GTID",
    "Register Slave",
    "Daemon",
    "Sleep",
    "Table Dump",
    "Delayed insert",
    "Error",
];

/// Commands that become records.
const REPLAYED: [&str; 7] = [
    "Query",
    "Execute",
    "Connect",
    "Init DB",
    "Quit",
    "Change user",
    "Reset connection",
];

struct Entry {
    line: u64,
    ts_us: i64,
    session: u64,
    command: String,
    argument: String,
}

#[derive(Default, Clone)]
struct Session {
    user: Option<String>,
    db: Option<String>,
}

/// Reads a general log: an iterator of records, with the lines it could not read as errors.
pub struct GeneralLog<R> {
    input: LogInput<R>,
    pending: Option<Entry>,
    sessions: HashMap<u64, Session>,
    /// The time of the last header that had one (MariaDB omits repeats).
    last_ts: Option<i64>,
    /// Entries read but not replayed (`Prepare`, `Ping`, …).
    pub ignored: u64,
}

impl<R: BufRead> GeneralLog<R> {
    pub fn new(input: R) -> GeneralLog<R> {
        GeneralLog {
            input: LogInput::new(input),
            pending: None,
            sessions: HashMap::new(),
            last_ts: None,
            ignored: 0,
        }
    }

    /// `Ok(Some(..))` for a header line, `Ok(None)` for a continuation, `Err` for a line that
    /// has a header's time and id but a command no server writes.
    fn header(&mut self, line: &str) -> Result<Option<(i64, u64, String, String)>, LineProblem> {
        let Some((time, rest)) = line.split_once('\t') else {
            return Ok(None);
        };
        let ts = if time.is_empty() {
            // MariaDB: `\t\t   12 Query\t…`, the time as in the previous header.
            match rest.strip_prefix('\t') {
                Some(_) if self.last_ts.is_none() => None,
                Some(_) => self.last_ts,
                None => return Ok(None),
            }
        } else if let Some((t, _)) = crate::parse_iso(time) {
            Some(t)
        } else {
            match crate::parse_yymmdd(time) {
                Some(t) => Some(t),
                None => return Ok(None),
            }
        };
        let rest = if time.is_empty() {
            rest.strip_prefix('\t').unwrap_or(rest)
        } else {
            rest
        };
        // `   12 Query\tSELECT 1`
        let trimmed = rest.trim_start();
        let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 19 || trimmed.as_bytes().get(digits) != Some(&b' ') {
            return Ok(None);
        }
        let Ok(id) = trimmed[..digits].parse::<u64>() else {
            return Ok(None);
        };
        let after = &trimmed[digits + 1..];
        let (command, argument) = after.split_once('\t').unwrap_or((after, ""));
        let command = command.trim();
        if !REPLAYED.contains(&command) && !IGNORED.contains(&command) {
            if time.is_empty() || command.is_empty() {
                return Ok(None);
            }
            return Err(LineProblem::UnknownCommand(command.to_string()));
        }
        let Some(ts) = ts else {
            return Err(LineProblem::NoTimeYet);
        };
        if !time.is_empty() {
            self.last_ts = Some(ts);
        }
        Ok(Some((ts, id, command.to_string(), argument.to_string())))
    }
}

impl<R: BufRead> LogParser<R> for GeneralLog<R> {
    fn input(&mut self) -> &mut LogInput<R> {
        &mut self.input
    }

    fn forget_sessions(&mut self) {
        self.sessions.clear();
    }

    fn line(&mut self, number: u64, line: &str) {
        match self.header(line) {
            Ok(Some((ts, id, command, argument))) => {
                self.flush();
                self.pending = Some(Entry {
                    line: number,
                    ts_us: ts,
                    session: session_id(self.input.epoch, id),
                    command,
                    argument,
                });
            }
            Ok(None) => {
                if let Some(p) = self.pending.as_mut() {
                    p.argument.push('\n');
                    p.argument.push_str(line);
                } else if !is_banner_tail(line) && !line.trim().is_empty() {
                    self.input.out.push_back(Err(LineError {
                        line: number,
                        message: LineProblem::NotAGeneralLogEntry,
                    }));
                }
            }
            Err(message) => {
                self.flush();
                self.input.out.push_back(Err(LineError {
                    line: number,
                    message,
                }));
            }
        }
    }

    /// Turns the pending entry into a record.
    fn flush(&mut self) {
        let Some(e) = self.pending.take() else {
            return;
        };
        let session = self.sessions.entry(e.session).or_default();
        let mut user = session.user.clone();
        let mut db = session.db.clone();
        let command = match e.command.as_str() {
            "Query" | "Execute" => {
                let sql = e.argument.trim_end().to_string();
                if sql.is_empty() {
                    self.input.out.push_back(Err(LineError {
                        line: e.line,
                        message: LineProblem::CommandWithoutStatement(e.command.clone()),
                    }));
                    return;
                }
                Command::Query { sql }
            }
            "Connect" | "Change user" => {
                // `app@10.0.0.5 on shop using TCP/IP` (MySQL), `app@localhost as anonymous on shop` (MariaDB).
                let arg = e.argument.trim();
                if arg.starts_with("Access denied") {
                    self.ignored += 1;
                    return;
                }
                let (u, d) = parse_connect(arg);
                user = u;
                db = d;
                session.user = user.clone();
                session.db = db.clone();
                if e.command == "Connect" {
                    Command::Connect
                } else {
                    Command::ChangeUser
                }
            }
            "Init DB" => {
                let name = e.argument.trim().to_string();
                if name.is_empty() {
                    self.input.out.push_back(Err(LineError {
                        line: e.line,
                        message: LineProblem::InitDbWithoutDatabase,
                    }));
                    return;
                }
                session.db = Some(name.clone());
                db = Some(name.clone());
                Command::InitDb { db: name }
            }
            "Quit" => {
                self.sessions.remove(&e.session);
                Command::Quit
            }
            "Reset connection" => Command::Reset,
            _ => {
                self.ignored += 1;
                return;
            }
        };
        // A statement's `USE db` changes the database of the statements after it.
        if let Command::Query { sql } = &command {
            if let Some(name) = use_statement(sql) {
                if let Some(s) = self.sessions.get_mut(&e.session) {
                    s.db = Some(name);
                }
            }
        }
        self.input.out.push_back(Ok(Record {
            session: e.session,
            ts_us: e.ts_us,
            db,
            user,
            command,
            response: None,
        }));
    }
}

/// `user@host on db using …` → (user, db).
fn parse_connect(arg: &str) -> (Option<String>, Option<String>) {
    let user = arg
        .split_once('@')
        .map(|(u, _)| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let db = arg.split_once(" on ").and_then(|(_, rest)| {
        let name = rest.split(" using ").next().unwrap_or("").trim();
        (!name.is_empty()).then(|| name.to_string())
    });
    (user, db)
}

/// The database a `USE db` statement switches to.
pub fn use_statement(sql: &str) -> Option<String> {
    let t = sql.trim().trim_end_matches(';').trim();
    let head = t.get(..4)?;
    if !head.eq_ignore_ascii_case("use ") && !head.eq_ignore_ascii_case("use\t") {
        return None;
    }
    let name = t[4..].trim();
    let name = name
        .strip_prefix('`')
        .and_then(|n| n.strip_suffix('`'))
        .map(|n| n.replace("``", "`"))
        .unwrap_or_else(|| name.to_string());
    (!name.is_empty()).then_some(name)
}

impl<R: BufRead> Iterator for GeneralLog<R> {
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
        crate::split_results(GeneralLog::new(s.as_bytes()))
    }

    const MARIADB: &str =
        "mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 33999  Unix socket: /tmp/mdb/s.sock
Time\t\t    Id Command\tArgument
261127 12:12:19\t     3 Connect\troot@localhost on  using Socket
\t\t     3 Query\tcreate database d1
\t\t     3 Init DB\td1
\t\t     4 Connect\tapp@localhost as anonymous on shop
261127 12:12:20\t     3 Query\tselect * from t
where id = 1
\t\t     4 Query\tSELECT 'a\tb'
\t\t     4 Prepare\tselect ?
\t\t     3 Quit\t
";

    #[test]
    fn mariadb_sessions_interleave_with_multi_line_statements() {
        let (rs, errs) = parse(MARIADB);
        assert!(errs.is_empty(), "{errs:?}");
        let got: Vec<(u64, &str, Option<&str>, Option<&str>)> = rs
            .iter()
            .map(|r| {
                (
                    r.session,
                    r.command.name(),
                    r.command.sql(),
                    r.db.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "connect", None, None),
                (3, "query", Some("create database d1"), None),
                (3, "init_db", None, Some("d1")),
                (4, "connect", None, Some("shop")),
                (
                    3,
                    "query",
                    Some("select * from t\nwhere id = 1"),
                    Some("d1")
                ),
                (4, "query", Some("SELECT 'a\tb'"), Some("shop")),
                (3, "quit", None, Some("d1")),
            ]
        );
        assert_eq!(rs[0].user.as_deref(), Some("root"));
        assert_eq!(rs[4].ts_us - rs[0].ts_us, 1_000_000);
    }

    #[test]
    fn mysql8_iso_times_and_use() {
        let log = "/usr/sbin/mysqld, Version: 8.0.36 (MySQL Community Server - GPL). started with:
Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock
Time                 Id Command    Argument
2024-01-31T10:00:00.000100Z\t   12 Connect\tapp@10.0.0.5 on  using TCP/IP
2024-01-31T10:00:00.000200Z\t   12 Query\tUSE `shop`
2024-01-31T10:00:00.000300Z\t   12 Query\tSELECT 1
2024-01-31T10:00:00.000400Z\t   12 Execute\tSELECT * FROM t WHERE id = 5
2024-01-31T10:00:00.000500Z\t   12 Quit\t
";
        let (rs, errs) = parse(log);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rs.len(), 5);
        assert_eq!(rs[2].db.as_deref(), Some("shop"));
        assert_eq!(rs[3].command.sql(), Some("SELECT * FROM t WHERE id = 5"));
        assert_eq!(rs[1].ts_us - rs[0].ts_us, 100);
    }

    #[test]
    fn a_restart_makes_new_sessions() {
        let log = "2024-01-31T10:00:00Z\t 5 Query\tselect 1
/usr/sbin/mysqld, Version: 8.0.36 (x). started with:
Tcp port: 3306  Unix socket: /tmp/s
Time                 Id Command    Argument
2024-01-31T10:00:01Z\t 5 Query\tselect 2
";
        let (rs, _) = parse(log);
        assert_ne!(rs[0].session, rs[1].session);
    }

    #[test]
    fn garbage_is_reported_with_its_line_and_skipped() {
        let log = "garbage first\n2024-01-31T10:00:00Z\t 5 Bogus\tx\n2024-01-31T10:00:00Z\t 5 Query\t\n2024-01-31T10:00:00Z\t 5 Query\tselect 1\n";
        let (rs, errs) = parse(log);
        assert_eq!(rs.len(), 1);
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3], "{errs:?}");
    }

    #[test]
    fn truncated_log_keeps_what_it_has() {
        let (rs, errs) =
            parse("2024-01-31T10:00:00Z\t 5 Query\tselect 1\n2024-01-31T10:00:00Z\t 5 Qu");
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].command.sql(), Some("select 1"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 2);
    }

    proptest! {
        #[test]
        fn never_panics(s in "(\\PC|\t|\n){0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_log_like_lines(lines in proptest::collection::vec(
            prop_oneof![
                Just("261127 12:12:19\t     3 Query\tselect 1".to_string()),
                Just("\t\t     4 Connect\tu@h on db".to_string()),
                Just("\t\t  3 Quit\t".to_string()),
                Just("2024-01-31T10:00:00Z\t 5 Init DB\tx".to_string()),
                "[0-9T:.Z\t -]{0,30}",
                "\\PC{0,30}",
            ], 0..40)) {
            let text = lines.join("\n");
            let (rs, errs) = parse(&text);
            for e in errs {
                prop_assert!(e.line >= 1 && e.line as usize <= lines.len().max(1));
            }
            for r in rs {
                if let Some(sql) = r.command.sql() { prop_assert!(!sql.is_empty()); }
            }
        }
    }
}
