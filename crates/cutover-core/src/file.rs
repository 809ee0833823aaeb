//! Files written whole or not at all: reports, checkpoints, anything a reader (or a resumed
//! run) may open while it is being replaced.
//!
//! [`write_atomic`] writes to a temporary file beside the destination (so the rename stays
//! on one file system), gives it its final permissions before any data goes in (a file with
//! row values is never readable by others, not even for a moment), flushes it to disk, then
//! renames it over the destination and flushes the directory, so a crash leaves the old file
//! or the new one, never half of either.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::Path;

/// Who may read a file written by [`write_atomic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// Its owner only (mode 0600): the file may hold row values.
    Owner,
    /// Everyone (mode 0644): the file holds no data from the servers' tables.
    Everyone,
}

/// Writes `path` whole: `fill` writes the contents into a temporary file in the same
/// directory, which then replaces `path`. On an error `path` is untouched and the temporary
/// file is removed.
pub fn write_atomic(
    path: &Path,
    readers: Readers,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".cutover-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    set_mode(tmp.as_file(), readers)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable once the directory is on disk too. Some file systems refuse to
    // sync a directory; the file itself is already safe, so that is not an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(f: &File, readers: Readers) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = match readers {
        Readers::Owner => 0o600,
        Readers::Everyone => 0o644,
    };
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &File, _: Readers) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("report.json");
        write_atomic(&path, Readers::Everyone, |f| f.write_all(b"one")).unwrap();
        write_atomic(&path, Readers::Everyone, |f| f.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(names(tmp.path()), ["report.json"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("checkpoint.json");
        write_atomic(&path, Readers::Owner, |f| f.write_all(b"old")).unwrap();
        let err = write_atomic(&path, Readers::Owner, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(names(tmp.path()), ["checkpoint.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn modes_follow_the_readers() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        for (readers, mode) in [(Readers::Owner, 0o600), (Readers::Everyone, 0o644)] {
            let path = tmp.path().join(format!("{mode:o}"));
            write_atomic(&path, readers, |f| f.write_all(b"x")).unwrap();
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{readers:?}");
        }
    }
}
