//! `--checkpoint DIR`: progress that survives a crash, a `kill -9` or a Ctrl-C.
//!
//! `DIR/checkpoint.json` names the run (a [`Fingerprint`]: the table pairs, routes, endpoints
//! and every option that changes the result, each hashed on its own so that a refusal names
//! what changed without writing any option's value); `DIR/journal.jsonl` is appended to as work
//! finishes: one line per finished chunk of an integer-keyed table (its key range, the rows it
//! covered, the differences it found) and one per finished table (its whole report). A line
//! is written and flushed before the work counts as done, so a process killed at any point
//! loses at most the chunks in flight; a torn last line is ignored. Resuming skips finished
//! tables and, inside a table, finished key ranges ([`crate::chunk::Splitter::skip`]), and
//! refuses when the fingerprint differs: a checkpoint of other tables or options would
//! silently mix two different comparisons.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cutover_core::file::{write_atomic, Readers};
use serde::{Deserialize, Serialize};

use crate::report::{RowDiff, TableReport};

/// A finished chunk of an integer-keyed table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkRecord {
    /// Keys `lo..=hi`; `None` is unbounded.
    pub lo: Option<i128>,
    pub hi: Option<i128>,
    pub rows: u64,
    pub missing_in_target: u64,
    pub extra_in_target: u64,
    pub mismatched: u64,
    /// The differences of this chunk that the report kept (`--max-diffs`).
    pub diffs: Vec<RowDiff>,
    pub rows_fetched: u64,
}

impl ChunkRecord {
    /// The differences this chunk found, as a tally (for a resumed table's counts).
    pub fn tally(&self) -> cutover_rows::Tally {
        cutover_rows::Tally {
            missing_in_target: self.missing_in_target,
            extra_in_target: self.extra_in_target,
            mismatched: self.mismatched,
            diffs: self.diffs.clone(),
            diffs_truncated: false,
        }
    }
}

/// One journal line: `{"t":"chunk","table":…,"chunk":…}` or `{"t":"table","report":…}`.
/// (A plain struct, not an internally tagged enum: those buffer their content, which
/// cannot hold the 128-bit keys.)
#[derive(Serialize, Deserialize)]
struct Line {
    t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk: Option<ChunkRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    report: Option<Box<TableReport>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    version: String,
    /// Each part of the fingerprint's hash, by option name.
    #[serde(default)]
    parts: BTreeMap<String, String>,
}

/// What a run compares, option by option: resuming with any part changed is refused, and
/// the refusal names the parts that changed. Each part is kept as a hash of its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    parts: BTreeMap<String, String>,
}

impl Fingerprint {
    /// Adds a part: `name` as the user knows it (`--where`, `[diff.where]`), and its value.
    pub fn add(&mut self, name: &str, value: serde_json::Value) {
        self.parts.insert(name.to_string(), fingerprint(&value));
    }

    /// The names of the parts.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.keys().map(String::as_str)
    }

    /// One hash of all the parts.
    pub fn digest(&self) -> String {
        fingerprint(&serde_json::json!(self.parts))
    }

    /// The parts that differ from `other`'s (present in one only, or with other values).
    fn changed(&self, other: &BTreeMap<String, String>) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> =
            self.parts.keys().chain(other.keys()).collect();
        names
            .into_iter()
            .filter(|n| self.parts.get(*n) != other.get(*n))
            .cloned()
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(
        "checkpoint {0} belongs to a different comparison ({changed}); use the same command to \
         resume, or remove the directory to start over",
        changed = changed_list(.1)
    )]
    Mismatch(PathBuf, Vec<String>),
    #[error("checkpoint {0}: {1}")]
    Corrupt(PathBuf, String),
}

fn changed_list(names: &[String]) -> String {
    if names.is_empty() {
        "written by another version".to_string()
    } else {
        format!("changed: {}", names.join(", "))
    }
}

