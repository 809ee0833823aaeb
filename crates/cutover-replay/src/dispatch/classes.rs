//! The dispatcher's classification cache.

use std::collections::HashMap;
use std::sync::Arc;

use cutover_workload::fingerprint;

use crate::classify::{self, Class, Rules};

/// Statements classified so far, with their fingerprints shared (one allocation per class,
/// not per statement). Under `--read-only` by their exact text, never by fingerprint: two
/// texts of one fingerprint can differ in what they do (an executable comment, a literal
/// in `INTO OUTFILE`), and what may be sent is decided for the text that is sent. Without
/// it (everything is sent) the rest of a class (order, nondeterminism, transaction edges)
/// follows the fingerprint, and one classification per class saves a parse per statement.
#[derive(Default)]
pub(crate) struct Classes {
    pub(crate) by_text: HashMap<String, (Arc<str>, Arc<Class>)>,
    pub(crate) fingerprints: HashMap<String, (Arc<str>, Option<Arc<Class>>)>,
    pub(crate) per_text: bool,
}

/// Texts and fingerprints remembered, at most.
pub(crate) const MAX_CLASSES: usize = 100_000;

impl Classes {
    pub(crate) fn new(per_text: bool) -> Classes {
        Classes {
            per_text,
            ..Classes::default()
        }
    }

    pub(crate) fn get(&mut self, sql: &str, rules: Rules) -> (Arc<str>, Arc<Class>) {
        if self.per_text {
            if let Some((f, c)) = self.by_text.get(sql) {
                return (f.clone(), c.clone());
            }
        }
        let fp = fingerprint(sql);
        let (f, known) = match self.fingerprints.get(&fp) {
            Some((f, c)) => (f.clone(), c.clone()),
            None => (Arc::from(fp.as_str()), None),
        };
        if !self.per_text {
            if let Some(c) = known {
                return (f, c);
            }
        }
        let c = Arc::new(classify::classify_with(sql, rules));
        if self.fingerprints.len() < MAX_CLASSES {
            let class = (!self.per_text).then(|| c.clone());
            self.fingerprints.entry(fp).or_insert((f.clone(), class));
        }
        if self.per_text && self.by_text.len() < MAX_CLASSES {
            self.by_text.insert(sql.to_string(), (f.clone(), c.clone()));
        }
        (f, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_classified_by_its_own_text_not_by_its_fingerprint() {
        // The fingerprint expands MariaDB's executable comment, so both texts are one
        // class; once the first (a read, to a classifier that does not expand it) is
        // known, the second must still be judged by itself.
        let hidden = "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */";
        let plain = "DELETE FROM t WHERE id IN (SELECT 21)";
        let mut c = Classes::new(true);
        let (f1, _) = c.get(hidden, Rules::default());
        let (f2, class) = c.get(plain, Rules::default());
        assert_eq!(f1, f2);
        assert!(
            Arc::ptr_eq(&f1, &f2),
            "one fingerprint allocation per class"
        );
        assert!(class.refusal.is_some(), "{class:?}");
        // And the other way round, from the cache.
        let (_, again) = c.get(plain, Rules::default());
        assert!(again.refusal.is_some());
        let (_, read) = c.get("SELECT 13", Rules::default());
        assert!(read.refusal.is_none());
    }
}
