//! One CHAR/VARCHAR key, in the same character set on both sides: ranges of that key, read on
//! each side through its own index (see [`Ctx::text_range_diff`] for why that is exact across
//! collations).

use std::sync::Mutex;

use cutover_core::schema::TableName;
use cutover_core::value::{ColumnKind, Value};

use crate::plan::{Mode, Side};
use crate::report::DiffKind;
use cutover_rows::fetch::fetch_by_key;

use super::{lock, Ctx, Progress, TableError};

/// A range of a text key: `[lo, hi)`, bounds as hex of the key's bytes, `None` open.
type TextRange = (Option<String>, Option<String>);

/// Keys looked up on the other side in one statement.
const CANDIDATE_BATCH: usize = 500;

impl Ctx<'_> {
    /// The character set of a single `CHAR`/`VARCHAR` key stored in the same character set
    /// on both sides: such a key is paged by ranges ([`Ctx::text_range_diff`]). `None` for
    /// every other key.
    pub(super) fn text_key_charset(&self) -> Option<String> {
        if self.plan.mode != Mode::HashBuckets || self.plan.key_columns.len() != 1 {
            return None;
        }
        let p = &self.plan.columns[self.plan.key_columns[0]];
        let paged = |c: &cutover_core::schema::Column| {
            matches!(c.data_type.as_str(), "char" | "varchar") && c.collation.is_some()
        };
        match (&p.source.kind, &p.target.kind) {
            (ColumnKind::Text { charset: a }, ColumnKind::Text { charset: b })
                if a.eq_ignore_ascii_case(b) && paged(&p.source) && paged(&p.target) =>
            {
                let cs = a.to_ascii_lowercase();
                // Character sets whose introducer every server knows.
                ["utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"]
                    .contains(&cs.as_str())
                    .then_some(cs)
            }
            _ => None,
        }
    }

    /// Compares a table with one text key by ranges of that key, read on each side through
    /// its own index (linear, whatever the two collations):
    ///
    /// 1. The source's index is walked (`WHERE key >= b ORDER BY key LIMIT 1 OFFSET n`: an
    ///    index range read) for boundaries about `first_chunk_rows` rows apart.
    /// 2. A boundary is kept only if the target, in its own collation, also finds it greater
    ///    than the previous one kept; otherwise it is skipped and its range joins the next.
    ///    The boundaries are then increasing in both collations, so the ranges `[b_i, b_i+1)`
    ///    partition each side's rows, each under its own collation: every row is in exactly
    ///    one range per side.
    /// 3. Workers checksum each range on both sides; a differing range is cut again the same
    ///    way into parts of about `row_threshold` rows (boundaries also checked against the
    ///    range's end), and each differing part is read in binary key order on both sides (a
    ///    sort of that part only) and merged. A row without a partner in
    ///    the other side's range is looked up there by its exact key: the collations may have
    ///    put it in another range. A source row found there is compared with it; a target
    ///    row found on the source is skipped (its source range compares it, and that range
    ///    differs too, since the row is missing from its target side). So each row is
    ///    reported once, and no row goes unseen.
    pub(super) async fn text_range_diff(
        &self,
        progress: &dyn Progress,
        source_name: &TableName,
    ) -> Result<(), TableError> {
        if self.text_key_charset().is_none() {
            return Err(TableError::NotTextKey);
        }
        let step = self.opts.first_chunk_rows.max(1);
        let threads = self.opts.threads.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<TextRange>(threads * 2);
        let rx = tokio::sync::Mutex::new(rx);
        let failed: Mutex<Option<TableError>> = Mutex::new(None);

        let producer = async {
            // Owned here: the workers' channel closes when the walk ends.
            let tx = tx;
            // `lo`: the start of the range being cut; `from`: where the walk goes on.
            let (mut lo, mut from): (Option<String>, Option<String>) = (None, None);
            loop {
                if lock(&failed).is_some() {
                    return Ok::<(), TableError>(());
                }
                let Some(b) = self.next_boundary(from.as_deref(), None, step).await? else {
                    let _ = tx.send((lo, None)).await;
                    return Ok(());
                };
                let increasing = match &lo {
                    None => true,
                    Some(l) => self.target_orders(l, &b).await?,
                };
                from = Some(b.clone());
                if increasing {
                    if tx.send((lo.take(), Some(b.clone()))).await.is_err() {
                        return Ok(());
                    }
                    lo = Some(b);
                }
            }
        };
        let worker = || async {
            loop {
                if lock(&failed).is_some() {
                    return;
                }
                let next = rx.lock().await.recv().await;
                let Some((lo, hi)) = next else {
                    return;
                };
                let done = self.text_range(lo, hi).await;
                match done {
                    Ok(rows) => progress.rows_done(source_name, rows),
                    Err(e) => {
                        lock(&failed).get_or_insert(e);
                        return;
                    }
                }
            }
        };
        let workers = async {
            futures_util::future::join_all((0..threads).map(|_| worker())).await;
            // A failed worker stops the others; the walk must not wait for them.
            rx.lock().await.close();
        };
        let (walked, ()) = tokio::join!(producer, workers);
        if let Some(e) = lock(&failed).take() {
            return Err(e);
        }
        walked
    }

    /// A SQL literal of key bytes (hex) in the key's character set; it takes the key
    /// column's collation on each side.
    pub(super) fn text_literal(&self, hex: &str) -> String {
        let cs = self.text_key_charset().unwrap_or_else(|| "utf8mb4".into());
        format!("_{cs} X'{hex}'")
    }

    /// `key >= lo AND key < hi` for one side (in that side's collation).
    pub(super) fn text_predicate(&self, side: Side, lo: Option<&str>, hi: Option<&str>) -> String {
        let (_, sql) = self.side(side);
        let mut w = Vec::new();
        if let Some(l) = lo {
            w.push(format!("{} >= {}", sql.key, self.text_literal(l)));
        }
        if let Some(h) = hi {
            w.push(format!("{} < {}", sql.key, self.text_literal(h)));
        }
        if w.is_empty() {
            "1 = 1".to_string()
        } else {
            w.join(" AND ")
        }
    }

    /// The key `step` rows after `from` (or after the first) and below `hi` in the source's
    /// index, as hex: an index range read.
    pub(super) async fn next_boundary(
        &self,
        from: Option<&str>,
        hi: Option<&str>,
        step: u64,
    ) -> Result<Option<String>, TableError> {
        let (_, sql) = self.side(Side::Source);
        let next: Vec<String> = self
            .source
            .query(&format!(
                "SELECT HEX({k}) FROM {t} WHERE {w} ORDER BY {k} LIMIT 1 OFFSET {step}",
                k = sql.key,
                t = sql.tables[0],
                w = self.text_predicate(Side::Source, from, hi),
            ))
            .await?;
        Ok(next.into_iter().next())
    }

    /// Whether the target's collation puts key `a` strictly before key `b`.
    pub(super) async fn target_orders(&self, a: &str, b: &str) -> Result<bool, TableError> {
        let coll = self
            .plan
            .key_pair()
            .target
            .collation
            .clone()
            .unwrap_or_default();
        let r: Vec<Option<i64>> = self
            .target
            .query(&format!(
                "SELECT {} COLLATE {coll} < {} COLLATE {coll}",
                self.text_literal(a),
                self.text_literal(b)
            ))
            .await?;
        Ok(r.first() == Some(&Some(1)))
    }

    /// Cuts `[lo, hi)` into ranges of about `step` source rows whose boundaries increase in
    /// both collations (see [`Ctx::text_range_diff`]): they partition the range on each side.
    pub(super) async fn cut_text_range(
        &self,
        lo: Option<String>,
        hi: Option<String>,
        step: u64,
    ) -> Result<Vec<TextRange>, TableError> {
        let mut out = Vec::new();
        let (mut start, mut from) = (lo.clone(), lo);
        while let Some(b) = self
            .next_boundary(from.as_deref(), hi.as_deref(), step)
            .await?
        {
            let after = match &start {
                Some(l) => self.target_orders(l, &b).await?,
                None => true,
            };
            let before = match &hi {
                Some(h) => self.target_orders(&b, h).await?,
                None => true,
            };
            from = Some(b.clone());
            if after && before {
                out.push((start.take(), Some(b.clone())));
                start = Some(b);
            }
        }
        out.push((start, hi));
        Ok(out)
    }

    /// One range `[lo, hi)` of a text key (hex of the key's bytes; `None`: open): checksums
    /// on both sides; when they differ, its parts of about `row_threshold` rows are
    /// checksummed and the rows of the differing ones merged. Returns the source rows.
    pub(super) async fn text_range(
        &self,
        lo: Option<String>,
        hi: Option<String>,
    ) -> Result<u64, TableError> {
        if let Some(t) = &self.opts.throttle {
            t.0.wait(0).await?;
        }
        let checksums = |lo: Option<String>, hi: Option<String>| async move {
            let sp = self.text_predicate(Side::Source, lo.as_deref(), hi.as_deref());
            let tp = self.text_predicate(Side::Target, lo.as_deref(), hi.as_deref());
            let (s, t) = tokio::join!(
                self.checksum_where(Side::Source, &sp),
                self.checksum_where(Side::Target, &tp)
            );
            Ok::<_, TableError>((s?, t?, sp, tp))
        };
        let (s, t, sp, tp) = checksums(lo.clone(), hi.clone()).await?;
        if !s.same_rows(&t) {
            let parts = if s.count.max(t.count) > self.opts.row_threshold {
                self.cut_text_range(lo, hi, self.opts.row_threshold.max(1))
                    .await?
            } else {
                Vec::new()
            };
            let q = |side: Side, w: &str| {
                let (_, sql) = self.side(side);
                format!(
                    "SELECT {cols} {from} ORDER BY {o}",
                    cols = sql.row_select,
                    from = sql.rows_from(Some(w)),
                    o = self.binary_key_order(side)
                )
            };
            if parts.len() <= 1 {
                self.merge_ordered_as(&q(Side::Source, &sp), &q(Side::Target, &tp), true)
                    .await?;
            } else {
                for (plo, phi) in parts {
                    let (ps, pt, psp, ptp) = checksums(plo, phi).await?;
                    if !ps.same_rows(&pt) {
                        self.merge_ordered_as(&q(Side::Source, &psp), &q(Side::Target, &ptp), true)
                            .await?;
                    }
                }
            }
        }
        {
            let mut f = lock(&self.findings);
            f.report.rows_compared += s.count;
            f.report.chunks += 1;
        }
        if let Some(t) = &self.opts.throttle {
            t.0.wait(s.count).await?;
        }
        Ok(s.count)
    }

    /// Rows of a text range without a partner in the other side's range: each is looked up
    /// by its exact key on the other side (see [`Ctx::text_range_diff`]).
    pub(super) async fn resolve_candidates(
        &self,
        cands: Vec<(DiffKind, Vec<Value>)>,
    ) -> Result<(), TableError> {
        let (missing, extra): (Vec<_>, Vec<_>) = cands
            .into_iter()
            .partition(|(k, _)| *k == DiffKind::MissingInTarget);
        for (rows, other) in [(missing, Side::Target), (extra, Side::Source)] {
            for batch in rows.chunks(CANDIDATE_BATCH) {
                let found = self.lookup(other, batch).await?;
                for (kind, row) in batch {
                    match (other, found.get(&self.plan.exact_key(row))) {
                        (Side::Target, Some(there)) => self.compare_pair(row, there),
                        // Compared from its source range.
                        (Side::Source, Some(_)) => {}
                        (_, None) => self.record(*kind, row),
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows of one side whose key is exactly (byte for byte) one of `rows`' keys.
    pub(super) async fn lookup(
        &self,
        side: Side,
        rows: &[(DiffKind, Vec<Value>)],
    ) -> Result<std::collections::HashMap<Vec<u8>, Vec<Value>>, TableError> {
        let keys: Vec<Vec<Value>> = rows.iter().map(|(_, r)| self.plan.key_of(r)).collect();
        let (db, _) = self.side(side);
        let table = std::slice::from_ref(&side.table(&self.plan).name);
        let found = fetch_by_key(db, &self.plan, side, table, &keys).await?;
        lock(&self.findings).report.rows_fetched += found.read;
        Ok(found.rows)
    }
}
