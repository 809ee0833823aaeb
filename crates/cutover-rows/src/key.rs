//! One encoding of a row's key: exact bytes to match rows by, JSON to show them.
//!
//! The bytes are [`Value::encode`]'s canonical encoding, so two keys are one exactly when
//! [`cutover_core::same`] calls every part equal, whatever the two sides' collations: the
//! servers match by collation (`'a' = 'A '`, say), only the exact key counts.

use cutover_core::value::Value;

use crate::plan::Plan;

/// The canonical encoding of a typed key: equal exactly when every part is
/// [`same`](cutover_core::same).
pub fn encode(key: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in key {
        v.encode(&mut out);
    }
    out
}

impl Plan {
    /// The key columns of a row, as typed values (every column of a keyless row).
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key_columns.iter().map(|i| row[*i].clone()).collect()
    }

    /// The key columns of a row as bytes: equal exactly when the keys are (whatever the
    /// collations). The same bytes as [`encode`] of [`Plan::key_of`].
    pub fn exact_key(&self, row: &[Value]) -> Vec<u8> {
        let mut k = Vec::new();
        for i in &self.key_columns {
            row[*i].encode(&mut k);
        }
        k
    }

    /// A typed key as a JSON object, by column name, encoded as in the report.
    pub fn key_json(&self, key: &[Value]) -> serde_json::Map<String, serde_json::Value> {
        self.key_columns
            .iter()
            .zip(key)
            .map(|(i, v)| (self.columns[*i].name().to_string(), v.to_json()))
            .collect()
    }

    /// The key of a row as a JSON object: [`Plan::key_json`] of [`Plan::key_of`].
    pub fn row_key_json(&self, row: &[Value]) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for i in &self.key_columns {
            m.insert(self.columns[*i].name().to_string(), row[*i].to_json());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ColumnFilter;
    use cutover_core::schema::{Column, Index, Table, TableName};
    use cutover_core::value::ColumnKind;

    #[test]
    fn one_encoding_of_a_key_whether_from_the_row_or_from_its_values() {
        let col = |name: &str, kind: ColumnKind| Column {
            name: name.to_string(),
            data_type: String::new(),
            column_type: String::new(),
            kind,
            nullable: false,
            charset: None,
            collation: None,
            max_length: None,
            precision: None,
            scale: None,
            datetime_precision: None,
            default: None,
            generated: false,
        };
        let text = ColumnKind::Text {
            charset: "utf8mb4".into(),
        };
        let table = Table {
            name: TableName::new("db", "t"),
            columns: vec![
                col("v", ColumnKind::Int { unsigned: false }),
                col("a", text.clone()),
                col("b", ColumnKind::Int { unsigned: false }),
            ],
            indexes: vec![Index {
                name: "PRIMARY".into(),
                unique: true,
                columns: vec!["b".into(), "a".into()],
            }],
            estimated_rows: 0,
            charset_collation: None,
        };
        let plan = Plan::new(table.clone(), table, &ColumnFilter::default()).unwrap();
        let row = vec![Value::Int(7), Value::Text("x".into()), Value::Int(2)];
        let key = plan.key_of(&row);
        assert_eq!(key, vec![Value::Int(2), Value::Text("x".into())]);
        assert_eq!(plan.exact_key(&row), encode(&key));
        assert_eq!(plan.row_key_json(&row), plan.key_json(&key));
        let json = plan.key_json(&key);
        let names: Vec<&str> = json.keys().map(String::as_str).collect();
        assert_eq!(names, ["b", "a"]);
        // 'x' and 'x ' are one key under a PAD SPACE collation, never here.
        let other = vec![Value::Int(7), Value::Text("x ".into()), Value::Int(2)];
        assert_ne!(plan.exact_key(&row), plan.exact_key(&other));
    }
}
