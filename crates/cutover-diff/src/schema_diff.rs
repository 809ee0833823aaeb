//! The schema section of every report: what differs between the two tables' definitions.
//!
//! Columns (type, nullability, default, charset, collation, generated), columns on one side
//! only, indexes (missing, extra, other columns, other uniqueness) and the table's default
//! collation. Only a column on one side only changes a table's verdict by itself (its data is
//! missing); everything else is information a DBA needs and the rows decide the verdict —
//! except under `--schema-only`, where the definitions are the verdict.

use cutover_core::schema::{Column, Index, Table};

use crate::report::SchemaDiff;

pub use cutover_rows::filter::ColumnFilter;

/// Every definition difference between `source` and `target`, for the kept columns.
pub fn compare(source: &Table, target: &Table, filter: &ColumnFilter) -> Vec<SchemaDiff> {
    let table = source.name.to_string();
    let mut out = Vec::new();
    for sc in source
        .columns
        .iter()
        .filter(|c| filter.keeps(&table, &c.name))
    {
        match target.column(&sc.name) {
            Some(tc) => compare_columns(sc, tc, &mut out),
            None => out.push(diff(
                &sc.name,
                "missing_in_target",
                Some(sc.column_type.clone()),
                None,
            )),
        }
    }
    for tc in target
        .columns
        .iter()
        .filter(|c| filter.keeps(&table, &c.name))
    {
        if source.column(&tc.name).is_none() {
            out.push(diff(
                &tc.name,
                "extra_in_target",
                None,
                Some(tc.column_type.clone()),
            ));
        }
    }
    compare_indexes(source, target, &mut out);
    if source.charset_collation != target.charset_collation {
        out.push(diff(
            "table",
            "collation",
            source.charset_collation.clone(),
            target.charset_collation.clone(),
        ));
    }
    out
}

fn diff(object: &str, what: &str, source: Option<String>, target: Option<String>) -> SchemaDiff {
    SchemaDiff {
        object: object.to_string(),
        what: what.to_string(),
        source,
        target,
    }
}

/// Definition differences of one column pair that matter to a DBA.
fn compare_columns(s: &Column, t: &Column, out: &mut Vec<SchemaDiff>) {
    let mut push = |what: &str, a: String, b: String| {
        if a != b {
            out.push(diff(&s.name, what, Some(a), Some(b)));
        }
    };
    push("type", normalized_type(s), normalized_type(t));
    push("nullable", s.nullable.to_string(), t.nullable.to_string());
    push("default", normalized_default(s), normalized_default(t));
    push(
        "charset",
        s.charset.clone().unwrap_or_default(),
        t.charset.clone().unwrap_or_default(),
    );
    push(
        "collation",
        s.collation.clone().unwrap_or_default(),
        t.collation.clone().unwrap_or_default(),
    );
    push(
        "generated",
        s.generated.to_string(),
        t.generated.to_string(),
    );
}

/// The column type without what does not change the data: integer display widths
/// (`int(11)` is `int`; MySQL 8 and TiDB no longer print them).
fn normalized_type(c: &Column) -> String {
    let t = c.column_type.to_ascii_lowercase();
    if c.kind.is_integer() {
        if let (Some(open), Some(close)) = (t.find('('), t.find(')')) {
            if open < close {
                return format!("{}{}", &t[..open], &t[close + 1..]);
            }
        }
    }
    t
}

/// A default as the servers mean it: MariaDB quotes string defaults in
/// `information_schema` (`'abc'`) and says `NULL` where MySQL leaves the field NULL.
fn normalized_default(c: &Column) -> String {
    match c.default.as_deref() {
        None | Some("NULL") => "NULL".to_string(),
        Some(d) => {
            let d = d.trim();
            let unquoted = d
                .strip_prefix('\'')
                .and_then(|x| x.strip_suffix('\''))
                .map(|x| x.replace("''", "'"));
            match unquoted {
                Some(u) => format!("'{u}'"),
                None if c.kind.is_text_like() && !d.contains('(') => format!("'{d}'"),
                None => d.to_ascii_lowercase(),
            }
        }
    }
}

fn compare_indexes(source: &Table, target: &Table, out: &mut Vec<SchemaDiff>) {
    let show = |i: &Index| {
        format!(
            "{}({})",
            if i.unique { "UNIQUE " } else { "" },
            i.columns.join(", ")
        )
    };
    let find = |t: &Table, name: &str| {
        t.indexes
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
            .cloned()
    };
    for si in &source.indexes {
        match find(target, &si.name) {
            None => out.push(diff(
                &format!("index {}", si.name),
                "missing_in_target",
                Some(show(si)),
                None,
            )),
            Some(ti) => {
                let same_cols = si.columns.len() == ti.columns.len()
                    && si
                        .columns
                        .iter()
                        .zip(&ti.columns)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b));
                if !same_cols || si.unique != ti.unique {
                    out.push(diff(
                        &format!("index {}", si.name),
                        "definition",
                        Some(show(si)),
                        Some(show(&ti)),
                    ));
                }
            }
        }
    }
    for ti in &target.indexes {
        if find(source, &ti.name).is_none() {
            out.push(diff(
                &format!("index {}", ti.name),
                "extra_in_target",
                None,
                Some(show(ti)),
            ));
        }
    }
}
