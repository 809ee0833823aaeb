//! The workload file: what a capture saw, in the order it saw it, for `cutover replay`.
//!
//! # Format (version 2)
//!
//! A workload file is gzip-compressed UTF-8 text, one JSON object per line, so it streams:
//! a writer appends record after record, a reader holds one record at a time, and
//! `zcat FILE | head` shows it to a human.
//!
//! The first line is the header:
//! `{"format":"cutover-workload","version":1,"source":"general-log","input":"…","created_by":"cutover 0.1.0"}`.
//! A reader refuses another `format` and any `version` newer than it knows.
//!
//! Every other line is a [`Record`]: one command of one session, e.g.
//! `{"session":12,"ts_us":1732708201000000,"db":"shop","user":"app","cmd":"query","sql":"SELECT 1","response":{"rows":1,"latency_us":120}}`.
//! - `session`: the session (connection) the command ran on; ids are unique in the file (a
//!   capture that sees the server restart gives the new sessions new ids).
//! - `ts_us`: when the command started, microseconds since the Unix epoch (UTC). Records of
//!   one session are in order; records of different sessions are interleaved about by time.
//!   Logs with whole-second times (MariaDB's, and the slow log's `SET timestamp`) give the
//!   whole second: the file keeps what the log said, and `cutover replay` spreads a
//!   session's commands of one second over it by their order and `latency_us`
//!   (`cutover_replay::spread`).
//! - `db`, `user`: the session's default database and user when the command ran, when known.
//! - `cmd` and its fields: [`Command`] (`connect`, `query`, `prepare`, `execute`, `close`,
//!   `init_db` with `database`, `change_user`, `reset`, `quit`).
//! - `response`: what the capture saw the server answer ([`Response`]); every field is
//!   optional because every capture source sees a different part (a slow log: row counts and
//!   latency; a protocol capture: everything).
//!
//! Fields added later are optional, so readers keep reading newer minor additions; a change
//! that old readers would misread bumps `version`.
//!
//! ## Execute parameters (version 2)
//!
//! `params` of an `execute` is a list with one object per parameter, holding the type the
//! client bound and a value that gives back the very bytes it sent ([`Param`]):
//! - `type`: the `MYSQL_TYPE_*` code (3 `LONG`, 5 `DOUBLE`, 246 `NEWDECIMAL`, 253
//!   `VAR_STRING`, …); `unsigned`: `true` when the client set the unsigned flag (absent
//!   otherwise);
//! - and exactly one value key:
//!   - `"null": true`: NULL;
//!   - `"int"`: an integer type, as a JSON integer (`i64`, or `u64` when `unsigned`);
//!   - `"float_bits"` / `"double_bits"`: `FLOAT` / `DOUBLE` as the hex of their IEEE-754
//!     bits (8 / 16 digits), so every value round-trips (an integer sent as `DOUBLE` stays a
//!     `DOUBLE` 1, never the text "1.0");
//!   - `"text"`: a length-encoded value (strings, `DECIMAL` as its exact text, JSON, ENUM,
//!     SET, blobs, values sent with `COM_STMT_SEND_LONG_DATA`) whose bytes are UTF-8 without
//!     control characters other than tab, CR and LF;
//!   - `"base64"`: any other such value (standard alphabet, padded);
//!   - `"datetime"`: `DATE`/`DATETIME`/`TIMESTAMP` as `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`;
//!   - `"time"`: `TIME` as `[-]H:MM:SS[.ffffff]` (hours include the days);
//!   - `"redacted": true`: left out by `--redact-values`.
//!
//! e.g. `"params":[{"type":3,"int":42},{"type":253,"text":"a"},{"type":252,"base64":"AP8="},{"type":5,"double_bits":"3ff0000000000000"},{"type":6,"null":true}]`.
//! Version 1 files wrote plain JSON values (`null`, numbers, strings); readers still take
//! them, as `LONGLONG`, `DOUBLE` and `VAR_STRING` (the types a replay bound them with).

pub mod fingerprint;
mod param;
mod stats;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use fingerprint::{fingerprint, tokenize, Token, TokenKind};
pub use param::{base64_decode, base64_encode, Param, ParamValue};
pub use stats::{Filter, Stats};

/// The format name in the header.
pub const FORMAT: &str = "cutover-workload";
/// The newest version this crate reads and the one it writes (2: typed execute parameters).
pub const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a cutover workload file ({why})")]
    NotWorkload { path: PathBuf, why: NotWorkload },
    #[error("{path}: workload version {version} is newer than this cutover reads ({VERSION})")]
    TooNew { path: PathBuf, version: u32 },
    #[error("{path}:{line}: bad record: {why}")]
    BadRecord {
        path: PathBuf,
        line: u64,
        why: BadRecord,
    },
}

