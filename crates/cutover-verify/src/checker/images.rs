//! Keyless tables: their rows are checked by whole-row image, counted on both sides.

use std::sync::Arc;
use std::time::Instant;

use cutover_core::schema::TableName;
use cutover_core::value::Value;
use cutover_core::DbError;
use cutover_rows::fetch::count_images;
use cutover_rows::{encode, DiffKind, Side};
use serde_json::{Map, Value as Json};

use super::progress::Replicated;
use super::{row_json, Checker, Counts, Mismatch, Shown, TablePlan};

impl Checker {
    /// Checks whole-row images of a keyless table. Each side is read once for the batch:
    /// the rows that match any image on the columns that can be matched exactly (a
    /// predicate that depends only on the canonical value, so equal rows match on both
    /// sides alike), grouped by their canonical encoding. An image is equal when its row
    /// occurs as often on the target as on the source (absent on both counts as equal).
    pub(super) async fn check_images(
        &mut self,
        table: &TableName,
        plan: &Arc<TablePlan>,
        ids: &[Vec<u8>],
        replicated: &Replicated,
        confirmed: &mut Vec<Mismatch>,
    ) -> Result<(), DbError> {
        let Some(image) = plan.image.as_ref() else {
            return Ok(());
        };
        // The images, in the plan's column order.
        let rows: Vec<(Vec<u8>, Vec<Value>)> = ids
            .iter()
            .filter_map(|id| {
                let e = self.pending.get_mut(table, id)?;
                let row: Option<Vec<Value>> =
                    image.iter().map(|&i| e.key.get(i).cloned()).collect();
                Some((id.clone(), row?))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let images: Vec<&[Value]> = rows.iter().map(|(_, r)| r.as_slice()).collect();
        let (s, t) = tokio::join!(
            count_images(&self.source, &plan.plan, Side::Source, table, &images),
            plan.on_target(|| count_images(
                &self.target,
                &plan.plan,
                Side::Target,
                &plan.target,
                &images
            ))
        );
        let (s, t) = (s?, t?);
        let now = Instant::now();
        for (id, row) in &rows {
            self.stats.rows_checked += 1;
            let group = encode(row);
            let (a, b) = (
                s.get(&group).map_or(0, |g| g.0),
                t.get(&group).map_or(0, |g| g.0),
            );
            let verdict = match a.cmp(&b) {
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => Some(DiffKind::MissingInTarget),
                std::cmp::Ordering::Less => Some(DiffKind::ExtraInTarget),
            };
            let found = s.get(&group).or_else(|| t.get(&group)).map(|g| &g.1);
            let shown = || {
                let r = found.unwrap_or(row);
                Shown {
                    key: match row_json(&plan.plan, Some(r)) {
                        Json::Object(m) => m,
                        _ => Map::new(),
                    },
                    source: if a > 0 {
                        row_json(&plan.plan, Some(r))
                    } else {
                        Json::Null
                    },
                    target: if b > 0 {
                        row_json(&plan.plan, Some(r))
                    } else {
                        Json::Null
                    },
                    counts: Some(Counts {
                        source: a,
                        target: b,
                    }),
                }
            };
            if let Some(m) = self.judge(table, plan, id, verdict, shown, replicated, now, true) {
                confirmed.push(m);
            }
        }
        Ok(())
    }
}
