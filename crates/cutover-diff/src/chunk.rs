//! Key ranges and the splitter that hands them out.
//!
//! An integer key is cut into ranges by *value*, not by row offset: a range costs no
//! boundary query, and both servers read exactly the same keys whatever else differs. The
//! splitter adapts the width of the next range so that a chunk takes about `--chunk-time`:
//! dense keys get narrow ranges, sparse keys wide ones. The first range is open below and the
//! last open above, so rows outside the keys seen at the start (extra rows on the target,
//! rows inserted since) are still covered.

use std::time::Duration;

/// Keys `lo..=hi`; `None` is unbounded on that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub lo: Option<i128>,
    pub hi: Option<i128>,
}

impl KeyRange {
    pub const ALL: KeyRange = KeyRange { lo: None, hi: None };

    /// The SQL predicate on the quoted key column.
    pub fn predicate(&self, key: &str) -> String {
        match (self.lo, self.hi) {
            (None, None) => "1=1".to_string(),
            (Some(lo), None) => format!("{key} >= {lo}"),
            (None, Some(hi)) => format!("{key} <= {hi}"),
            (Some(lo), Some(hi)) if lo == hi => format!("{key} = {lo}"),
            (Some(lo), Some(hi)) => format!("{key} >= {lo} AND {key} <= {hi}"),
        }
    }

    /// Cuts `[min, max]` (the keys actually present) into at most `parts` ranges.
    pub fn split(min: i128, max: i128, parts: usize) -> Vec<KeyRange> {
        let span = max - min + 1;
        let parts = (parts as i128).clamp(1, span.max(1));
        let step = (span + parts - 1) / parts;
        let mut out = Vec::new();
        let mut lo = min;
        while lo <= max {
            let hi = (lo + step - 1).min(max);
            out.push(KeyRange {
                lo: Some(lo),
                hi: Some(hi),
            });
            lo = hi + 1;
        }
        out
    }
}

/// Hands out consecutive ranges over a key space, adapting their width.
#[derive(Debug)]
pub struct Splitter {
    next_lo: Option<i128>,
    started: bool,
    done: bool,
    min_key: i128,
    max_key: i128,
    width: i128,
    target: Duration,
    max_rows: f64,
    min_rows: f64,
    /// Key intervals already compared (a resumed run): sorted, disjoint, inclusive, with
    /// `i128::MIN`/`i128::MAX` for unbounded ends.
    skip: Vec<(i128, i128)>,
}

impl Splitter {
    /// `bounds` is the smallest and largest key over both sides (`None`: both empty);
    /// `first_rows` the size of the first chunk.
    pub fn new(bounds: Option<(i128, i128)>, first_rows: u64, target: Duration) -> Splitter {
        let (min_key, max_key) = bounds.unwrap_or((0, 0));
        // The first range assumes dense keys (AUTO_INCREMENT, the common case). Estimating
        // the density from the key span would let one far outlier key (or a bad estimate)
        // make the first range cover the whole table; a range that turns out sparse grows
        // the next ones quickly instead (see `feedback`).
        let span = (max_key - min_key + 1).max(1);
        let width = (first_rows as i128).clamp(1, span);
        Splitter {
            next_lo: None,
            started: false,
            done: false,
            min_key,
            // Nothing seen on either side: one open range still checks that it stays so.
            max_key: if bounds.is_some() { max_key } else { i128::MIN },
            width,
            target,
            max_rows: 2_000_000.0,
            min_rows: 500.0,
            skip: Vec::new(),
        }
    }

    /// Leaves out ranges that are already done: the ranges handed out cover exactly the
    /// rest of the key space.
    pub fn skip(&mut self, done: &[KeyRange]) {
        let mut v: Vec<(i128, i128)> = done
            .iter()
            .map(|r| (r.lo.unwrap_or(i128::MIN), r.hi.unwrap_or(i128::MAX)))
            .filter(|(a, b)| a <= b)
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(i128, i128)> = Vec::new();
        for (a, b) in v {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.skip = merged;
    }

    /// The next range, or `None` when the key space is covered.
    pub fn next_range(&mut self) -> Option<KeyRange> {
        if self.done {
            return None;
        }
        let mut lo = if self.started { self.next_lo } else { None };
        self.started = true;
        // Jump over finished intervals.
        while let Some(&(_, b)) = self
            .skip
            .iter()
            .find(|(a, b)| *a <= lo.unwrap_or(i128::MIN) && lo.unwrap_or(i128::MIN) <= *b)
        {
            if b == i128::MAX {
                self.done = true;
                return None;
            }
            lo = Some(b + 1);
        }
        let start = lo.unwrap_or(self.min_key);
        let mut hi = start.saturating_add(self.width - 1);
        let next_skip = self
            .skip
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| *a > lo.unwrap_or(i128::MIN))
            .min();
        if let Some(a) = next_skip {
            hi = hi.min(a - 1);
        } else if hi >= self.max_key {
            self.done = true;
            return Some(KeyRange { lo, hi: None });
        }
        self.next_lo = Some(hi + 1);
        Some(KeyRange { lo, hi: Some(hi) })
    }

