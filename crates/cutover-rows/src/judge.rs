//! The one judge of two rows: [`same`] per cell decides, and what differs becomes a
//! [`RowDiff`] and, when asked for, the fix statements that make the target's row the
//! source's. `cutover diff` (its pass and `--recheck`) builds every row difference here, and
//! `cutover verify` takes its verdicts from here.

use cutover_core::schema::TableName;
use cutover_core::value::{same, CompareOptions, Value};

use crate::fix::{FixSink, FixWriter};
use crate::plan::Plan;
use crate::row_diff::{ColumnDiff, DiffKind, RowDiff};

/// Judges the rows of one table.
pub struct Judge<'a> {
    plan: &'a Plan,
    compare: &'a CompareOptions,
    /// Where fix SQL goes, when asked for, and the writer for the target table.
    fix: Option<(&'a dyn FixSink, FixWriter<'a>)>,
}

impl<'a> Judge<'a> {
    pub fn new(plan: &'a Plan, compare: &'a CompareOptions) -> Judge<'a> {
        Judge {
            plan,
            compare,
            fix: None,
        }
    }

    /// Sends the fix statements of every difference judged to `sink`, for table `target`.
    pub fn with_fix(mut self, sink: Option<&'a dyn FixSink>, target: &TableName) -> Judge<'a> {
        self.fix = sink.map(|s| (s, FixWriter::new(self.plan, target)));
        self
    }

    /// The indexes (into `plan.columns`) of the cells of two rows that [`same`] calls
    /// different.
    pub fn differing(&self, x: &[Value], y: &[Value]) -> Vec<usize> {
        (0..self.plan.columns.len())
            .filter(|i| !same(&x[*i], &y[*i], self.compare))
            .collect()
    }

    /// The verdict on one key read on both sides: `None` when the rows are the same or the
    /// key is absent on both.
    pub fn verdict(&self, source: Option<&[Value]>, target: Option<&[Value]>) -> Option<DiffKind> {
        match (source, target) {
            (None, None) => None,
            (Some(x), Some(y)) if self.differing(x, y).is_empty() => None,
            (Some(_), None) => Some(DiffKind::MissingInTarget),
            (None, Some(_)) => Some(DiffKind::ExtraInTarget),
            _ => Some(DiffKind::Mismatched),
        }
    }

    /// Two rows of one key (either may be absent), the key taken from the rows (the
    /// source's when both are there): their difference, its fix statements sent; `None`
    /// when they are the same.
    pub fn rows(&self, source: Option<&[Value]>, target: Option<&[Value]>) -> Option<RowDiff> {
        let keyed = source.or(target)?;
        self.judge(|| self.plan.row_key_json(keyed), source, target)
    }

    /// [`Judge::rows`] with the key given as typed values (a difference read again by key).
    pub fn keyed(
        &self,
        key: &[Value],
        source: Option<&[Value]>,
        target: Option<&[Value]>,
    ) -> Option<RowDiff> {
        self.judge(|| self.plan.key_json(key), source, target)
    }

    /// A row found on one side only: missing in the target (a source row) or extra there (a
    /// target row).
    pub fn unmatched(&self, kind: DiffKind, row: &[Value]) -> Option<RowDiff> {
        match kind {
            DiffKind::MissingInTarget => self.rows(Some(row), None),
            DiffKind::ExtraInTarget => self.rows(None, Some(row)),
            DiffKind::Mismatched => None,
        }
    }

    /// A keyless row that is missing (or extra) `n` times: one difference with its count.
    pub fn counted(&self, kind: DiffKind, row: &[Value], n: u64) -> Option<RowDiff> {
        if n == 0 {
            return None;
        }
        if let Some((sink, w)) = &self.fix {
            match kind {
                DiffKind::MissingInTarget => {
                    for _ in 0..n {
                        sink.insert(w.insert(row));
                    }
                }
                DiffKind::ExtraInTarget => sink.delete(w.delete_n(row, n)),
                DiffKind::Mismatched => {}
            }
        }
        Some(RowDiff {
            kind,
            key: self.plan.row_key_json(row),
            columns: Vec::new(),
            count: Some(n),
        })
    }

    fn judge(
        &self,
        key: impl FnOnce() -> serde_json::Map<String, serde_json::Value>,
        source: Option<&[Value]>,
        target: Option<&[Value]>,
    ) -> Option<RowDiff> {
        let fix = self.fix.as_ref();
        let (kind, columns) = match (source, target) {
            (None, None) => return None,
            (Some(x), None) => {
                if let Some((sink, w)) = fix {
                    sink.insert(w.insert(x));
                }
                (DiffKind::MissingInTarget, Vec::new())
            }
            (None, Some(y)) => {
                if let Some((sink, w)) = fix {
                    sink.delete(w.delete(y));
                }
                (DiffKind::ExtraInTarget, Vec::new())
            }
            (Some(x), Some(y)) => {
                let differing = self.differing(x, y);
                if differing.is_empty() {
                    return None;
                }
                if let Some((sink, w)) = fix {
                    for stmt in w.change(x, &differing) {
                        stmt.send(*sink);
                    }
                }
                let columns = differing
                    .iter()
                    .map(|i| ColumnDiff {
                        column: self.plan.columns[*i].name().to_string(),
                        source: x[*i].to_json(),
                        target: y[*i].to_json(),
                    })
                    .collect();
                (DiffKind::Mismatched, columns)
            }
        };
        Some(RowDiff {
            kind,
            key: key(),
            columns,
            count: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ColumnFilter;
    use cutover_core::schema::{Column, Index, Table};
    use cutover_core::value::ColumnKind;
    use std::sync::Mutex;

    fn col(name: &str, kind: ColumnKind) -> Column {
        Column {
            name: name.to_string(),
            data_type: String::new(),
            column_type: String::new(),
            kind,
            nullable: true,
            charset: None,
            collation: None,
            max_length: None,
            precision: None,
            scale: None,
            datetime_precision: None,
            default: None,
            generated: false,
        }
    }

    /// `t (id INT PRIMARY KEY, name TEXT, email TEXT UNIQUE)`.
    fn plan() -> Plan {
        let text = || ColumnKind::Text {
            charset: "utf8mb4".into(),
        };
        let table = Table {
            name: TableName::new("db", "t"),
            columns: vec![
                col("id", ColumnKind::Int { unsigned: false }),
                col("name", text()),
                col("email", text()),
            ],
            indexes: vec![
                Index {
                    name: "PRIMARY".into(),
                    unique: true,
                    columns: vec!["id".into()],
                },
                Index {
                    name: "email".into(),
                    unique: true,
                    columns: vec!["email".into()],
                },
            ],
            estimated_rows: 0,
            charset_collation: None,
        };
        Plan::new(table.clone(), table, &ColumnFilter::default()).unwrap()
    }

    #[derive(Default)]
    struct Sink(Mutex<Vec<String>>);
    impl FixSink for Sink {
        fn delete(&self, sql: String) {
            self.0.lock().unwrap().push(sql);
        }
        fn update(&self, sql: String) {
            self.0.lock().unwrap().push(sql);
        }
        fn insert(&self, sql: String) {
            self.0.lock().unwrap().push(sql);
        }
    }

    fn row(id: i64, name: &str, email: &str) -> Vec<Value> {
        vec![
            Value::Int(id),
            Value::Text(name.into()),
            Value::Text(email.into()),
        ]
    }

    #[test]
    fn a_row_difference_and_its_fix_sql_come_from_same() {
        let plan = plan();
        let compare = CompareOptions::default();
        let sink = Sink::default();
        let target = TableName::new("db", "t");
        let judge = Judge::new(&plan, &compare).with_fix(Some(&sink), &target);
        // Each statement opens with its clear-text comment (`/* db.t: what, key */ `);
        // what follows it is the SQL.
        let statements = || -> Vec<String> {
            std::mem::take(&mut *sink.0.lock().unwrap())
                .into_iter()
                .map(|s| {
                    assert!(s.starts_with("/* db.t: "), "{s}");
                    s.split_once("*/ ")
                        .map(|(_, sql)| sql.to_string())
                        .unwrap_or(s)
                })
                .collect()
        };

        let (a, b) = (row(1, "ann", "a@x"), row(1, "ann", "a@x"));
        assert_eq!(judge.rows(Some(&a), Some(&b)), None);
        assert_eq!(judge.verdict(Some(&a), Some(&b)), None);
        assert_eq!(judge.verdict(None, None), None);
        assert!(statements().is_empty());

        // One cell differs: the difference names it, the fix updates only it.
        let b = row(1, "bob", "a@x");
        let d = judge.rows(Some(&a), Some(&b)).unwrap();
        assert_eq!(d.kind, DiffKind::Mismatched);
        assert_eq!(d.key, plan.row_key_json(&a));
        assert_eq!(d.columns.len(), 1);
        assert_eq!(d.columns[0].column, "name");
        assert_eq!(
            judge.verdict(Some(&a), Some(&b)),
            Some(DiffKind::Mismatched)
        );
        let sql = statements();
        assert_eq!(sql.len(), 1);
        assert!(
            sql[0].starts_with("UPDATE `db`.`t` SET `name` = "),
            "{sql:?}"
        );

        // A unique column differs: DELETE + INSERT, never an UPDATE that could clash.
        let b = row(1, "ann", "b@x");
        assert_eq!(
            judge
                .keyed(&[Value::Int(1)], Some(&a), Some(&b))
                .unwrap()
                .kind,
            DiffKind::Mismatched
        );
        let sql = statements();
        assert_eq!(sql.len(), 2);
        assert!(
            sql[0].starts_with("DELETE") && sql[1].starts_with("INSERT"),
            "{sql:?}"
        );

        // One side only: missing (INSERT of the source row), extra (DELETE of the target's).
        let d = judge.unmatched(DiffKind::MissingInTarget, &a).unwrap();
        assert_eq!((d.kind, d.count), (DiffKind::MissingInTarget, None));
        assert_eq!(
            judge.verdict(Some(&a), None),
            Some(DiffKind::MissingInTarget)
        );
        let d = judge.rows(None, Some(&b)).unwrap();
        assert_eq!(d.kind, DiffKind::ExtraInTarget);
        assert_eq!(d.key, plan.key_json(&[Value::Int(1)]));
        let sql = statements();
        assert!(
            sql[0].starts_with("INSERT") && sql[1].starts_with("DELETE"),
            "{sql:?}"
        );

        // A keyless row missing three times: one difference counting three, three INSERTs.
        let d = judge.counted(DiffKind::MissingInTarget, &a, 3).unwrap();
        assert_eq!(d.count, Some(3));
        assert_eq!(statements().len(), 3);
        assert_eq!(judge.counted(DiffKind::ExtraInTarget, &a, 0), None);
    }
}
