//! Hot rows: one key written by two sessions within the window, which TiDB meets as write
//! conflicts or lock waits where InnoDB queued the writes.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::finding::{Evidence, Example, Finding};
use crate::profile::Profile;
use crate::workload_rules::{finding, plural, WorkloadRule};

/// Recent keys kept before the ones older than the window are dropped.
const RECENT_KEYS: usize = 200_000;
/// Hot keys kept; beyond it only keys already known count.
const HOT_KEYS: usize = 10_000;

struct HotKey {
    table: String,
    key: String,
    class: Rc<str>,
    conflicts: u64,
    sessions: HashSet<u64>,
    examples: Vec<Example>,
}

/// The keys written recently, to find two sessions writing one key within the window.
pub(super) struct HotRows {
    pub(super) window: i64,
    /// key → (session, time) of its last write.
    last: HashMap<String, (u64, i64)>,
    hot: HashMap<String, HotKey>,
}

impl HotRows {
    /// A tracker for writes closer than `window` microseconds.
    pub(super) fn new(window: i64) -> HotRows {
        HotRows {
            window,
            last: HashMap::new(),
            hot: HashMap::new(),
        }
    }

    pub(super) fn write(
        &mut self,
        table: &str,
        key: String,
        class: &Rc<str>,
        session: u64,
        ex: impl FnOnce() -> Example,
        ts: i64,
    ) {
        if let Some(&(s, t)) = self.last.get(&key) {
            if s != session && (ts - t).abs() < self.window {
                let room = self.hot.len() < HOT_KEYS;
                if let Some(h) = match self.hot.get_mut(&key) {
                    Some(h) => Some(h),
                    None if room => Some(self.hot.entry(key.clone()).or_insert(HotKey {
                        table: table.to_string(),
                        key: key.clone(),
                        class: class.clone(),
                        conflicts: 0,
                        sessions: HashSet::new(),
                        examples: Vec::new(),
                    })),
                    None => None,
                } {
                    h.conflicts += 1;
                    h.sessions.insert(s);
                    h.sessions.insert(session);
                    if h.examples.len() < 3 {
                        h.examples.push(ex());
                    }
                }
            }
        }
        if self.last.len() >= RECENT_KEYS && !self.last.contains_key(&key) {
            let w = self.window;
            self.last.retain(|_, (_, t)| (ts - *t).abs() < w);
        }
        self.last.insert(key, (session, ts));
    }

    /// The hot-row findings, one per table, the table with the most conflicts first.
    /// `span_seconds` is how long the workload ran (for the rates).
    pub(super) fn findings(self, span_seconds: f64, target: &Profile, out: &mut Vec<Finding>) {
        if let Some(text) = WorkloadRule::HotRows.text(target) {
            let minutes = (span_seconds.max(self.window as f64 / 1e6)) / 60.0;
            let mut by_table: HashMap<String, Vec<HotKey>> = HashMap::new();
            for (_, h) in self.hot {
                by_table.entry(h.table.clone()).or_default().push(h);
            }
            let mut tables: Vec<(String, Vec<HotKey>, u64)> = by_table
                .into_iter()
                .map(|(t, mut keys)| {
                    keys.sort_by(|a, b| b.conflicts.cmp(&a.conflicts).then(a.key.cmp(&b.key)));
                    let total = keys.iter().map(|k| k.conflicts).sum();
                    (t, keys, total)
                })
                .collect();
            tables.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            for (table, keys, total) in tables {
                let sessions: HashSet<u64> = keys
                    .iter()
                    .flat_map(|k| k.sessions.iter().copied())
                    .collect();
                let top: Vec<String> = keys
                    .iter()
                    .take(5)
                    .map(|k| {
                        format!(
                            "{} ({} conflicts, {:.1} a minute)",
                            k.key.split_once('.').map_or(k.key.as_str(), |(_, r)| r),
                            k.conflicts,
                            k.conflicts as f64 / minutes
                        )
                    })
                    .collect();
                let message = format!(
                    "{total} conflicting write{} ({:.1} a minute) to {} key{} of {table} by {} sessions, within {} ms of another session's write; hottest: {}: {}",
                    plural(total),
                    total as f64 / minutes,
                    keys.len(),
                    plural(keys.len() as u64),
                    sessions.len(),
                    self.window / 1000,
                    top.join(", "),
                    text.meaning
                );
                let first = &keys[0];
                out.push(finding(
                    WorkloadRule::HotRows,
                    text.clone(),
                    Some(table.clone()),
                    message,
                    Evidence {
                        class: first.class.to_string(),
                        statements: total,
                        sessions: sessions.len() as u64,
                        examples: first.examples.clone(),
                    },
                ));
            }
        }
    }
}
