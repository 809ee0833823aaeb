//! `cutover check --transactions DURATION` / `--binlog-from FILE:POS`: the source's
//! transactions as its binlog holds them, against TiDB's transaction limits.
//!
//! TiDB refuses at commit a transaction larger than `txn-total-size-limit` (100 MiB by
//! default), one key-value entry larger than `txn-entry-size-limit` (6 MiB), and a pessimistic
//! transaction that lived longer than `max-txn-ttl` (1 h)
//! (https://docs.pingcap.com/tidb/stable/tidb-configuration-file). The binlog shows each
//! transaction of the source whole: its row events (their bytes are the rows' bytes), its
//! tables, its first and last event times.
//!
//! The binlog is read as a replica would (`COM_BINLOG_DUMP`, non-blocking: the stream ends
//! at the binlog's current end), event headers first: row events are decoded only to count
//! their rows. Memory is bounded: the open transaction and the largest transactions kept.
//! Nothing is written to the source.

use std::collections::BTreeSet;

use cutover_core::Db;
use cutover_verify::position::BinlogPos;
use futures_util::StreamExt;
use mysql_async::binlog::events::EventData;
use mysql_async::BinlogStreamRequest;

use crate::finding::{Finding, Severity};
pub use crate::finding::{TxnLine, TxnSummary};

const MIB: u64 = 1024 * 1024;

/// The limits transactions are held against (`--tidb-txn-limit`, `--tidb-entry-limit`,
/// `--tidb-txn-ttl`).
#[derive(Clone, Debug)]
pub struct TxnLimits {
    pub total_bytes: u64,
    pub entry_bytes: u64,
    pub ttl_secs: f64,
}

impl Default for TxnLimits {
    fn default() -> Self {
        TxnLimits {
            total_bytes: 100 * MIB,
            entry_bytes: 6 * MIB,
            ttl_secs: 3600.0,
        }
    }
}

