//! The one place the binary writes to its standard output and standard error.
//!
//! A reader that goes away (`cutover diff … | head -1`, `| true`, a pager quit early) closes
//! the pipe: that is the reader's choice, not a failure of the command. Rust ignores SIGPIPE,
//! so the write fails with `EPIPE`; here that failure is swallowed, later output to the same
//! stream is dropped, and the command ends with its own exit code. `print!` and friends
//! would panic instead (exit 101), so the binary uses the macros `out!`, `outln!`, `err!`
//! and `errln!` (defined in `main.rs`) and [`text`], which all come here.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; a closed pipe silences stdout for the rest of the run. Other write
/// errors (a full disk behind a redirection) are returned.
pub fn stdout(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    match o.write_fmt(args).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r,
    }
}

/// Writes to stderr; any failure is ignored (there is nowhere left to report it).
pub fn stderr(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut e = std::io::stderr().lock();
    if e.write_fmt(args).and_then(|_| e.flush()).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// A whole text (a report) to stdout.
pub fn text(s: &str) -> std::io::Result<()> {
    stdout(format_args!("{s}"))
}

/// Checks, before any work, that the directory `dir` (created when missing) takes new files:
/// a problem with an output is found in a second, not after an hour of comparing.
pub fn writable_dir(dir: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot create it: {e}", dir.display()))?;
    let probe = dir.join(format!(".cutover-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot write in it: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Checks, before any work, that the file `path` can be written: its directory exists and
/// takes new files. The file itself is not created (nor an older one touched).
pub fn writable_file(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(anyhow::anyhow!(
            "{flag} {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    if path.is_dir() {
        return Err(anyhow::anyhow!("{flag} {}: is a directory", path.display()));
    }
    let probe = dir.join(format!(".cutover-write-check-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: cannot write in {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
