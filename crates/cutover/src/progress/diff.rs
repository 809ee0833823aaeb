//! `cutover diff`'s progress: tables done of all, rows, rows/s, and an ETA for the whole run.
//!
//! The ETA is the rows left divided by the measured rate. The rows left are the servers'
//! estimates (`information_schema.TABLES.TABLE_ROWS`, read once before the first table) of
//! the tables not finished yet, corrected by what the finished tables turned out to hold:
//! InnoDB's estimates are often off by tens of percent, and mostly the same way for tables
//! loaded alike, so the ratio of rows found to rows estimated so far is the best guess for
//! the rest. The current table's own estimate is the engine's (the larger of the two sides).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cutover_core::sql::quote_str;
use cutover_core::{Db, TableName};
use cutover_diff::{Progress, Status, TablePair, TableReport};

use super::{lock, Item, Meter, Reading, Reporter, Unit};

/// The correction applied to the estimates stays within these bounds: a first table
/// of a handful of rows must not multiply the rest by a thousand.
const CORRECTION: (f64, f64) = (0.05, 20.0);

/// Progress events of the diff engine, shown as a [`Reporter`].
pub struct DiffProgress {
    meter: Arc<DiffMeter>,
    reporter: Reporter,
}

struct DiffMeter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Tables to compare (skipped ones are not counted).
    tables: usize,
    tables_done: usize,
    tables_differing: usize,
    /// Estimated rows of the tables not started yet, by their (first) source table.
    unstarted: HashMap<String, u64>,
    current: Option<Current>,
    rows: u64,
    /// Estimated and compared rows of the finished tables, for the correction.
    finished_estimated: u64,
    finished_rows: u64,
}

struct Current {
    name: String,
    estimated: u64,
    rows: u64,
}

impl State {
    /// Found / estimated over the finished tables, within [`CORRECTION`]; 1 until a table
    /// with an estimate has finished.
    fn correction(&self) -> f64 {
        if self.finished_estimated == 0 {
            return 1.0;
        }
        (self.finished_rows as f64 / self.finished_estimated as f64)
            .clamp(CORRECTION.0, CORRECTION.1)
    }

    /// Rows still to compare, by the corrected estimates.
    fn rows_left(&self) -> u64 {
        let c = self.correction();
        let unstarted: u64 = self.unstarted.values().sum();
        let current = self
            .current
            .as_ref()
            .map(|t| ((t.estimated as f64 * c) as u64).saturating_sub(t.rows))
            .unwrap_or(0);
        (unstarted as f64 * c) as u64 + current
    }
}

impl DiffProgress {
    /// Progress of `tables` tables whose sizes are not known beforehand (the ETA covers
    /// the current table).
    pub fn new(tables: usize) -> DiffProgress {
        DiffProgress::start(State {
            tables,
            ..State::default()
        })
    }

    /// Progress of `pairs`, with the source's row estimates (from [`estimates`]).
    pub fn for_pairs(pairs: &[TablePair], estimates: &HashMap<String, u64>) -> DiffProgress {
        let compared: Vec<&TablePair> = pairs.iter().filter(|p| !p.skipped).collect();
        let unstarted = compared
            .iter()
            .map(|p| {
                let rows = p
                    .sources()
                    .iter()
                    .map(|t| estimates.get(&t.to_string()).copied().unwrap_or(0))
                    .sum();
                // The engine names a table by its first source (of merged shards).
                let first = p.sources().first().unwrap_or(&p.source);
                (first.to_string(), rows)
            })
            .collect();
        DiffProgress::start(State {
            tables: compared.len(),
            unstarted,
            ..State::default()
        })
    }

    fn start(state: State) -> DiffProgress {
        let meter = Arc::new(DiffMeter {
            state: Mutex::new(state),
        });
        DiffProgress {
            reporter: Reporter::start("diff", meter.clone()),
            meter,
        }
    }

    /// Stops; the overall bar stays as the run's summary line.
    pub fn finish(&self) {
        self.reporter.finish();
    }
}

/// The source's row estimates of the tables of `pairs` (`db.table` → rows), read in one
/// query per run. Estimates only inform the ETA: when they cannot be read, there are none.
pub async fn estimates(source: &Db, pairs: &[TablePair]) -> HashMap<String, u64> {
    let mut schemas: Vec<&str> = pairs
        .iter()
        .filter(|p| !p.skipped)
        .flat_map(|p| p.sources().iter().map(|t| t.schema.as_str()))
        .collect();
    schemas.sort_unstable();
    schemas.dedup();
    if schemas.is_empty() {
        return HashMap::new();
    }
    let list = schemas
        .iter()
        .map(|s| quote_str(s))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(String, String, Option<u64>)> = source
        .query(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ({list})"
        ))
        .await
        .unwrap_or_default();
    rows.into_iter()
        .map(|(s, t, n)| (TableName::new(s, t).to_string(), n.unwrap_or(0)))
        .collect()
}