/// Where reading starts.
#[derive(Clone, Debug)]
pub enum ScanFrom {
    /// `--binlog-from FILE:POS`.
    Position(BinlogPos),
    /// `--transactions DURATION`: transactions committed this long before now (read from
    /// the oldest binlog file the source keeps).
    Since(std::time::Duration),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnScanError {
    #[error(transparent)]
    Db(#[from] cutover_core::DbError),
    #[error("reading the source's binlog at {position}: {message}")]
    Stream { position: String, message: String },
    /// `SHOW BINARY LOGS` failed: the binlog is off or the user lacks the privilege.
    #[error("listing the source's binlogs (needs the binlog on and REPLICATION CLIENT / BINLOG MONITOR): {0}")]
    ListBinlogs(cutover_core::DbError),
    #[error("the source keeps no binlog files")]
    NoBinlogFiles,
}

/// Transactions kept by size for the summary.
const KEEP_LARGEST: usize = 10;
/// Findings per rule; the rest are counted in the last one's message.
const MAX_FINDINGS_PER_RULE: usize = 50;

struct Open {
    line: TxnLine,
    /// The times of its first and last row events: every event carries the time its
    /// statement began, while the GTID and commit events' times vary by server.
    first_ts: u32,
    last_ts: u32,
    tables: BTreeSet<String>,
}

impl Open {
    /// A transaction that starts at `position` (with its GTID, when the binlog has one) at
    /// event time `ts`.
    fn at(position: String, gtid: Option<String>, ts: u32) -> Open {
        Open {
            line: TxnLine {
                position,
                gtid,
                ..TxnLine::default()
            },
            first_ts: ts,
            last_ts: ts,
            tables: BTreeSet::new(),
        }
    }
}

// Event type codes (MySQL's binlog_event.h; MariaDB's log_event.h for 162).
const QUERY_EVENT: u8 = 2;
const ROTATE_EVENT: u8 = 4;
const XID_EVENT: u8 = 16;
const GTID_LOG_EVENT: u8 = 33;
const ANONYMOUS_GTID_LOG_EVENT: u8 = 34;
const MARIADB_GTID_EVENT: u8 = 162;

fn is_rows_event(t: u8) -> bool {
    // WRITE/UPDATE/DELETE_ROWS v1 (23–25) and v2 (30–32); MariaDB's compressed ones (166–171).
    matches!(t, 23..=25 | 30..=32 | 166..=171)
}

/// Reads the binlog from `from` to its current end and holds every transaction against
/// `limits`. `server_id` is the replica id the stream registers with.
pub async fn scan(
    source: &Db,
    from: &ScanFrom,
    limits: &TxnLimits,
    server_id: u32,
) -> Result<(Vec<Finding>, TxnSummary), TxnScanError> {
    let (start, cutoff) = match from {
        ScanFrom::Position(p) => (p.clone(), 0u32),
        ScanFrom::Since(d) => {
            let files: Vec<(String, u64)> = source
                .query("SHOW BINARY LOGS")
                .await
                .map_err(TxnScanError::ListBinlogs)?;
            let Some((first, _)) = files.into_iter().next() else {
                return Err(TxnScanError::NoBinlogFiles);
            };
            let now: Vec<u64> = source.query("SELECT UNIX_TIMESTAMP()").await?;
            let now = now.into_iter().next().unwrap_or(0);
            let cutoff = now.saturating_sub(d.as_secs()).min(u32::MAX as u64) as u32;
            (BinlogPos::new(first, 4), cutoff)
        }
    };
    let stream_err = |position: &BinlogPos, e: mysql_async::Error| TxnScanError::Stream {
        position: position.to_string(),
        message: e.to_string(),
    };
    let mut conn = source.standalone().await?;
    if source.flavor() == cutover_core::Flavor::MariaDb {
        // A replica that announces GTID capability gets MariaDB's GTID events (otherwise
        // the server turns them into BEGIN queries, and the GTIDs are lost).
        use mysql_async::prelude::Queryable;
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(|e| stream_err(&start, e))?;
    }
    let mut stream = conn
        .get_binlog_stream(
            BinlogStreamRequest::new(server_id)
                .with_filename(start.file.as_bytes())
                .with_pos(start.pos)
                .with_non_blocking(),
        )
        .await
        .map_err(|e| stream_err(&start, e))?;

    let mut position = start.clone();
    let mut summary = TxnSummary {
        from: start.to_string(),
        ..TxnSummary::default()
    };
    let mut open: Option<Open> = None;
    let mut done: Vec<TxnLine> = Vec::new();
    let mut over: Vec<(&'static str, Severity, TxnLine, String)> = Vec::new();
    let mut counts = [0usize; 3];
    let mut seen_format = false;
    let checksums = {
        let v: Vec<Option<String>> = source
            .query("SELECT CAST(@@binlog_checksum AS CHAR)")
            .await?;
        !v.into_iter()
            .next()
            .flatten()
            .is_some_and(|c| c.eq_ignore_ascii_case("NONE"))
    };

    let mut finish = |open: &mut Option<Open>, summary: &mut TxnSummary| {
        let Some(o) = open.take() else { return };
        if o.line.rows == 0 || o.last_ts < cutoff {
            return;
        }
        summary.transactions += 1;
        let mut line = o.line;
        line.duration_s = u64::from(o.last_ts.saturating_sub(o.first_ts));
        line.committed_at = o.last_ts;
        line.tables = o.tables.into_iter().collect();
        let checks: [(usize, &'static str, f64, f64, String); 3] = [
            (
                0,
                "transactions.total_size",
                line.bytes as f64,
                limits.total_bytes as f64,
                "txn-total-size-limit".into(),
            ),
            (
                1,
                "transactions.entry_size",
                line.largest_event as f64,
                limits.entry_bytes as f64,
                "txn-entry-size-limit".into(),
            ),
            (
                2,
                "transactions.ttl",
                line.duration_s as f64,
                limits.ttl_secs,
                "max-txn-ttl".into(),
            ),
        ];
        for (i, rule, value, limit, name) in checks {
            let sev = if value > limit {
                Severity::Error
            } else if value > limit / 2.0 {
                Severity::Warning
            } else {
                continue;
            };
            counts[i] += 1;
            if counts[i] <= MAX_FINDINGS_PER_RULE {
                over.push((rule, sev, line.clone(), name));
            }
        }
        done.push(line);
        if done.len() > KEEP_LARGEST * 4 {
            done.sort_by_key(|t| std::cmp::Reverse(t.bytes));
            done.truncate(KEEP_LARGEST);
        }
    };

    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = source.cancel_token().cancelled() => {
                return Err(cutover_core::DbError::Interrupted.into())
            }
        };
        let Some(event) = event else { break };
        let event = event.map_err(|e| stream_err(&position, e))?;
        summary.events += 1;
        let h = event.header();
        let size = u64::from(h.event_size());
        let end = h.log_pos();
        let ts = h.timestamp();
        let kind = h.event_type_raw();
        summary.bytes += size;
        let here = BinlogPos::new(position.file.clone(), u64::from(end).saturating_sub(size));
        match kind {
            ROTATE_EVENT => {
                if let Ok(Some(EventData::RotateEvent(r))) = event.read_data() {
                    let mut name = r.name_raw();
                    // Before the format description, the name has the checksum attached.
                    if checksums && !seen_format {
                        name = &name[..name.len().saturating_sub(4)];
                    }
                    position =
                        BinlogPos::new(String::from_utf8_lossy(name).into_owned(), r.position());
                }
                continue;
            }
            15 => seen_format = true,
            MARIADB_GTID_EVENT | GTID_LOG_EVENT | ANONYMOUS_GTID_LOG_EVENT => {
                finish(&mut open, &mut summary);
                let d = event.data();
                let gtid = (kind == MARIADB_GTID_EVENT && d.len() >= 12).then(|| {
                    let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or([0; 8]));
                    let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or([0; 4]));
                    format!("{domain}-{}-{seq}", h.server_id())
                });
                open = Some(Open::at(here.to_string(), gtid, ts));
            }
            QUERY_EVENT => {
                if let Ok(Some(EventData::QueryEvent(q))) = event.read_data() {
                    let text = q.query();
                    let t = text.trim();
                    if t.eq_ignore_ascii_case("BEGIN") {
                        if open.is_none() {
                            open = Some(Open::at(here.to_string(), None, ts));
                        }
                    } else if t.eq_ignore_ascii_case("COMMIT") {
                        finish(&mut open, &mut summary);
                    }
                }
            }
            XID_EVENT => finish(&mut open, &mut summary),
            k if is_rows_event(k) => {
                let o = open.get_or_insert_with(|| Open::at(here.to_string(), None, ts));
                if o.line.rows == 0 && o.line.bytes == 0 {
                    o.first_ts = ts;
                    o.last_ts = ts;
                }
                o.line.bytes += size;
                o.line.largest_event = o.line.largest_event.max(size);
                o.last_ts = o.last_ts.max(ts);
                if let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() {
                    if let Some(tme) = stream.get_tme(rows.table_id()) {
                        if o.tables.len() < 20 {
                            o.tables.insert(format!(
                                "{}.{}",
                                tme.database_name(),
                                tme.table_name()
                            ));
                        }
                        o.line.rows += rows.rows(tme).count() as u64;
                    }
                }
            }
            _ => {}
        }
        if end > 0 {
            position.pos = u64::from(end);
        }
    }
    finish(&mut open, &mut summary);
    summary.to = position.to_string();
    done.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    done.truncate(KEEP_LARGEST);
    summary.largest = done;

