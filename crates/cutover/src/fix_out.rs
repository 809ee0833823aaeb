//! The fix SQL files of `cutover diff --fix-sql FILE` (and, with `--out DIR`, one file per
//! table in `DIR/fix/`).
//!
//! The engine spools one statement per line, each opening with a `/* table: what, key */`
//! comment (`cutover_diff::fix`). Here each comment becomes a `-- ` line above its
//! statement, so the file reads like a list of row fixes, and the statements are committed
//! every `--fix-batch` statements: TiDB refuses a transaction above `txn-total-size-limit`
//! (100 MiB by default), so one transaction for a large fix would never apply. A batch that
//! fails leaves the batches before it applied; a second `diff` finds what is left.
//!
//! The files hold row values: they are created readable by their owner only.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cutover_diff::fix::{self, SpoolSink};

/// Per-table files kept open at once; more tables are reopened to append.
const OPEN_FILES: usize = 64;

/// A statement's comment and the statement (`None`: a statement without comment).
fn split_note(line: &str) -> (Option<&str>, &str) {
    if let Some(rest) = line.strip_prefix("/* ") {
        // The comment's text never holds `*/`: the first one closes it.
        if let Some(end) = rest.find(" */ ") {
            return (Some(&rest[..end]), &rest[end + 4..]);
        }
    }
    (None, line)
}

/// 0 DELETE, 1 UPDATE, 2 INSERT.
fn phase(sql: &str) -> usize {
    if sql.starts_with("DELETE") {
        0
    } else if sql.starts_with("UPDATE") {
        1
    } else {
        2
    }
}

/// The target table of a fix statement: the backquoted `db`.`table` after its verb.
fn statement_table(sql: &str) -> Option<(String, String)> {
    let rest = ["DELETE FROM ", "UPDATE ", "INSERT INTO "]
        .iter()
        .find_map(|v| sql.strip_prefix(v))?;
    let (db, rest) = backquoted(rest)?;
    let rest = rest.strip_prefix('.')?;
    let (table, _) = backquoted(rest)?;
    Some((db, table))
}

