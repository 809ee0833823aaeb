//! A server's answer to one statement, summarised so that two answers can be compared in
//! constant memory: the error (code, SQL state, message), the columns (name and type), the
//! rows as a count and two 128-bit hashes (an order-independent sum of row hashes for the
//! multiset, and a running hash for the sequence), the first rows for the report, affected
//! rows, last insert id, warnings, latency.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed};

use crate::protocol::{ColumnBits, ColumnMeta};

/// Rows kept per answer for the report's side-by-side samples.
pub const SAMPLE_ROWS: usize = 10;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ServerErr {
    pub code: u16,
    pub state: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ServerErr>,
    /// `name type` of each column of each result set (rendered from `defs` for the
    /// report's samples: [`Answer::render_columns`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// A hash of every column's name and type (`Kind::Metadata`); flags,
    /// decimals and character sets are compared apart (`compare::compare_columns`).
    #[serde(skip)]
    pub columns_hash: u64,
    /// The result sets' column definitions as the driver holds them (shared, not copied).
    #[serde(skip)]
    pub defs: Vec<std::sync::Arc<[mysql_async::Column]>>,
    /// The server status flags of the answer's last OK (or result set end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_flags: Option<u16>,
    /// Session-state changes the server reported (session tracking).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_state: Vec<String>,
    pub rows: u64,
    #[serde(skip)]
    pub multiset: u128,
    #[serde(skip)]
    pub sequence: u128,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<Vec<Option<String>>>,
    pub affected_rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_insert_id: Option<u64>,
    pub warnings: u16,
    #[serde(skip)]
    pub latency: Duration,
    /// The connection is gone (not a server error): the session cannot go on.
    #[serde(skip)]
    pub broken: bool,
}

/// Generated IDs seen on the other side, by this side's value (for result cells).
pub type IdMap = HashMap<u64, u64>;

/// The column flags compared ([`crate::protocol::CLIENT_FLAGS`]).
pub fn compared_flags() -> mysql_async::consts::ColumnFlags {
    mysql_async::consts::ColumnFlags::from_bits_truncate(crate::protocol::CLIENT_FLAGS)
}

/// Runs a statement in the text protocol and summarises the answer. `unmap` turns this
/// side's generated IDs in result cells back into the baseline's, so rows that hold them
/// stay comparable.
pub async fn query(conn: &mut mysql_async::Conn, sql: &str, unmap: &IdMap) -> Answer {
    let started = Instant::now();
    let result = conn.query_iter(sql).await;
    let mut a = summarize(result, unmap, started).await;
    a.protocol_state(conn);
    a
}

/// Executes a prepared statement (binary protocol) and summarises the answer.
pub async fn execute(
    conn: &mut mysql_async::Conn,
    stmt: &mysql_async::Statement,
    params: mysql_async::Params,
    unmap: &IdMap,
) -> Answer {
    let started = Instant::now();
    let result = conn.exec_iter(stmt, params).await;
    let mut a = summarize(result, unmap, started).await;
    a.protocol_state(conn);
    a
}

