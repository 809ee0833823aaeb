//! Which columns of a table take part in a comparison.

/// Which columns take part: `--columns` (only these) and `--ignore-columns` (not these).
/// An entry is `column` (every table) or `db.table.column` (one table); names match without
/// regard to case, as MySQL matches column names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnFilter {
    pub only: Vec<String>,
    pub ignore: Vec<String>,
}

impl ColumnFilter {
    fn matches(list: &[String], table: &str, column: &str) -> bool {
        list.iter().any(|e| match e.rsplit_once('.') {
            Some((t, c)) => t.eq_ignore_ascii_case(table) && c.eq_ignore_ascii_case(column),
            None => e.eq_ignore_ascii_case(column),
        })
    }

    /// Whether `column` of `table` (`db.table`, the source's name) is compared.
    pub fn keeps(&self, table: &str, column: &str) -> bool {
        // `--columns` restricts a table only when one of its entries applies to it.
        let restricted = self.only.iter().any(|e| match e.rsplit_once('.') {
            Some((t, _)) => t.eq_ignore_ascii_case(table),
            None => true,
        });
        (!restricted || Self::matches(&self.only, table, column))
            && !Self::matches(&self.ignore, table, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_filter() {
        let f = ColumnFilter {
            only: vec![],
            ignore: vec!["updated_at".into(), "shop.orders.note".into()],
        };
        assert!(!f.keeps("shop.orders", "UPDATED_AT"));
        assert!(!f.keeps("shop.orders", "note"));
        assert!(f.keeps("shop.items", "note"));
        let f = ColumnFilter {
            only: vec!["shop.orders.id".into(), "shop.orders.total".into()],
            ignore: vec![],
        };
        assert!(f.keeps("shop.orders", "total"));
        assert!(!f.keeps("shop.orders", "note"));
        assert!(f.keeps("shop.items", "anything"));
    }
}