/// A backquoted identifier (a doubled backquote is one) and what follows it.
fn backquoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('`')?.char_indices().peekable();
    let mut name = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '`' {
            if chars.peek().map(|(_, c)| *c) == Some('`') {
                chars.next();
                name.push('`');
            } else {
                return Some((name, &s[i + 2..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}

/// A name as part of a file name: letters, digits, `_`, `-` and `$` as they are, every other
/// byte as `%XX`, so two tables never share a file and no name leaves the directory.
fn file_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(path)?;
    // The mode above applies to a new file only; an old one is narrowed too.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(f)
}

/// Statements written to one file, with the batch boundaries.
struct Batches {
    batch: u64,
    written: u64,
}

impl Batches {
    fn header(batch: u64) -> String {
        if batch == 0 {
            "-- One transaction: all or nothing.\n".to_string()
        } else {
            format!(
                "-- Committed every {batch} statements (--fix-batch), to stay under TiDB's transaction\n\
                 -- size limit: if a statement fails, the batches before it stay applied; run\n\
                 -- cutover diff again for what is left.\n"
            )
        }
    }

    fn write(&mut self, w: &mut impl Write, line: &str) -> io::Result<()> {
        if self.batch > 0 && self.written > 0 && self.written.is_multiple_of(self.batch) {
            w.write_all(b"COMMIT;\nSTART TRANSACTION;\n")?;
        }
        self.written += 1;
        match split_note(line) {
            (Some(note), sql) => writeln!(w, "-- {note}\n{sql}"),
            (None, sql) => writeln!(w, "{sql}"),
        }
    }
}

/// Writes the whole fix to `path`: header, every statement under its comment, committed
/// every `batch` statements (0: once, at the end), footer.
pub fn write_fix_sql(sink: &SpoolSink, path: &Path, target: &str, batch: u64) -> Result<()> {
    let file = create_private(path)
        .with_context(|| format!("creating the fix SQL file {}", path.display()))?;
    let mut w = BufWriter::new(file);
    let result = (|| -> io::Result<()> {
        w.write_all(fix::header(target, sink.counts()).as_bytes())?;
        w.write_all(Batches::header(batch).as_bytes())?;
        let mut b = Batches { batch, written: 0 };
        sink.for_each(|line| b.write(&mut w, line))?;
        w.write_all(fix::FOOTER.as_bytes())?;
        w.flush()
    })();
    result.with_context(|| format!("writing the fix SQL file {}", path.display()))
}

/// One table's file while the statements are dealt out.
struct TableFile {
    path: PathBuf,
    counts: (u64, u64, u64),
    batches: Batches,
}

/// Writes `dir/fix/<db>.<table>.sql` for every table with a fix, each a complete script
/// (header, its statements in the order deletes, updates, inserts, footer). Returns the
/// paths, by table name.
pub fn write_fix_per_table(
    sink: &SpoolSink,
    dir: &Path,
    target: &str,
    batch: u64,
) -> Result<Vec<PathBuf>> {
    let fix_dir = dir.join("fix");
    std::fs::create_dir_all(&fix_dir).with_context(|| format!("creating {}", fix_dir.display()))?;
    // First pass: which tables, and each one's counts for its header.
    let mut tables: HashMap<(String, String), TableFile> = HashMap::new();
    sink.for_each(|line| {
        let (_, sql) = split_note(line);
        let key = statement_table(sql).ok_or_else(|| {
            io::Error::other(format!(
                "a fix statement names no table: {}",
                sql.chars().take(80).collect::<String>()
            ))
        })?;
        let t = tables
            .entry(key)
            .or_insert_with_key(|(db, table)| TableFile {
                path: fix_dir.join(format!("{}.{}.sql", file_part(db), file_part(table))),
                counts: (0, 0, 0),
                batches: Batches { batch, written: 0 },
            });
        match phase(sql) {
            0 => t.counts.0 += 1,
            1 => t.counts.1 += 1,
            _ => t.counts.2 += 1,
        }
        Ok(())
    })
    .context("reading the fix SQL spool")?;
    let result = (|| -> io::Result<()> {
        for ((db, table), t) in &tables {
            let mut f = create_private(&t.path)?;
            f.write_all(fix::header(&format!("{db}.{table} on {target}"), t.counts).as_bytes())?;
            f.write_all(Batches::header(batch).as_bytes())?;
        }
        // Second pass: each statement appended to its table's file, at most OPEN_FILES open.
        let mut open: HashMap<(String, String), BufWriter<File>> = HashMap::new();
        sink.for_each(|line| {
            let (_, sql) = split_note(line);
            let Some(key) = statement_table(sql) else {
                return Ok(());
            };
            let Some(t) = tables.get_mut(&key) else {
                return Ok(());
            };
            if !open.contains_key(&key) {
                if open.len() >= OPEN_FILES {
                    for (_, mut w) in open.drain() {
                        w.flush()?;
                    }
                }
                let f = std::fs::OpenOptions::new().append(true).open(&t.path)?;
                open.insert(key.clone(), BufWriter::new(f));
            }
            match open.get_mut(&key) {
                Some(w) => t.batches.write(w, line),
                None => Ok(()),
            }
        })?;
        for (_, mut w) in open.drain() {
            w.flush()?;
        }
        for t in tables.values() {
            let mut f = std::fs::OpenOptions::new().append(true).open(&t.path)?;
            f.write_all(fix::FOOTER.as_bytes())?;
            f.sync_all()?;
        }
        Ok(())
    })();
    result.with_context(|| format!("writing the fix SQL files in {}", fix_dir.display()))?;
    let mut paths: Vec<PathBuf> = tables.into_values().map(|t| t.path).collect();
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_and_tables_are_read_back() {
        let line = "/* shop.orders: missing in target, id=7 */ INSERT INTO `shop`.`ord``ers` (`id`) VALUES (7);";
        let (note, sql) = split_note(line);
        assert_eq!(note, Some("shop.orders: missing in target, id=7"));
        assert_eq!(
            statement_table(sql),
            Some(("shop".to_string(), "ord`ers".to_string()))
        );
        assert_eq!(phase(sql), 2);
        let (note, sql) = split_note("DELETE FROM `a`.`b` WHERE `id` = 1;");
        assert_eq!(note, None);
        assert_eq!(statement_table(sql), Some(("a".into(), "b".into())));
        assert_eq!(statement_table("UPDATE `a`.b SET x = 1;"), None);
        assert_eq!(statement_table("UPDATE `a`"), None);
    }

    #[test]
    fn file_names_keep_tables_apart_and_inside_the_directory() {
        assert_eq!(file_part("orders_2024"), "orders_2024");
        assert_eq!(file_part("a.b"), "a%2Eb");
        assert_eq!(file_part("../x"), "%2E%2E%2Fx");
        assert_ne!(file_part("a%2Eb"), file_part("a.b"));
    }

    #[test]
    fn batches_commit_every_n_statements() {
        let mut out = Vec::new();
        let mut b = Batches {
            batch: 2,
            written: 0,
        };
        for i in 0..5 {
            b.write(&mut out, &format!("/* t: k={i} */ DELETE FROM `d`.`t`;"))
                .unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("COMMIT;\nSTART TRANSACTION;\n").count(), 2);
        assert!(
            text.starts_with("-- t: k=0\nDELETE FROM `d`.`t`;\n"),
            "{text}"
        );
    }
}
