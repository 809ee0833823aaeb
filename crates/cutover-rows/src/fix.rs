//! Fix SQL: the statements that make the target's rows equal to the source's.
//!
//! - A row missing on the target: `INSERT`. A row only on the target: `DELETE`. A changed row:
//!   `UPDATE` of the differing columns, or `DELETE` + `INSERT` when a differing column is part
//!   of a unique key (an `UPDATE` could clash with the row that currently holds that value).
//!   Never `REPLACE`: it fires `ON DELETE CASCADE` and silently removes rows that clash on
//!   other unique keys.
//! - Order: every `DELETE`, then every `UPDATE`, then every `INSERT`, so a value is freed
//!   before it is taken again.
//! - Literals are binary-safe and mean the same under every `sql_mode`: text as
//!   `_utf8mb4 X'…'` (a coercible literal: it takes the column's collation), bytes as `X'…'`, FLOAT/DOUBLE in their shortest exact form.
//! - Generated columns are left out: the target computes them.
//! - Each statement opens with a comment naming its table, what it fixes and the row's key
//!   in clear text (`/* shop.orders: missing in target, id=7 */`), since the literals are
//!   hex; the comment cannot end early or hold an executable comment (`*/` and `/*` in
//!   names and values are broken up).
//!
//! The engine hands statements to a [`FixSink`] as it finds differences; the sink keeps the
//! three phases apart (on disk, so memory does not grow with the number of differences).

use std::io::{BufRead, BufWriter, Write};
use std::sync::Mutex;

use cutover_core::schema::TableName;
use cutover_core::sql::{quote_bytes, quote_ident};
use cutover_core::value::{hex, Value};

use crate::plan::Plan;

/// Where the statements go, by phase.
pub trait FixSink: Send + Sync {
    fn delete(&self, sql: String);
    fn update(&self, sql: String);
    fn insert(&self, sql: String);
}

/// A SQL literal for a value of the target column.
pub fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Bit(b) => b.to_string(),
        Value::Decimal(d) => d.to_string(),
        // Rust's `{:?}` is the shortest text that reads back to the same bits.
        Value::Float(f) => format!("{f:?}"),
        Value::Double(d) => format!("{d:?}"),
        Value::Text(s) => format!("_utf8mb4 X'{}'", hex(s.as_bytes())),
        Value::Bytes(b) => quote_bytes(b),
        Value::Json(j) => format!("_utf8mb4 X'{}'", hex(j.to_string().as_bytes())),
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => format!("'{v}'"),
    }
}

/// Characters of a key value shown in a statement's comment.
const NOTE_VALUE_CHARS: usize = 64;

/// Text as the inside of a `/* … */` comment: on one line, never closing or opening one.
fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    // Repeated until stable: `**//` would close again after one pass.
    while out.contains("*/") || out.contains("/*") {
        out = out.replace("*/", "* /").replace("/*", "/ *");
    }
    out
}

/// Builds statements for one table.
pub struct FixWriter<'a> {
    plan: &'a Plan,
    table: String,
    /// `db.table`, for the comments.
    label: String,
}