async fn summarize<P: mysql_async::prelude::Protocol>(
    result: mysql_async::Result<mysql_async::QueryResult<'_, 'static, P>>,
    unmap: &IdMap,
    started: Instant,
) -> Answer {
    let mut a = Answer::default();
    let mut result = match result {
        Ok(r) => r,
        Err(e) => {
            a.latency = started.elapsed();
            a.set_error(e);
            return a;
        }
    };
    let mut sequence = Sequence::default();
    let mut defs_hash = xxhash_rust::xxh3::Xxh3::new();
    loop {
        let cols = result.columns().filter(|c| !c.is_empty());
        match &cols {
            None => {
                a.affected_rows += result.affected_rows();
                if let Some(id) = result.last_insert_id().filter(|id| *id != 0) {
                    a.last_insert_id = Some(id);
                }
                a.warnings = a.warnings.saturating_add(result.warnings());
            }
            Some(cols) => {
                for c in cols.iter() {
                    let name = c.name_ref();
                    defs_hash.update(&(name.len() as u64).to_le_bytes());
                    defs_hash.update(name);
                    defs_hash.update(&[c.column_type() as u8]);
                }
                a.defs.push(cols.clone());
            }
        }
        loop {
            match result.next().await {
                Ok(Some(row)) => {
                    a.add_row(
                        (0..row.len()).filter_map(|i| row.as_ref(i)),
                        unmap,
                        &mut sequence,
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    a.set_error(e);
                    a.latency = started.elapsed();
                    return a;
                }
            }
        }
        if cols.is_some() {
            a.warnings = a.warnings.saturating_add(result.warnings());
        }
        if result.is_empty() {
            break;
        }
    }
    if !a.defs.is_empty() {
        a.columns_hash = defs_hash.digest();
    }
    a.sequence = sequence.0;
    a.latency = started.elapsed();
    a
}

/// The running hash of the rows in order, and a buffer reused for every row.
#[derive(Default)]
struct Sequence(u128, Vec<u8>);

impl Answer {
    /// Every column of every result set, as the driver holds them.
    pub fn columns_iter(&self) -> impl Iterator<Item = &mysql_async::Column> {
        self.defs.iter().flat_map(|d| d.iter())
    }

    /// What `compare::compare_columns` compares of each column.
    pub fn column_bits(&self) -> Vec<ColumnBits> {
        self.columns_iter()
            .map(|c| ColumnBits {
                flags: c.flags().bits(),
                decimals: c.decimals(),
                charset: c.character_set(),
            })
            .collect()
    }

    /// The column definitions with names, for reports.
    pub fn column_meta(&self) -> Vec<ColumnMeta> {
        self.columns_iter()
            .map(|c| ColumnMeta {
                name: c.name_str().into_owned(),
                type_name: format!("{:?}", c.column_type()),
                flags: c.flags().bits(),
                decimals: c.decimals(),
                charset: c.character_set(),
            })
            .collect()
    }

    /// The status flags and session-state changes of the answer's last OK packet.
    fn protocol_state(&mut self, conn: &mysql_async::Conn) {
        if self.error.is_some() {
            return;
        }
        if let Some(ok) = conn.last_ok_packet() {
            self.status_flags = Some(ok.status_flags().bits());
            self.session_state = cutover_protocol::session::session_state(ok);
        }
    }

    pub fn set_error(&mut self, e: mysql_async::Error) {
        match e {
            mysql_async::Error::Server(s) => {
                self.error = Some(ServerErr {
                    code: s.code,
                    state: s.state,
                    message: s.message,
                })
            }
            other => {
                self.broken = true;
                self.error = Some(ServerErr {
                    code: 0,
                    state: String::new(),
                    message: format!("connection: {other}"),
                })
            }
        }
    }

    fn add_row<'a>(
        &mut self,
        cells: impl Iterator<Item = &'a mysql_async::Value>,
        unmap: &IdMap,
        seq: &mut Sequence,
    ) {
        let mut buf = std::mem::take(&mut seq.1);
        buf.clear();
        let keep = self.sample.len() < SAMPLE_ROWS;
        let mut text: Vec<Option<String>> = Vec::new();
        for v in cells {
            match v {
                mysql_async::Value::NULL => {
                    buf.push(0);
                    if keep {
                        text.push(None);
                    }
                }
                mysql_async::Value::Bytes(b) => {
                    let mapped = if unmap.is_empty() {
                        None
                    } else {
                        std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                            .and_then(|n| unmap.get(&n))
                            .map(|n| n.to_string())
                    };
                    let bytes = mapped.as_ref().map(|m| m.as_bytes()).unwrap_or(b);
                    buf.push(1);
                    buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    buf.extend_from_slice(bytes);
                    if keep {
                        text.push(Some(String::from_utf8_lossy(bytes).into_owned()));
                    }
                }
                // The text protocol sends every value as bytes; other forms are rendered.
                other => {
                    let s = other.as_sql(true);
                    buf.push(2);
                    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    buf.extend_from_slice(s.as_bytes());
                    if keep {
                        text.push(Some(s));
                    }
                }
            }
        }
        let h = xxh3_128(&buf);
        seq.1 = buf;
        self.multiset = self.multiset.wrapping_add(h);
        let mut chain = [0u8; 32];
        chain[..16].copy_from_slice(&seq.0.to_le_bytes());
        chain[16..].copy_from_slice(&h.to_le_bytes());
        seq.0 = xxh3_128_with_seed(&chain, 7);
        self.rows += 1;
        if keep {
            self.sample.push(text);
        }
    }

    /// Fills `columns` (`name type`, and flags and decimals where set) from the column
    /// definitions, for the report; once, and only for answers shown in it.
    pub fn render_columns(&mut self) {
        if !self.columns.is_empty() {
            return;
        }
        for defs in &self.defs {
            for c in defs.iter() {
                let mut s = format!("{} {:?}", c.name_str(), c.column_type());
                if c.decimals() != 0 {
                    s.push_str(&format!(" decimals {}", c.decimals()));
                }
                let flags = c.flags() & compared_flags();
                if !flags.is_empty() {
                    s.push_str(&format!(" {flags:?}"));
                }
                self.columns.push(s);
            }
        }
    }

    /// A short form for tables: `ERROR 1146 (42S02)`, `3 rows`, `OK, 2 affected`.
    pub fn brief(&self) -> String {
        if let Some(e) = &self.error {
            return format!("ERROR {} ({}): {}", e.code, e.state, e.message);
        }
        if !self.columns.is_empty() || !self.defs.is_empty() {
            let shown: Vec<String> = self
                .sample
                .iter()
                .take(3)
                .map(|r| {
                    let cells: Vec<&str> =
                        r.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
                    format!("({})", cells.join(", "))
                })
                .collect();
            let more = if self.rows > 3 { ", …" } else { "" };
            return match self.rows {
                0 => "0 rows".to_string(),
                1 => format!("1 row: {}", shown.join(", ")),
                n => format!("{n} rows: {}{more}", shown.join(", ")),
            };
        }
        let mut s = format!("OK, {} affected", self.affected_rows);
        if let Some(id) = self.last_insert_id {
            s.push_str(&format!(", id {id}"));
        }
        s
    }
}

