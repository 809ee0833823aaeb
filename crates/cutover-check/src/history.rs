//! The history file (`--history FILE`): one JSON line per run with the counters read, so the
//! consumption rate of every ID space improves as runs accumulate over weeks.
//!
//! ```text
//! {"at":1764230400.0,"server":"10.0.0.1:3306","values":{"shop.orders.id":123456}}
//! ```
//!
//! `at` is seconds since the Unix epoch, `server` the source's address (never a DSN, so no
//! password can end up here), `values` the last ID used per `db.table.column`. Lines of other
//! servers are kept but not used. The file is only ever appended to.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::forecast::Reading;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: f64,
    pub server: String,
    pub values: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history file {path}, line {line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("history file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Earlier runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub entries: Vec<Entry>,
}

impl History {
    /// Reads the file; a missing file is an empty history (the first run creates it).
    pub fn load(path: &Path) -> Result<History, HistoryError> {
        match std::fs::read_to_string(path) {
            Ok(text) => History::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(HistoryError::Io {
                path: path.display().to_string(),
                source: e,
            }),
        }
    }

    /// Parses the text of a history file; blank lines are skipped.
    pub fn parse(text: &str, path: &str) -> Result<History, HistoryError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: Entry = serde_json::from_str(line).map_err(|e| HistoryError::Parse {
                path: path.to_string(),
                line: i + 1,
                message: format!("not a history entry ({e})"),
            })?;
            if !e.at.is_finite() || e.at < 0.0 {
                return Err(HistoryError::Parse {
                    path: path.to_string(),
                    line: i + 1,
                    message: "`at` is not a time in seconds since 1970".into(),
                });
            }
            entries.push(e);
        }
        Ok(History { entries })
    }

    /// Readings of one counter on one server, oldest first.
    pub fn readings(&self, server: &str, key: &str) -> Vec<Reading> {
        let mut v: Vec<Reading> = self
            .entries
            .iter()
            .filter(|e| e.server == server)
            .filter_map(|e| e.values.get(key).map(|&value| Reading { at: e.at, value }))
            .collect();
        v.sort_by(|a, b| a.at.total_cmp(&b.at));
        v
    }

    /// Appends one entry as a line (the file is created when missing).
    pub fn append(path: &Path, entry: &Entry) -> Result<(), HistoryError> {
        let io = |source| HistoryError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut line = serde_json::to_string(entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn append_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        assert_eq!(History::load(&path).unwrap(), History::default());
        for (at, v) in [(10.0, 5u64), (20.0, 25)] {
            let e = Entry {
                at,
                server: "h:1".into(),
                values: [("a.b.c".to_string(), v)].into(),
            };
            History::append(&path, &e).unwrap();
        }
        let h = History::load(&path).unwrap();
        assert_eq!(h.readings("h:1", "a.b.c").len(), 2);
        assert!(h.readings("other:1", "a.b.c").is_empty());
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let e = History::parse(
            "\n{\"at\":1,\"server\":\"s\",\"values\":{}}\nnot json\n",
            "h",
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = History::parse(&s, "h");
        }

        #[test]
        fn entries_round_trip(at in 0f64..4e9, server in "[a-z0-9.:]{1,20}", values in proptest::collection::btree_map("[a-z_.]{1,20}", any::<u64>(), 0..5)) {
            let e = Entry { at, server, values };
            let line = serde_json::to_string(&e).unwrap();
            let h = History::parse(&line, "h").unwrap();
            let got = &h.entries[0];
            prop_assert!((got.at - e.at).abs() <= 1e-6 * e.at.max(1.0));
            prop_assert_eq!(&got.server, &e.server);
            prop_assert_eq!(&got.values, &e.values);
        }
    }
}