/// Why a file is not a workload (its first line is not a workload header).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotWorkload {
    #[error("cannot decompress: {0}")]
    Compression(std::io::Error),
    #[error("empty")]
    Empty,
    #[error("no workload header")]
    NoHeader,
    #[error("format is {0:?}")]
    OtherFormat(String),
}

/// Why a line of a workload is not a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BadRecord {
    /// The line could not be read: a file cut short, or damaged compressed data.
    #[error("cannot read (truncated file?): {0}")]
    Unreadable(std::io::Error),
    /// The line is not a record's JSON.
    #[error("{0}")]
    Json(serde_json::Error),
}

/// The first line of a workload file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// What was captured: `general-log`, `slow-log`, `filter` (a cut of another workload).
    pub source: String,
    /// The captured file, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Recorded with `--redact-values`: statements hold `?` for every literal, executes no
    /// parameter values, errors no messages. Such a workload can be inspected, not replayed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

impl Header {
    pub fn new(source: &str, input: Option<String>) -> Header {
        Header {
            format: FORMAT.to_string(),
            version: VERSION,
            source: source.to_string(),
            input,
            created_by: Some(format!("cutover {}", env!("CARGO_PKG_VERSION"))),
            redacted: false,
        }
    }
}

/// One command of one session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub session: u64,
    pub ts_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub command: Command,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
}

/// What a session asked the server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// The session opened (as the record's `user`, into its `db`).
    Connect,
    /// A statement in the text protocol.
    Query { sql: String },
    /// `COM_STMT_PREPARE`: `stmt` is the id later commands use.
    Prepare { stmt: u32, sql: String },
    /// `COM_STMT_EXECUTE` with its parameters, each with its wire type ([`Param`]).
    Execute {
        stmt: u32,
        #[serde(default)]
        params: Vec<Param>,
    },
    /// `COM_STMT_CLOSE`.
    Close { stmt: u32 },
    /// `COM_INIT_DB`: the default database changes. Written as `database` (the record's own
    /// `db` is the database before the change).
    InitDb {
        #[serde(rename = "database")]
        db: String,
    },
    /// `COM_CHANGE_USER` (to the record's `user` and `db`).
    ChangeUser,
    /// `COM_RESET_CONNECTION`.
    Reset,
    /// The session closed.
    Quit,
}

impl Command {
    /// The command's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::Query { .. } => "query",
            Command::Prepare { .. } => "prepare",
            Command::Execute { .. } => "execute",
            Command::Close { .. } => "close",
            Command::InitDb { .. } => "init_db",
            Command::ChangeUser => "change_user",
            Command::Reset => "reset",
            Command::Quit => "quit",
        }
    }

    /// The statement text of a query or prepare.
    pub fn sql(&self) -> Option<&str> {
        match self {
            Command::Query { sql } | Command::Prepare { sql, .. } => Some(sql),
            _ => None,
        }
    }
}

/// What the server answered, as far as the capture saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// Set when the command failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_insert_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_flags: Option<u16>,
    /// The result set's columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnDef>>,
    /// Rows sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// A hash of the rows (hex), as the replayer computes it (`cutover_replay`'s answer hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_hash: Option<String>,
    /// How long the server took, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Session-state changes the server reported with its OK (session tracking), when a
    /// protocol capture saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorInfo {
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    /// The protocol's column type, e.g. `MYSQL_TYPE_LONG`.
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
}

/// Writes a workload file record by record.
pub struct Writer {
    path: PathBuf,
    out: flate2::write::GzEncoder<BufWriter<File>>,
    /// Records not yet handed to the compressor. The compressor (flate2 with miniz_oxide)
    /// clears its whole output buffer on every write it is given, so handing it each record,
    /// let alone each record's line end, on its own made that clearing most of the cost of
    /// recording; it gets `BATCH` bytes at a time instead.
    pending: Vec<u8>,
    records: u64,
    partial: Partial,
}

/// How many bytes of records go to the compressor at once.
const BATCH: usize = 64 * 1024;

/// The file a [`Writer`] writes into: `NAME.partial` beside `NAME`, renamed to `NAME` by
/// [`Writer::finish`]. Only a complete workload ever has the name asked for (a command that
/// fails half-way never leaves a valid-looking, truncated workload, nor replaces an older one);
/// a writer dropped unfinished removes its partial file, and one a crash leaves behind says by
/// its name what it is.
struct Partial {
    path: PathBuf,
    keep: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Writer {
    pub fn create(path: &Path, header: &Header) -> Result<Writer, WorkloadError> {
        let io = |source| WorkloadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let partial = path.with_file_name(name);
        let f = File::create(&partial).map_err(io)?;
        let mut w = Writer {
            path: path.to_path_buf(),
            out: flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast()),
            pending: Vec::with_capacity(BATCH + 4096),
            records: 0,
            partial: Partial {
                path: partial,
                keep: false,
            },
        };
        w.line(&serde_json::to_string(header).unwrap_or_default())?;
        Ok(w)
    }