/// An answer and its columns as far as a capture summary describes them (for
/// `compat::details` without a baseline, and `compare::compare_captured`).
pub fn from_captured(r: &cutover_workload::Response) -> (Answer, Vec<ColumnMeta>) {
    let answer = Answer {
        error: r.error.as_ref().map(|e| ServerErr {
            code: e.code,
            state: e.state.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
        }),
        status_flags: r.status_flags,
        session_state: r.session_state.clone().unwrap_or_default(),
        warnings: r.warnings.unwrap_or(0),
        affected_rows: r.affected_rows.unwrap_or(0),
        last_insert_id: r.last_insert_id.filter(|id| *id != 0),
        rows: r.rows.unwrap_or(0),
        ..Answer::default()
    };
    let columns = r
        .columns
        .iter()
        .flatten()
        .map(|c| ColumnMeta {
            name: c.name.clone(),
            type_name: c.type_name.clone(),
            flags: c.flags.unwrap_or(0),
            decimals: c.decimals.unwrap_or(0),
            charset: c.charset.unwrap_or(0),
        })
        .collect();
    (answer, columns)
}

/// A short form of what the capture saw, as [`Answer::brief`] is of an answer.
pub(crate) fn captured_brief(r: &cutover_workload::Response) -> String {
    if let Some(e) = &r.error {
        return format!("ERROR {} (captured)", e.code);
    }
    let mut parts = Vec::new();
    if let Some(n) = r.rows {
        parts.push(format!("{n} rows"));
    }
    if let Some(n) = r.affected_rows {
        parts.push(format!("{n} affected"));
    }
    format!("{} (captured)", parts.join(", "))
}

/// Rewrites the generated IDs a statement uses (number tokens only, never digits inside
/// strings or names) from the captured or baseline values to this side's.
pub fn map_ids(sql: &str, map: &IdMap) -> Option<String> {
    if map.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    let mut changed = false;
    for t in cutover_workload::tokenize(sql) {
        if t.kind != cutover_workload::TokenKind::Number {
            continue;
        }
        if let Some(to) = t.text(sql).parse::<u64>().ok().and_then(|n| map.get(&n)) {
            out.push_str(&sql[last..t.start]);
            out.push_str(&to.to_string());
            last = t.end;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&sql[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, Kind};

    fn rows(v: &[&[&str]]) -> Answer {
        let mut a = Answer::default();
        a.columns.push("a Long".into());
        let mut seq = Sequence::default();
        for r in v {
            let cells: Vec<mysql_async::Value> = r
                .iter()
                .map(|c| mysql_async::Value::Bytes(c.as_bytes().to_vec()))
                .collect();
            a.add_row(cells.iter(), &IdMap::new(), &mut seq);
        }
        a.sequence = seq.0;
        a
    }

    #[test]
    fn multiset_unless_ordered() {
        let x = rows(&[&["1"], &["2"], &["2"]]);
        let y = rows(&[&["2"], &["1"], &["2"]]);
        assert!(compare(&x, &y, false).is_empty());
        assert_eq!(compare(&x, &y, true), vec![Kind::Rows]);
        let z = rows(&[&["1"], &["1"], &["2"]]);
        assert_eq!(compare(&x, &z, false), vec![Kind::Rows]);
        // Cells are length-prefixed: ("1","23") is not ("12","3").
        assert_eq!(
            compare(&rows(&[&["1", "23"]]), &rows(&[&["12", "3"]]), false),
            vec![Kind::Rows]
        );
    }

    #[test]
    fn errors_first() {
        let ok = rows(&[&["1"]]);
        let err = Answer {
            error: Some(ServerErr {
                code: 1146,
                ..ServerErr::default()
            }),
            ..Answer::default()
        };
        assert_eq!(compare(&ok, &err, false), vec![Kind::Error]);
        assert!(compare(&err, &err.clone(), false).is_empty());
    }

    #[test]
    fn ids_are_mapped_in_numbers_only() {
        let map: IdMap = [(5, 1005)].into_iter().collect();
        assert_eq!(
            map_ids("select '5', `c5`, 5, 55 from t where id=5", &map).as_deref(),
            Some("select '5', `c5`, 1005, 55 from t where id=1005")
        );
        assert_eq!(map_ids("select 6", &map), None);
    }
}
