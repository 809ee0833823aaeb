//! The one merge: two result sets streamed in key order, rows with equal keys compared, the
//! others missing or extra. Integer ranges, text ranges and the ordered bucket pass all end
//! here; the value model alone decides what differs.

use cutover_core::value::Value;
use cutover_core::DbError;
use mysql_async::prelude::Queryable;

use crate::plan::{Mode, Side};
use crate::report::DiffKind;
use cutover_core::sql::quote_ident;
use cutover_rows::fetch::read_error;

use super::{lock, Ctx, TableError};

impl Ctx<'_> {
    /// Streams two result sets ordered by the key (binary order for text) and merges them:
    /// rows with equal keys are compared, the others are missing or extra. In a keyless
    /// table the key is the whole row, so equal keys consume one copy from each side, and a
    /// run of identical unmatched rows is reported once with its count.
    pub(super) async fn merge_ordered(&self, sq: &str, tq: &str) -> Result<(), TableError> {
        self.merge_ordered_as(sq, tq, false).await
    }

    /// [`Ctx::merge_ordered`]; with `candidates`, a row without a partner is not yet a
    /// difference: it is looked up by its exact key on the other side first
    /// ([`Ctx::resolve_candidates`]), because the two sides' ranges may hold different rows
    /// when their collations order keys differently. The lookups run after both streams are
    /// closed, so a worker never holds two connections of one side (the snapshot has
    /// `threads + 2`).
    pub(super) async fn merge_ordered_as(
        &self,
        sq: &str,
        tq: &str,
        candidates: bool,
    ) -> Result<(), TableError> {
        let (sdb, tdb) = (&self.source, &self.target);
        let (mut sc, mut tc) = (sdb.conn().await?, tdb.conn().await?);
        let cancel = sdb.cancel_token().clone();
        // The binary protocol: FLOAT and DOUBLE arrive as their exact bits.
        let (sres, tres) = tokio::join!(
            sdb.until_cancelled(sc.raw().exec_iter(sq, ())),
            tdb.until_cancelled(tc.raw().exec_iter(tq, ()))
        );
        let mut sres = sres?.map_err(|e| read_error(sdb, e))?;
        let mut tres = tres?.map_err(|e| read_error(tdb, e))?;
        let mut fetched = 0u64;
        let multiset = self.plan.mode == Mode::Multiset;
        // A run of identical unmatched rows in a keyless table: (kind, row, count).
        let mut run: Option<(DiffKind, Vec<Value>, u64)> = None;
        let mut unmatched = |this: &Self, kind: DiffKind, row: Vec<Value>| {
            if !multiset {
                this.record(kind, &row);
                return;
            }
            match &mut run {
                Some((k, r, n)) if *k == kind && this.key_order(r, &row).is_eq() => *n += 1,
                _ => {
                    if let Some((k, r, n)) = run.replace((kind, row, 1)) {
                        this.record_counted(k, &r, n);
                    }
                }
            }
        };
        let mut cands: Vec<(DiffKind, Vec<Value>)> = Vec::new();
        let mut a = self
            .next_row(&mut sres, Side::Source, sdb, &mut fetched)
            .await?;
        let mut b = self
            .next_row(&mut tres, Side::Target, tdb, &mut fetched)
            .await?;
        loop {
            if cancel.is_cancelled() {
                return Err(DbError::Interrupted.into());
            }
            let order = match (&a, &b) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => self.key_order(x, y),
            };
            match order {
                std::cmp::Ordering::Less => {
                    if let Some(x) = a.take() {
                        if candidates {
                            cands.push((DiffKind::MissingInTarget, x));
                        } else {
                            unmatched(self, DiffKind::MissingInTarget, x);
                        }
                    }
                    a = self
                        .next_row(&mut sres, Side::Source, sdb, &mut fetched)
                        .await?;
                }
                std::cmp::Ordering::Greater => {
                    if let Some(y) = b.take() {
                        if candidates {
                            cands.push((DiffKind::ExtraInTarget, y));
                        } else {
                            unmatched(self, DiffKind::ExtraInTarget, y);
                        }
                    }
                    b = self
                        .next_row(&mut tres, Side::Target, tdb, &mut fetched)
                        .await?;
                }
                std::cmp::Ordering::Equal => {
                    if let (Some(x), Some(y), false) = (&a, &b, multiset) {
                        self.compare_pair(x, y);
                    }
                    a = self
                        .next_row(&mut sres, Side::Source, sdb, &mut fetched)
                        .await?;
                    b = self
                        .next_row(&mut tres, Side::Target, tdb, &mut fetched)
                        .await?;
                }
            }
        }
        if let Some((k, r, n)) = run {
            self.record_counted(k, &r, n);
        }
        lock(&self.findings).report.rows_fetched += fetched;
        // Both connections go back before the lookups take one of each side.
        drop((sres, tres));
        drop((sc, tc));
        if !cands.is_empty() {
            self.resolve_candidates(cands).await?;
        }
        Ok(())
    }

    /// The order of two rows by their key columns, as the servers' `ORDER BY` returns them.
    pub(super) fn key_order(&self, x: &[Value], y: &[Value]) -> std::cmp::Ordering {
        for i in &self.plan.key_columns {
            let o = x[*i].key_cmp(&y[*i]);
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }

    /// `ORDER BY` text that sorts one side's rows by the key's bytes (UTF-8 for text),
    /// whatever the collation: the order [`Ctx::key_order`] merges in.
    pub(super) fn binary_key_order(&self, side: Side) -> String {
        self.plan
            .key_columns
            .iter()
            .map(|i| {
                let c = side.column(&self.plan.columns[*i]);
                let q = quote_ident(&c.name);
                if c.kind.is_text_like() {
                    format!("CAST(CONVERT({q} USING utf8mb4) AS BINARY)")
                } else {
                    q
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