    fn line(&mut self, s: &str) -> Result<(), WorkloadError> {
        self.pending.extend_from_slice(s.as_bytes());
        self.pending.push(b'\n');
        self.hand_over(false)
    }

    /// Gives the records waiting to the compressor once a batch is full (or `all`).
    fn hand_over(&mut self, all: bool) -> Result<(), WorkloadError> {
        if self.pending.is_empty() || (!all && self.pending.len() < BATCH) {
            return Ok(());
        }
        let r = self.out.write_all(&self.pending);
        self.pending.clear();
        r.map_err(|source| WorkloadError::Io {
            path: self.path.clone(),
            source,
        })
    }

    pub fn write(&mut self, r: &Record) -> Result<(), WorkloadError> {
        let at = self.pending.len();
        if let Err(e) = serde_json::to_writer(&mut self.pending, r) {
            // No half record stays behind.
            self.pending.truncate(at);
            return Err(WorkloadError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            });
        }
        self.pending.push(b'\n');
        self.records += 1;
        self.hand_over(false)
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// The file's size on disk so far (compressed; what is still buffered not counted).
    pub fn bytes_on_disk(&self) -> u64 {
        self.out
            .get_ref()
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Completes the compressed stream and gives the file its name.
    pub fn finish(mut self) -> Result<u64, WorkloadError> {
        self.hand_over(true)?;
        let Writer {
            path,
            out,
            records,
            mut partial,
            ..
        } = self;
        let io = |source| WorkloadError::Io {
            path: path.clone(),
            source,
        };
        let mut inner = out.finish().map_err(io)?;
        inner.flush().map_err(io)?;
        inner.get_ref().sync_all().map_err(io)?;
        drop(inner);
        std::fs::rename(&partial.path, &path).map_err(io)?;
        partial.keep = true;
        Ok(records)
    }
}

/// Reads a workload file record by record (an iterator of records).
pub struct Reader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<flate2::read::MultiGzDecoder<BufReader<File>>>>,
    line: u64,
    pub header: Header,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, WorkloadError> {
        let f = File::open(path).map_err(|source| WorkloadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let not = |why: NotWorkload| WorkloadError::NotWorkload {
            path: path.to_path_buf(),
            why,
        };
        let mut lines = BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(BufReader::new(f)),
        )
        .lines();
        let first = match lines.next() {
            Some(Ok(l)) => l,
            Some(Err(e)) => return Err(not(NotWorkload::Compression(e))),
            None => return Err(not(NotWorkload::Empty)),
        };
        let header: Header =
            serde_json::from_str(&first).map_err(|_| not(NotWorkload::NoHeader))?;
        if header.format != FORMAT {
            return Err(not(NotWorkload::OtherFormat(header.format)));
        }
        if header.version > VERSION {
            return Err(WorkloadError::TooNew {
                path: path.to_path_buf(),
                version: header.version,
            });
        }
        Ok(Reader {
            path: path.to_path_buf(),
            lines,
            line: 1,
            header,
        })
    }
}

/// What one pass over a whole workload shows: every record could be read, and how much of
/// it a replay will answer (so a replay's progress has its total from the start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// Queries and executes: the statements a replay counts.
    pub statements: u64,
    /// Microseconds from the first record's time to the latest.
    pub span_us: i64,
}

impl Reader {
    /// Reads every record left; the first one that cannot be read is the error.
    pub fn extent(self) -> Result<Extent, WorkloadError> {
        let (mut statements, mut first, mut last) = (0u64, None, i64::MIN);
        for r in self {
            let r = r?;
            if matches!(r.command, Command::Query { .. } | Command::Execute { .. }) {
                statements += 1;
            }
            first.get_or_insert(r.ts_us);
            last = last.max(r.ts_us);
        }
        Ok(Extent {
            statements,
            span_us: first.map(|f| (last - f).max(0)).unwrap_or(0),
        })
    }
}