    /// Learns from a finished chunk: `rows` rows in a range of `width` keys took `elapsed`.
    pub fn feedback(&mut self, range: &KeyRange, rows: u64, elapsed: Duration) {
        let (Some(lo), Some(hi)) = (range.lo, range.hi) else {
            return;
        };
        let width = (hi - lo + 1) as f64;
        if rows == 0 {
            self.width = (self.width.saturating_mul(16)).max(1);
            return;
        }
        let per_row = elapsed.as_secs_f64().max(1e-9) / rows as f64;
        let want_rows = (self.target.as_secs_f64() / per_row).clamp(self.min_rows, self.max_rows);
        let want_width = want_rows * width / rows as f64;
        let cur = self.width as f64;
        self.width = (want_width.clamp(cur / 2.0, cur * 16.0) as i128).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(mut s: Splitter) -> Vec<KeyRange> {
        let mut v = Vec::new();
        while let Some(r) = s.next_range() {
            v.push(r);
            assert!(v.len() < 100_000);
        }
        v
    }

    #[test]
    fn ranges_cover_everything_once() {
        let v = covered(Splitter::new(
            Some((1, 1000)),
            100,
            Duration::from_millis(50),
        ));
        assert_eq!(v.first().unwrap().lo, None);
        assert_eq!(v.last().unwrap().hi, None);
        for w in v.windows(2) {
            assert_eq!(w[0].hi.unwrap() + 1, w[1].lo.unwrap());
        }
    }

    #[test]
    fn empty_tables_get_one_open_range() {
        let v = covered(Splitter::new(None, 100, Duration::from_millis(50)));
        assert_eq!(v, vec![KeyRange::ALL]);
    }

    #[test]
    fn split_is_exact() {
        let parts = KeyRange::split(5, 5, 16);
        assert_eq!(
            parts,
            vec![KeyRange {
                lo: Some(5),
                hi: Some(5)
            }]
        );
        let parts = KeyRange::split(-10, 21, 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].lo, Some(-10));
        assert_eq!(parts[3].hi, Some(21));
    }

    proptest::proptest! {
        #[test]
        fn splitter_covers_the_key_space(min in -1_000_000i128..1_000_000, span in 0i128..1_000_000, first in 1u64..100_000, feedback in proptest::collection::vec((0u64..100_000, 0u64..1000), 0..50)) {
            let max = min + span;
            let mut s = Splitter::new(Some((min, max)), first, Duration::from_millis(50));
            let mut prev: Option<KeyRange> = None;
            let mut fb = feedback.into_iter();
            let mut n = 0;
            while let Some(r) = s.next_range() {
                n += 1;
                proptest::prop_assert!(n < 2_000_000);
                match prev {
                    None => proptest::prop_assert_eq!(r.lo, None),
                    Some(p) => proptest::prop_assert_eq!(p.hi.map(|h| h + 1), r.lo),
                }
                if let Some((rows, ms)) = fb.next() {
                    s.feedback(&r, rows, Duration::from_millis(ms));
                }
                prev = Some(r);
            }
            proptest::prop_assert_eq!(prev.and_then(|p| p.hi), None);
        }

        #[test]
        fn split_partitions(min in -1_000_000i128..1_000_000, span in 0i128..1_000_000, parts in 1usize..64) {
            let max = min + span;
            let v = KeyRange::split(min, max, parts);
            proptest::prop_assert!(v.len() <= parts);
            proptest::prop_assert_eq!(v[0].lo, Some(min));
            proptest::prop_assert_eq!(v[v.len() - 1].hi, Some(max));
            for w in v.windows(2) {
                proptest::prop_assert_eq!(w[0].hi.unwrap() + 1, w[1].lo.unwrap());
            }
        }
    }

    #[test]
    fn resumed_splitter_covers_exactly_the_rest() {
        let done = [
            KeyRange {
                lo: None,
                hi: Some(100),
            },
            KeyRange {
                lo: Some(300),
                hi: Some(450),
            },
            KeyRange {
                lo: Some(451),
                hi: Some(500),
            },
            KeyRange {
                lo: Some(900),
                hi: None,
            },
        ];
        let mut s = Splitter::new(Some((1, 1000)), 70, Duration::from_millis(50));
        s.skip(&done);
        let v = covered(s);
        let mut keys = std::collections::BTreeSet::new();
        for r in &v {
            let (lo, hi) = (r.lo.unwrap(), r.hi.unwrap());
            for k in lo..=hi {
                assert!(keys.insert(k), "{k} twice");
            }
        }
        let want: std::collections::BTreeSet<i128> = (101..300).chain(501..900).collect();
        assert_eq!(keys, want);
        // Everything done: nothing to hand out.
        let mut s = Splitter::new(Some((1, 1000)), 70, Duration::from_millis(50));
        s.skip(&[KeyRange::ALL]);
        assert!(s.next_range().is_none());
    }
}
