//! Integer keys: ranges of key values, checksummed on both servers, drilled down.
//!
//! A worker's range (from the [`crate::chunk::Splitter`], see the job in `mod.rs`) is
//! checksummed on both servers at once ([`Ctx::check_range`]), as the checksums of its
//! `FIRST_PARTS` quarters in one statement per side. Equal counts and sums: the range is
//! equal. Otherwise each differing quarter is split into `fanout` parts by key value (all
//! parts' checksums come from one `UNION ALL` of range aggregates per side), and every part
//! whose checksum differs is split again, until a part holds at most `row_threshold` rows on
//! either side. Every bad part is followed, not only one, so several differences in one
//! chunk are all found. Such a part is merged row by row ([`Ctx::compare_rows`]).

use crate::chunk::KeyRange;
use crate::plan::Side;

use super::{max_opt, min_opt, parse_i128, parse_u128, Checksum, Ctx, TableError, TableSql};

/// Parts a chunk's checksum is computed in (see [`Ctx::check_range`]).
const FIRST_PARTS: usize = 4;

impl Ctx<'_> {
    pub(super) async fn bounds(&self, side: Side) -> Result<Option<(i128, i128)>, TableError> {
        let (_, sql) = self.side(side);
        let rows: Vec<(Option<String>, Option<String>)> = self
            .per_table(side, |t| {
                format!(
                    "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR) FROM {t}",
                    k = sql.key
                )
            })
            .await?;
        let mut out: Option<(i128, i128)> = None;
        for row in rows {
            if let (Some(a), Some(b)) = row {
                let (a, b) = (parse_i128(&a)?, parse_i128(&b)?);
                out = Some(match out {
                    Some((lo, hi)) => (lo.min(a), hi.max(b)),
                    None => (a, b),
                });
            }
        }
        Ok(out)
    }

    /// One side's checksum of a range. The smallest and largest key are not part of it (the
    /// `MIN`/`MAX` aggregates would cost a comparison per row); [`Ctx::range_bounds`] reads
    /// them from the index when a range differs.
    pub(super) async fn checksum(
        &self,
        side: Side,
        range: KeyRange,
    ) -> Result<Checksum, TableError> {
        let (_, sql) = self.side(side);
        self.checksum_where(side, &range.predicate(&sql.key)).await
    }

    /// The smallest and largest key of a range on one side (two index dives).
    pub(super) async fn range_bounds(
        &self,
        side: Side,
        range: KeyRange,
    ) -> Result<(Option<i128>, Option<i128>), TableError> {
        let (_, sql) = self.side(side);
        let rows: Vec<(Option<String>, Option<String>)> = self
            .per_table(side, |t| {
                format!(
                    "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR) FROM {t} WHERE {w}",
                    k = sql.key,
                    w = range.predicate(&sql.key),
                )
            })
            .await?;
        let mut out = Checksum::default();
        for (min, max) in rows {
            out.add(&Checksum {
                min: min.as_deref().map(parse_i128).transpose()?,
                max: max.as_deref().map(parse_i128).transpose()?,
                ..Checksum::default()
            });
        }
        Ok((out.min, out.max))
    }

    pub(super) async fn checksums(
        &self,
        range: KeyRange,
    ) -> Result<(Checksum, Checksum), TableError> {
        let (s, t) = tokio::join!(
            self.checksum(Side::Source, range),
            self.checksum(Side::Target, range)
        );
        Ok((s?, t?))
    }

    /// Checks one range; returns the number of source rows it covers.
    ///
    /// The range's checksum comes as the checksums of its first `FIRST_PARTS` parts (one
    /// statement per side, the same rows read once): a difference is then already narrowed
    /// to a part, and the drill-down re-reads that part instead of the whole range.
    pub(super) async fn check_range(&self, range: KeyRange) -> Result<u64, TableError> {
        let parts = match (range.lo, range.hi) {
            (Some(lo), Some(hi)) => KeyRange::split(lo, hi, FIRST_PARTS),
            // The open ends (rows beyond the bounds seen at the start) stay one part.
            _ => vec![range],
        };
        let (s, t) = if parts.len() == 1 {
            let (s, t) = self.checksums(range).await?;
            (vec![s], vec![t])
        } else {
            let (s, t) = tokio::join!(
                self.part_checksums(Side::Source, &parts, false),
                self.part_checksums(Side::Target, &parts, false)
            );
            (s?, t?)
        };
        let count = s.iter().map(|c| c.count).sum();
        let mut stack = Vec::new();
        for (r, (mut s, mut t)) in parts.into_iter().zip(s.into_iter().zip(t)) {
            if s.same_rows(&t) {
                continue;
            }
            let (sb, tb) = tokio::join!(
                self.range_bounds(Side::Source, r),
                self.range_bounds(Side::Target, r)
            );
            (s.min, s.max) = sb?;
            (t.min, t.max) = tb?;
            stack.push((r, s, t));
        }
        while let Some((r, s, t)) = stack.pop() {
            let lo = min_opt(s.min, t.min);
            let hi = max_opt(s.max, t.max);
            let single_key = lo.is_some() && lo == hi;
            if s.count.max(t.count) <= self.opts.row_threshold || single_key {
                self.compare_rows(r).await?;
                continue;
            }
            let (Some(lo), Some(hi)) = (lo, hi) else {
                self.compare_rows(r).await?;
                continue;
            };
            stack.extend(self.differing_parts(lo, hi).await?);
        }
        Ok(count)
    }

    /// Cuts `[lo, hi]` into `fanout` parts by key value and returns the parts whose checksums
    /// differ. Each side computes all parts' checksums in one statement (a `UNION ALL` of
    /// range aggregates: each part is an index range scan, and no temporary table is needed,
    /// which a `GROUP BY` over the range would build), so a level of the drill-down reads the
    /// range once, not once per part.
    pub(super) async fn differing_parts(
        &self,
        lo: i128,
        hi: i128,
    ) -> Result<Vec<(KeyRange, Checksum, Checksum)>, TableError> {
        // A long checksum text (a wide table) gets fewer parts, so that the statement stays
        // well under any `max_allowed_packet`.
        let text_len = self.source_sql.checksum_select.len() + 200;
        let parts = self.opts.fanout.clamp(2, (512 * 1024 / text_len).max(2));
        let ranges = KeyRange::split(lo, hi, parts);
        let (s, t) = tokio::join!(
            self.part_checksums(Side::Source, &ranges, true),
            self.part_checksums(Side::Target, &ranges, true)
        );
        let (s, t) = (s?, t?);
        Ok(ranges
            .into_iter()
            .zip(s.into_iter().zip(t))
            .filter(|(_, (ps, pt))| !ps.same_rows(pt))
            .map(|(r, (ps, pt))| (r, ps, pt))
            .collect())
    }

    /// The checksums of `ranges` on one side, in their order, from one statement; with the
    /// smallest and largest key of each when `bounds` (a comparison per row: the first level
    /// leaves them out and reads them from the index for the parts that differ).
    pub(super) async fn part_checksums(
        &self,
        side: Side,
        ranges: &[KeyRange],
        bounds: bool,
    ) -> Result<Vec<Checksum>, TableError> {
        let (_, sql) = self.side(side);
        let minmax = if bounds {
            format!(
                "CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR)",
                k = sql.key
            )
        } else {
            "NULL, NULL".to_string()
        };
        let text = |t: &str| {
            ranges
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    format!(
                        "SELECT {i}, {sel}, {minmax} FROM {t} WHERE {w}",
                        sel = sql.checksum_select,
                        w = r.predicate(&sql.key),
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        };
        type Row = (usize, u64, String, String, Option<String>, Option<String>);
        let rows: Vec<Row> = self.per_table(side, text).await?;
        let mut out: Vec<Option<Checksum>> = vec![None; ranges.len()];
        for (i, count, s1, s2, min, max) in rows {
            let slot = out.get_mut(i).ok_or(TableError::PartOutOfRange)?;
            slot.get_or_insert_with(Checksum::default).add(&Checksum {
                count,
                sum1: parse_u128(&s1)?,
                sum2: parse_u128(&s2)?,
                min: min.as_deref().map(parse_i128).transpose()?,
                max: max.as_deref().map(parse_i128).transpose()?,
            });
        }
        out.into_iter()
            .map(|c| c.ok_or(TableError::PartMissing))
            .collect()
    }

    /// Streams the range from both sides in key order and merge-compares the rows.
    pub(super) async fn compare_rows(&self, range: KeyRange) -> Result<(), TableError> {
        let (_, ssql) = self.side(Side::Source);
        let (_, tsql) = self.side(Side::Target);
        let q = |sql: &TableSql| {
            format!(
                "SELECT {cols} {from} ORDER BY {k}",
                cols = sql.row_select,
                from = sql.rows_from(Some(&range.predicate(&sql.key))),
                k = sql.key
            )
        };
        self.merge_ordered(&q(ssql), &q(tsql)).await
    }
}
