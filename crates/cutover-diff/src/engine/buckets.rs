//! Any other key, and keyless tables: checksums per hash bucket of the key, then the rows of
//! the buckets that differ.
//!
//! Per-bucket checksums by a hash of the exact key come from one `GROUP BY` scan per side, so
//! collations cannot misalign the sides and the cost stays linear. The rows of differing
//! buckets are read from both sides at once and matched by exact key as they arrive, or
//! counted as a multiset for keyless tables. When many rows differ, one ordered pass per side
//! (by the key's bytes) is merged in constant memory instead ([`Ctx::compare_ordered`]).

use cutover_core::schema::TableName;
use cutover_core::value::{ColumnKind, Value};
use mysql_async::prelude::Queryable;

use crate::plan::{Mode, Side};
use crate::report::DiffKind;
use cutover_rows::fetch::read_error;

use super::{lock, parse_u128, Checksum, Ctx, Progress, TableError};

/// Rows of differing buckets read and matched at a time (memory stays bounded by this).
pub(super) const BUCKET_BATCH_ROWS: u64 = 100_000;

impl Ctx<'_> {
    /// Compares a table without an integer key: checksums per hash bucket of the key (one
    /// scan per side), then the rows of the buckets that differ, matched by their exact key
    /// (or, keyless, counted as a multiset).
    pub(super) async fn bucket_diff(
        &self,
        estimated: u64,
        progress: &dyn Progress,
        source_name: &TableName,
    ) -> Result<(), TableError> {
        // About a thousand rows a bucket: a differing bucket costs little to read.
        let buckets = (estimated / 1000).clamp(16, 1 << 20);
        if let Some(t) = &self.opts.throttle {
            t.0.wait(0).await?;
        }
        let (s, t) = tokio::join!(
            self.bucket_sums(Side::Source, buckets),
            self.bucket_sums(Side::Target, buckets)
        );
        let (s, t) = (s?, t?);
        let rows: u64 = s.values().map(|c| c.count).sum();
        {
            let mut f = lock(&self.findings);
            f.report.rows_compared += rows;
            f.report.chunks += 1;
        }
        progress.rows_done(source_name, rows);
        if let Some(t) = &self.opts.throttle {
            t.0.wait(rows).await?;
        }
        let mut ids: Vec<u64> = s.keys().chain(t.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let differing: u64 = ids
            .iter()
            .filter(|b| !matches!((s.get(b), t.get(b)), (Some(x), Some(y)) if x.same_rows(y)))
            .map(|b| {
                let n = |m: &std::collections::HashMap<u64, Checksum>| {
                    m.get(b).map(|c| c.count).unwrap_or(0)
                };
                n(&s).max(n(&t))
            })
            .sum();
        // Each batch below is one more scan of the table: past a few batches, one ordered
        // pass per side is cheaper, and its cost does not grow with the differences.
        // JSON columns in the key (a keyless table) would be sorted by the server by their
        // stored text, which the client cannot reproduce from parsed JSON: those tables stay
        // on the order-free bucket matching.
        let orderable = !self.plan.key_columns.iter().any(|i| {
            let p = &self.plan.columns[*i];
            p.source.kind == ColumnKind::Json || p.target.kind == ColumnKind::Json
        });
        if orderable && differing > self.opts.ordered_above_rows {
            return self.compare_ordered().await;
        }
        let mut batch: Vec<u64> = Vec::new();
        let mut batch_rows = 0u64;
        for b in ids {
            let (x, y) = (s.get(&b), t.get(&b));
            let equal = matches!((x, y), (Some(x), Some(y)) if x.same_rows(y));
            if equal {
                continue;
            }
            let size = x
                .map(|c| c.count)
                .unwrap_or(0)
                .max(y.map(|c| c.count).unwrap_or(0));
            // Bounded batches keep memory flat however many buckets differ.
            if !batch.is_empty() && (batch_rows + size > BUCKET_BATCH_ROWS || batch.len() >= 500) {
                self.compare_buckets(buckets, &batch).await?;
                batch.clear();
                batch_rows = 0;
            }
            batch.push(b);
            batch_rows += size;
        }
        if !batch.is_empty() {
            self.compare_buckets(buckets, &batch).await?;
        }
        Ok(())
    }

    pub(super) async fn bucket_sums(
        &self,
        side: Side,
        buckets: u64,
    ) -> Result<std::collections::HashMap<u64, Checksum>, TableError> {
        let (_, sql) = self.side(side);
        let rows: Vec<(u64, u64, String, String)> = self
            .per_table(side, |t| {
                format!(
                    // `ORDER BY NULL`: the groups need no sorting (MariaDB and MySQL 5.7 would
                    // sort them to honour the old implicit GROUP BY order).
                    "SELECT {b}, {sel} FROM {t} GROUP BY 1 ORDER BY NULL",
                    b = self.plan.bucket_expr(side, buckets),
                    sel = sql.checksum_select,
                )
            })
            .await?;
        let mut out: std::collections::HashMap<u64, Checksum> =
            std::collections::HashMap::with_capacity(rows.len());
        for (b, count, s1, s2) in rows {
            out.entry(b).or_default().add(&Checksum {
                count,
                sum1: parse_u128(&s1)?,
                sum2: parse_u128(&s2)?,
                min: None,
                max: None,
            });
        }
        Ok(out)
    }

    /// Reads the rows of some buckets from both sides at once and matches them by exact key
    /// as they arrive: a row waits only until its partner from the other side comes.
    pub(super) async fn compare_buckets(
        &self,
        buckets: u64,
        ids: &[u64],
    ) -> Result<(), TableError> {
        type Pending = std::collections::HashMap<Vec<u8>, Vec<Vec<Value>>>;
        let list: Vec<String> = ids.iter().map(|b| b.to_string()).collect();
        let q = |side: Side| {
            let (_, sql) = self.side(side);
            format!(
                "SELECT {cols} {from}",
                cols = sql.row_select,
                from = sql.rows_from(Some(&format!(
                    "{b} IN ({list})",
                    b = self.plan.bucket_expr(side, buckets),
                    list = list.join(", ")
                ))),
            )
        };
        let multiset = self.plan.mode == Mode::Multiset;
        let (sdb, tdb) = (&self.source, &self.target);
        let (mut sc, mut tc) = (sdb.conn().await?, tdb.conn().await?);
        let (sq, tq) = (q(Side::Source), q(Side::Target));
        let (sres, tres) = tokio::join!(
            sdb.until_cancelled(sc.raw().exec_iter(sq.as_str(), ())),
            tdb.until_cancelled(tc.raw().exec_iter(tq.as_str(), ()))
        );
        let mut sres = sres?.map_err(|e| read_error(sdb, e))?;
        let mut tres = tres?.map_err(|e| read_error(tdb, e))?;
        let (stx, mut srx) = tokio::sync::mpsc::channel::<Vec<Value>>(512);
        let (ttx, mut trx) = tokio::sync::mpsc::channel::<Vec<Value>>(512);
        let (mut sf, mut tf) = (0u64, 0u64);
        let produce_s = async {
            while let Some(row) = self.next_row(&mut sres, Side::Source, sdb, &mut sf).await? {
                if stx.send(row).await.is_err() {
                    break;
                }
            }
            drop(stx);
            Ok::<(), TableError>(())
        };
        let produce_t = async {
            while let Some(row) = self.next_row(&mut tres, Side::Target, tdb, &mut tf).await? {
                if ttx.send(row).await.is_err() {
                    break;
                }
            }
            drop(ttx);
            Ok::<(), TableError>(())
        };
        let matcher = async {
            let (mut pend_s, mut pend_t) = (Pending::new(), Pending::new());
            let (mut s_open, mut t_open) = (true, true);
            let take = |pending: &mut Pending, key: &[u8]| {
                let rows = pending.get_mut(key)?;
                let row = rows.pop();
                if rows.is_empty() {
                    pending.remove(key);
                }
                row
            };
            while s_open || t_open {
                tokio::select! {
                    r = srx.recv(), if s_open => match r {
                        None => s_open = false,
                        Some(row) => {
                            let key = self.plan.exact_key(&row);
                            match take(&mut pend_t, &key) {
                                Some(other) if !multiset => self.compare_pair(&row, &other),
                                Some(_) => {}
                                None => pend_s.entry(key).or_default().push(row),
                            }
                        }
                    },
                    r = trx.recv(), if t_open => match r {
                        None => t_open = false,
                        Some(row) => {
                            let key = self.plan.exact_key(&row);
                            match take(&mut pend_s, &key) {
                                Some(other) if !multiset => self.compare_pair(&other, &row),
                                Some(_) => {}
                                None => pend_t.entry(key).or_default().push(row),
                            }
                        }
                    },
                }
            }
            (pend_s, pend_t)
        };
        let (ps, pt, (pend_s, pend_t)) = tokio::join!(produce_s, produce_t, matcher);
        ps?;
        pt?;
        for (kind, pending) in [
            (DiffKind::MissingInTarget, pend_s),
            (DiffKind::ExtraInTarget, pend_t),
        ] {
            for (_, rows) in pending {
                if multiset {
                    if let Some(row) = rows.first() {
                        self.record_counted(kind, row, rows.len() as u64);
                    }
                } else {
                    for row in &rows {
                        self.record(kind, row);
                    }
                }
            }
        }
        lock(&self.findings).report.rows_fetched += sf + tf;
        Ok(())
    }

    /// Compares a whole table in one ordered pass per side: for hash-bucketed tables where
    /// so many buckets differ that reading them bucket by bucket would scan the table again
    /// and again. Each server sorts once (by the key's bytes, whatever its collation); the
    /// client merges two streams in constant memory.
    pub(super) async fn compare_ordered(&self) -> Result<(), TableError> {
        let q = |side: Side| {
            let (_, sql) = self.side(side);
            format!(
                "SELECT {cols} {from} ORDER BY {o}",
                cols = sql.row_select,
                from = sql.rows_from(None),
                o = self.binary_key_order(side)
            )
        };
        self.merge_ordered(&q(Side::Source), &q(Side::Target)).await
    }
}