    let mut findings = Vec::new();
    for (rule, sev, line, name) in over {
        let what = match rule {
            "transactions.total_size" => format!(
                "{} of row data ({} rows)",
                human_bytes(line.bytes),
                line.rows
            ),
            "transactions.entry_size" => format!(
                "a row event of {} (one row at most that large)",
                human_bytes(line.largest_event)
            ),
            _ => format!("open {} s", line.duration_s),
        };
        let limit = match rule {
            "transactions.total_size" => human_bytes(limits.total_bytes),
            "transactions.entry_size" => human_bytes(limits.entry_bytes),
            _ => format!("{} s", limits.ttl_secs),
        };
        let (verb, advice) = match sev {
            Severity::Error => ("exceeds", "TiDB refuses it at commit: split the transaction (batches of rows), or raise the limit in the TiDB configuration (performance.txn-total-size-limit / txn-entry-size-limit, max-txn-ttl) where the cluster's memory allows; source: https://docs.pingcap.com/tidb/stable/tidb-configuration-file"),
            _ => ("is above half of", "within the limit today, but it grows with the data: batch it or plan the limit; source: https://docs.pingcap.com/tidb/stable/tidb-configuration-file"),
        };
        let mut f = Finding::new(
            rule,
            sev,
            Some(line.position.clone()),
            format!(
                "a transaction at {}{} on {}: {what} {verb} TiDB's {name} ({limit})",
                line.position,
                line.gtid
                    .as_deref()
                    .map(|g| format!(" (GTID {g})"))
                    .unwrap_or_default(),
                if line.tables.is_empty() {
                    "no table".to_string()
                } else {
                    line.tables.join(", ")
                }
            ),
            advice,
        );
        f.transaction = Some(line);
        findings.push(f);
    }
    for (i, rule) in [
        "transactions.total_size",
        "transactions.entry_size",
        "transactions.ttl",
    ]
    .iter()
    .enumerate()
    {
        if counts[i] > MAX_FINDINGS_PER_RULE {
            findings.push(Finding::new(
                rule,
                Severity::Warning,
                None,
                format!(
                    "{} more transactions above the limit or half of it are not listed",
                    counts[i] - MAX_FINDINGS_PER_RULE
                ),
                "see the ones listed",
            ));
        }
    }
    Ok((findings, summary))
}

pub fn human_bytes(b: u64) -> String {
    if b >= MIB {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    } else if b >= 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}