impl Iterator for Reader {
    type Item = Result<Record, WorkloadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let l = self.lines.next()?;
            self.line += 1;
            let l = match l {
                Ok(l) => l,
                Err(e) => {
                    return Some(Err(WorkloadError::BadRecord {
                        path: self.path.clone(),
                        line: self.line,
                        why: BadRecord::Unreadable(e),
                    }))
                }
            };
            if l.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(&l).map_err(|e| WorkloadError::BadRecord {
                    path: self.path.clone(),
                    line: self.line,
                    why: BadRecord::Json(e),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record {
                session: 1,
                ts_us: 10,
                db: Some("shop".into()),
                user: Some("app".into()),
                command: Command::Connect,
                response: None,
            },
            Record {
                session: 1,
                ts_us: 20,
                db: Some("shop".into()),
                user: None,
                command: Command::Query {
                    sql: "SELECT 'a\nb'".into(),
                },
                response: Some(Response {
                    rows: Some(1),
                    latency_us: Some(5),
                    error: Some(ErrorInfo {
                        code: 1146,
                        state: Some("42S02".into()),
                        message: None,
                    }),
                    ..Response::default()
                }),
            },
            Record {
                session: 2,
                ts_us: 30,
                db: None,
                user: None,
                command: Command::Execute {
                    stmt: 3,
                    params: vec![
                        Param::new(3, false, ParamValue::Int(1)),
                        Param::new(252, false, ParamValue::Bytes(vec![0xff, 0])),
                        Param::new(6, false, ParamValue::Null),
                    ],
                },
                response: None,
            },
            // A record's `db` and the database `init_db` changes to are two fields.
            Record {
                session: 1,
                ts_us: 35,
                db: Some("shop".into()),
                user: None,
                command: Command::InitDb { db: "crm".into() },
                response: None,
            },
            Record {
                session: 2,
                ts_us: 40,
                db: None,
                user: None,
                command: Command::Quit,
                response: None,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.cwl");
        let mut w = Writer::create(&p, &Header::new("general-log", Some("x.log".into()))).unwrap();
        for r in sample() {
            w.write(&r).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 5);
        let r = Reader::open(&p).unwrap();
        assert_eq!(r.header.source, "general-log");
        let back: Vec<Record> = r.map(|x| x.unwrap()).collect();
        assert_eq!(back, sample());
    }

    #[test]
    fn the_extent_counts_statements_and_the_recorded_span() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.cwl");
        let mut w = Writer::create(&p, &Header::new("general-log", None)).unwrap();
        for r in sample() {
            w.write(&r).unwrap();
        }
        w.finish().unwrap();
        let e = Reader::open(&p).unwrap().extent().unwrap();
        // A query and an execute; from 10 µs to 40 µs.
        assert_eq!(
            e,
            Extent {
                statements: 2,
                span_us: 30
            }
        );
    }

    #[test]
    fn refuses_other_files_and_newer_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plain.txt");
        std::fs::write(&p, "hello").unwrap();
        assert!(matches!(
            Reader::open(&p),
            Err(WorkloadError::NotWorkload { .. })
        ));
        let p = dir.path().join("new.cwl");
        let mut h = Header::new("general-log", None);
        h.version = 99;
        Writer::create(&p, &h).unwrap().finish().unwrap();
        assert!(matches!(
            Reader::open(&p),
            Err(WorkloadError::TooNew { .. })
        ));
    }

    /// A version 1 file (plain JSON parameter values) is still read.
    #[test]
    fn version_1_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.cwl");
        let f = File::create(&p).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        writeln!(
            gz,
            r#"{{"format":"cutover-workload","version":1,"source":"proxy"}}"#
        )
        .unwrap();
        writeln!(
            gz,
            r#"{{"session":1,"ts_us":1,"cmd":"execute","stmt":2,"params":[1,"a",null]}}"#
        )
        .unwrap();
        gz.finish().unwrap();
        let r = Reader::open(&p).unwrap();
        assert_eq!(r.header.version, 1);
        let records: Vec<Record> = r.map(|x| x.unwrap()).collect();
        let Command::Execute { params, .. } = &records[0].command else {
            panic!("{records:?}");
        };
        assert_eq!(
            params,
            &[
                Param::new(8, false, ParamValue::Int(1)),
                Param::new(253, false, ParamValue::Bytes(b"a".to_vec())),
                Param::new(6, false, ParamValue::Null),
            ]
        );
    }

    #[test]
    fn a_bad_line_is_an_error_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.cwl");
        let f = File::create(&p).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        writeln!(
            gz,
            "{}",
            serde_json::to_string(&Header::new("x", None)).unwrap()
        )
        .unwrap();
        writeln!(gz, "{{\"session\":1,\"ts_us\":1,\"cmd\":\"quit\"}}").unwrap();
        writeln!(gz, "{{\"session\":1,\"cmd\":\"nope\"}}").unwrap();
        gz.finish().unwrap();
        let items: Vec<_> = Reader::open(&p).unwrap().collect();
        assert!(items[0].is_ok());
        let e = items[1].as_ref().unwrap_err().to_string();
        assert!(e.contains(":3: bad record"), "{e}");
    }
}