impl<'a> FixWriter<'a> {
    pub fn new(plan: &'a Plan, target: &TableName) -> FixWriter<'a> {
        FixWriter {
            plan,
            table: target.quoted(),
            label: target.to_string(),
        }
    }

    /// The comment a statement opens with: table, what it fixes, the key in clear text.
    fn note(&self, what: &str, row: &[Value]) -> String {
        let key: Vec<String> = self
            .plan
            .key_columns
            .iter()
            .map(|i| {
                let v = row[*i].to_string();
                let mut shown: String = v.chars().take(NOTE_VALUE_CHARS).collect();
                if shown.len() < v.len() {
                    shown.push('…');
                }
                format!("{}={shown}", self.plan.columns[*i].target.name)
            })
            .collect();
        format!(
            "/* {} */ ",
            comment_text(&format!("{}: {what}, {}", self.label, key.join(", ")))
        )
    }

    fn name(&self, i: usize) -> String {
        quote_ident(&self.plan.columns[i].target.name)
    }

    /// The exact match of a row's key (every column of a keyless row): NULL-safe, and for
    /// text also byte-exact, since the column's collation may call `'a'` and `'A '` equal.
    fn key_predicate(&self, row: &[Value]) -> String {
        let parts: Vec<String> = self
            .plan
            .key_columns
            .iter()
            .map(|i| {
                let col = &self.plan.columns[*i].target;
                let name = self.name(*i);
                match (&row[*i], &col.kind) {
                    (Value::Null, _) => format!("{name} IS NULL"),
                    // A FLOAT column compares as DOUBLE: compare with the exact widened value.
                    (Value::Float(f), _) => format!("({name} + 0e0) = {:?}", *f as f64),
                    (v @ Value::Text(_), k) if k.is_text_like() => {
                        let l = literal(v);
                        format!("{name} = {l} AND {name} = {l} COLLATE utf8mb4_bin")
                    }
                    (v, _) => format!("{name} = {}", literal(v)),
                }
            })
            .collect();
        parts.join(" AND ")
    }

    /// `DELETE` of `n` copies of a keyless row.
    pub fn delete_n(&self, row: &[Value], n: u64) -> String {
        format!(
            "{}DELETE FROM {} WHERE {} LIMIT {n};",
            self.note(&format!("{n} extra in target"), row),
            self.table,
            self.key_predicate(row)
        )
    }

    /// `INSERT` of a source row (generated columns left out).
    pub fn insert(&self, row: &[Value]) -> String {
        self.insert_as(row, "missing in target")
    }

    fn insert_as(&self, row: &[Value], what: &str) -> String {
        let idx: Vec<usize> = (0..self.plan.columns.len())
            .filter(|i| !self.plan.columns[*i].target.generated)
            .collect();
        let cols: Vec<String> = idx.iter().map(|i| self.name(*i)).collect();
        let vals: Vec<String> = idx.iter().map(|i| literal(&row[*i])).collect();
        format!(
            "{}INSERT INTO {} ({}) VALUES ({});",
            self.note(what, row),
            self.table,
            cols.join(", "),
            vals.join(", ")
        )
    }

    /// `DELETE` of a target row by its key.
    pub fn delete(&self, row: &[Value]) -> String {
        self.delete_as(row, "extra in target")
    }

    fn delete_as(&self, row: &[Value], what: &str) -> String {
        format!(
            "{}DELETE FROM {} WHERE {};",
            self.note(what, row),
            self.table,
            self.key_predicate(row)
        )
    }

    /// Statements for a changed row: `(delete, update, insert)`, some empty.
    pub fn change(&self, source_row: &[Value], differing: &[usize]) -> Vec<Phase> {
        let in_unique = differing.iter().any(|i| {
            let name = &self.plan.columns[*i].target.name;
            self.plan
                .target
                .indexes
                .iter()
                .any(|ix| ix.unique && ix.columns.iter().any(|c| c.eq_ignore_ascii_case(name)))
        });
        let columns: Vec<&str> = differing
            .iter()
            .map(|i| self.plan.columns[*i].target.name.as_str())
            .collect();
        let what = format!("changed {}", columns.join(", "));
        if in_unique {
            return vec![
                Phase::Delete(self.delete_as(
                    source_row,
                    &format!("{what} (a unique key: deleted, then inserted)"),
                )),
                Phase::Insert(self.insert_as(source_row, &what)),
            ];
        }
        let sets: Vec<String> = differing
            .iter()
            .filter(|i| !self.plan.columns[**i].target.generated)
            .map(|i| format!("{} = {}", self.name(*i), literal(&source_row[*i])))
            .collect();
        if sets.is_empty() {
            return Vec::new();
        }
        vec![Phase::Update(format!(
            "{}UPDATE {} SET {} WHERE {};",
            self.note(&what, source_row),
            self.table,
            sets.join(", "),
            self.key_predicate(source_row)
        ))]
    }
}

/// A statement and the phase it belongs to.
pub enum Phase {
    Delete(String),
    Update(String),
    Insert(String),
}

impl Phase {
    pub fn send(self, sink: &dyn FixSink) {
        match self {
            Phase::Delete(s) => sink.delete(s),
            Phase::Update(s) => sink.update(s),
            Phase::Insert(s) => sink.insert(s),
        }
    }
}

/// A [`FixSink`] that spools each phase to its own temporary file, one statement per line.
pub struct SpoolSink {
    phases: [Mutex<Spool>; 3],
}

struct Spool {
    writer: BufWriter<std::fs::File>,
    count: u64,
    error: Option<std::io::Error>,
}

impl SpoolSink {
    pub fn new() -> std::io::Result<SpoolSink> {
        let spool = || -> std::io::Result<Mutex<Spool>> {
            Ok(Mutex::new(Spool {
                writer: BufWriter::new(tempfile::tempfile()?),
                count: 0,
                error: None,
            }))
        };
        Ok(SpoolSink {
            phases: [spool()?, spool()?, spool()?],
        })
    }

