//! Each table's comparison plan, read once per table (and again after DDL): the source and
//! target definitions, the place of each compared column in the binlog's row image, and the
//! tables that cannot be checked, with the reason.

use std::sync::Arc;

use cutover_core::schema::{describe, TableName};
use cutover_core::DbError;
use cutover_rows::fetch::image_filterable;
use cutover_rows::{ColumnFilter, Mode, Plan, RowsError};

use super::Checker;

/// A table's comparison plan; `target_missing` when the target table does not exist (yet):
/// every row is then absent there.
pub(super) struct TablePlan {
    pub(super) plan: Plan,
    pub(super) target: TableName,
    pub(super) target_missing: bool,
    /// For each compared column, its place in the binlog's whole-row image (the source
    /// table's columns in order); `None` when some column is not in it.
    pub(super) image: Option<Vec<usize>>,
    /// Checked by whole-row image (no key).
    pub(super) keyless: bool,
}

impl TablePlan {
    /// What `read` finds on the target table; nothing (the empty answer) while the target
    /// table does not exist, without asking the target.
    pub(super) async fn on_target<T: Default, F>(
        &self,
        read: impl FnOnce() -> F,
    ) -> Result<T, RowsError>
    where
        F: std::future::Future<Output = Result<T, RowsError>>,
    {
        if self.target_missing {
            Ok(T::default())
        } else {
            read().await
        }
    }
}

impl Checker {
    pub(super) async fn plan(
        &mut self,
        table: &TableName,
    ) -> Result<Option<Arc<TablePlan>>, DbError> {
        if let Some(p) = self.plans.get(table) {
            return Ok(p.clone());
        }
        let target = self.routes.target_of(table);
        let (s, t) = tokio::join!(
            describe(&self.source, table),
            describe(&self.target, &target)
        );
        let (s, t) = (s?, t?);
        let plan = match s {
            None => None,
            Some(s) => {
                let target_missing = t.is_none();
                if target_missing {
                    self.confirm_missing(&target).await?;
                }
                let t = t.unwrap_or_else(|| s.clone());
                // A table that cannot be compared is left out with the reason (reported in
                // the summary), never a reason to stop verifying the others.
                match Plan::new(s, t, &ColumnFilter::default()) {
                    Err(e) => {
                        self.unchecked.insert(table.to_string(), e.to_string());
                        None
                    }
                    Ok(plan) if plan.mode == Mode::Multiset => {
                        let image = image_map(&plan);
                        let usable = plan
                            .columns
                            .iter()
                            .any(|c| image_filterable(&c.source.kind));
                        match image {
                            Some(image) if usable => Some(Arc::new(TablePlan {
                                plan,
                                target,
                                target_missing,
                                image: Some(image),
                                keyless: true,
                            })),
                            _ => {
                                self.unchecked.insert(
                                    table.to_string(),
                                    "a keyless table whose columns are all FLOAT, DOUBLE, \
                                     JSON or BIT: its rows cannot be looked up by image"
                                        .into(),
                                );
                                None
                            }
                        }
                    }
                    Ok(plan) => {
                        let image = image_map(&plan);
                        Some(Arc::new(TablePlan {
                            plan,
                            target,
                            target_missing,
                            image,
                            keyless: false,
                        }))
                    }
                }
            }
        };
        // A target table that does not exist yet (its CREATE still in flight) is looked up
        // again next time.
        if !plan.as_ref().is_some_and(|p| p.target_missing) {
            self.plans.insert(table.clone(), plan.clone());
        }
        Ok(plan)
    }
}

impl Checker {
    /// `information_schema` hides tables a user may not read, so "not described" is not
    /// "missing": only the server's own "doesn't exist" (1146) is. Anything else (no
    /// privilege, 1142) is an error, so the rows are never reported missing for it.
    async fn confirm_missing(&self, target: &TableName) -> Result<(), DbError> {
        match self
            .target
            .execute(&format!("SELECT 1 FROM {} LIMIT 0", target.quoted()))
            .await
        {
            Err(DbError::Query { message, .. }) if message.starts_with("ERROR 1146 ") => Ok(()),
            Err(e) => Err(e),
            Ok(()) => Err(DbError::Query {
                role: cutover_core::Role::Target,
                message: format!(
                    "{target} exists but information_schema does not show its columns to \
                     this user; grant it SELECT on the table"
                ),
            }),
        }
    }
}

/// Each compared column's place in the binlog's whole-row image (the source table's
/// columns in order), `None` when one is missing.
fn image_map(plan: &Plan) -> Option<Vec<usize>> {
    plan.columns
        .iter()
        .map(|c| {
            plan.source
                .columns
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(c.name()))
        })
        .collect()
}