impl Progress for DiffProgress {
    fn table_started(&self, source: &TableName, estimated_rows: u64) {
        let mut s = lock(&self.meter.state);
        let name = source.to_string();
        s.unstarted.remove(&name);
        s.current = Some(Current {
            name,
            estimated: estimated_rows,
            rows: 0,
        });
    }

    fn rows_done(&self, _source: &TableName, rows: u64) {
        let mut s = lock(&self.meter.state);
        s.rows += rows;
        if let Some(c) = s.current.as_mut() {
            c.rows += rows;
        }
    }

    fn table_finished(&self, report: &TableReport) {
        let mut s = lock(&self.meter.state);
        let first = report
            .source_tables()
            .into_iter()
            .next()
            .unwrap_or_default();
        let current = match s.current.take() {
            Some(c) if c.name == first => Some(c),
            other => {
                s.current = other;
                None
            }
        };
        // A table that failed before its first row has no current entry: its estimate
        // leaves the rows to do, and nothing counts toward the correction.
        let unstarted = s.unstarted.remove(&first);
        if let Some(c) = current {
            if report.status != Status::Error && unstarted.is_none() {
                s.finished_estimated += c.estimated;
                s.finished_rows += c.rows;
            }
        }
        s.tables_done += 1;
        if report.status == Status::Different {
            s.tables_differing += 1;
        }
    }
}

impl Meter for DiffMeter {
    fn read(&self) -> Reading {
        let s = lock(&self.state);
        let mut r = Reading::new(Unit::Count("rows"));
        r.before.push(format!(
            "{}/{} tables",
            s.tables_done,
            s.tables.max(s.tables_done)
        ));
        r.done = s.rows;
        // Once every table is done the total is exact; before, it is the rows compared and
        // the corrected estimates of the rest. Without estimates (none could be read, or
        // `--schema-only`) there is none.
        let left = s.rows_left();
        if s.tables > 0 && s.tables_done >= s.tables {
            r.total = Some(s.rows);
        } else if s.rows + left > 0 && (left > 0 || s.current.is_some() || !s.unstarted.is_empty())
        {
            r.total = Some(s.rows + left);
            r.approx_total = true;
        }
        if s.tables_differing > 0 {
            r.after.push(format!(
                "{} table{} differ{}",
                s.tables_differing,
                if s.tables_differing == 1 { "" } else { "s" },
                if s.tables_differing == 1 { "s" } else { "" }
            ));
        }
        r.item = s.current.as_ref().map(|c| Item {
            label: c.name.clone(),
            done: c.rows,
            total: Some((c.estimated as f64 * s.correction()) as u64),
        });
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, status: Status) -> TableReport {
        let mut r =
            TableReport::for_sources(&[TableName::new("db", name)], &TableName::new("db", name));
        r.status = status;
        r
    }

    #[test]
    fn the_rows_left_follow_what_finished_tables_held() {
        let mut est = HashMap::new();
        for t in ["a", "b", "c"] {
            est.insert(format!("db.{t}"), 1000);
        }
        let pairs: Vec<TablePair> = ["a", "b", "c"]
            .iter()
            .map(|t| TablePair::new(TableName::new("db", *t), TableName::new("db", *t)))
            .collect();
        let p = DiffProgress::for_pairs(&pairs, &est);
        let r = p.meter.read();
        assert_eq!((r.done, r.total), (0, Some(3000)));
        assert_eq!(r.before, vec!["0/3 tables".to_string()]);
        // The first table holds twice its estimate: the others are expected to as well.
        let a = TableName::new("db", "a");
        p.table_started(&a, 1000);
        p.rows_done(&a, 1500);
        let r = p.meter.read();
        assert_eq!(r.total, Some(1500 + 2000));
        assert_eq!(
            r.item.as_ref().map(|i| (i.done, i.total)),
            Some((1500, Some(1000)))
        );
        p.rows_done(&a, 500);
        p.table_finished(&report("a", Status::Different));
        let r = p.meter.read();
        assert_eq!((r.done, r.total), (2000, Some(2000 + 4000)));
        assert_eq!(r.before, vec!["1/3 tables".to_string()]);
        assert_eq!(r.after, vec!["1 table differs".to_string()]);
        assert!(r.item.is_none());
        // A table that fails before it starts leaves the rows to do.
        p.table_finished(&report("b", Status::Error));
        let r = p.meter.read();
        assert_eq!(r.total, Some(2000 + 2000));
        p.finish();
    }
}
