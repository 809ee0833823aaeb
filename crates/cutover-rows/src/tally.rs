//! The tally of a table's differences: counted by kind, always complete; the first ones kept.

use crate::row_diff::{DiffKind, RowDiff};

/// Differences counted by kind (a keyless row missing `n` times counts `n`), with the first
/// `max` kept: the counts are always complete, the list says when it was cut. A table's, a
/// chunk's (for the checkpoint) and a recheck's differences are all counted by this one rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub missing_in_target: u64,
    pub extra_in_target: u64,
    pub mismatched: u64,
    pub diffs: Vec<RowDiff>,
    pub diffs_truncated: bool,
}

impl Tally {
    /// Counts `n` differences of one kind (their rows not kept).
    pub fn count(&mut self, kind: DiffKind, n: u64) {
        match kind {
            DiffKind::MissingInTarget => self.missing_in_target += n,
            DiffKind::ExtraInTarget => self.extra_in_target += n,
            DiffKind::Mismatched => self.mismatched += n,
        }
    }

    /// Keeps a difference while fewer than `max` are kept, else marks the list cut. Returns
    /// whether it was kept.
    pub fn keep(&mut self, diff: RowDiff, max: usize) -> bool {
        if self.diffs.len() < max {
            self.diffs.push(diff);
            true
        } else {
            self.diffs_truncated = true;
            false
        }
    }

    /// Counts a difference and keeps it as [`Tally::keep`] does.
    pub fn add(&mut self, diff: RowDiff, max: usize) -> bool {
        self.count(diff.kind, diff.count.unwrap_or(1));
        self.keep(diff, max)
    }

    /// Adds another tally (a chunk an earlier run finished): its counts, and its kept
    /// differences while fewer than `max` are kept.
    pub fn merge(&mut self, other: &Tally, max: usize) {
        self.count(DiffKind::MissingInTarget, other.missing_in_target);
        self.count(DiffKind::ExtraInTarget, other.extra_in_target);
        self.count(DiffKind::Mismatched, other.mismatched);
        for d in &other.diffs {
            self.keep(d.clone(), max);
        }
    }

    /// Every difference counted.
    pub fn total(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.mismatched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(kind: DiffKind, count: Option<u64>) -> RowDiff {
        RowDiff {
            kind,
            key: serde_json::Map::new(),
            columns: Vec::new(),
            count,
        }
    }

    #[test]
    fn counts_are_complete_and_the_list_says_when_it_was_cut() {
        let mut t = Tally::default();
        assert!(t.add(diff(DiffKind::MissingInTarget, None), 2));
        assert!(t.add(diff(DiffKind::ExtraInTarget, Some(3)), 2));
        assert!(!t.diffs_truncated);
        assert!(!t.add(diff(DiffKind::Mismatched, None), 2));
        assert_eq!(
            (t.missing_in_target, t.extra_in_target, t.mismatched),
            (1, 3, 1)
        );
        assert_eq!(t.diffs.len(), 2);
        assert!(t.diffs_truncated);
        assert_eq!(t.total(), 5);

        // A resumed chunk: all its counts, its differences while there is room.
        let mut resumed = Tally::default();
        resumed.merge(&t, 1);
        assert_eq!(resumed.total(), 5);
        assert_eq!(resumed.diffs.len(), 1);
        assert!(resumed.diffs_truncated);
    }
}