/// An open checkpoint: what was done before, and the journal to append to.
pub struct Checkpoint {
    dir: PathBuf,
    journal: Mutex<File>,
    tables: HashMap<String, TableReport>,
    chunks: HashMap<String, Vec<ChunkRecord>>,
    /// `--redact-values`: no row value is written here. The differences' keys and values are
    /// left out (their counts stay exact), so a resumed run lists only the differences it
    /// found itself, like `--max-diffs` does; verdicts and counts are those of a whole run.
    redact: bool,
}

impl Checkpoint {
    /// Opens `dir` for a run with this fingerprint: creates it, or loads what an earlier run
    /// of the same comparison finished.
    pub fn open(dir: &Path, fingerprint: &Fingerprint) -> Result<Checkpoint, CheckpointError> {
        let digest = fingerprint.digest();
        let io = |e| CheckpointError::Io(dir.to_path_buf(), e);
        std::fs::create_dir_all(dir).map_err(io)?;
        let header_path = dir.join("checkpoint.json");
        match std::fs::read_to_string(&header_path) {
            Ok(text) => {
                let h: Header = serde_json::from_str(&text).map_err(|e| {
                    CheckpointError::Corrupt(header_path.clone(), format!("unreadable: {e}"))
                })?;
                if h.fingerprint != digest {
                    return Err(CheckpointError::Mismatch(
                        dir.to_path_buf(),
                        fingerprint.changed(&h.parts),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let h = Header {
                    fingerprint: digest,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    parts: fingerprint.parts.clone(),
                };
                let text = serde_json::to_string_pretty(&h)
                    .map_err(|e| CheckpointError::Corrupt(header_path.clone(), e.to_string()))?;
                // Readable by everyone, like the journal beside it: the header holds the
                // fingerprint of the run's options, no row values.
                write_atomic(&header_path, Readers::Everyone, |f| {
                    f.write_all(text.as_bytes())
                })
                .map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        let journal_path = dir.join("journal.jsonl");
        let mut tables = HashMap::new();
        let mut chunks: HashMap<String, Vec<ChunkRecord>> = HashMap::new();
        let mut good_len = 0u64;
        let mut lines = 0usize;
        if let Ok(f) = File::open(&journal_path) {
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io)?;
                if n == 0 || !line.ends_with('\n') {
                    // End, or a torn last line from a crash mid-write: ignored.
                    break;
                }
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line {
                        table: Some(table),
                        chunk: Some(chunk),
                        ..
                    }) => chunks.entry(table).or_default().push(chunk),
                    Ok(Line {
                        report: Some(report),
                        ..
                    }) => {
                        chunks.remove(&report.source);
                        tables.insert(report.source.clone(), *report);
                    }
                    // A whole line that does not read back is not a crash artefact.
                    _ => {
                        return Err(CheckpointError::Corrupt(
                            journal_path.clone(),
                            format!("line {} is unreadable", lines + 1),
                        ))
                    }
                }
                lines += 1;
                good_len += n as u64;
            }
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(io)?;
        // Cut a torn tail so the next line starts clean.
        journal.set_len(good_len).map_err(io)?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            journal: Mutex::new(journal),
            tables,
            chunks,
            redact: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The report of a table an earlier run finished.
    pub fn finished_table(&self, source: &str) -> Option<&TableReport> {
        self.tables.get(source)
    }

    /// The chunks of a table an earlier run finished (the table itself unfinished).
    pub fn finished_chunks(&self, source: &str) -> &[ChunkRecord] {
        self.chunks.get(source).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Tables and chunks loaded from an earlier run.
    pub fn resumed(&self) -> (usize, usize) {
        (
            self.tables.len(),
            self.chunks.values().map(Vec::len).sum::<usize>(),
        )
    }

    /// Keeps row values out of the journal from now on (`--redact-values`).
    pub fn redact_values(&mut self, on: bool) {
        self.redact = on;
    }

    pub fn chunk_done(&self, table: &str, mut chunk: ChunkRecord) -> std::io::Result<()> {
        if self.redact {
            chunk.diffs.clear();
        }
        self.append(&Line {
            t: "chunk".into(),
            table: Some(table.to_string()),
            chunk: Some(chunk),
            report: None,
        })
    }

    pub fn table_done(&self, report: &TableReport) -> std::io::Result<()> {
        self.append(&Line {
            t: "table".into(),
            table: None,
            chunk: None,
            report: Some(Box::new(if self.redact {
                let mut r = report.clone();
                r.diffs.clear();
                r.converged.clear();
                r.filter = None;
                r
            } else {
                report.clone()
            })),
        })?;
        let f = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        f.sync_data()
    }

    fn append(&self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        let mut f = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        // One write of the whole line: a kill leaves either all of it or a torn tail.
        f.write_all(text.as_bytes())?;
        f.flush()
    }
}

/// A stable fingerprint of what a run compares: any change makes a resume refuse.
pub fn fingerprint(parts: &serde_json::Value) -> String {
    // FNV-1a over the canonical JSON text (serde_json keeps object keys in order given).
    let text = parts.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::DiffKind;

    fn chunk(lo: i128, hi: i128) -> ChunkRecord {
        ChunkRecord {
            lo: Some(lo),
            hi: Some(hi),
            rows: 10,
            missing_in_target: 1,
            extra_in_target: 0,
            mismatched: 0,
            diffs: vec![RowDiff {
                kind: DiffKind::MissingInTarget,
                key: serde_json::json!({"id": lo})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                columns: Vec::new(),
                count: None,
            }],
            rows_fetched: 3,
        }
    }

    fn fp(tables: &str) -> Fingerprint {
        let mut f = Fingerprint::default();
        f.add("tables", serde_json::json!([tables]));
        f.add("--where", serde_json::json!(null));
        f
    }

    #[test]
    fn journal_survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (f1, f2) = (fp("a.t"), fp("a.u"));
        {
            let c = Checkpoint::open(dir.path(), &f1).unwrap();
            c.chunk_done("a.t", chunk(1, 10)).unwrap();
            c.chunk_done("a.t", chunk(11, 20)).unwrap();
            let mut r = TableReport::new("a.u".into(), "a.u".into());
            r.rows_compared = 5;
            c.table_done(&r).unwrap();
        }
        // A torn line, as a kill mid-write would leave.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"t\":\"chunk\",\"table\":\"a.t\",\"ch")
            .unwrap();
        drop(f);
        let c = Checkpoint::open(dir.path(), &f1).unwrap();
        assert_eq!(c.finished_chunks("a.t"), &[chunk(1, 10), chunk(11, 20)]);
        assert_eq!(c.finished_table("a.u").map(|r| r.rows_compared), Some(5));
        c.chunk_done("a.t", chunk(21, 30)).unwrap();
        drop(c);
        let c = Checkpoint::open(dir.path(), &f1).unwrap();
        assert_eq!(c.finished_chunks("a.t").len(), 3);
        match Checkpoint::open(dir.path(), &f2) {
            Err(e @ CheckpointError::Mismatch(..)) => {
                assert!(e.to_string().contains("changed: tables"), "{e}");
            }
            _ => panic!("another fingerprint must be refused"),
        }
    }

    #[test]
    fn a_refusal_names_every_changed_part_and_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = fp("a.t");
        a.add("[diff.where]", serde_json::json!({"a.t": "secret = 'x'"}));
        drop(Checkpoint::open(dir.path(), &a).unwrap());
        let header = std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap();
        assert!(!header.contains("secret"), "{header}");
        let mut b = fp("a.t");
        b.add("[diff.where]", serde_json::json!({"a.t": "secret = 'y'"}));
        b.add("--where", serde_json::json!("v > 1"));
        let e = Checkpoint::open(dir.path(), &b)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref().and_then(|e| e.split("(changed: ").nth(1)),
            Some("--where, [diff.where]); use the same command to resume, or remove the directory to start over")
        );
        assert!(Checkpoint::open(dir.path(), &a).is_ok());
    }

    #[test]
    fn fingerprint_changes_with_content() {
        let a = fingerprint(&serde_json::json!({"tables": ["a.t"]}));
        let b = fingerprint(&serde_json::json!({"tables": ["a.u"]}));
        assert_ne!(a, b);
        assert_eq!(a, fingerprint(&serde_json::json!({"tables": ["a.t"]})));
    }
}
