//! The recorded workload as a bounded series of files: the first is the path given
//! (`--record w.cwl`), the next ones `w.part2.cwl`, `w.part3.cwl`, … Each part is a complete
//! workload file (header, records) that every `cutover workload`/`replay` command reads;
//! a session that spans a rotation continues in the next part, in order.
//!
//! A part is closed once its size on disk reaches the rotation size; when more than
//! `max_files` parts exist, the oldest is removed (and counted), so the disk used stays below
//! about `max_files × rotation size`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use cutover_workload::{Header, Record, WorkloadError, Writer};

/// The size is looked at every this many records (a `stat` each time).
const CHECK_EVERY: u32 = 512;

pub struct Parts {
    base: PathBuf,
    header: Header,
    rotate_bytes: u64,
    max_files: usize,
    writer: Option<Writer>,
    part: u32,
    kept: VecDeque<PathBuf>,
    records: u64,
    removed: Vec<PathBuf>,
    since_check: u32,
}

/// What was written.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub records: u64,
    /// The parts still on disk, oldest first.
    pub files: Vec<PathBuf>,
    /// Parts removed to stay within the bound.
    pub removed: Vec<PathBuf>,
}

/// The name of part `n` (1-based) of `base`: `w.cwl` → `w.part2.cwl`; `w` → `w.part2`.
pub fn part_path(base: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let renamed = match name.split_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.part{n}.{ext}"),
        _ => format!("{name}.part{n}"),
    };
    base.with_file_name(renamed)
}

impl Parts {
    pub fn create(
        base: &Path,
        header: Header,
        rotate_bytes: u64,
        max_files: usize,
    ) -> Result<Parts, WorkloadError> {
        let writer = Writer::create(base, &header)?;
        Ok(Parts {
            base: base.to_path_buf(),
            header,
            rotate_bytes: rotate_bytes.max(1),
            max_files: max_files.max(1),
            writer: Some(writer),
            part: 1,
            kept: VecDeque::from([base.to_path_buf()]),
            records: 0,
            removed: Vec::new(),
            since_check: 0,
        })
    }

    pub fn write(&mut self, r: &Record) -> Result<(), WorkloadError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(r)?;
        }
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            let full = self
                .writer
                .as_ref()
                .is_some_and(|w| w.bytes_on_disk() >= self.rotate_bytes);
            if full {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), WorkloadError> {
        if let Some(w) = self.writer.take() {
            self.records += w.finish()?;
        }
        self.part += 1;
        let path = part_path(&self.base, self.part);
        self.writer = Some(Writer::create(&path, &self.header)?);
        self.kept.push_back(path);
        metrics::counter!("cutover_proxy_files_rotated_total").increment(1);
        while self.kept.len() > self.max_files {
            if let Some(old) = self.kept.pop_front() {
                // Already gone is as good as removed.
                let _ = std::fs::remove_file(&old);
                metrics::counter!("cutover_proxy_files_removed_total").increment(1);
                self.removed.push(old);
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Written, WorkloadError> {
        if let Some(w) = self.writer.take() {
            self.records += w.finish()?;
        }
        Ok(Written {
            records: self.records,
            files: self.kept.into_iter().collect(),
            removed: self.removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        let b = Path::new("/tmp/x/w.cwl");
        assert_eq!(part_path(b, 1), b);
        assert_eq!(part_path(b, 2), Path::new("/tmp/x/w.part2.cwl"));
        assert_eq!(
            part_path(Path::new("day.cwl.gz"), 12),
            Path::new("day.part12.cwl.gz")
        );
        assert_eq!(part_path(Path::new("w"), 3), Path::new("w.part3"));
        assert_eq!(part_path(Path::new(".w"), 2), Path::new(".w.part2"));
    }

    #[test]
    fn rotates_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("w.cwl");
        let mut parts = Parts::create(&base, Header::new("proxy", None), 4096, 3).unwrap();
        for i in 0..20_000u64 {
            let r = Record {
                session: i % 7,
                ts_us: i as i64,
                db: None,
                user: None,
                command: cutover_workload::Command::Query {
                    sql: format!("SELECT {i}, '{}'", i * 7919 % 104729),
                },
                response: None,
            };
            parts.write(&r).unwrap();
        }
        let w = parts.finish().unwrap();
        assert!(!w.removed.is_empty(), "a small rotation size must rotate");
        assert_eq!(w.files.len(), 3);
        for f in &w.files {
            assert!(f.exists(), "{}", f.display());
        }
        for f in &w.removed {
            assert!(!f.exists(), "{}", f.display());
        }
        // Every kept part is a complete workload; their records are the newest, in order.
        let mut last = -1i64;
        let mut n = 0u64;
        for f in &w.files {
            for r in cutover_workload::Reader::open(f).unwrap() {
                let r = r.unwrap();
                assert!(r.ts_us > last);
                last = r.ts_us;
                n += 1;
            }
        }
        assert_eq!(last, 19_999);
        assert!(n < w.records);
    }
}