    fn push(&self, phase: usize, sql: String) {
        let mut s = self.phases[phase].lock().unwrap_or_else(|p| p.into_inner());
        if s.error.is_none() {
            if let Err(e) = writeln!(s.writer, "{sql}") {
                s.error = Some(e);
            }
        }
        s.count += 1;
    }

    /// Statements per phase: `(deletes, updates, inserts)`.
    pub fn counts(&self) -> (u64, u64, u64) {
        let c = |i: usize| self.phases[i].lock().map(|s| s.count).unwrap_or(0);
        (c(0), c(1), c(2))
    }

    /// Calls `f` with every statement in order (deletes, updates, inserts).
    pub fn for_each(&self, mut f: impl FnMut(&str) -> std::io::Result<()>) -> std::io::Result<()> {
        for phase in &self.phases {
            let mut s = phase.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = s.error.take() {
                return Err(e);
            }
            s.writer.flush()?;
            let mut file = s.writer.get_ref().try_clone()?;
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))?;
            for line in std::io::BufReader::new(file).lines() {
                f(&line?)?;
            }
        }
        Ok(())
    }
}

impl FixSink for SpoolSink {
    fn delete(&self, sql: String) {
        self.push(0, sql)
    }
    fn update(&self, sql: String) {
        self.push(1, sql)
    }
    fn insert(&self, sql: String) {
        self.push(2, sql)
    }
}

/// The header of a fix file: what it does and how it must run.
pub fn header(target: &str, counts: (u64, u64, u64)) -> String {
    format!(
        "-- cutover fix SQL for {target}\n\
         -- {} DELETE, {} UPDATE, {} INSERT; deletes first, then updates, then inserts.\n\
         -- foreign_key_checks is turned off while it runs: rows are fixed table by table, not\n\
         -- in the order the foreign keys would need; it is turned back on at the end.\n\
         -- sql_mode NO_AUTO_VALUE_ON_ZERO keeps a key of 0 as 0; time_zone +00:00 because\n\
         -- TIMESTAMP values are written in UTC.\n\
         SET NAMES utf8mb4;\n\
         SET SESSION time_zone = '+00:00';\n\
         SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n\
         SET SESSION foreign_key_checks = 0;\n\
         START TRANSACTION;\n",
        counts.0, counts.1, counts.2
    )
}

/// The end of a fix file.
pub const FOOTER: &str = "COMMIT;\nSET SESSION foreign_key_checks = 1;\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_stay_comments() {
        assert_eq!(comment_text("shop.orders: id=1"), "shop.orders: id=1");
        // A value cannot close the comment, open an executable one or break the line.
        let c = comment_text("a */ DROP TABLE t; /*! x */ **// \n\u{1b}");
        assert!(!c.contains("*/") && !c.contains("/*"), "{c}");
        assert!(!c.contains('\n') && !c.contains('\u{1b}'), "{c}");
        assert!(c.contains("\\u{a}"), "{c}");
    }

    proptest::proptest! {
        #[test]
        fn no_text_ends_the_comment(s in "\\PC{0,40}|[*/\\n]{0,12}") {
            let c = comment_text(&s);
            proptest::prop_assert!(!c.contains("*/") && !c.contains("/*") && !c.contains('\n'));
        }
    }
}
