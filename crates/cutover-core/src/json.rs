//! Canonical JSON text: compact, object keys sorted, so that two documents that differ only
//! in key order or spacing read alike. It keys the value encoding (equal JSON cells encode
//! alike) and the hashes that stand for values in redacted reports.

use serde_json::Value as J;

/// How numbers are written in canonical JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// As serde_json writes them: `1.0` and `1` stay apart. The redaction hashes use this
    /// form; they are pinned across versions (`hashes_are_stable_and_canonical`), so it must
    /// not change.
    AsWritten,
    /// One form per value, as JSON equality compares them: integers as integers, a float
    /// with no fraction as the integer (below 9e15), other floats in exponent form. The value
    /// encoding uses this form, so that it agrees with [`crate::value::same`].
    OneForm,
}

/// `v` as canonical JSON text.
pub fn canonical_json(v: &J, numbers: Numbers) -> String {
    let mut out = String::new();
    write(v, numbers, &mut out);
    out
}

fn write(v: &J, numbers: Numbers, out: &mut String) {
    match v {
        J::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&J::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    write(x, numbers, out);
                }
            }
            out.push('}');
        }
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, numbers, out);
            }
            out.push(']');
        }
        J::Number(n) if numbers == Numbers::OneForm => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                out.push_str(&(f as i64).to_string())
            }
            (_, _, Some(f)) => out.push_str(&format!("{f:e}")),
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_numbers_by_form() {
        let v = json!({"b": [1.0, {"d": 2.5, "c": 3}], "a": 1});
        assert_eq!(
            canonical_json(&v, Numbers::AsWritten),
            r#"{"a":1,"b":[1.0,{"c":3,"d":2.5}]}"#
        );
        assert_eq!(
            canonical_json(&v, Numbers::OneForm),
            r#"{"a":1,"b":[1,{"c":3,"d":2.5e0}]}"#
        );
        assert_eq!(
            canonical_json(&json!("a\"b"), Numbers::OneForm),
            r#""a\"b""#
        );
    }
}
