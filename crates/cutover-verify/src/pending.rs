//! The pending set: every changed key that has not yet been seen equal on both sides.
//!
//! A key enters when the binlog says its row changed, and leaves when a check finds the
//! source's row and the target's row the same (or both absent). Changes to a key that is
//! already pending merge into its entry: the entry remembers the latest position (the
//! replicator must get past it before the key can be judged), and counts the changes, so a
//! key that keeps changing faster than it can be checked is reported as *busy* instead of as
//! a mismatch. Entries are kept per table, by the canonical encoding of the typed key, so two
//! keys are one entry exactly when [`cutover_core::same`] calls them equal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cutover_core::schema::TableName;
use cutover_core::value::Value;

pub use crate::change::key_id;
use crate::change::{ChangeKind, RowChange};
use crate::position::BinlogPos;

/// One pending key.
#[derive(Clone, Debug)]
pub struct PendingKey {
    pub key: Vec<Value>,
    /// The position just after the latest change of this key.
    pub position: BinlogPos,
    /// When the latest change was read from the binlog.
    pub seen: Instant,
    /// Changes merged into this entry (1 for a key changed once).
    pub changes: u32,
    /// Checks that found the sides different since the latest change.
    pub attempts: u32,
    /// Not checked before this.
    pub next_check: Instant,
    /// When the replicator was first known to be past `position`; grace counts from here.
    pub caught_up_at: Option<Instant>,
    /// The first check that found the sides different (for the resolved count).
    pub mismatch_since: Option<Instant>,
    /// What the binlog says the row is after the latest change (`None`: deleted), when the
    /// event carried the whole row; the target is compared with it before the source is
    /// read (only keys that keep failing are read from the source).
    pub expected: Option<Expected>,
}

/// The row a change leaves behind, as the binlog tells it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Row(Vec<Value>),
    Absent,
}

/// A pending key as a checkpoint keeps it: enough to check it again after a restart.
#[derive(Clone, Debug)]
pub struct SavedPending {
    pub table: TableName,
    pub key: Vec<Value>,
    /// The position just after the key's latest change.
    pub position: BinlogPos,
    /// Changes merged into the key's entry.
    pub changes: u32,
}

/// Pending keys beyond which images are not kept (memory): such keys are read from both sides.
const MAX_IMAGES: usize = 100_000;

fn expected_of(change: &RowChange, keep: bool) -> Option<Expected> {
    if !keep {
        return None;
    }
    match change.kind {
        ChangeKind::Delete => Some(Expected::Absent),
        _ => change.image.clone().map(Expected::Row),
    }
}

/// Changed keys by source table.
#[derive(Debug, Default)]
pub struct PendingSet {
    tables: HashMap<TableName, HashMap<Vec<u8>, PendingKey>>,
    len: usize,
}

impl PendingSet {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a change, or merges it into the key's entry. The first check waits `delay`
    /// (the replicator needs a moment for the change anyway). True when the change merged
    /// into a key already pending.
    pub fn add(&mut self, change: &RowChange, now: Instant, delay: Duration) -> bool {
        let keep = self.len < MAX_IMAGES;
        let keys = self.tables.entry(change.table.clone()).or_default();
        let id = key_id(&change.key);
        match keys.get_mut(&id) {
            Some(e) => {
                e.position = change.position.clone();
                e.seen = now;
                e.changes = e.changes.saturating_add(1);
                e.attempts = 0;
                e.next_check = now + delay;
                e.caught_up_at = None;
                e.expected = expected_of(change, keep);
                true
            }
            None => {
                keys.insert(
                    id,
                    PendingKey {
                        key: change.key.clone(),
                        position: change.position.clone(),
                        seen: now,
                        changes: 1,
                        attempts: 0,
                        next_check: now + delay,
                        caught_up_at: None,
                        mismatch_since: None,
                        expected: expected_of(change, keep),
                    },
                );
                self.len += 1;
                false
            }
        }
    }

    /// A key saved in a checkpoint, taken in again on restart (its grace starts over).
    pub fn restore(&mut self, saved: SavedPending, now: Instant, delay: Duration) {
        let SavedPending {
            table,
            key,
            position,
            changes,
        } = saved;
        let id = key_id(&key);
        let keys = self.tables.entry(table).or_default();
        if keys.contains_key(&id) {
            return;
        }
        keys.insert(
            id,
            PendingKey {
                key,
                position,
                seen: now,
                changes,
                attempts: 0,
                next_check: now + delay,
                caught_up_at: None,
                mismatch_since: None,
                expected: None,
            },
        );
        self.len += 1;
    }

    /// How long the oldest pending key has waited since its latest change was read.
    pub fn oldest_age(&self, now: Instant) -> Duration {
        self.iter()
            .map(|(_, e)| now.saturating_duration_since(e.seen))
            .max()
            .unwrap_or_default()
    }

    /// The keys due for a check at `now`, by table, at most `limit` in all.
    pub fn due(&self, now: Instant, limit: usize) -> Vec<(TableName, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut n = 0;
        for (table, keys) in &self.tables {
            if n >= limit {
                break;
            }
            let ids: Vec<Vec<u8>> = keys
                .iter()
                .filter(|(_, e)| e.next_check <= now)
                .take(limit - n)
                .map(|(id, _)| id.clone())
                .collect();
            n += ids.len();
            if !ids.is_empty() {
                out.push((table.clone(), ids));
            }
        }
        out
    }

    pub fn get_mut(&mut self, table: &TableName, id: &[u8]) -> Option<&mut PendingKey> {
        self.tables.get_mut(table)?.get_mut(id)
    }

    pub fn remove(&mut self, table: &TableName, id: &[u8]) -> Option<PendingKey> {
        let keys = self.tables.get_mut(table)?;
        let e = keys.remove(id)?;
        self.len -= 1;
        if keys.is_empty() {
            self.tables.remove(table);
        }
        Some(e)
    }

    /// Every pending entry.
    pub fn iter(&self) -> impl Iterator<Item = (&TableName, &PendingKey)> {
        self.tables
            .iter()
            .flat_map(|(t, keys)| keys.values().map(move |e| (t, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64, pos: u64) -> RowChange {
        RowChange {
            table: TableName::new("db", "t"),
            kind: ChangeKind::Update,
            key: vec![Value::Int(id)],
            image: None,
            position: BinlogPos::new("binlog.000001", pos),
            timestamp: 0,
        }
    }

    #[test]
    fn repeated_changes_to_a_key_merge() {
        let mut p = PendingSet::default();
        let now = Instant::now();
        let d = Duration::from_millis(100);
        p.add(&change(1, 10), now, d);
        p.add(&change(2, 20), now, d);
        p.add(&change(1, 30), now, d);
        assert_eq!(p.len(), 2);
        let t = TableName::new("db", "t");
        let e = p.get_mut(&t, &key_id(&[Value::Int(1)])).expect("pending");
        assert_eq!((e.changes, e.position.pos), (2, 30));
        assert!(p.due(now, 10).is_empty(), "not due before the delay");
        let due = p.due(now + d, 10);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.len(), 2);
        assert_eq!(p.due(now + d, 1)[0].1.len(), 1, "the limit holds");
        assert!(p.remove(&t, &key_id(&[Value::Int(2)])).is_some());
        assert!(p.remove(&t, &key_id(&[Value::Int(2)])).is_none());
        assert_eq!(p.len(), 1);
    }
}
